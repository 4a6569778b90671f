#!/usr/bin/env python3
"""Generates the Grafana dashboards in deploy/grafana/ with grafana-foundation-sdk
(the typed builders Grafana maintains), so each file is a valid dashboard by
construction. tests/dashboards.rs checks the committed files equal a fresh run
and runs every panel's PromQL against a real Prometheus.

    target/py/bin/python scripts/grafana/dashboards.py deploy/grafana

Every query selects `job=~"$job", cluster=~"$cluster", instance=~"$node"`:
the PodMonitor (deploy/prometheus-operator) sets `instance` to the node name.
"""

import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import (
    dashboard,
    heatmap,
    prometheus,
    stat,
    statetimeline,
    table,
    timeseries,
)
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import GraphDrawStyle
from grafana_foundation_sdk.models.prometheus import PromQueryFormat
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    VariableOption,
    VariableRefresh,
    VariableSort,
)

DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
SEL = 'job=~"$job", cluster=~"$cluster", instance=~"$node"'
RI = "$__rate_interval"


def q(expr, legend="__auto", instant=False, fmt=None, ref="A"):
    t = prometheus.Dataquery().expr(expr).legend_format(legend).datasource(DS).ref_id(ref)
    if instant:
        t = t.instant()
    else:
        t = t.range()
    if fmt:
        t = t.format(fmt)
    return t


def variables(d, node_multi):
    d.with_variable(
        dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")
    )
    d.with_variable(
        dashboard.QueryVariable("job")
        .label("Job")
        .datasource(DS)
        .query("label_values(nodevitals_build_info, job)")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .current(VariableOption(text="nodevitals", value="nodevitals"))
    )
    # Multi-cluster setups add a `cluster` label; without it "All" matches.
    d.with_variable(
        dashboard.QueryVariable("cluster")
        .label("Cluster")
        .datasource(DS)
        .query('label_values(nodevitals_build_info{job=~"$job"}, cluster)')
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .include_all(True)
        .all_value(".*")
        .sort(VariableSort.ALPHABETICAL_ASC)
    )
    node = (
        dashboard.QueryVariable("node")
        .label("Node")
        .datasource(DS)
        .query('label_values(nodevitals_build_info{job=~"$job", cluster=~"$cluster"}, instance)')
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
    )
    if node_multi:
        node = node.multi(True).include_all(True).all_value(".*")
    d.with_variable(node)


def base(uid, title, description):
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["nodevitals", "kubernetes", "node"])
        .editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
    )


def fleet():
    d = base(
        "nodevitals-fleet",
        "nodevitals / Fleet",
        "Which nodes hung, what was restarted and how fast it came back, where DNS stalls, which containers are throttled.",
    )
    variables(d, node_multi=True)
    d.with_row(dashboard.Row("Runtimes and remediation"))
    d.with_panel(
        stat.Panel()
        .title("Nodes with the restart budget exhausted")
        .description("Runtime hung and the restart budget spent: the node needs a human (alert NodevitalsRestartBudgetExhausted).")
        .with_target(q(f'sum(nodevitals_remediation_state{{{SEL}, state="exhausted"}})', "exhausted", instant=True))
        .height(5).span(6)
    )
    d.with_panel(
        stat.Panel()
        .title("Runtimes down or hung")
        .with_target(q(f"sum(1 - nodevitals_runtime_up{{{SEL}}})", "down", instant=True))
        .height(5).span(6)
    )
    d.with_panel(
        stat.Panel()
        .title("Restarts issued (range)")
        .with_target(q(f"sum(increase(nodevitals_remediation_restarts_total{{{SEL}}}[$__range]))", "restarts", instant=True))
        .height(5).span(6)
    )
    d.with_panel(
        stat.Panel()
        .title("Agents scraped")
        .with_target(q(f"count(nodevitals_build_info{{{SEL}}})", "agents", instant=True))
        .height(5).span(6)
    )
    d.with_panel(
        statetimeline.Panel()
        .title("Runtime up per node")
        .with_target(q(f"min by (instance, runtime) (nodevitals_runtime_up{{{SEL}}})", "{{instance}} {{runtime}}"))
        .height(8).span(12)
    )
    d.with_panel(
        table.Panel()
        .title("Remediation state per node")
        .description("One row per node and runtime: healthy, failing, restarting, recovering, backoff, exhausted or disabled.")
        .with_target(q(f"nodevitals_remediation_state{{{SEL}}} == 1", instant=True, fmt=PromQueryFormat.TABLE))
        .height(8).span(12)
    )
    d.with_panel(
        timeseries.Panel()
        .title("Restarts by result")
        .with_target(q(f"sum by (target, result) (increase(nodevitals_remediation_restarts_total{{{SEL}}}[{RI}]))", "{{target}} {{result}}"))
        .draw_style(GraphDrawStyle.BARS).height(8).span(8)
    )
    d.with_panel(
        timeseries.Panel()
        .title("Restarts held back, by reason")
        .with_target(q(f"sum by (target, reason) (increase(nodevitals_remediation_skipped_total{{{SEL}}}[{RI}]))", "{{target}} {{reason}}"))
        .draw_style(GraphDrawStyle.BARS).height(8).span(8)
    )
    d.with_panel(
        heatmap.Panel()
        .title("Recovery time (restart issued to healthy)")
        .with_target(q(f"sum by (le) (increase(nodevitals_remediation_recovery_seconds_bucket{{{SEL}}}[{RI}]))", "{{le}}", fmt=PromQueryFormat.HEATMAP))
        .unit("s").height(8).span(8)
    )
    d.with_row(dashboard.Row("DNS"))
    d.with_panel(
        heatmap.Panel()
        .title("DNS query latency")
        .description("Every query of every agent; buckets reach past 5 s and 10 s, so the conntrack race's 5 s band stands out.")
        .with_target(q(f"sum by (le) (increase(nodevitals_dns_request_duration_seconds_bucket{{{SEL}}}[{RI}]))", "{{le}}", fmt=PromQueryFormat.HEATMAP))
        .unit("s").height(9).span(12)
    )
    d.with_panel(
        timeseries.Panel()
        .title("A/AAAA pair losses next to conntrack drops")
        .description("A pair with one answer lost alongside conntrack insert failures is the Kubernetes 5 s DNS delay.")
        .with_target(q(f"sum by (instance) (increase(nodevitals_dns_pair_lost_total{{{SEL}}}[{RI}]))", "{{instance}} pair lost"))
        .with_target(q(f"sum by (instance) (increase(nodevitals_conntrack_insert_failed_total{{{SEL}}}[{RI}]))", "{{instance}} conntrack insert failed", ref="B"))
        .with_target(q(f"sum by (instance) (increase(nodevitals_conntrack_drop_total{{{SEL}}}[{RI}]))", "{{instance}} conntrack drop", ref="C"))
        .height(9).span(12)
    )
    d.with_row(dashboard.Row("CPU throttling"))
    d.with_panel(
        table.Panel()
        .title("Most throttled containers")
        .description("Share of CFS periods throttled over the agent's last interval, highest 20 across the selected nodes.")
        .with_target(q(f"topk(20, nodevitals_container_cpu_throttled_ratio{{{SEL}}})", instant=True, fmt=PromQueryFormat.TABLE))
        .unit("percentunit").height(10).span(24)
    )
    return d


