//! Budget check for the CPU probe: one scan of 1,000 container cgroups in a
//! generated tree on tmpfs (/dev/shm), cgroup v2 (systemd driver) and v1
//! (cgroupfs driver, cpu,cpuacct). Reports scan time (median, p99, max) and
//! allocations: bytes allocated per scan, and bytes retained per tracked
//! container by the snapshot, the ratio history and the rendered series
//! (compressed too, as after a gzip scrape); the CPU time of compressing the
//! series, which the first gzip scrape of each snapshot pays. Budget: < 10 ms per scan,
//! < 2 KiB per tracked container. Run with `cargo bench --bench cpu_scan`.

use nodevitals::metrics::Metrics;
use nodevitals::probe::cpu::identity::{Identity, KubeRef};
use nodevitals::probe::cpu::scan::Scanner;
use nodevitals::probe::cpu::snapshot::History;
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::time::Instant;

/// Counts live bytes and total allocated bytes.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static ALLOCATED: AtomicUsize = AtomicUsize::new(0);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only adds counters.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        ALLOCATED.fetch_add(l.size(), Ordering::Relaxed);
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const CONTAINERS: usize = 1000;
/// Scans measured under `cargo bench`; `cargo test --all-targets` runs this
/// binary without `--bench` as a quick smoke test.
fn scans() -> usize {
    if std::env::args().any(|a| a == "--bench") {
        200
    } else {
        3
    }
}

fn id(i: usize) -> String {
    format!("{:064x}", i as u128 * 0x9e37_79b9_7f4a_7c15 + 1)
}

