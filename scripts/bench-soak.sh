#!/usr/bin/env bash
# Soak of the HTTP front on the shipped static binary: normal /healthz and
# /metrics clients while 2,000 idle, 300 slowloris and 64 non-reading
# connections are held, reporting /healthz latency, RSS and fds over time.
#   scripts/bench-soak.sh [SECONDS]   (default 600)
# Budgets: /healthz p99 <= 100 ms; RSS <= 16 MiB throughout and within 1 MiB
# of idle after. Traffic stays on loopback; the agent is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(scripts/build-image.sh --binary-only)
# The hostile set needs about 2,400 sockets on the client side.
ulimit -n "$(ulimit -Hn)"
NODEVITALS_BIN="$bin" SOAK_SECONDS="${1:-600}" cargo bench --bench soak
