//! glibc's walk over the candidate names of one lookup (`__res_context_search`
//! in glibc 2.36 `res_query.c`): `ndots`, the `search` list, the as-is query
//! first or last, and which answers end the walk. A pure state machine; the
//! stub resolver feeds it the verdict of each candidate. No metrics.

use super::resolv_conf::ResolvConf;

/// How one candidate name ended, as glibc's `h_errno` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Found,
    /// NXDOMAIN (HOST_NOT_FOUND).
    NxDomain,
    /// The name exists without addresses (NO_DATA).
    NoData,
    /// SERVFAIL (TRY_AGAIN with a SERVFAIL answer).
    ServFail,
    /// Every server timed out (TRY_AGAIN).
    Timeout,
    /// REFUSED and other answers that stop the search (NO_RECOVERY).
    Error,
    /// No server reachable at all (ECONNREFUSED).
    Unreachable,
}

impl Verdict {
    /// The `result` label of `nodevitals_dns_lookups_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Found => "ok",
            Verdict::NxDomain => "nxdomain",
            Verdict::NoData => "nodata",
            Verdict::ServFail => "servfail",
            Verdict::Timeout => "timeout",
            Verdict::Error | Verdict::Unreachable => "error",
        }
    }
}

/// The next thing a search wants: a candidate to query, or its final verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    Query(String),
    Done(Verdict),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AsIsFirst,
    Domain(usize),
    AsIsLast,
}

/// glibc's walk over the candidate names of one lookup, as a pure state
/// machine: `start` gives the first candidate, `next(verdict)` the one after
/// it (or the end). Candidates are absolute names.
pub(crate) struct Search<'a> {
    bare: &'a str,
    search: &'a [String],
    trailing_dot: bool,
    phase: Phase,
    saved: Option<Verdict>,
    got_nodata: bool,
    got_servfail: bool,
    root_on_list: bool,
    last: Verdict,
}

impl<'a> Search<'a> {
    pub fn start(name: &'a str, rc: &'a ResolvConf) -> (Self, Step) {
        let trailing_dot = name.ends_with('.');
        let bare = name.trim_end_matches('.');
        let dots = bare.matches('.').count();
        let mut s = Search {
            bare,
            search: &rc.search,
            trailing_dot,
            phase: Phase::Domain(0),
            saved: None,
            got_nodata: false,
            got_servfail: false,
            root_on_list: false,
            last: Verdict::NxDomain,
        };
        // Enough dots (or an absolute name): the name as is comes first.
        let step = if dots >= usize::from(rc.ndots) || trailing_dot {
            s.phase = Phase::AsIsFirst;
            Step::Query(format!("{bare}."))
        } else {
            s.domains_or_last()
        };
        (s, step)
    }

    pub fn next(&mut self, v: Verdict) -> Step {
        match self.phase {
            Phase::AsIsFirst => {
                if v == Verdict::Found || self.trailing_dot {
                    return Step::Done(v);
                }
                self.saved = Some(v);
                self.phase = Phase::Domain(0);
            }
            Phase::Domain(i) => {
                self.last = v;
                self.phase = Phase::Domain(i + 1);
                match v {
                    Verdict::Found => return Step::Done(v),
                    // ECONNREFUSED: no server anywhere; glibc gives up at once.
                    Verdict::Unreachable => return Step::Done(v),
                    Verdict::NoData => self.got_nodata = true,
                    Verdict::NxDomain => {}
                    Verdict::ServFail => self.got_servfail = true,
                    // A timeout or a hard error ends the search list; the
                    // as-is query still runs ("in case it's fully qualified").
                    Verdict::Timeout | Verdict::Error => self.phase = Phase::Domain(usize::MAX),
                }
            }
            Phase::AsIsLast => {
                self.last = v;
                return Step::Done(if v == Verdict::Found {
                    v
                } else {
                    self.verdict()
                });
            }
        }
        self.domains_or_last()
    }

