#!/usr/bin/env bash
# DNS probe budgets, on loopback only:
#  1. agent CPU per DNS query (target < 100 us), from /proc/<pid>/stat while the
#     agent probes 100 names x A/AAAA every second against a local responder;
#  2. latency measured by nodevitals and by prometheus-blackbox-exporter
#     against the same delaying responder, vs the injected delay.
# Usage: scripts/bench-dns.sh [SECONDS_FOR_CPU_RUN]   (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."

CPU_SECONDS=${1:-20}
SAMPLES=20
DELAYS_MS=(0 1 5 20 100)
BLACKBOX=/usr/bin/prometheus-blackbox-exporter
for tool in curl "$BLACKBOX"; do
    command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install curl prometheus-blackbox-exporter" >&2; exit 1; }
done

cargo build --release --quiet --bin nodevitals --example dns_responder
AGENT=target/release/nodevitals
RESPONDER=target/release/examples/dns_responder

work=$(mktemp -d /tmp/nv-bench-dns.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# start_responder ADDR DELAY_MS NAMES -> sets RESP_PID and RESP_ADDR
start_responder() {
    local out="$work/responder.$RANDOM"
    "$RESPONDER" "$1" "$2" "$3" >"$out" &
    RESP_PID=$!
    pids+=("$RESP_PID")
    for _ in $(seq 100); do [[ -s $out ]] && break; sleep 0.05; done
    RESP_ADDR=$(head -1 "$out")
}

# start_agent CONFIG_TEXT -> sets AGENT_PID and AGENT_ADDR
start_agent() {
    local dir
    dir=$(mktemp -d "$work/agent.XXXX")
    printf '%s\n' "$1" >"$dir/config.toml"
    "$AGENT" --config "$dir/config.toml" --listen 127.0.0.1:0 2>"$dir/log" &
    AGENT_PID=$!
    pids+=("$AGENT_PID")
    AGENT_ADDR=""
    for _ in $(seq 100); do
        AGENT_ADDR=$(grep -o 'listen=[0-9.:]*' "$dir/log" | head -1 | cut -d= -f2 || true)
        [[ -n $AGENT_ADDR ]] && break
        sleep 0.05
    done
    [[ -n $AGENT_ADDR ]] || { cat "$dir/log" >&2; exit 1; }
}

stop_agent() { kill "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true; }

# The probe under test only: no runtime, kubelet or CPU probes.
COMMON='
[[runtime]]
kind = "docker"
endpoint = "unix:///nonexistent/bench.sock"
interval = "1h"
timeout = "1s"
[remediation]
enabled = false
[kubelet]
enabled = false
[cpu]
enabled = false'

metric_sum() { # metric-name regex filter -> sum of matching samples
    curl -s "http://$AGENT_ADDR/metrics" | awk -v re="$1" '$0 !~ /^#/ && $1 ~ re { s += $NF } END { printf "%.9f\n", s }'
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$AGENT_PID/stat"; }

echo "== 1. agent CPU per query (${CPU_SECONDS}s, 100 names x A/AAAA pairs per second)"
start_responder 127.0.0.81:0 0 100; addr=$RESP_ADDR
names=$(for i in $(seq 0 99); do printf '"n%d.test.",' "$i"; done)
start_agent "$COMMON
[dns]
interval = \"1s\"
timeout = \"1s\"
servers = [\"$addr\"]
names = [${names%,}]"
sleep 3
t0=$(cpu_ticks); q0=$(metric_sum '^nodevitals_dns_requests_total')
sleep "$CPU_SECONDS"
t1=$(cpu_ticks); q1=$(metric_sum '^nodevitals_dns_requests_total')
hz=$(getconf CLK_TCK)
awk -v t="$((t1 - t0))" -v q0="$q0" -v q1="$q1" -v hz="$hz" 'BEGIN {
    q = q1 - q0; cpu = t / hz
    printf "queries %d, agent CPU %.2f s, %.1f us per query\n", q, cpu, cpu * 1e6 / q }'
timeouts=$(metric_sum '^nodevitals_dns_requests_total.*result="timeout"')
echo "timeouts during the run: $timeouts"
stop_agent

echo
echo "== 2. measured vs injected delay ($SAMPLES samples each, A over UDP)"
bb_port=$((20000 + RANDOM % 10000))
cat >"$work/blackbox.yml" <<EOF
modules:
  dns_a:
    prober: dns
    timeout: 2s
    dns:
      query_name: "a.test"
      query_type: "A"
      transport_protocol: udp
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
EOF
"$BLACKBOX" --config.file="$work/blackbox.yml" --web.listen-address="127.0.0.1:$bb_port" 2>"$work/blackbox.log" &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$bb_port/-/healthy" >/dev/null && break; sleep 0.05; done

printf '| injected | nodevitals mean | nodevitals error | blackbox request phase | blackbox error | blackbox probe_duration |\n'
printf '|---|---|---|---|---|---|\n'
for d in "${DELAYS_MS[@]}"; do
    start_responder 127.0.0.82:0 "$d" 0; addr=$RESP_ADDR
    start_agent "$COMMON
[dns]
interval = \"250ms\"
timeout = \"200ms\"
servers = [\"$addr\"]
names = [\"a.test.\"]
qtypes = [\"A\"]"
    for _ in $(seq 600); do
        n=$(metric_sum '^nodevitals_dns_request_duration_seconds_count')
        awk -v n="$n" -v s="$SAMPLES" 'BEGIN { exit !(n >= s) }' && break
        sleep 0.1
    done
    nv_sum=$(metric_sum '^nodevitals_dns_request_duration_seconds_sum')
    nv_count=$(metric_sum '^nodevitals_dns_request_duration_seconds_count')
    stop_agent
    bb_req=0; bb_total=0
    for _ in $(seq "$SAMPLES"); do
        body=$(curl -s "http://127.0.0.1:$bb_port/probe?module=dns_a&target=$addr")
        r=$(awk '/^probe_dns_duration_seconds\{phase="request"\}/ { print $2 }' <<<"$body")
        t=$(awk '/^probe_duration_seconds / { print $2 }' <<<"$body")
        bb_req=$(awk -v a="$bb_req" -v b="${r:-0}" 'BEGIN { printf "%.9f", a + b }')
        bb_total=$(awk -v a="$bb_total" -v b="${t:-0}" 'BEGIN { printf "%.9f", a + b }')
    done
    kill "$RESP_PID" 2>/dev/null || true
    awk -v d="$d" -v s="$nv_sum" -v c="$nv_count" -v r="$bb_req" -v t="$bb_total" -v n="$SAMPLES" 'BEGIN {
        nv = s / c * 1000; bq = r / n * 1000; bt = t / n * 1000
        printf "| %d ms | %.3f ms | %+.3f ms | %.3f ms | %+.3f ms | %.3f ms |\n", d, nv, nv - d, bq, bq - d, bt }'
done