def node():
    d = base(
        "nodevitals-node",
        "nodevitals / Node",
        "One node: its probes and their latencies, the remediation timeline, DNS per server, throttling.",
    )
    variables(d, node_multi=False)
    d.with_row(dashboard.Row("Probes"))
    d.with_panel(
        statetimeline.Panel()
        .title("Probe success")
        .with_target(q(f"nodevitals_probe_success{{{SEL}}}", "{{probe}}"))
        .height(7).span(12)
    )
    d.with_panel(
        timeseries.Panel()
        .title("Probe duration (p99)")
        .with_target(q(f"histogram_quantile(0.99, sum by (probe, le) (rate(nodevitals_probe_duration_seconds_bucket{{{SEL}}}[{RI}])))", "{{probe}}"))
        .unit("s").height(7).span(12)
    )
    d.with_row(dashboard.Row("Runtime and remediation"))
    d.with_panel(
        timeseries.Panel()
        .title("Runtime request latency (p99)")
        .with_target(q(f"histogram_quantile(0.99, sum by (runtime, operation, le) (rate(nodevitals_runtime_request_duration_seconds_bucket{{{SEL}}}[{RI}])))", "{{runtime}} {{operation}}"))
        .unit("s").height(8).span(12)
    )
    d.with_panel(
        timeseries.Panel()
        .title("Runtime requests by result")
        .with_target(q(f"sum by (runtime, result) (rate(nodevitals_runtime_requests_total{{{SEL}}}[{RI}]))", "{{runtime}} {{result}}"))
        .unit("reqps").height(8).span(12)
    )
    d.with_panel(
        statetimeline.Panel()
        .title("Remediation timeline")
        .description("The state of each remediated runtime over time.")
        .with_target(q(f"max by (target, state) (nodevitals_remediation_state{{{SEL}}})", "{{target}} {{state}}"))
        .height(8).span(12)
    )
    d.with_panel(
        timeseries.Panel()
        .title("Restarts and held-back restarts")
        .with_target(q(f"sum by (result) (increase(nodevitals_remediation_restarts_total{{{SEL}}}[{RI}]))", "restart {{result}}"))
        .with_target(q(f"sum by (reason) (increase(nodevitals_remediation_skipped_total{{{SEL}}}[{RI}]))", "held back: {{reason}}", ref="B"))
        .draw_style(GraphDrawStyle.BARS).height(8).span(12)
    )
    d.with_row(dashboard.Row("DNS"))
    d.with_panel(
        timeseries.Panel()
        .title("DNS latency per server (p99)")
        .with_target(q(f"histogram_quantile(0.99, sum by (server, qtype, le) (rate(nodevitals_dns_request_duration_seconds_bucket{{{SEL}}}[{RI}])))", "{{server}} {{qtype}}"))
        .unit("s").height(8).span(12)
    )
    d.with_panel(
        timeseries.Panel()
        .title("DNS queries by result")
        .with_target(q(f"sum by (server, result) (rate(nodevitals_dns_requests_total{{{SEL}}}[{RI}]))", "{{server}} {{result}}"))
        .unit("reqps").height(8).span(12)
    )
    d.with_row(dashboard.Row("CPU throttling"))
    d.with_panel(
        timeseries.Panel()
        .title("Most throttled containers (share of periods)")
        .with_target(q(f"topk(10, nodevitals_container_cpu_throttled_ratio{{{SEL}}})", "{{namespace}}/{{pod}}/{{container}}{{id}}"))
        .unit("percentunit").height(8).span(12)
    )
    d.with_panel(
        timeseries.Panel()
        .title("Throttled time per second")
        .with_target(q(f"topk(10, rate(nodevitals_container_cpu_throttled_seconds_total{{{SEL}}}[{RI}]))", "{{namespace}}/{{pod}}/{{container}}{{id}}"))
        .unit("s").height(8).span(12)
    )
    return d


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: dashboards.py OUT_DIR")
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for name, d in (("nodevitals-fleet.json", fleet()), ("nodevitals-node.json", node())):
        text = json.dumps(d.build(), cls=JSONEncoder, sort_keys=True, indent=2)
        (out / name).write_text(text + "\n")


if __name__ == "__main__":
    main()
