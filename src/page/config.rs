//! The config part of the status page: where the config in force came from,
//! when it was applied, a rejected reload (kept on the page until the next
//! good one, and its error afterwards too), and the effective config as TOML.
//! Metrics: none.

use super::html::Html;
use serde_json::Value;

pub(super) fn render(h: &mut Html, config: &Value, now_unix: f64) {
    h.raw("<h2>Config</h2>");
    if config.is_null() {
        h.raw("<p class=\"muted\">Not published.</p>");
        return;
    }
    if config["last_reload_rejected"] == true {
        h.raw("<p class=\"bad\">The last reload was rejected; the config below stays in force: ")
            .value(&config["last_failure"]["error"])
            .raw("</p>");
    }
    h.raw("<table><tr><th>source</th><td>")
        .value(&config["source"])
        .raw("</td></tr><tr><th>applied</th><td>")
        .ago(&config["applied_unix"], now_unix)
        .raw("</td></tr><tr><th>reloads</th><td>")
        .value(&config["reloads"])
        .raw("</td></tr>");
    let failure = &config["last_failure"];
    if !failure.is_null() {
        h.raw("<tr><th>last rejected reload</th><td>")
            .ago(&failure["at_unix"], now_unix)
            .raw(": <span class=\"warn\">")
            .value(&failure["error"])
            .raw("</span></td></tr>");
    }
    h.raw("</table><details><summary>Effective config</summary><pre>")
        .value(&config["effective"])
        .raw("</pre></details>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_rejected_reload_is_shown_with_its_error() {
        let config = json!({
            "source": "/etc/nodevitals/config.toml", "applied_unix": 90.0, "reloads": 1,
            "last_reload_rejected": true,
            "last_failure": {"at_unix": 99.0, "error": "line 2: unknown key `<x>`"},
            "effective": "[server]\nlisten = \"0.0.0.0:9811\"\n",
        });
        let mut h = Html::default();
        render(&mut h, &config, 100.0);
        let page = h.finish();
        assert!(page.contains("The last reload was rejected"), "{page}");
        assert!(page.contains("unknown key `&lt;x&gt;`"), "{page}");
        assert!(page.contains("listen = &quot;0.0.0.0:9811&quot;"), "{page}");
        assert!(page.contains("1s ago"), "{page}");
    }
}
