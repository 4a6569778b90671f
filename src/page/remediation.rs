//! The remediation part of the status page: per target its state, budget and
//! backoff, and a timeline of what happened: restarts (with their result,
//! recovery time and running containers before and after) and held-back
//! restarts (skip runs by reason), on a bar and as a list, newest first.
//! Metrics: none.

use super::{badge, class_of, html::Html};
use serde_json::Value;

/// The bar spans at least this much, so a single event is not at its edge.
const MIN_SPAN_SECONDS: f64 = 60.0;

/// One thing on the timeline.
struct Item<'a> {
    at: f64,
    /// `restart`, `failure` or `skip`: the marker's class.
    kind: &'static str,
    v: &'a Value,
}

pub(super) fn render(h: &mut Html, targets: &Value, now_unix: f64) {
    h.raw("<h2>Remediation</h2>");
    let Some(targets) = targets.as_object().filter(|t| !t.is_empty()) else {
        h.raw("<p class=\"muted\">No runtime is remediated.</p>");
        return;
    };
    for (name, t) in targets {
        summary(h, name, t, now_unix);
        let items = items(t);
        if items.is_empty() {
            h.raw("<p class=\"muted\">No restart and no held-back restart since the agent started.</p>");
            continue;
        }
        bar(h, &items, now_unix);
        list(h, &items, now_unix);
    }
}

fn summary(h: &mut Html, name: &str, t: &Value, now_unix: f64) {
    h.raw("<h3>").text(name).raw(" ");
    badge(h, &t["state"]);
    h.raw("</h3><table><tr><th>method</th><td>")
        .value(&t["method"]);
    if t["dry_run"] == true {
        h.raw(" <span class=\"warn\">(dry run)</span>");
    }
    h.raw("</td></tr><tr><th>restarts in window</th><td>")
        .value(&t["restarts_in_window"])
        .raw(" of ")
        .value(&t["max_restarts"])
        .raw(" per ")
        .seconds(&t["window_seconds"])
        .raw("</td></tr><tr><th>backoff</th><td>")
        .seconds(&t["backoff_seconds"])
        .raw("</td></tr><tr><th>next restart allowed</th><td>");
    match t["next_allowed_unix"].as_f64() {
        Some(at) if at > now_unix => h.raw("in ").seconds(&(at - now_unix).into()),
        _ => h.raw("now"),
    };
    h.raw("</td></tr><tr><th>last decision</th><td>")
        .value(&t["last_decision"])
        .raw("</td></tr><tr><th>running containers</th><td>")
        .value(&t["running_containers"])
        .raw("</td></tr>");
    evidence(h, t, now_unix);
    if !t["state_file_error"].is_null() {
        h.raw("<tr><th>state file</th><td class=\"bad\">")
            .value(&t["state_file_error"])
            .raw("</td></tr>");
    }
    h.raw("</table>");
}

/// What the agent saw at the last hang, and the runtime root's free space.
fn evidence(h: &mut Html, t: &Value, now_unix: f64) {
    let hang = &t["last_hang"];
    if !hang.is_null() {
        h.raw("<tr><th>last hang</th><td>")
            .ago(&hang["at_unix"], now_unix)
            .raw(": ")
            .value(&hang["class"])
            .raw(", process state ")
            .value(&hang["state"]);
        if let Some(blocked) = hang["blocked_in"].as_object().filter(|b| !b.is_empty()) {
            h.raw(", blocked in");
            for (wchan, n) in blocked {
                h.raw(" ").text(wchan).raw(" \u{d7} ").value(n);
            }
        }
        h.raw("</td></tr>");
    }
    let root = &t["runtime_root"];
    if let (Some(free), Some(size)) = (root["free_bytes"].as_f64(), root["size_bytes"].as_f64()) {
        h.raw("<tr><th>runtime root</th><td>")
            .value(&root["path"])
            .raw(": ")
            .percent(if size > 0.0 { free / size * 100.0 } else { 0.0 })
            .raw(" free</td></tr>");
    }
}

/// Restarts and skip runs, oldest first.
fn items(t: &Value) -> Vec<Item<'_>> {
    let restarts = t["history"].as_array().into_iter().flatten().map(|e| Item {
        at: e["at_unix"].as_f64().unwrap_or_default(),
        kind: if e["result"] == "failure" {
            "failure"
        } else {
            "restart"
        },
        v: e,
    });
    let skips = t["skips"].as_array().into_iter().flatten().map(|s| Item {
        at: s["first_unix"].as_f64().unwrap_or_default(),
        kind: "skip",
        v: s,
    });
    let mut all: Vec<Item<'_>> = restarts.chain(skips).collect();
    all.sort_by(|a, b| a.at.total_cmp(&b.at));
    all
}

