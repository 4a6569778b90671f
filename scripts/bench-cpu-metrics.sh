#!/usr/bin/env bash
# Budget check: GET /metrics with 1,000 tracked containers, p99 under 5 ms
# under wrk (8 connections, 2 threads, loopback, bounded duration).
# The agent (release build) reads a generated cgroup v2 tree on tmpfs
# (/dev/shm); no runtime is configured, so containers carry `id` labels
# (64 characters, as long as typical namespace/pod/container labels).
# Usage: scripts/bench-cpu-metrics.sh   (CONTAINERS=1000 DURATION=10s CONNECTIONS=8
# SCAN_INTERVAL=1s: the CPU probe rescans every second, 15 times its default)
# Measures both formats, one wrk run each: `text` (no Accept header, as curl
# and wrk send: the Prometheus text format) and `openmetrics` (Prometheus's
# Accept header). FORMATS=text or FORMATS=openmetrics measures one; RUNS=3
# repeats each; BIN=path/to/nodevitals measures that binary instead of
# building this tree (to compare two builds on the same generated tree);
# BODIES=dir saves the two bodies there (text.prom, openmetrics.prom) to diff
# the output of two builds. ACCEPT_GZIP=1 sends `Accept-Encoding: gzip` (as
# Prometheus does) with every request: the agent then answers gzip, the CPU
# series compressed once per snapshot.
# Latency on a shared machine depends on its load: each result line carries
# the 1-minute load average read just before the run (which still counts the
# previous run for a minute or so) and the share of the machine's CPU time that
# other processes than the agent and wrk took during the run.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v wrk >/dev/null || { echo "wrk is not installed: apt-get install wrk" >&2; exit 1; }
n=${CONTAINERS:-1000}
duration=${DURATION:-10s}
scan_interval=${SCAN_INTERVAL:-1s}
connections=${CONNECTIONS:-8}
threads=$((connections < 2 ? connections : 2))

formats=${FORMATS:-text openmetrics}
runs=${RUNS:-1}
bin=${BIN:-target/release/nodevitals}
[[ -n ${BIN:-} ]] || cargo build --release --quiet
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
cpu = { interval = "$scan_interval", timeout = "1s" }
remediation = { enabled = false }
kubelet = { enabled = false }
dns = { enabled = false }
TOML

env -u DOCKER_HOST "$bin" --config "$work/config.toml" --listen 127.0.0.1:0 \
    2>"$work/agent.log" &
agent_pid=$!

addr=
for _ in $(seq 100); do
    addr=$(grep -o 'listen=[0-9.:]*' "$work/agent.log" | head -1 | cut -d= -f2 || true)
    [[ -n $addr ]] && break
    sleep 0.1
done
[[ -n $addr ]] || { cat "$work/agent.log"; echo "the agent did not start" >&2; exit 1; }

# scrape [ACCEPT [ACCEPT-ENCODING]]: the whole response, headers included.
scrape() {
    exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}"
    local accept=
    [[ -z ${1:-} ]] || accept="Accept: $1"$'\r\n'
    [[ -z ${2:-} ]] || accept+="Accept-Encoding: $2"$'\r\n'
    printf 'GET /metrics HTTP/1.0\r\nHost: bench\r\n%s\r\n' "$accept" >&3
    cat <&3
    exec 3<&-
}
for _ in $(seq 100); do
    scrape | grep -q "^nodevitals_cpu_containers $n\$" && break
    sleep 0.2
done
scrape | grep -q "^nodevitals_cpu_containers $n\$" || { echo "the agent never tracked $n containers" >&2; exit 1; }
echo "tracking $n containers; /metrics is $(scrape | wc -c) bytes, $(scrape | grep -c '^nodevitals_container_') container series"

om_accept="application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
# The bodies measured are complete, in the format asked for.
scrape | grep -q '^# TYPE nodevitals_container_cpu_periods_total counter' ||
    { echo "the text format body lacks its counter declaration" >&2; exit 1; }
