//! A small HTML writer for the status page: every string from outside goes
//! through [`Html::text`], which escapes it; markup is only ever the page's own
//! string literals. Metrics: none.

use serde_json::Value;
use std::fmt::Write;

/// The page being written. Markup comes from `&'static str` only, so no value
/// read at run time can open a tag.
#[derive(Default)]
pub(crate) struct Html(String);

impl Html {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self(String::with_capacity(n))
    }

    /// Markup of the page's own making.
    pub(crate) fn raw(&mut self, markup: &'static str) -> &mut Self {
        self.0.push_str(markup);
        self
    }

    /// Text from outside (names, labels, errors, paths), escaped for element
    /// content and quoted attribute values alike.
    pub(crate) fn text(&mut self, s: &str) -> &mut Self {
        for c in s.chars() {
            match c {
                '&' => self.0.push_str("&amp;"),
                '<' => self.0.push_str("&lt;"),
                '>' => self.0.push_str("&gt;"),
                '"' => self.0.push_str("&quot;"),
                '\'' => self.0.push_str("&#39;"),
                c => self.0.push(c),
            }
        }
        self
    }

    /// A JSON value as text: strings without quotes, null as an em dash.
    pub(crate) fn value(&mut self, v: &Value) -> &mut Self {
        match v {
            Value::Null => self.raw("\u{2014}"),
            Value::String(s) => self.text(s),
            Value::Number(n) => self.text(&n.to_string()),
            other => self.text(&other.to_string()),
        }
    }

    /// A number of seconds in the unit a person reads best.
    pub(crate) fn seconds(&mut self, v: &Value) -> &mut Self {
        match v.as_f64() {
            Some(s) => {
                let _ = match s {
                    s if s < 1e-3 => write!(self.0, "{:.0} \u{b5}s", s * 1e6),
                    s if s < 1.0 => write!(self.0, "{:.1} ms", s * 1e3),
                    s if s < 120.0 => write!(self.0, "{s:.2} s"),
                    s => write!(self.0, "{:.1} min", s / 60.0),
                };
                self
            }
            None => self.value(v),
        }
    }

    /// How long before `now` a Unix time was, e.g. "3m 20s ago".
    pub(crate) fn ago(&mut self, at_unix: &Value, now_unix: f64) -> &mut Self {
        match at_unix.as_f64().filter(|t| *t > 0.0) {
            Some(t) => {
                let d = (now_unix - t).max(0.0) as u64;
                let _ = match d {
                    d if d < 60 => write!(self.0, "{d}s ago"),
                    d if d < 3600 => write!(self.0, "{}m {}s ago", d / 60, d % 60),
                    d => write!(self.0, "{}h {}m ago", d / 3600, d % 3600 / 60),
                };
                self
            }
            None => self.raw("never"),
        }
    }

    /// A whole number written by the page itself (a count, a width).
    pub(crate) fn number(&mut self, n: u64) -> &mut Self {
        let _ = write!(self.0, "{n}");
        self
    }

    /// A position on a bar, as a CSS percentage clamped to the bar.
    pub(crate) fn percent(&mut self, p: f64) -> &mut Self {
        let p = if p.is_finite() {
            p.clamp(0.0, 100.0)
        } else {
            0.0
        };
        let _ = write!(self.0, "{p:.1}%");
        self
    }

    /// A table row of cells, each cell's text escaped.
    pub(crate) fn cells<'a>(&mut self, cells: impl IntoIterator<Item = &'a Value>) -> &mut Self {
        self.raw("<tr>");
        for c in cells {
            self.raw("<td>").value(c).raw("</td>");
        }
        self.raw("</tr>")
    }

    /// `<tr><th>..</th>..</tr>` of the page's own column names.
    pub(crate) fn header(&mut self, names: &[&'static str]) -> &mut Self {
        self.raw("<tr>");
        for n in names {
            self.raw("<th>").raw(n).raw("</th>");
        }
        self.raw("</tr>")
    }

    pub(crate) fn finish(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_cannot_open_a_tag_or_leave_an_attribute() {
        let mut h = Html::default();
        h.text(r#"<script>alert("x")</script>' onload='x'&"#);
        assert_eq!(
            h.finish(),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39; onload=&#39;x&#39;&amp;"
        );
    }

    #[test]
    fn values_render_as_text() {
        let mut h = Html::default();
        h.value(&Value::Null)
            .raw("|")
            .value(&"<b>".into())
            .raw("|")
            .value(&serde_json::json!(["<i>"]));
        assert_eq!(h.finish(), "\u{2014}|&lt;b&gt;|[&quot;&lt;i&gt;&quot;]");
    }

    #[test]
    fn durations_pick_a_readable_unit() {
        let s = |v: f64| {
            let mut h = Html::default();
            h.seconds(&v.into());
            h.finish()
        };
        assert_eq!(s(0.0004), "400 \u{b5}s");
        assert_eq!(s(0.0123), "12.3 ms");
        assert_eq!(s(5.25), "5.25 s");
        assert_eq!(s(600.0), "10.0 min");
        let mut h = Html::default();
        h.ago(&100.0.into(), 300.0).raw("|").ago(&Value::Null, 1.0);
        assert_eq!(h.finish(), "3m 20s ago|never");
    }
}
