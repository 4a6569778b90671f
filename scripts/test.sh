#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine, as root: installs the real
# components the tests start (dockerd, containerd, dnsmasq, Prometheus, ...),
# and the Python tools (kubernetes-validate), builds the static binary of the
# container image, then checks formatting and lints and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# One package per line in scripts/test-packages.txt.
mapfile -t pkgs < <(grep -v '^\s*#' scripts/test-packages.txt | sed '/^\s*$/d')
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Python tools the tests run, in a venv under target/ (pip reaches PyPI).
if [[ ! -x target/py/bin/kubernetes-validate ]]; then
    python3 -m venv target/py
    target/py/bin/pip install --quiet --disable-pip-version-check kubernetes-validate==1.37.0
fi

# The test guest (systemd as PID 1, cgroup v2) that tests/host_systemd.rs
# boots: built once, cached under target/vm/. A failed build is reported by
# that test (it tries again and fails saying why); the rest still runs.
guest_start=$SECONDS
if guest=$(scripts/vm/build-guest.sh); then
    echo "test guest: $guest ($((SECONDS - guest_start)) s)"
else
    echo "test guest could not be built: tests/host_systemd.rs will fail" >&2
fi

# The static release binary the image test packs; built here so the test only
# pays for it when the code changed (it rebuilds incrementally in target/static).
scripts/build-image.sh --binary-only >/dev/null

cargo fmt --check
cargo clippy --all-targets -- -D warnings

# Licenses, banned crates and sources of the dependency graph (deny.toml),
# offline once the sources are fetched. cargo-deny is built into target/tools
# on the first run (measured: 24 min on a 2-core machine busy with other builds).
if [[ ! -x target/tools/bin/cargo-deny ]]; then
    cargo install --locked --quiet --root target/tools cargo-deny@0.20.2
fi
cargo fetch --locked
target/tools/bin/cargo-deny --offline check licenses bans sources
# Every test binary runs even after a failure; the summary line totals them
# all (cargo prints one line per binary).
set +e
cargo test --all-targets --no-fail-fast 2>&1 | tee target/test-output.log
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' \
    target/test-output.log
exit "$status"
