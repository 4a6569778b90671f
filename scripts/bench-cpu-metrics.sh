#!/usr/bin/env bash
# Budget check: GET /metrics with 1,000 tracked containers, p99 under 5 ms
# under wrk (8 connections, 2 threads, loopback, bounded duration).
# The agent (release build) reads a generated cgroup v2 tree on tmpfs
# (/dev/shm); no runtime is configured, so containers carry `id` labels
# (64 characters, as long as typical namespace/pod/container labels).
# Usage: scripts/bench-cpu-metrics.sh   (CONTAINERS=1000 DURATION=10s CONNECTIONS=8)
# OPENMETRICS=1 sends Prometheus's Accept header (OpenMetrics); otherwise the
# agent answers in the Prometheus text format, as it does for curl.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v wrk >/dev/null || { echo "wrk is not installed: apt-get install wrk" >&2; exit 1; }
n=${CONTAINERS:-1000}
duration=${DURATION:-10s}
connections=${CONNECTIONS:-8}
threads=$((connections < 2 ? connections : 2))

cargo build --release --quiet
work=$(mktemp -d /dev/shm/nv-bench-metrics-XXXXXX)
agent_pid=
cleanup() {
    if [[ -n $agent_pid ]]; then
        kill "$agent_pid" 2>/dev/null || true
        wait "$agent_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

root=$work/cgroup
mkdir -p "$root" "$work/proc/pressure"
echo "cpuset cpu io memory pids" >"$root/cgroup.controllers"
echo "some avg10=0.00 avg60=0.00 avg300=0.00 total=1000" >"$work/proc/pressure/cpu"
for ((i = 0; i < n; i++)); do
    pod=$(printf 'kubepods-burstable-pod%08x_0000_4000_8000_000000000000.slice' $((i / 2)))
    dir=$root/kubepods.slice/kubepods-burstable.slice/$pod/cri-containerd-$(printf '%064x' $((i + 1))).scope
    mkdir -p "$dir"
    printf 'usage_usec %d\nuser_usec 1\nsystem_usec 1\nnr_periods %d\nnr_throttled %d\nthrottled_usec %d\nnr_bursts 0\nburst_usec 0\n' \
        $((i * 1000)) "$i" $((i / 2)) $((i * 17)) >"$dir/cpu.stat"
    echo "50000 100000" >"$dir/cpu.max"
    printf 'some avg10=0.00 avg60=0.00 avg300=0.00 total=%d\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=%d\n' "$i" "$i" >"$dir/cpu.pressure"
done

cat >"$work/config.toml" <<TOML
paths = { cgroup = "$root", proc = "$work/proc" }
cpu = { interval = "1s", timeout = "1s" }
remediation = { enabled = false }
kubelet = { enabled = false }
dns = { enabled = false }
TOML

env -u DOCKER_HOST target/release/nodevitals --config "$work/config.toml" --listen 127.0.0.1:0 \
    2>"$work/agent.log" &
agent_pid=$!

addr=
for _ in $(seq 100); do
    addr=$(grep -o 'listen=[0-9.:]*' "$work/agent.log" | head -1 | cut -d= -f2 || true)
    [[ -n $addr ]] && break
    sleep 0.1
done
[[ -n $addr ]] || { cat "$work/agent.log"; echo "the agent did not start" >&2; exit 1; }

scrape() {
    exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}"
    printf 'GET /metrics HTTP/1.0\r\nHost: bench\r\n\r\n' >&3
    cat <&3
    exec 3<&-
}
for _ in $(seq 100); do
    scrape | grep -q "^nodevitals_cpu_containers $n\$" && break
    sleep 0.2
done
scrape | grep -q "^nodevitals_cpu_containers $n\$" || { echo "the agent never tracked $n containers" >&2; exit 1; }
echo "tracking $n containers; /metrics is $(scrape | wc -c) bytes, $(scrape | grep -c '^nodevitals_container_') container series"

accept=()
if [[ -n ${OPENMETRICS:-} ]]; then
    accept=(-H "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
fi
wrk -t"$threads" -c"$connections" -d"$duration" --latency "${accept[@]}" "http://$addr/metrics"
