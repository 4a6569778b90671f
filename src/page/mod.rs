//! The status page at `GET /`: one server-rendered HTML page for a person on a
//! port-forward, from the same document as `GET /status` (the runtime's state,
//! the remediation timeline, DNS per server, conntrack, the most throttled
//! containers, the config in force and a rejected reload). No script, no
//! external asset: a `Content-Security-Policy` forbids both, and every value
//! is escaped (`html`). Refreshes itself every [`REFRESH_SECONDS`].
//! Metrics: none.

mod config;
mod cpu;
mod dns;
mod html;
mod probes;
mod remediation;

use crate::body::Chunks;
use crate::status::StatusBoard;
use html::Html;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::Response;
use serde_json::Value;
use std::time::{SystemTime, UNIX_EPOCH};

const REFRESH_SECONDS: u64 = 10;

/// Scripts, frames, fonts, images and requests off the page are refused by
/// the browser, so even a value that escaped escaping could not run.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const HEAD: &str = concat!(
    "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
);

const STYLE: &str = concat!(
    "<title>nodevitals</title><style>",
    "body{font:14px/1.4 system-ui,sans-serif;margin:1em 2em;color:#222;max-width:75em}",
    "h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.15em;margin:1.2em 0 .3em;border-bottom:1px solid #ccc}",
    "table{border-collapse:collapse;margin:.3em 0}td,th{padding:.15em .6em;text-align:left;vertical-align:top;border-bottom:1px solid #eee}",
    "th{font-weight:600;background:#f4f4f4}.num{text-align:right}",
    ".ok{color:#176d2c}.bad{color:#b00020;font-weight:600}.warn{color:#9a5b00}.muted{color:#777}",
    ".badge{display:inline-block;padding:0 .5em;border-radius:.6em;background:#eee}",
    ".track{position:relative;height:1.6em;background:#f4f4f4;border:1px solid #ddd;margin:.4em 0;max-width:50em}",
    ".mark{position:absolute;top:0;bottom:0;width:3px;margin-left:-1px}",
    ".mark.restart{background:#1f5fbf}.mark.failure{background:#b00020}.mark.skip{background:#d08a00;opacity:.7}",
    ".spark{display:inline-flex;align-items:flex-end;height:1.6em;gap:1px;vertical-align:middle}",
    ".spark span{display:inline-block;width:4px;background:#1f5fbf}",
    "pre{background:#f7f7f7;padding:.6em;overflow:auto;max-height:30em}",
    "nav a{margin-right:1em}",
    "</style></head><body>",
);

/// The page for the status document `doc` (as `StatusBoard::to_json` makes
/// it), at wall-clock time `now_unix`.
pub fn render(doc: &Value, now_unix: f64) -> String {
    let mut h = Html::with_capacity(16 * 1024);
    h.raw(HEAD)
        .raw("<meta http-equiv=\"refresh\" content=\"")
        .number(REFRESH_SECONDS)
        .raw("\">")
        .raw(STYLE)
        .raw("<h1>nodevitals <span class=\"muted\">")
        .value(&doc["version"])
        .raw("</span></h1><nav><a href=\"/metrics\">/metrics</a><a href=\"/status\">/status</a>")
        .raw("<a href=\"/healthz\">/healthz</a><a href=\"/readyz\">/readyz</a></nav>");
    probes::render(&mut h, &doc["probes"], now_unix);
    remediation::render(&mut h, &doc["remediation"], now_unix);
    dns::render(&mut h, &doc["dns"]);
    cpu::render(&mut h, &doc["cpu"]);
    config::render(&mut h, &doc["config"], now_unix);
    h.raw("<p class=\"muted\">Refreshes every ")
        .number(REFRESH_SECONDS)
        .raw(" s.</p></body></html>\n");
    h.finish()
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// The response to `GET /`.
pub(crate) fn response(status: &StatusBoard) -> Response<Chunks> {
    let body = render(&status.to_json(), unix_now());
    let mut resp = Response::new(Chunks::from(body));
    let headers = resp.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("content-security-policy", HeaderValue::from_static(CSP));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// The CSS class of an outcome or result label.
fn class_of(result: &str) -> &'static str {
    match result {
        "ok" | "noerror" | "nxdomain" | "success" | "healthy" | "recovered" => "ok",
        "timeout" | "refused" | "error" | "misconfigured" | "servfail" | "failure"
        | "exhausted" | "recovery_failed" => "bad",
        _ => "warn",
    }
}

/// `<span class=..>value</span>` coloured by what the value says.
fn badge(h: &mut Html, v: &Value) {
    let class = v.as_str().map_or("muted", class_of);
    h.raw("<span class=\"badge ")
        .raw(class)
        .raw("\">")
        .value(v)
        .raw("</span>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_document_renders_every_section_heading() {
        let page = render(&serde_json::json!({ "version": "0.1.0" }), 0.0);
        for heading in ["Probes", "Remediation", "DNS", "CPU throttling", "Config"] {
            assert!(
                page.contains(&format!("<h2>{heading}</h2>")),
                "{heading}: {page}"
            );
        }
        assert!(page.ends_with("</html>\n"));
    }
}
