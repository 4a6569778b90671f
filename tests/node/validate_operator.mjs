// Validates prometheus-operator objects (JSON files, one object each) against
// the operator's CRD schemas, as packaged by @kubernetes-models/prometheus-operator.
// Prints one line per valid file on stdout, per invalid one on stderr; exits
// 1 if any is invalid.
// Usage: node validate_operator.mjs <object.json>...
import { readFileSync } from "node:fs";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";

const kinds = { PodMonitor, PrometheusRule };
let failed = false;
for (const file of process.argv.slice(2)) {
  const object = JSON.parse(readFileSync(file, "utf8"));
  const Model = kinds[object.kind];
  if (!Model || object.apiVersion !== "monitoring.coreos.com/v1") {
    console.error(`${file}: not a known object: ${object.apiVersion} ${object.kind}`);
    failed = true;
    continue;
  }
  try {
    new Model(object).validate();
    console.log(`${file}: valid ${object.kind}`);
  } catch (e) {
    console.error(`${file}: invalid ${object.kind}: ${e.message}`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
