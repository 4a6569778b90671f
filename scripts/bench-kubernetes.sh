#!/usr/bin/env bash
# RSS of the agent with and without the Kubernetes client, against the
# stand-in API server of the tests (tests/support/kube_apiserver.py), and the
# size of the release binary. Needs target/release/nodevitals (cargo build
# --release) and the venv scripts/test.sh makes. Loopback only.
#   scripts/bench-kubernetes.sh [SECONDS]   (default 30 per run)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
bin=target/release/nodevitals
py=target/py/bin/python
[[ -x $bin ]] || { echo "build it first: cargo build --release" >&2; exit 2; }
[[ -x $py ]] || { echo "run scripts/test.sh first (it makes the venv under target/py)" >&2; exit 2; }
work=$(mktemp -d /tmp/nv-bench-kube-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

"$py" tests/support/kube_apiserver.py --dir "$work/api" --node bench-node >"$work/api.out" 2>/dev/null &
mkdir -p "$work/api"
pids+=($!)
for _ in $(seq 100); do [[ -s $work/api.out ]] && break; sleep 0.2; done
[[ -s $work/api.out ]] || { echo "stand-in API server did not start" >&2; exit 1; }

base="[paths]
state_dir = \"$work/state\"
[[runtime]]
kind = \"docker\"
endpoint = \"unix://$work/absent.sock\"
interval = \"1s\"
timeout = \"1s\"
[remediation]
enabled = false
[kubelet]
enabled = false
[dns]
enabled = false
[cpu]
enabled = false
"
run() { # name, extra config -> prints VmRSS KiB after $secs
    printf '%s\n%s\n' "$base" "$2" >"$work/$1.toml"
    NODEVITALS_LOG=warn "$bin" --config "$work/$1.toml" --listen 127.0.0.1:0 2>"$work/$1.log" &
    local pid=$!
    pids+=("$pid")
    sleep "$secs"
    awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
}
off=$(run off "")
on=$(run on "[kubernetes]
kubeconfig = \"$work/api/kubeconfig\"
node_name = \"bench-node\"
namespace = \"nodevitals\"
heartbeat = \"2s\"")
curl -s "http://127.0.0.1:$(awk '{print $3}' "$work/api.out")/objects" | grep -q ContainerRuntimeUnhealthy \
    || { echo "the agent wrote no condition: the client was not active" >&2; exit 1; }
echo "rss_kib_without_kubernetes=$off rss_kib_with_kubernetes=$on increase_kib=$((on - off))"
echo "binary_bytes=$(stat -c %s "$bin")"
