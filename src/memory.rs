//! How the agent's heap gives memory back. The shipped binary is linked
//! statically against glibc (`scripts/build-image.sh`), so its allocator is
//! glibc's malloc, which by default keeps memory a burst of connections freed:
//! - each thread that allocates under contention gets an arena of its own
//!   (a 64 MiB reservation), each with its own free memory;
//! - freed memory goes back to the kernel only from the top of an arena, so
//!   free pages between live chunks stay resident;
//! - each thread caches up to 7 freed chunks of every size up to 1 KiB
//!   (the tcache), scattered over the heap, and no call empties it: each
//!   such chunk keeps its page resident even after the rest is trimmed.
//!
//! Under the hostile soak (`scripts/bench-soak.sh`) that kept about 8.5 MiB
//! more resident after the clients had left than before they came. Here: one arena, no tcache, and the free pages
//! handed back (`malloc_trim`) when the server asks, after connections
//! closed. The agent runs two workers and a few blocking threads: contention
//! on one arena's lock is negligible. Elsewhere than glibc all are no-ops.
//! Emits no metrics.

/// glibc's tunables for the agent: one arena, no per-thread cache.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TUNABLES: &str = "glibc.malloc.arena_max=1:glibc.malloc.tcache_count=0";
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TUNABLES_VAR: &str = "GLIBC_TUNABLES";

/// Puts glibc's malloc in the agent's settings. The tcache can only be turned
/// off by `GLIBC_TUNABLES`, which glibc reads as the process starts: so the
/// first start executes itself again (the same binary, arguments and pid)
/// with it set, and the second removes it again, so that the processes the
/// agent starts do not inherit it. An operator's own `GLIBC_TUNABLES` is left
/// alone and wins. If the re-execution fails, the agent runs on with the
/// tcache, still in one arena. Call first thing in `main`, while the process
/// has one thread.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        match std::env::var_os(TUNABLES_VAR) {
            Some(ours) if ours == TUNABLES => std::env::remove_var(TUNABLES_VAR),
            Some(_) => {}
            None => {
                let e = reexec_with_tunables();
                eprintln!("nodevitals: cannot re-execute with {TUNABLES_VAR}={TUNABLES}: {e}");
                // SAFETY: mallopt only sets an allocator parameter.
                unsafe {
                    libc::mallopt(libc::M_ARENA_MAX, 1);
                }
            }
        }
    }
}

/// Replaces this process's image with itself, [`TUNABLES`] set; returns only
/// on failure.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(clippy::disallowed_methods)] // starts no other process: the same one, again
fn reexec_with_tunables() -> std::io::Error {
    use std::os::unix::process::CommandExt;
    // The binary's path, not `/proc/self/exe`: the process name (`comm`,
    // what ps and pgrep show) is taken from the name executed.
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return e,
    };
    let mut args = std::env::args_os();
    let mut command = std::process::Command::new(exe);
    if let Some(arg0) = args.next() {
        command.arg0(arg0);
    }
    command.args(args).env(TUNABLES_VAR, TUNABLES).exec()
}

/// Returns the heap's free pages to the kernel (whole free pages anywhere in
/// the heap, not only at its top), keeping what is allocated. Walks the free
/// chunks under the arena lock.
pub fn release_free_pages() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory the allocator holds free.
    unsafe {
        libc::malloc_trim(0);
    }
}
