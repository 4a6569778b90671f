#!/usr/bin/env bash
# Measures the agent's footprint (resident memory, CPU) against a real dockerd,
# the numbers behind daemonset.yaml's requests/limits and the unit's MemoryMax.
#   scripts/bench-footprint.sh [SECONDS]   (default 60)
# Starts a private dockerd (own socket, data root, pidfile under a temp dir),
# runs the static release binary probing it every second while it is scraped
# every second, and prints peak/final RSS and CPU use. Cleans up by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
bin=$(scripts/build-image.sh --binary-only)

dir=$(mktemp -d /tmp/nv-bench-XXXXXX)
dockerd_pid=""
agent_pid=""
cleanup() {
    [[ -n $agent_pid ]] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
    if [[ -n $dockerd_pid ]]; then
        kill "$dockerd_pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.1; done
    fi
    umount -R "$dir/exec" "$dir/data" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

dockerd --host="unix://$dir/docker.sock" --pidfile="$dir/docker.pid" \
    --data-root="$dir/data" --exec-root="$dir/exec" \
    --iptables=false --ip6tables=false --ip-masq=false --bridge=none \
    --storage-driver=vfs --log-level=warn >"$dir/dockerd.log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 300); do
    docker --host "unix://$dir/docker.sock" version >/dev/null 2>&1 && break
    sleep 0.2
done

cat >"$dir/config.toml" <<TOML
[[runtime]]
kind = "docker"
endpoint = "unix://$dir/docker.sock"
interval = "1s"
timeout = "1s"
[remediation]
dry_run = true
[kubelet]
enabled = false
[dns]
enabled = false
TOML
"$bin" --config "$dir/config.toml" --listen 127.0.0.1:0 2>"$dir/agent.log" &
agent_pid=$!
addr=""
for _ in $(seq 100); do
    addr=$(grep -o 'listen=[0-9.:]*' "$dir/agent.log" | head -n1 | cut -d= -f2) && [[ -n $addr ]] && break
    sleep 0.1
done
[[ -n $addr ]] || { echo "agent did not start:"; cat "$dir/agent.log"; exit 1; }

ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$agent_pid/stat"; }
start_cpu=$(cpu)
for _ in $(seq "$secs"); do
    curl -fsS "http://$addr/metrics" >/dev/null
    sleep 1
done
end_cpu=$(cpu)
scrape=$(curl -fsS "http://$addr/metrics")
grep -q 'nodevitals_runtime_up{runtime="docker"} 1' <<<"$scrape" ||
    { echo "dockerd not reported up"; exit 1; }
scrape_bytes=$(wc -c <<<"$scrape")
echo "binary: $(stat -c %s "$bin") bytes (static)"
echo "over ${secs}s, docker probed every 1s, scraped every 1s:"
grep -E '^(VmHWM|VmRSS)' "/proc/$agent_pid/status"
awk -v c=$((end_cpu - start_cpu)) -v t="$ticks" -v s="$secs" \
    'BEGIN { printf "cpu: %.3f s per minute (%.2f%% of one core)\n", c / t * 60 / s, c / t / s * 100 }'
echo "scrape: $scrape_bytes bytes"
