//! The probes table of the status page: per probe its last outcome, how many
//! runs failed in a row, the last latency, when it last ran, and the detail or
//! error of that run. Metrics: none.

use super::{badge, html::Html};
use serde_json::Value;

pub(super) fn render(h: &mut Html, probes: &Value, now_unix: f64) {
    h.raw("<h2>Probes</h2>");
    let Some(probes) = probes.as_object().filter(|p| !p.is_empty()) else {
        h.raw("<p class=\"muted\">No probe is scheduled.</p>");
        return;
    };
    h.raw("<table>").header(&[
        "probe",
        "outcome",
        "failures in a row",
        "latency",
        "last run",
        "detail",
    ]);
    for (name, p) in probes {
        h.raw("<tr><td>").text(name).raw("</td><td>");
        if p["outcome"].is_null() {
            h.raw("<span class=\"muted\">not run yet</span>");
        } else {
            badge(h, &p["outcome"]);
        }
        h.raw("</td><td class=\"num\">")
            .value(&p["consecutive_failures"])
            .raw("</td><td class=\"num\">")
            .seconds(&p["latency_seconds"])
            .raw("</td><td>")
            .ago(&p["last_run_unix"], now_unix)
            .raw("</td><td>");
        match p["error"].as_str() {
            Some(e) => h.raw("<span class=\"bad\">").text(e).raw("</span>"),
            None => h.value(&p["detail"]),
        };
        h.raw("</td></tr>");
    }
    h.raw("</table>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shows_the_error_of_a_failing_probe_escaped() {
        let mut h = Html::default();
        let probes = json!({
            "docker": {"outcome": "timeout", "detail": "", "error": "no answer <in 1s>",
                       "latency_seconds": 1.0, "consecutive_failures": 4, "last_run_unix": 95.0},
            "dns": {"outcome": null, "detail": "not run yet", "error": null,
                    "latency_seconds": 0.0, "consecutive_failures": 0, "last_run_unix": 0.0},
        });
        render(&mut h, &probes, 100.0);
        let page = h.finish();
        assert!(page.contains("no answer &lt;in 1s&gt;"), "{page}");
        assert!(
            page.contains("<span class=\"badge bad\">timeout</span>"),
            "{page}"
        );
        assert!(page.contains("5s ago"), "{page}");
        assert!(page.contains("not run yet"), "{page}");
    }
}
