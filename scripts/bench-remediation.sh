#!/usr/bin/env bash
# Measures the remediation budgets against a real dockerd (tests/remediation.rs):
#   SIGSTOP -> restart issued   budget: hang_after + one interval + 1 s = 2.8 s
#                               with the tests' 1.5 s hang_after, 300 ms interval
#   restart issued -> healthy   dockerd with one running container (no
#                               live-restore: dockerd stops it while it starts
#                               again)
# The `systemd` method's figures come from a real systemd in the test guest:
# tests/host_systemd.rs prints them (MEASURE lines) on every run.
# Usage: scripts/bench-remediation.sh [runs]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
cargo test --test remediation --no-run -q 2>/dev/null
for i in $(seq "$runs"); do
    cargo test -q --test remediation -- --nocapture \
        hang_is_restarted_by_signal_then_held_by_backoff >"target/bench-remediation-$i.log" 2>&1 ||
        { echo "run $i failed: target/bench-remediation-$i.log" >&2; exit 1; }
    grep -o 'MEASURE.*' "target/bench-remediation-$i.log"
done | awk '
    {
        for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        add("SIGSTOP->restart issued", v["sigstop_to_restart_issued_seconds"])
        add("restart->healthy, 1 running container", v["restart_to_healthy_seconds"])
    }
    function add(k, x) { n[k]++; s[k] += x; if (x > m[k]) m[k] = x; if (!(k in lo) || x < lo[k]) lo[k] = x }
    END { for (k in n) printf "%-40s n=%d mean %.3f s  min %.3f  max %.3f\n", k, n[k], s[k] / n[k], lo[k], m[k] }'
