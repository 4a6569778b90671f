//! The DNS part of the status page: per server the slowest query of each
//! recent run (a small bar chart) and every query of the last run with its
//! result and latency; the stub-resolver lookups; the kernel's conntrack
//! counters (a failed insert is what loses one query of an A/AAAA pair).
//! Metrics: none.

use super::{badge, html::Html};
use serde_json::Value;

/// The shortest bar, in percent of the tallest, so a fast run stays visible.
const MIN_BAR_PERCENT: f64 = 5.0;

pub(super) fn render(h: &mut Html, dns: &Value) {
    h.raw("<h2>DNS</h2>");
    if dns.is_null() {
        h.raw("<p class=\"muted\">DNS is not probed, or has not run yet.</p>");
        return;
    }
    if let Some(servers) = dns["servers"].as_object() {
        h.raw("<table>").header(&[
            "server",
            "recent runs (slowest query)",
            "name",
            "type",
            "transport",
            "result",
            "latency",
        ]);
        for (server, s) in servers {
            let queries = s["queries"].as_array().map_or(&[][..], Vec::as_slice);
            for (i, q) in queries.iter().enumerate() {
                h.raw("<tr>");
                if i == 0 {
                    server_cells(h, server, &s["recent_slowest_seconds"], queries.len());
                }
                h.raw("<td>")
                    .value(&q["name"])
                    .raw("</td><td>")
                    .value(&q["qtype"])
                    .raw("</td><td>")
                    .value(&q["transport"])
                    .raw("</td><td>");
                badge(h, &q["result"]);
                h.raw("</td><td class=\"num\">")
                    .seconds(&q["seconds"])
                    .raw("</td></tr>");
            }
        }
        h.raw("</table>");
    }
    lookups(h, &dns["lookups"]);
    conntrack(h, dns);
}

/// The server's name and its recent-runs chart, spanning its query rows.
fn server_cells(h: &mut Html, server: &str, recent: &Value, rows: usize) {
    let recent = recent.as_array().map_or(&[][..], Vec::as_slice);
    let max = recent.iter().filter_map(Value::as_f64).fold(0.0, f64::max);
    h.raw("<td rowspan=\"")
        .number(rows as u64)
        .raw("\">")
        .text(server)
        .raw("</td><td rowspan=\"")
        .number(rows as u64)
        .raw("\"><span class=\"spark\">");
    for v in recent {
        let s = v.as_f64().unwrap_or_default();
        let share = if max > 0.0 { s / max } else { 0.0 };
        h.raw("<span style=\"height:")
            .percent((share * 100.0).max(MIN_BAR_PERCENT))
            .raw("\" title=\"")
            .seconds(v)
            .raw("\"></span>");
    }
    h.raw("</span> max ").seconds(&max.into()).raw("</td>");
}

fn lookups(h: &mut Html, lookups: &Value) {
    let Some(lookups) = lookups.as_array().filter(|l| !l.is_empty()) else {
        return;
    };
    h.raw("<h3>Lookups as an application makes them</h3><table>")
        .header(&["name", "result"]);
    for l in lookups {
        h.raw("<tr><td>").value(&l["name"]).raw("</td><td>");
        badge(h, &l["result"]);
        h.raw("</td></tr>");
    }
    h.raw("</table>");
}

fn conntrack(h: &mut Html, dns: &Value) {
    h.raw("<h3>Conntrack</h3>");
    let c = &dns["conntrack"];
    if c.is_null() {
        h.raw("<p class=\"muted\">");
        match dns["conntrack_error"].as_str() {
            Some(e) => h.raw("Not read: ").text(e),
            None => h.raw("The kernel does not expose conntrack statistics here."),
        };
        h.raw("</p>");
        return;
    }
    h.raw("<table>")
        .header(&["insert failed", "drop"])
        .cells([&c["insert_failed"], &c["drop"]])
        .raw("</table>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shows_each_server_with_its_recent_runs_and_queries() {
        let dns = json!({
            "servers": {"127.0.0.1:5353": {
                "recent_slowest_seconds": [0.002, 5.004],
                "queries": [
                    {"name": "a.test.", "qtype": "A", "transport": "udp", "result": "noerror", "seconds": 0.002},
                    {"name": "a.test.", "qtype": "AAAA", "transport": "udp", "result": "timeout", "seconds": 5.004},
                ]}},
            "lookups": [{"name": "web<1>", "result": "ok"}],
            "conntrack": {"insert_failed": 7, "drop": 0},
            "conntrack_error": null,
        });
        let mut h = Html::default();
        render(&mut h, &dns);
        let page = h.finish();
        assert!(
            page.contains("<td rowspan=\"2\">127.0.0.1:5353</td>"),
            "{page}"
        );
        assert!(page.contains("max 5.00 s"), "{page}");
        assert!(
            page.contains("<span class=\"badge bad\">timeout</span>"),
            "{page}"
        );
        assert!(page.contains("web&lt;1&gt;"), "{page}");
        assert!(page.contains("<td>7</td><td>0</td>"), "{page}");
        // The slowest run is the full-height bar.
        assert!(page.contains("height:100.0%"), "{page}");
    }
}
