//! Stops chosen threads of a running process with ptrace(2), leaving the rest
//! of it running: the way a thread wedged in an uninterruptible system call
//! looks from outside. Dropping the guard resumes them (PTRACE_DETACH); if the
//! test thread dies instead, the kernel detaches and resumes them itself.

pub struct StoppedThreads {
    tids: Vec<i32>,
}

/// The thread ids of `pid` whose name (`comm`) starts with `prefix`.
pub fn named(pid: i32, prefix: &str) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| t.file_name().to_str()?.parse::<i32>().ok())
        .filter(|tid| {
            std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
                .is_ok_and(|c| c.trim_end().starts_with(prefix))
        })
        .collect()
}

impl StoppedThreads {
    /// Stops every thread of `pid` named `prefix*`. Must be dropped on the
    /// thread that created it (the tracer).
    pub fn stop_named(pid: i32, prefix: &str) -> StoppedThreads {
        let mut stopped = StoppedThreads { tids: Vec::new() };
        let tids = named(pid, prefix);
        assert!(
            !tids.is_empty(),
            "process {pid} has no thread named {prefix}*"
        );
        for tid in tids {
            // SAFETY: ptrace requests on another process's thread with null
            // address and data arguments touch none of our memory.
            let seized = unsafe { libc::ptrace(libc::PTRACE_SEIZE, tid, 0, 0) };
            if seized != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
                // An idle blocking-pool thread that exited since the listing.
                continue;
            }
            assert_eq!(
                seized,
                0,
                "PTRACE_SEIZE of thread {tid}: {} (the tests need CAP_SYS_PTRACE)",
                std::io::Error::last_os_error()
            );
            stopped.tids.push(tid);
            // SAFETY: as above.
            let interrupted = unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0) };
            assert_eq!(interrupted, 0, "PTRACE_INTERRUPT of thread {tid}");
            let mut status = 0;
            // SAFETY: waitpid writes only to `status`, which outlives the call.
            let waited = unsafe { libc::waitpid(tid, &mut status, libc::__WALL) };
            assert!(
                waited == tid && libc::WIFSTOPPED(status),
                "thread {tid} did not stop (status {status:#x})"
            );
        }
        stopped
    }

    pub fn count(&self) -> usize {
        self.tids.len()
    }
}

impl Drop for StoppedThreads {
    fn drop(&mut self) {
        for &tid in &self.tids {
            // SAFETY: as in stop_named.
            unsafe {
                libc::ptrace(libc::PTRACE_DETACH, tid, 0, 0);
            }
        }
    }
}