    fn domains_or_last(&mut self) -> Step {
        if let Phase::Domain(i) = self.phase {
            if let Some(domain) = self.search.get(i) {
                if domain.is_empty() {
                    self.root_on_list = true;
                    return Step::Query(format!("{}.", self.bare));
                }
                return Step::Query(format!("{}.{domain}.", self.bare));
            }
        }
        if self.saved.is_none() && !self.root_on_list && self.phase != Phase::AsIsLast {
            self.phase = Phase::AsIsLast;
            return Step::Query(format!("{}.", self.bare));
        }
        Step::Done(self.verdict())
    }

    /// glibc: the as-is query's reason if it ran first, else NO_DATA if any
    /// candidate had it, else TRY_AGAIN after a SERVFAIL, else the last reason.
    fn verdict(&self) -> Verdict {
        match (self.saved, self.got_nodata, self.got_servfail) {
            (Some(v), _, _) => v,
            (None, true, _) => Verdict::NoData,
            (None, false, true) => Verdict::ServFail,
            (None, false, false) => self.last,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::dns::resolv_conf::parse_resolv_conf;

    /// Walks the search with canned verdicts per candidate; returns the
    /// candidates tried and the final verdict.
    fn walk(name: &str, conf: &str, verdicts: &[(&str, Verdict)]) -> (Vec<String>, Verdict) {
        let rc = parse_resolv_conf(conf);
        let (mut search, mut step) = Search::start(name, &rc);
        let mut tried = Vec::new();
        loop {
            match step {
                Step::Done(v) => return (tried, v),
                Step::Query(c) => {
                    let v = verdicts
                        .iter()
                        .find(|(n, _)| *n == c)
                        .map_or(Verdict::NxDomain, |(_, v)| *v);
                    tried.push(c);
                    step = search.next(v);
                }
            }
        }
    }

    const POD: &str =
        "search ns.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n";

    #[test]
    fn external_name_in_a_pod_walks_the_whole_search_list() {
        let (tried, v) = walk("example.com", POD, &[("example.com.", Verdict::Found)]);
        assert_eq!(
            tried,
            [
                "example.com.ns.svc.cluster.local.",
                "example.com.svc.cluster.local.",
                "example.com.cluster.local.",
                "example.com."
            ]
        );
        assert_eq!(v, Verdict::Found);
    }

    #[test]
    fn enough_dots_or_a_trailing_dot_go_as_is_first() {
        let conf = "search a.example\noptions ndots:1\n";
        let (tried, v) = walk("x.y", conf, &[]);
        assert_eq!(tried, ["x.y.", "x.y.a.example."]);
        assert_eq!(v, Verdict::NxDomain);
        let (tried, _) = walk("x.y.", conf, &[]);
        assert_eq!(tried, ["x.y."]);
        let (tried, _) = walk("x", conf, &[("x.a.example.", Verdict::Found)]);
        assert_eq!(tried, ["x.a.example."]);
    }

    #[test]
    fn nodata_is_kept_and_timeouts_stop_the_search() {
        let (tried, v) = walk(
            "svc",
            POD,
            &[("svc.ns.svc.cluster.local.", Verdict::NoData)],
        );
        assert_eq!(tried.len(), 4);
        assert_eq!(v, Verdict::NoData);
        let (tried, v) = walk("svc", POD, &[("svc.svc.cluster.local.", Verdict::Timeout)]);
        assert_eq!(
            tried,
            [
                "svc.ns.svc.cluster.local.",
                "svc.svc.cluster.local.",
                "svc."
            ]
        );
        assert_eq!(v, Verdict::NxDomain);
    }

    #[test]
    fn root_in_the_search_list_replaces_the_final_as_is_query() {
        let (tried, _) = walk("x", "search a.example .\n", &[]);
        assert_eq!(tried, ["x.a.example.", "x."]);
    }
}