[[ $(scrape "$om_accept" | tail -1) == "# EOF" ]] || { echo "the OpenMetrics body does not end with # EOF" >&2; exit 1; }
gzip_header=()
if [[ ${ACCEPT_GZIP:-} == 1 ]]; then
    gzip_header=(-H "Accept-Encoding: gzip")
    # The gzip bodies decode (CRC and length checked) to whole expositions.
    for accept in "" "$om_accept"; do
        decoded=$(scrape "$accept" gzip | sed '1,/^\r$/d' | gzip -dc)
        grep -q "^nodevitals_cpu_containers $n\$" <<<"$decoded" ||
            { echo "the gzip body (Accept: ${accept:-none}) does not decode to $n containers" >&2; exit 1; }
    done
    echo "gzip: text $(scrape "" gzip | sed '1,/^\r$/d' | wc -c) bytes, OpenMetrics $(scrape "$om_accept" gzip | sed '1,/^\r$/d' | wc -c) bytes"
fi
if [[ -n ${BODIES:-} ]]; then
    mkdir -p "$BODIES"
    scrape | sed '1,/^\r$/d' >"$BODIES/text.prom"
    scrape "$om_accept" | sed '1,/^\r$/d' >"$BODIES/openmetrics.prom"
fi
# CPU ticks of the machine (busy, total) and of one process (user + system).
machine_ticks() { awk '/^cpu / { t = 0; for (i = 2; i <= 9; i++) t += $i; print t - $5 - $6, t }' /proc/stat; }
process_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
hz=$(getconf CLK_TCK)
summary=()
for format in $formats; do
    accept=()
    case $format in
    text) ;;
    openmetrics) accept=(-H "Accept: $om_accept") ;;
    *) echo "unknown format $format (text or openmetrics)" >&2; exit 1 ;;
    esac
    for ((run = 1; run <= runs; run++)); do
        load=$(cut -d' ' -f1 /proc/loadavg)
        echo "== $format, run $run, load average $load"
        read -r busy0 total0 < <(machine_ticks)
        agent0=$(process_ticks "$agent_pid")
        out=$(/usr/bin/time -f '%U %S' -o "$work/wrk.time" \
            wrk -t"$threads" -c"$connections" -d"$duration" --latency "${accept[@]}" "${gzip_header[@]}" "http://$addr/metrics")
        read -r busy1 total1 < <(machine_ticks)
        agent1=$(process_ticks "$agent_pid")
        echo "$out"
        requests=$(awk '$2 == "requests" && $3 == "in" { print $1 }' <<<"$out")
        # The agent's CPU time per request, and the share of the machine's CPU
        # that other work than the agent and wrk took during the run.
        read -r agent_us others < <(awk -v hz="$hz" -v busy=$((busy1 - busy0)) -v total=$((total1 - total0)) \
            -v agent=$((agent1 - agent0)) -v requests="$requests" \
            '{ o = busy - agent - ($1 + $2) * hz
               print int(agent * 1e6 / hz / (requests > 0 ? requests : 1)), (o > 0 ? int(100 * o / total) : 0) }' \
            "$work/wrk.time")
        p50=$(awk '$1 == "50%" { print $2 }' <<<"$out")
        p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
        rps=$(awk '$1 == "Requests/sec:" { print $2 }' <<<"$out")
        summary+=("$(printf '%-17s run %d: p50 %8s  p99 %8s  %9s req/s  agent CPU %4s us/request  load before %5s, other work %3s%% CPU' \
            "$format${gzip_header:+ gzip}" "$run" "$p50" "$p99" "$rps" "$agent_us" "$load" "$others")")
    done
done
echo
echo "/metrics, $n containers rescanned every $scan_interval, $connections connections, $duration per run ($bin):"
printf '%s\n' "${summary[@]}"
