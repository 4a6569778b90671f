//! Wedges a running agent from outside, for the watchdog check in the test
//! guest (scripts/vm/guest-checks.sh): `wedge_threads PID PREFIX SECONDS`
//! stops every thread of PID named PREFIX* with ptrace (the agent's tokio
//! workers, which run every probe loop), as a thread stuck in an
//! uninterruptible system call looks, and holds them until PID exits (or is
//! a zombie: killed) or SECONDS pass. The rest of the process (its watchdog notifier) runs on.

#[path = "../../../../tests/support/threads.rs"]
mod threads;

use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let parsed = match args.as_slice() {
        [_, pid, prefix, secs] => pid
            .parse::<i32>()
            .ok()
            .zip(secs.parse::<u64>().ok())
            .map(|(p, s)| (p, prefix, s)),
        _ => None,
    };
    let Some((pid, prefix, secs)) = parsed else {
        eprintln!("usage: wedge_threads PID PREFIX SECONDS");
        std::process::exit(2);
    };
    let stopped = threads::StoppedThreads::stop_named(pid, prefix);
    println!("stopped {} threads of {pid}", stopped.count());
    for _ in 0..secs * 10 {
        if exited(pid) {
            println!("{pid} exited");
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("released after {secs} s");
}

/// Gone, or dead and waiting to be reaped: a process killed while its
/// threads are held stays a zombie until this tracer lets go of them.
fn exited(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next());
        matches!(state, None | Some('Z' | 'X'))
    })
}
