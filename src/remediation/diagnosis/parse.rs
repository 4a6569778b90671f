//! Pure parsers of the `/proc` and cgroup files a diagnosis reads: a task's
//! state from `stat`, its run count from `schedstat`, a kernel stack's
//! function names, the process's cgroup paths and the freezer's state (v1
//! `freezer.state`, v2 `cgroup.events`). Each is tested on malformed input and
//! never panics. Metrics: none.

/// The state letter of `/proc/<pid>/stat` or `/proc/<pid>/task/<tid>/stat`
/// (field 3). The command name (field 2) may hold spaces and parentheses, so
/// the state is the first word after the last `)`.
pub(crate) fn parse_state(stat: &str) -> Option<char> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let word = rest.split_ascii_whitespace().next()?;
    let mut chars = word.chars();
    let state = chars.next().filter(|c| c.is_ascii_alphabetic())?;
    chars.next().is_none().then_some(state)
}

/// How many times a task has been run on a CPU: the third field of
/// `/proc/<pid>/task/<tid>/schedstat` ("run_ns wait_ns timeslices"). A task
/// whose count did not change between two readings did not run in between.
pub(crate) fn parse_timeslices(schedstat: &str) -> Option<u64> {
    schedstat.split_ascii_whitespace().nth(2)?.parse().ok()
}

/// The function names of a `/proc/<pid>/stack` text, innermost first:
/// `[<0>] fuse_wait_answer+0x3c/0xa0 [fuse]` gives `fuse_wait_answer`.
/// At most `limit` frames; lines that are not frames are skipped.
pub(crate) fn stack_functions(stack: &str, limit: usize) -> Vec<String> {
    stack
        .lines()
        .filter_map(|line| {
            let frame = line.trim_start().strip_prefix('[')?;
            let (_, call) = frame.split_once(']')?;
            let name = call.trim_start().split(['+', ' ']).next()?;
            (!name.is_empty()).then(|| name.chars().take(128).collect())
        })
        .take(limit)
        .collect()
}

/// Where a process sits in the cgroup hierarchies, from `/proc/<pid>/cgroup`:
/// the v1 `freezer` hierarchy's path and the v2 (unified) path, each relative
/// to its hierarchy's root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CgroupPaths {
    pub freezer: Option<String>,
    pub unified: Option<String>,
}

/// Parses `/proc/<pid>/cgroup` lines `ID:CONTROLLERS:PATH` (`0::PATH` is v2).
pub(crate) fn parse_cgroup_paths(text: &str) -> CgroupPaths {
    let mut paths = CgroupPaths::default();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if !path.starts_with('/') {
            continue;
        }
        if id == "0" && controllers.is_empty() {
            paths.unified = Some(path.to_owned());
        } else if controllers.split(',').any(|c| c == "freezer") {
            paths.freezer = Some(path.to_owned());
        }
    }
    paths
}

/// Whether a v1 `freezer.state` says the cgroup is frozen. `FREEZING` counts:
/// its tasks are being stopped and will not act on signals either.
pub(crate) fn freezer_frozen(state: &str) -> bool {
    matches!(state.trim(), "FROZEN" | "FREEZING")
}

/// Whether a v2 `cgroup.events` text has `frozen 1`.
pub(crate) fn events_frozen(events: &str) -> bool {
    events
        .lines()
        .any(|l| l.split_ascii_whitespace().eq(["frozen", "1"]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn state_after_a_name_with_spaces_and_parentheses() {
        let stat = "4242 (my (odd) name) D 1 4242 4242 0 -1 4194560 1234 0 0 0";
        assert_eq!(parse_state(stat), Some('D'));
        assert_eq!(parse_state("7 (dockerd) t 1 7"), Some('t'));
        assert_eq!(parse_state("7 ()) T 1"), Some('T'));
        for bad in [
            "",
            "no parens",
            "7 (x)",
            "7 (x) 12 3",
            "7 (x) DD 1",
            "7 (x) é",
        ] {
            assert_eq!(parse_state(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn timeslices_are_the_third_field() {
        assert_eq!(parse_timeslices("1234 5678 91\n"), Some(91));
        assert_eq!(parse_timeslices("1234 5678"), None);
        assert_eq!(parse_timeslices("a b c"), None);
    }

    #[test]
    fn stack_function_names() {
        let stack =
            "[<0>] fuse_wait_answer+0x3c/0xa0 [fuse]\n[<0>] fuse_simple_request+0x1a/0x20\n\
                     garbage\n[<0>] entry_SYSCALL_64_after_hwframe+0x76/0x7e\n";
        assert_eq!(
            stack_functions(stack, 8),
            [
                "fuse_wait_answer",
                "fuse_simple_request",
                "entry_SYSCALL_64_after_hwframe"
            ]
        );
        assert_eq!(stack_functions(stack, 1), ["fuse_wait_answer"]);
        assert!(stack_functions("", 8).is_empty());
        assert!(stack_functions("[<0>] \n[", 8).is_empty());
    }

    #[test]
    fn cgroup_paths_v1_and_v2() {
        let text = "9:name=systemd:/\n6:freezer:/nv-frozen\n4:memory:/x\n0::/system.slice/docker.service\n";
        assert_eq!(
            parse_cgroup_paths(text),
            CgroupPaths {
                freezer: Some("/nv-frozen".into()),
                unified: Some("/system.slice/docker.service".into()),
            }
        );
        assert_eq!(
            parse_cgroup_paths("garbage\n1:freezer\n"),
            CgroupPaths::default()
        );
        assert_eq!(
            parse_cgroup_paths("3:cpu,freezer:/a\n").freezer.as_deref(),
            Some("/a")
        );
    }

    #[test]
    fn frozen_states() {
        assert!(freezer_frozen("FROZEN\n"));
        assert!(freezer_frozen("FREEZING"));
        assert!(!freezer_frozen("THAWED\n"));
        assert!(events_frozen("populated 1\nfrozen 1\n"));
        assert!(!events_frozen("populated 1\nfrozen 0\n"));
        assert!(!events_frozen(""));
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,300}") {
            let _ = parse_state(&s);
            let _ = parse_timeslices(&s);
            let _ = stack_functions(&s, 8);
            let _ = parse_cgroup_paths(&s);
            let _ = freezer_frozen(&s);
            let _ = events_frozen(&s);
        }

        #[test]
        fn any_name_keeps_the_state(name in "[ -~]{0,40}", state in "[RSDTtZXIPW]") {
            let stat = format!("42 ({name}) {state} 1 42 42 0 -1 0");
            prop_assert_eq!(parse_state(&stat), state.chars().next());
        }
    }
}