fn bar(h: &mut Html, items: &[Item<'_>], now_unix: f64) {
    let start = items.first().map_or(now_unix, |i| i.at);
    let span = (now_unix - start).max(MIN_SPAN_SECONDS);
    let from = now_unix - span;
    h.raw("<div class=\"track\" title=\"last ")
        .seconds(&span.into())
        .raw("\">");
    for i in items {
        h.raw("<span class=\"mark ")
            .raw(i.kind)
            .raw("\" style=\"left:")
            .percent((i.at - from) / span * 100.0)
            .raw("\"></span>");
    }
    h.raw("</div>");
}

fn list(h: &mut Html, items: &[Item<'_>], now_unix: f64) {
    h.raw("<table>").header(&[
        "when",
        "what",
        "recovery",
        "running before \u{2192} after",
        "detail",
    ]);
    for i in items.iter().rev() {
        h.raw("<tr><td>")
            .ago(&i.at.into(), now_unix)
            .raw("</td><td>");
        if i.kind == "skip" {
            h.raw("<span class=\"warn\">held back: ")
                .value(&i.v["reason"])
                .raw("</span> \u{d7} ")
                .value(&i.v["rounds"])
                .raw(" rounds, last ")
                .ago(&i.v["last_unix"], now_unix)
                .raw("</td><td></td><td></td><td></td></tr>");
            continue;
        }
        let result = i.v["result"].as_str().unwrap_or_default();
        h.raw("restart <span class=\"")
            .raw(class_of(result))
            .raw("\">")
            .text(result)
            .raw("</span></td><td class=\"num\">")
            .seconds(&i.v["recovery_seconds"])
            .raw("</td><td class=\"num\">")
            .value(&i.v["running_before"])
            .raw(" \u{2192} ")
            .value(&i.v["running_after"])
            .raw("</td><td>")
            .value(&i.v["detail"])
            .raw("</td></tr>");
    }
    h.raw("</table>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn target() -> Value {
        json!({"docker": {
            "state": "healthy", "method": "signal", "dry_run": false,
            "next_allowed_unix": 1030.0, "backoff_seconds": 30.0,
            "restarts_in_window": 1, "max_restarts": 3, "window_seconds": 3600.0,
            "last_decision": "recovered", "running_containers": 2,
            "state_file_error": null,
            "last_hang": {"at_unix": 998.0, "class": "stopped", "state": "T",
                          "blocked_in": {"<futex>": 3}},
            "runtime_root": {"path": "/var/lib/docker", "free_bytes": 25, "size_bytes": 100},
            "history": [{"at_unix": 1000.0, "method": "signal", "result": "success",
                         "recovery_seconds": 2.5, "running_before": 2, "running_after": 2,
                         "detail": "SIGTERM to pid 42; would kill 0 running containers"}],
            "skips": [{"reason": "cooldown", "first_unix": 990.0, "last_unix": 995.0, "rounds": 3}],
        }})
    }

    #[test]
    fn shows_restarts_and_skips_newest_first() {
        let mut h = Html::default();
        render(&mut h, &target(), 1010.0);
        let page = h.finish();
        let restart = page
            .find("restart <span class=\"ok\">success</span>")
            .expect(&page);
        let skip = page.find("held back: cooldown").expect(&page);
        assert!(restart < skip, "newest first: {page}");
        assert!(page.contains("2.50 s"), "recovery time: {page}");
        assert!(page.contains("in 20.00 s"), "next allowed: {page}");
        assert!(page.contains("\u{d7} 3 rounds"), "{page}");
        assert!(
            page.contains("12s ago: stopped, process state T, blocked in &lt;futex&gt; \u{d7} 3"),
            "{page}"
        );
        assert!(page.contains("/var/lib/docker: 25.0% free"), "{page}");
        // The bar spans the first skip to now: 20 s, shown as the 60 s minimum.
        assert!(
            page.contains("class=\"mark restart\" style=\"left:83.3%\""),
            "{page}"
        );
    }

    #[test]
    fn a_target_without_history_says_so() {
        let mut t = target();
        t["docker"]["history"] = json!([]);
        t["docker"]["skips"] = json!([]);
        let mut h = Html::default();
        render(&mut h, &t, 1010.0);
        assert!(h.finish().contains("No restart and no held-back restart"));
    }
}
