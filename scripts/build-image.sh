#!/usr/bin/env bash
# Builds the nodevitals container image: the agent as a static binary (glibc
# with crt-static) in a FROM scratch image; nothing is pulled.
#   scripts/build-image.sh [TAG]          binary and image (default nodevitals:VERSION)
#   scripts/build-image.sh --binary-only  the static binary only (prints its path)
# The image goes to the Docker daemon DOCKER_HOST names (default: the local one).
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
tag="nodevitals:$version"
binary_only=false
case "${1:-}" in
    --binary-only) binary_only=true ;;
    "") ;;
    *) tag=$1 ;;
esac

triple="$(uname -m)-unknown-linux-gnu"
# A target dir of its own: the static flags must not invalidate target/debug,
# and `cargo test` may hold the lock of target/ while a test runs this script.
export CARGO_TARGET_DIR="${NODEVITALS_STATIC_TARGET_DIR:-target/static}"
RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --quiet --release --locked --target "$triple"
bin="$CARGO_TARGET_DIR/$triple/release/nodevitals"

# A scratch image has no dynamic loader: refuse anything that needs one.
if ! ldd "$bin" 2>&1 | grep -qE 'statically linked|not a dynamic executable'; then
    echo "build-image: $bin is dynamically linked:" >&2
    ldd "$bin" >&2
    exit 1
fi
"$bin" --version >/dev/null

if $binary_only; then
    echo "$bin"
    exit 0
fi

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
root="$ctx/rootfs"
# Mount points of daemonset.yaml, and /var/run -> /run as on the node, so the
# runtimes' default socket and pidfile paths resolve.
mkdir -p "$root/usr/bin" "$root/etc/nodevitals" "$root/var/lib/nodevitals" "$root/run" \
    "$root/host/sys/fs/cgroup" "$root/host/etc"
ln -s ../run "$root/var/run"
install -m 0755 "$bin" "$root/usr/bin/nodevitals"
cp Dockerfile "$ctx/Dockerfile"
# The classic builder: FROM scratch needs nothing from BuildKit, and it works
# with every dockerd the tests and CI have.
DOCKER_BUILDKIT=0 docker build --quiet --label "org.opencontainers.image.version=$version" \
    -t "$tag" "$ctx" >/dev/null
echo "$tag"
