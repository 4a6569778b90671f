#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine, as root: installs the real
# components the tests start (dockerd, containerd, dnsmasq, Prometheus, ...),
# then checks formatting and lints and runs every test.
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

cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo test --all-targets
