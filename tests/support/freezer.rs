//! A real cgroup v1 `freezer` cgroup holding a process: frozen, its tasks stop
//! in the kernel (`D`, in `__refrigerator`) and act on no signal, SIGKILL
//! included, until thawed; the way a runtime blocked on a hung disk looks from
//! outside. Dropping the guard thaws it, moves its tasks back to the root
//! freezer cgroup and removes it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const FREEZER: &str = "/sys/fs/cgroup/freezer";

pub struct FrozenCgroup {
    dir: PathBuf,
}

impl FrozenCgroup {
    /// Moves `pid` (all its threads) into a new freezer cgroup and freezes it.
    pub fn freeze(pid: i32) -> FrozenCgroup {
        assert!(
            std::path::Path::new(FREEZER).join("freezer.state").exists()
                || std::path::Path::new(FREEZER).join("cgroup.procs").exists(),
            "{FREEZER} is missing: this test needs the cgroup v1 freezer controller mounted there"
        );
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "nv-freeze-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let dir = PathBuf::from(FREEZER).join(name);
        std::fs::create_dir(&dir)
            .unwrap_or_else(|e| panic!("create {}: {e} (run as root)", dir.display()));
        let cg = FrozenCgroup { dir };
        cg.write("cgroup.procs", &pid.to_string());
        cg.write("freezer.state", "FROZEN");
        super::wait_until(
            Duration::from_secs(30),
            "the freezer cgroup to be frozen",
            || cg.state() == "FROZEN",
        );
        cg
    }

    pub fn state(&self) -> String {
        std::fs::read_to_string(self.dir.join("freezer.state"))
            .unwrap_or_default()
            .trim()
            .to_owned()
    }

    pub fn thaw(&self) {
        self.write("freezer.state", "THAWED");
    }

    fn write(&self, file: &str, value: &str) {
        let path = self.dir.join(file);
        std::fs::write(&path, value)
            .unwrap_or_else(|e| panic!("write {value:?} to {}: {e}", path.display()));
    }
}

impl Drop for FrozenCgroup {
    fn drop(&mut self) {
        let _ = std::fs::write(self.dir.join("freezer.state"), "THAWED");
        // A killed task stays attached until it is reaped: retry, bounded.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let procs = std::fs::read_to_string(self.dir.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines() {
                let _ = std::fs::write(PathBuf::from(FREEZER).join("cgroup.procs"), pid);
            }
            if std::fs::remove_dir(&self.dir).is_ok() || tokio::time::Instant::now() >= deadline {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
