#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine, as root: installs the real
# components the tests start (dockerd, containerd, dnsmasq, Prometheus, ...),
# the Python tools (kubernetes-validate, grafana-foundation-sdk) and the Node.js tools (playwright-core), builds the static binary of the
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
# grafana-foundation-sdk generates the dashboards (scripts/grafana/dashboards.py).
if ! target/py/bin/python -c 'import grafana_foundation_sdk, kubernetes_validate' 2>/dev/null; then
    python3 -m venv target/py
    target/py/bin/pip install --quiet --disable-pip-version-check kubernetes-validate==1.37.0 \
        'grafana-foundation-sdk==1769699998!10.1.0'
fi

# Node.js tools the tests run (playwright-core drives Chromium; the
# prometheus-operator models validate the CRD objects), pinned by the lock file.
if ! cmp -s scripts/npm/package-lock.json target/npm/package-lock.json \
    || [[ ! -d target/npm/node_modules ]]; then
    command -v npm >/dev/null || { echo "npm is missing: install Node.js >= 20 with npm" >&2; exit 1; }
    mkdir -p target/npm
    cp scripts/npm/package.json scripts/npm/package-lock.json target/npm/
    (cd target/npm && npm ci --no-audit --no-fund --loglevel=error)
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
# offline once the sources are fetched. cargo-deny is built into cargo's bin
# directory on the first run and kept there (measured: 8 min on an otherwise
# busy 2-core machine).
deny_version=0.20.2
if [[ "$(cargo deny --version 2>/dev/null)" != "cargo-deny $deny_version" ]]; then
    cargo install --locked --quiet "cargo-deny@$deny_version"
fi
cargo fetch --locked
cargo deny --offline check licenses bans sources
# Every test binary runs even after a failure; the summary line totals them
# all (cargo prints one line per binary).
set +e
cargo test --all-targets --no-fail-fast 2>&1 | tee target/test-output.log
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' \
    target/test-output.log
exit "$status"
