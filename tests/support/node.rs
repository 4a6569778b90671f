//! Node.js tools of the tests (playwright-core, the prometheus-operator
//! models), installed by scripts/test.sh from scripts/npm/package-lock.json
//! into target/npm. A script under tests/ is run from there so that its
//! imports resolve against that tree.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How long one script may run before it is killed.
const DEADLINE_SECONDS: &str = "180";

pub fn npm_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/npm")
}

/// Fails the test, saying how to get it, when an npm package is missing.
pub fn require_package(package: &str) {
    super::require("node", "nodejs");
    let dir = npm_dir().join("node_modules").join(package);
    assert!(
        dir.join("package.json").is_file(),
        "{package} is not installed in {}: run scripts/test.sh (it runs npm ci there)",
        npm_dir().display()
    );
}

/// Runs `tests/<script>` with `args` under a deadline; Ok(stdout) if it exits 0.
pub fn run(script: &str, args: &[&str]) -> Result<String, String> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(script);
    // A copy per run: tests running at once never read a half-written one.
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let stem = source.file_stem().expect("a script file name");
    let copy = npm_dir().join(format!(
        "{}-{}-{}.mjs",
        stem.to_string_lossy(),
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::copy(&source, &copy)
        .unwrap_or_else(|e| panic!("copy {} to {}: {e}", source.display(), copy.display()));
    let out = super::process::output(
        Command::new("timeout")
            .args([DEADLINE_SECONDS, "node"])
            .arg(&copy)
            .args(args)
            .current_dir(npm_dir()),
    );
    let _ = std::fs::remove_file(&copy);
    out
}
