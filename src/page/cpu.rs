//! The CPU part of the status page: how many containers are tracked and
//! throttled, and the most throttled ones over the last interval with their
//! Kubernetes names (user data: escaped like everything else). Metrics: none.

use super::html::Html;
use serde_json::Value;

pub(super) fn render(h: &mut Html, cpu: &Value) {
    h.raw("<h2>CPU throttling</h2>");
    if cpu.is_null() {
        h.raw("<p class=\"muted\">CPU is not probed, or has not run yet.</p>");
        return;
    }
    h.raw("<p>")
        .value(&cpu["containers"])
        .raw(" containers tracked (cgroup ")
        .value(&cpu["cgroup_version"])
        .raw("), ")
        .value(&cpu["throttled"])
        .raw(" throttled in the last interval.</p>");
    errors(h, &cpu["file_errors"]);
    errors(h, &cpu["identity_errors"]);
    let Some(top) = cpu["top_throttled"].as_array().filter(|t| !t.is_empty()) else {
        return;
    };
    h.raw("<table>").header(&[
        "container",
        "throttled periods (last interval)",
        "throttled time (total)",
        "limit (cores)",
        "cgroup",
    ]);
    for c in top {
        h.raw("<tr><td>");
        name(h, c);
        h.raw("</td><td class=\"num\">")
            .percent(c["throttled_ratio"].as_f64().unwrap_or_default() * 100.0)
            .raw("</td><td class=\"num\">")
            .seconds(&c["throttled_seconds"])
            .raw("</td><td class=\"num\">")
            .value(&c["limit_cores"])
            .raw("</td><td class=\"muted\">")
            .value(&c["cgroup"])
            .raw("</td></tr>");
    }
    h.raw("</table>");
}

/// `namespace/pod/container`, else the runtime's name, else the id.
fn name(h: &mut Html, c: &Value) {
    if c["pod"].is_string() {
        h.value(&c["namespace"])
            .raw("/")
            .value(&c["pod"])
            .raw("/")
            .value(&c["container"]);
    } else if c["name"].is_string() {
        h.value(&c["name"]);
    } else {
        h.value(&c["id"]);
    }
}

fn errors(h: &mut Html, errors: &Value) {
    for e in errors.as_array().into_iter().flatten() {
        h.raw("<p class=\"warn\">").value(e).raw("</p>");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_containers_as_text() {
        let cpu = json!({
            "containers": 1000, "throttled": 2, "cgroup_version": "v1",
            "file_errors": [], "identity_errors": [],
            "top_throttled": [
                {"id": "abc", "name": "<script>alert(1)</script>", "cgroup": "docker/abc",
                 "throttled_ratio": 0.75, "throttled_seconds": 3.0, "limit_cores": 0.1},
                {"id": "def", "namespace": "ns", "pod": "web-1", "container": "app",
                 "cgroup": "kubepods/def", "throttled_ratio": 0.1, "throttled_seconds": 0.5,
                 "limit_cores": 1.0},
            ],
        });
        let mut h = Html::default();
        render(&mut h, &cpu);
        let page = h.finish();
        assert!(!page.contains("<script"), "{page}");
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{page}"
        );
        assert!(page.contains("ns/web-1/app"), "{page}");
        assert!(page.contains("75.0%"), "{page}");
        assert!(page.contains("1000 containers tracked"), "{page}");
    }
}
