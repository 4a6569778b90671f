//! Agent configs for the DNS tests: only the DNS probe runs.

use std::path::Path;

/// A config running only the DNS probe with `dns` as the body of its `[dns]`
/// table; `proc` is the proc root (an empty directory: no conntrack file).
pub fn dns_only(proc: &Path, dns: &str) -> String {
    format!(
        "[paths]\nproc = \"{}\"\n[remediation]\nenabled = false\n[kubelet]\nenabled = false\n[cpu]\nenabled = false\n[dns]\n{dns}\n",
        proc.display()
    )
}