/// A typical Kubernetes identity: deployment pod names and short containers.
fn kubernetes(i: usize) -> Identity {
    Identity {
        kubernetes: Some(KubeRef {
            namespace: format!("team-{}", i % 40),
            pod: format!("service-{}-7d9f8c6b5-{:05x}", i / 2 % 100, i / 2),
            container: ["app", "istio-proxy"][i % 2].to_owned(),
        }),
        name: None,
        created: i as i64,
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// cgroup v2, kubelet systemd driver: 500 pods of 2 containers.
fn tree_v2(root: &Path) {
    write(
        &root.join("cgroup.controllers"),
        "cpuset cpu io memory pids\n",
    );
    for i in 0..CONTAINERS {
        let dir = root.join(format!(
            "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{:08x}_0000_4000_8000_{:012x}.slice/cri-containerd-{}.scope",
            i / 2, i / 2, id(i)
        ));
        write(&dir.join("cpu.stat"), &format!("usage_usec {}\nuser_usec 1\nsystem_usec 1\nnr_periods {i}\nnr_throttled {}\nthrottled_usec {}\nnr_bursts 0\nburst_usec 0\n", i * 1000, i / 2, i * 17));
        write(&dir.join("cpu.max"), "50000 100000\n");
        write(&dir.join("cpu.pressure"), &format!("some avg10=0.00 avg60=0.00 avg300=0.00 total={i}\nfull avg10=0.00 avg60=0.00 avg300=0.00 total={i}\n"));
    }
}

/// cgroup v1, cpu and cpuacct co-mounted, kubelet cgroupfs driver.
fn tree_v1(root: &Path) {
    let c = root.join("cpu,cpuacct");
    write(&c.join("cpu.cfs_quota_us"), "-1\n");
    write(&c.join("cpuacct.usage"), "0\n");
    for i in 0..CONTAINERS {
        let dir = c.join(format!(
            "kubepods/burstable/pod{:08x}-0000-4000-8000-{:012x}/{}",
            i / 2,
            i / 2,
            id(i)
        ));
        write(
            &dir.join("cpu.stat"),
            &format!(
                "nr_periods {i}\nnr_throttled {}\nthrottled_time {}\nnr_bursts 0\nburst_time 0\n",
                i / 2,
                i * 17
            ),
        );
        write(&dir.join("cpu.cfs_quota_us"), "50000\n");
        write(&dir.join("cpu.cfs_period_us"), "100000\n");
        write(&dir.join("cpuacct.usage"), &format!("{}\n", i * 1_000_000));
    }
}

/// System (kernel) CPU time of this thread, in ms.
fn kernel_ms() -> f64 {
    // SAFETY: getrusage writes into the struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    ru.ru_stime.tv_sec as f64 * 1000.0 + ru.ru_stime.tv_usec as f64 / 1000.0
}

/// CPU time of this thread, in ms: on a shared machine wall time also counts
/// time spent waiting for a core.
fn cpu_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1000.0 + ts.tv_nsec as f64 / 1e6
}

/// Real v1 cgroups: the same cgroupfs-driver layout as [`tree_v1`], made
/// under `/sys/fs/cgroup/{cpu,cpuacct}/nodevitals-bench-<pid>` (separate
/// mounts, as here), and `cpu` and `cpuacct` links to them in `root`. The
/// kernel provides the files. Removed by the returned guard.
fn real_v1(root: &Path) -> Option<RealCgroups> {
    let mounts = ["cpu", "cpuacct"].map(|c| Path::new("/sys/fs/cgroup").join(c));
    if !mounts[0].join("cpu.cfs_quota_us").is_file() || !mounts[1].join("cpuacct.usage").is_file() {
        println!("cpu scan v1 real cgroupfs: skipped, this host has no separate v1 cpu and cpuacct mounts");
        return None;
    }
    let mut made = RealCgroups(Vec::new());
    let mut mkdir = |d: PathBuf| {
        std::fs::create_dir(&d)
            .unwrap_or_else(|e| panic!("create cgroup {} (run as root): {e}", d.display()));
        made.0.push(d);
    };
    for (mount, link) in mounts.iter().zip(["cpu", "cpuacct"]) {
        let top = mount.join(format!("nodevitals-bench-{}", std::process::id()));
        for d in ["", "kubepods", "kubepods/burstable"] {
            mkdir(top.join(d));
        }
        for i in 0..CONTAINERS {
            let pod = top.join(format!(
                "kubepods/burstable/pod{:08x}-0000-4000-8000-{:012x}",
                i / 2,
                i / 2
            ));
            if i % 2 == 0 {
                mkdir(pod.clone());
            }
            mkdir(pod.join(id(i)));
        }
        std::os::unix::fs::symlink(&top, root.join(link)).unwrap();
    }
    Some(made)
}

/// Removes the bench's real cgroups, deepest first.
struct RealCgroups(Vec<PathBuf>);

impl Drop for RealCgroups {
    fn drop(&mut self) {
        for d in self.0.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

fn tmpfs_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("nv-bench-cpu-")
        .tempdir_in("/dev/shm")
        .expect("a tmpfs at /dev/shm")
}

fn run(name: &str, make: fn(&Path)) {
    let dir = tmpfs_dir();
    make(dir.path());
    measure(name, dir.path());
}

fn run_real() {
    let dir = tmpfs_dir();
    if let Some(_cgroups) = real_v1(dir.path()) {
        measure("v1 real cgroupfs", dir.path());
    }
}

fn measure(name: &str, root: &Path) {
    // Everything the scanner keeps between scans counts as retained.
    let live0 = LIVE.load(Ordering::Relaxed);
    let mut scanner = Scanner::new(root, root).expect("layout");
    for _ in 0..5 {
        assert_eq!(scanner.scan().containers.len(), CONTAINERS);
    }
    let scans = scans();
    let mut times = Vec::with_capacity(scans);
    let mut cpu = Vec::with_capacity(scans);
    let (mut bytes, mut allocs) = (0, 0);
    let kernel0 = kernel_ms();
    for _ in 0..scans {
        let (a0, n0) = (
            ALLOCATED.load(Ordering::Relaxed),
            ALLOCS.load(Ordering::Relaxed),
        );
        let (started, cpu0) = (Instant::now(), cpu_ms());
        let scan = scanner.scan();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        cpu.push(cpu_ms() - cpu0);
        bytes += ALLOCATED.load(Ordering::Relaxed) - a0;
        allocs += ALLOCS.load(Ordering::Relaxed) - n0;
        assert!(scan.errors.is_empty(), "{:?}", scan.errors.first());
    }
    let kernel_share = (kernel_ms() - kernel0) / cpu.iter().sum::<f64>();
    times.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    let pct = |v: &[f64], p: f64| v[((v.len() - 1) as f64 * p) as usize];

    // The kernel's floor on this machine: open+read+close of every file the
    // scan reads, by full path, with no walk and no parsing.
    let files: Vec<PathBuf> = scanner
        .scan()
        .containers
        .iter()
        .flat_map(|r| {
            let d = scanner.layout().walk_root().join(&r.rel);
            [
                "cpu.stat",
                "cpu.max",
                "cpu.pressure",
                "cpu.cfs_quota_us",
                "cpu.cfs_period_us",
                "cpuacct.usage",
            ]
            .map(|f| d.join(f))
        })
        .filter(|p| p.exists())
        .collect();
    let mut floor = Vec::new();
    let mut buf = vec![0u8; 4096];
    for _ in 0..scans.min(20) {
        let cpu0 = cpu_ms();
        for f in &files {
            use std::io::Read;
            let _ = std::fs::File::open(f).and_then(|mut f| f.read(&mut buf));
        }
        floor.push(cpu_ms() - cpu0);
    }
    floor.sort_by(f64::total_cmp);
    println!(
        "  for comparison: open+read+close, by full path, of all {} CPU files of these cgroups (limits included): CPU time median {:.2} ms",
        files.len(),
        pct(&floor, 0.5)
    );

    // What stays between scans, as in the probe: the scanner's buffers and
    // cached limits, identities (Kubernetes names, as the runtime gives
    // them), the ratio history and the rendered series of the published
    // snapshot (the snapshot itself is dropped).
    drop(files);
    let metrics = Metrics::new();
    let mut history = History::default();
    let identities: HashMap<String, Arc<Identity>> = scanner
        .scan()
        .containers
        .into_iter()
        .enumerate()
        .map(|(i, r)| (r.id, Arc::new(kubernetes(i))))
        .collect();
    let who = |id: &str| identities.get(id).cloned().unwrap_or_default();
    let (mut render, mut compress, mut gzip_scrape, mut gzip_len) =
        (Vec::new(), Vec::new(), Vec::new(), 0);
    for _ in 0..scans.max(2) {
        let scan = scanner.scan();
        let snapshot = history.snapshot(scan.containers, scan.node_pressure, who);
        assert_eq!(snapshot.containers.len(), CONTAINERS);
        let cpu0 = cpu_ms();
        metrics.cpu.publish(Arc::new(snapshot));
        render.push(cpu_ms() - cpu0);
        // Prometheus asks for gzip: its first scrape compresses the series,
        // which then stay compressed until the next snapshot.
        let cpu0 = cpu_ms();
        gzip_len = metrics.encode_gzip().map_or(0, |gz| gz.len());
        compress.push(cpu_ms() - cpu0);
        let cpu0 = cpu_ms();
        drop(metrics.encode_gzip());
        gzip_scrape.push(cpu_ms() - cpu0);
    }
    for v in [&mut render, &mut compress, &mut gzip_scrape] {
        v.sort_by(f64::total_cmp);
    }
    let retained = LIVE.load(Ordering::Relaxed) - live0;
    let exposition = metrics.encode().len();
    println!(
        "cpu scan {name}: {CONTAINERS} containers, {scans} scans: wall median {:.2} ms, p99 {:.2} ms, max {:.2} ms; \
         CPU time median {:.2} ms, p99 {:.2} ms, {:.0}% of it in the kernel; \
         per scan {} allocations, {} KiB allocated; rendering the series: CPU time median {:.2} ms; \
         first gzip scrape (compressing the series): CPU time median {:.2} ms, later gzip scrapes {:.2} ms; \
         retained per tracked container {} bytes (gzip series included); /metrics {} KiB, gzip {} KiB",
        pct(&times, 0.5),
        pct(&times, 0.99),
        times[times.len() - 1],
        pct(&cpu, 0.5),
        pct(&cpu, 0.99),
        kernel_share * 100.0,
        allocs / scans,
        bytes / scans / 1024,
        pct(&render, 0.5),
        pct(&compress, 0.5),
        pct(&gzip_scrape, 0.5),
        retained / CONTAINERS,
        exposition / 1024,
        gzip_len / 1024
    );
}

fn main() {
    run("v2 systemd", tree_v2);
    run("v1 cgroupfs", tree_v1);
    run_real();
}
