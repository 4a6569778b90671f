//! The restart method when the config names none: `systemd` when the
//! runtime's main process lives in a systemd service's cgroup (e.g.
//! `/system.slice/docker.service`) and systemd answers on the system bus,
//! else `signal`. The choice and its reason go to the log and to `/status`
//! (the target's `preflight`). Metrics: none.

use super::systemd_bus::Systemd;
use crate::config::RestartMethod;
use crate::remediation::defaults::RestartSpec;
use crate::remediation::procfs::Procfs;
use std::time::Duration;

/// Deadline of the look at the bus made once when remediation starts.
const BUS_DEADLINE: Duration = Duration::from_secs(5);

/// The systemd service whose cgroup a `/proc/PID/cgroup` text names: the
/// unified (`0::`) line, else cgroup v1's `name=systemd` line. Paths seen
/// from another cgroup namespace (`/../../system.slice/x.service`) work too.
pub(crate) fn unit_of_cgroup(text: &str) -> Option<&str> {
    let path_of = |prefix: &str| {
        text.lines().find_map(|l| {
            let (_, rest) = l.split_once(':')?;
            rest.strip_prefix(prefix)
        })
    };
    let path = path_of(":").or_else(|| path_of("name=systemd:"))?;
    path.rsplit('/')
        .next()
        .filter(|leaf| leaf.len() > ".service".len() && leaf.ends_with(".service"))
}

/// Picks the method of a spec whose config named none; returns the spec to
/// use and why, for the log and `/status`.
pub(crate) async fn choose(
    mut spec: RestartSpec,
    procfs: &Procfs,
) -> (RestartSpec, Option<String>) {
    let process = spec.process.clone();
    let found = procfs.find(spec.pidfile.as_deref(), &process);
    let pid = match found {
        Ok(p) => p.pid,
        Err(e) => {
            return (
                spec,
                Some(format!(
                    "method signal: the runtime process is not found yet ({e})"
                )),
            )
        }
    };
    let cgroup = procfs.cgroup_of(pid).unwrap_or_default();
    let Some(unit) = unit_of_cgroup(&cgroup).map(str::to_owned) else {
        return (
            spec,
            Some(format!(
                "method signal: {process} (PID {pid}) is not in a systemd service's cgroup"
            )),
        );
    };
    let bus = tokio::time::timeout(BUS_DEADLINE, async {
        Systemd::connect().await?.unit(&unit).await
    })
    .await;
    let reason = match bus {
        Ok(Ok(state)) if state.load_state == "loaded" => {
            spec.method = RestartMethod::Systemd;
            let reason = format!(
                "method systemd: {process} (PID {pid}) runs in {unit}'s cgroup and systemd answers on the system bus"
            );
            spec.unit = unit;
            return (spec, Some(reason));
        }
        Ok(Ok(state)) => format!("systemd reports {unit} {}", state.load_state),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer on the system bus within {BUS_DEADLINE:?}"),
    };
    (
        spec,
        Some(format!(
            "method signal: {process} (PID {pid}) runs in {unit}'s cgroup, but {reason}"
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_from_proc_cgroup() {
        assert_eq!(
            unit_of_cgroup("0::/system.slice/docker.service\n"),
            Some("docker.service")
        );
        assert_eq!(
            unit_of_cgroup("0::/../../system.slice/containerd.service\n"),
            Some("containerd.service")
        );
        let v1 =
            "12:pids:/system.slice/docker.service\n1:name=systemd:/system.slice/docker.service\n";
        assert_eq!(unit_of_cgroup(v1), Some("docker.service"));
        assert_eq!(unit_of_cgroup("0::/system.slice/docker-abc.scope\n"), None);
        assert_eq!(unit_of_cgroup("0::/docker/0123\n"), None);
        assert_eq!(unit_of_cgroup("0::/\n"), None);
        assert_eq!(unit_of_cgroup("0::/.service\n"), None);
        assert_eq!(unit_of_cgroup(""), None);
        assert_eq!(unit_of_cgroup("garbage"), None);
    }

    proptest::proptest! {
        #[test]
        fn unit_of_cgroup_never_panics(s in "\\PC{0,200}") {
            let _ = unit_of_cgroup(&s);
        }
    }
}
