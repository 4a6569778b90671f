#!/usr/bin/env bash
# Fills DIR with what the test guest's checks run: the checks themselves
# (run.sh), the agent's static binary (scripts/build-image.sh), the shipped
# unit file byte for byte, and the static wedge-threads helper.
#   scripts/vm/guest-payload.sh DIR
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${1:?DIR}
agent=$(scripts/build-image.sh --binary-only)
triple="$(uname -m)-unknown-linux-gnu"
# A crate of its own (libc only): seconds to build, and the agent's release
# build is never redone with the dev-dependencies' features.
RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR=target/wedge-threads \
    cargo build --quiet --release --locked --target "$triple" \
    --manifest-path scripts/vm/wedge-threads/Cargo.toml
mkdir -p "$dir"
install -m 0755 scripts/vm/guest-checks.sh "$dir/run.sh"
install -m 0755 "$agent" "$dir/nodevitals"
install -m 0755 "target/wedge-threads/$triple/release/wedge-threads" "$dir/wedge_threads"
cp systemd/nodevitals.service "$dir/nodevitals.service"
