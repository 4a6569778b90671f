//! Agent CPU time of one diagnosis before a restart decision, on a process
//! with 200 threads (this benchmark's own process: 199 parked threads plus
//! the main one), as `remediation::diagnose_process` makes it: every thread's
//! `stat` and `schedstat`, the kernel stack, the freezer state, statvfs of a
//! root directory and the node's pressure files. Budget: at most 5 ms of CPU
//! per hang decision.
//!
//! `cargo bench --bench diagnosis` measures 500 diagnoses; under `cargo test`
//! (no `--bench` argument) it runs 5 as a smoke test.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const THREADS: usize = 200;

/// CPU time (user + system) this thread has used so far.
fn thread_cpu() -> Duration {
    // SAFETY: getrusage fills the plain struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let runs = if full { 500 } else { 5 };
    let stop = Arc::new(AtomicBool::new(false));
    let parked: Vec<_> = (1..THREADS)
        .map(|_| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    std::thread::park_timeout(Duration::from_millis(200));
                }
            })
        })
        .collect();
    let pid = std::process::id() as i32;
    let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .count();
    assert!(threads >= THREADS, "{threads} threads");
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let before = thread_cpu();
        let class = nodevitals::remediation::diagnose_process(
            Path::new("/proc"),
            Path::new("/sys/fs/cgroup"),
            pid,
            Path::new("/"),
        );
        samples.push(thread_cpu() - before);
        assert_eq!(class, Some("running"));
    }
    stop.store(true, Ordering::SeqCst);
    for t in parked {
        t.thread().unpark();
        t.join().unwrap();
    }
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / runs as u32;
    let p99 = samples[((runs - 1) as f64 * 0.99).round() as usize];
    println!(
        "diagnosis_cpu_ms threads={threads} runs={runs} mean={:.3} p99={:.3} max={:.3} (budget 5)",
        mean.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        samples[runs - 1].as_secs_f64() * 1e3
    );
}
