//! Content negotiation for `/metrics`. The registry encodes OpenMetrics, which
//! Prometheus asks for; other clients (curl, `promtool check metrics`, older
//! scrapers) get the Prometheus text format 0.0.4, rewritten from the
//! OpenMetrics text. Emits no metrics of its own.

pub(crate) const OPENMETRICS_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub(crate) const TEXT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The line that ends an OpenMetrics exposition.
pub(crate) const EOF: &str = "# EOF\n";

/// Whether an `Accept` header value asks for OpenMetrics (with a q above 0).
pub(crate) fn wants_openmetrics(accept: &str) -> bool {
    accepted(accept, |t| {
        t.eq_ignore_ascii_case("application/openmetrics-text")
    })
    .unwrap_or(false)
}

/// Whether an `Accept-Encoding` header value (RFC 9110 12.5.3) allows gzip:
/// `gzip` (or its alias `x-gzip`) with a q above 0, or else `*` with a q
/// above 0. `gzip;q=0` refuses gzip even when `*` allows everything.
pub(crate) fn accepts_gzip(accept_encoding: &str) -> bool {
    let gzip = |t: &str| t.eq_ignore_ascii_case("gzip") || t.eq_ignore_ascii_case("x-gzip");
    accepted(accept_encoding, gzip)
        .or_else(|| accepted(accept_encoding, |t| t == "*"))
        .unwrap_or(false)
}

/// Whether the comma-separated list `header` accepts an item that `matches`:
/// `None` if no item matches, else whether one of them has a q above 0 (a
/// missing q is 1; a malformed one refuses, as nothing sane sends it).
fn accepted(header: &str, matches: impl Fn(&str) -> bool) -> Option<bool> {
    let mut found = None;
    for item in header.split(',') {
        let mut parts = item.split(';').map(str::trim);
        if !parts.next().is_some_and(&matches) {
            continue;
        }
        let q = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map_or(Some(1.0), |(_, v)| v.trim().parse::<f64>().ok());
        let ok = q.is_some_and(|q| q > 0.0 && q <= 1.0);
        found = Some(found.unwrap_or(false) || ok);
    }
    found
}

/// Rewrites OpenMetrics text into the Prometheus text format 0.0.4:
/// - counters are declared under their sample name (`x_total`), as 0.0.4 has
///   no notion of a counter family whose samples carry a suffix;
/// - `info` and `stateset` families become gauges (0.0.4 has neither type);
/// - `# UNIT` and `# EOF` lines and exemplars are dropped.
pub(crate) fn to_prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut lines = openmetrics.lines().peekable();
    while let Some(line) = lines.next() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            // HELP precedes TYPE in OpenMetrics; the TYPE decides the name.
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            let kind = lines
                .peek()
                .and_then(|l| l.strip_prefix("# TYPE "))
                .and_then(|t| t.split_once(' '))
                .filter(|(n, _)| *n == name)
                .map(|(_, k)| k.trim());
            out.push_str(&format!("# HELP {} {help}\n", family_name(name, kind)));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let kind = kind.trim();
            let text_kind = match kind {
                "info" | "stateset" => "gauge",
                "counter" | "gauge" | "histogram" | "summary" => kind,
                _ => "untyped",
            };
            out.push_str(&format!(
                "# TYPE {} {text_kind}\n",
                family_name(name, Some(kind))
            ));
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        out.push_str(without_exemplar(line));
        out.push('\n');
    }
    out
}

fn family_name(name: &str, kind: Option<&str>) -> String {
    match kind {
        Some("counter") => format!("{name}_total"),
        Some("info") => format!("{name}_info"),
        _ => name.to_owned(),
    }
}

/// A sample line without its ` # {labels} value` exemplar. Label values may
/// contain " # ", so the search starts after the label set.
fn without_exemplar(line: &str) -> &str {
    let labels_end = match line.find('{') {
        Some(open) => closing_brace(line, open).unwrap_or(line.len()),
        None => 0,
    };
    match line[labels_end..].find(" # ") {
        Some(i) => &line[..labels_end + i],
        None => line,
    }
}

/// Byte index just past the `}` closing the label set opened at `open`,
/// skipping quoted label values (with their escapes).
fn closing_brace(line: &str, open: usize) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in line[open..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '}' if !in_quotes => return Some(open + i + 1),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn negotiates_on_the_accept_header() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(wants_openmetrics(prometheus));
        assert!(!wants_openmetrics("*/*"));
        assert!(!wants_openmetrics("text/plain"));
        assert!(!wants_openmetrics("application/openmetrics-text;q=0"));
        assert!(!wants_openmetrics(""));
    }

    #[test]
    fn gzip_is_accepted_as_rfc_9110_says() {
        for yes in [
            "gzip",
            "GZip",
            "x-gzip",
            "gzip, deflate, br",
            "deflate, gzip;q=0.5",
            "br;q=1.0, gzip ; q = 0.001",
            "*",
            "*;q=0.1",
            "identity, *",
            "gzip;q=0, gzip",
            "gzip;level=9",
        ] {
            assert!(accepts_gzip(yes), "{yes:?} allows gzip");
        }
        for no in [
            "",
            "identity",
            "deflate, br",
            "gzip;q=0",
            "gzip;Q=0.000",
            "gzip;q=0, *",
            "*;q=0",
            "gzipped",
            "gzip;q=abc",
            "gzip;q=2",
            "gzip;q=-1",
            ",;=,",
        ] {
            assert!(!accepts_gzip(no), "{no:?} refuses gzip");
        }
    }

    #[test]
    fn rewrites_counters_info_and_trailer() {
        let om = "# HELP x_reloads Reloads.\n# TYPE x_reloads counter\nx_reloads_total{result=\"ok\"} 3 # {trace=\"a # b\"} 1.0\n\
# HELP x_build Build.\n# TYPE x_build info\nx_build_info{version=\"1\"} 1\n\
# HELP x_seconds Latency.\n# TYPE x_seconds histogram\n# UNIT x_seconds seconds\nx_seconds_sum 0.5\nx_seconds_count 1\n\
# TYPE x_odd weird\nx_odd{l=\"} # {\"} 2\n# EOF\n";
        let text = to_prometheus_text(om);
        assert_eq!(
            text,
            "# HELP x_reloads_total Reloads.\n# TYPE x_reloads_total counter\nx_reloads_total{result=\"ok\"} 3\n\
# HELP x_build_info Build.\n# TYPE x_build_info gauge\nx_build_info{version=\"1\"} 1\n\
# HELP x_seconds Latency.\n# TYPE x_seconds histogram\nx_seconds_sum 0.5\nx_seconds_count 1\n\
# TYPE x_odd untyped\nx_odd{l=\"} # {\"} 2\n"
        );
    }

    #[test]
    fn malformed_input_passes_through_without_panic() {
        for bad in [
            "# HELP",
            "# TYPE",
            "# HELP a",
            "x{unclosed=\"",
            "{",
            "# {a} 1",
        ] {
            let _ = to_prometheus_text(bad);
        }
        assert_eq!(
            to_prometheus_text("x{a=\"\\\"}\"} 1 # {} 2"),
            "x{a=\"\\\"}\"} 1\n"
        );
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = to_prometheus_text(&s);
            let _ = wants_openmetrics(&s);
            let _ = accepts_gzip(&s);
        }

        #[test]
        fn never_panics_on_exposition_like_lines(
            s in "(# (HELP|TYPE|UNIT) [a-z_]* ?[a-z ]*\n|[a-z_{}\"\\\\# =,0-9.]*\n){0,8}"
        ) {
            let _ = to_prometheus_text(&s);
        }
    }
}
