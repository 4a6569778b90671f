#!/bin/bash
# The checks tests/host_systemd.rs runs inside the test guest, in one boot
# (run as /payload/in/run.sh by the guest's boot unit, cwd = the payload's
# in/ directory, which holds the agent's static binary and the shipped unit).
# Each check (a function) writes out/checks/NAME.log and out/checks/NAME.result
# (status=0|N, ms=wall time, and its MEASURE key=value lines); the test turns
# every check into an assertion of its own.
set -u
out=/payload/out/checks
mkdir -p "$out"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# Ends the check (each runs in a subshell of its own).
fail() {
    echo "FAIL: $*"
    exit 1
}
measure() { echo "MEASURE $1=$2"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# http PATH: the agent's response body (HTTP/1.0, so never chunked), with
# bash's own /dev/tcp: the guest has no curl, and busybox wget crashes here.
http() {
    local status
    exec 3<>/dev/tcp/127.0.0.1/9811 || return 1
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$1" >&3
    { IFS= read -r status && [[ $status == *" 200 "* ]] && sed '1,/^\r$/d'; } <&3
    local rc=$?
    exec 3<&-
    return $rc
}
# wait_for SECONDS WHAT CMD...: polls CMD every 200 ms until it succeeds.
wait_for() {
    local limit=$(($(now_ms) + $1 * 1000)) what=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
        if (($(now_ms) > limit)); then
            echo "timed out waiting for: $what"
            return 1
        fi
        sleep 0.2
    done
}
prop() { systemctl show -p "$2" --value "$1"; }
# mval NAME LABEL...: the sum of the agent's samples of NAME having every LABEL.
mval() {
    local name=$1 lines
    shift
    lines=$(http /metrics | grep -E "^$name[{ ]")
    local l
    for l in "$@"; do lines=$(echo "$lines" | grep -F "$l"); done
    echo "$lines" | awk 'NF { s += $NF } END { print s + 0 }'
}
# budgets: every target's restarts_in_window, as /status reports them.
budgets() { http /status | grep -o '"restarts_in_window":[0-9]*' | sort | tr '\n' ' '; }

# above VALUE LIMIT: VALUE > LIMIT, as decimals.
above() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a > b) }'; }
# has_series FILTER: the agent exports a CPU series matching FILTER.
has_series() { series "$1" | grep -q .; }
new_main_pid() { local p; p=$(prop "$1" MainPID); [[ $p != "$2" && $p != 0 ]] && systemctl is-active -q "$1"; }
successes_above() { above "$(mval nodevitals_remediation_restarts_total "target=\"$1\"" 'result="success"')" "$2"; }
nrestarts_above() { (($(prop "$1" NRestarts) > $2)); }
probe_ok() { http /metrics | grep -q "^nodevitals_probe_success{probe=\"$1\"} 1"; }
ratio_above_half() { above "$(sample nodevitals_container_cpu_throttled_ratio "$1")" 0.5; }
pressure_moved() { [[ $(pressure_some "$1") != "$2" ]]; }
pressure_some() { series "$1" | grep -F 'kind="some"' | grep '^nodevitals_container_cpu_pressure_seconds_total' | awk '{print $NF}'; }
# settled FILTER: the agent's period counter of FILTER unchanged over two scans.
settled() {
    local a b
    a=$(series "$1" | grep '^nodevitals_container_cpu_periods_total')
    sleep 4.5
    b=$(series "$1" | grep '^nodevitals_container_cpu_periods_total')
    [[ -n $a && $a == "$b" ]]
}
cpu_scans_at_least() { (($(http /metrics | awk '/^nodevitals_probe_duration_seconds_count\{probe="cpu"\}/ {print $NF}') >= $1)); }
bench_series_at_least() { (($(http /metrics | grep -c '^nodevitals_container_cpu_usage_seconds_total{.*id="0000') >= $1)); }

# Runs one check: check FUNCTION (the check is named after it).
check() {
    local name=$1 start status
    start=$(now_ms)
    echo "== $name"
    ("$name") >"$out/$name.log" 2>&1
    status=$?
    {
        echo "status=$status"
        echo "ms=$(($(now_ms) - start))"
        sed -n 's/^MEASURE //p' "$out/$name.log"
    } >"$out/$name.result"
    echo "== $name status=$status ms=$(($(now_ms) - start))"
    if ((status != 0)); then tail -n 20 "$out/$name.log"; fi
}

host_is_systemd_cgroup2() {
    echo "pid1=$(cat /proc/1/comm) kernel=$(uname -r) $(systemctl --version | head -n1)"
    echo "cgroupfs=$(stat -fc %T /sys/fs/cgroup) controllers=$(cat /sys/fs/cgroup/cgroup.controllers)"
    [[ $(cat /proc/1/comm) == systemd ]] || fail "PID 1 is not systemd"
    [[ $(stat -fc %T /sys/fs/cgroup) == cgroup2fs ]] || fail "/sys/fs/cgroup is not cgroup v2"
    grep -qw cpu /sys/fs/cgroup/cgroup.controllers || fail "no cpu controller"
    head -n1 /proc/pressure/cpu || fail "no /proc/pressure/cpu"
    wait_for 60 "docker.service active" systemctl is-active docker.service
    wait_for 60 "containerd.service active" systemctl is-active containerd.service
    docker import -c 'CMD ["/bin/sh"]' /opt/nodevitals/busybox-rootfs.tar busybox:latest
    docker run --rm busybox:latest echo hello-from-container
}

AGENT_CONFIG='
[server]
listen = "127.0.0.1:9811"

[[runtime]]
kind = "docker"
endpoint = "unix:///run/docker.sock"
interval = "2s"
timeout = "2s"
  [runtime.restart]
  method = "systemd"
  unit = "docker.service"

# No restart method: the agent must choose systemd (containerd runs in
# containerd.service and systemd answers on the bus).
[[runtime]]
kind = "containerd"
endpoint = "unix:///run/containerd/containerd.sock"
interval = "2s"
timeout = "2s"

[remediation]
failure_threshold = 2
hang_after = "4s"
cooldown = "10s"
boot_grace = "0s"
backoff_initial = "5s"
backoff_jitter = 0.0
max_restarts = 10
recovery_timeout = "60s"

[kubelet]
enabled = false

[dns]
interval = "2s"
timeout = "2s"
servers = ["127.0.0.1:53"]
names = ["probe.guest.test."]
qtypes = ["A"]
resolv_conf = "/etc/nodevitals/resolv.conf"

[cpu]
interval = "2s"
timeout = "2s"
'

shipped_unit_starts_and_is_ready() {
    # The DNS server the agent's DNS probe asks.
    dnsmasq --port=53 --listen-address=127.0.0.1 --bind-interfaces --no-resolv --no-hosts \
        --address=/guest.test/10.1.2.3 --pid-file=/run/dnsmasq-test.pid || fail "dnsmasq"
    install -m 0755 nodevitals /usr/local/bin/nodevitals
    # The unit as shipped, byte for byte.
    install -m 0644 nodevitals.service /etc/systemd/system/nodevitals.service
    install -d -m 0755 /etc/nodevitals
    printf '%s\n' "$AGENT_CONFIG" >/etc/nodevitals/config.toml
    printf 'nameserver 127.0.0.1\n' >/etc/nodevitals/resolv.conf
    systemctl daemon-reload
    local start
    start=$(now_ms)
    # Type=notify: start returns once READY=1 came (or fails).
    systemctl start nodevitals.service || { journalctl -u nodevitals --no-pager | tail -n 30; fail "start"; }
    measure start_to_ready_ms $(($(now_ms) - start))
    systemctl status --no-pager nodevitals.service | tee /tmp/nodevitals-status.txt
    [[ $(prop nodevitals.service ActiveState) == active ]] || fail "ActiveState is not active"
    [[ $(prop nodevitals.service SubState) == running ]] || fail "SubState is not running"
    grep -q 'Status: "' /tmp/nodevitals-status.txt || fail "systemctl status shows no STATUS= line"
    prop nodevitals.service StatusText
}

every_probe_works_in_the_sandbox() {
    wait_for 60 "docker probe success" probe_ok docker
    local m
    m=$(http /metrics)
    local p
    for p in docker containerd dns cpu; do
        echo "$m" | grep "^nodevitals_probe_success{probe=\"$p\"}" || fail "no probe_success for $p"
        echo "$m" | grep -q "^nodevitals_probe_success{probe=\"$p\"} 1" || fail "probe $p fails under the unit's sandbox"
    done
    echo "$m" | grep '^nodevitals_node_info{' | grep -qF 'cgroup_version="v2"' || fail "node_info does not say cgroup v2"
    echo "$m" | grep '^nodevitals_node_cpu_pressure_seconds_total' || fail "no node PSI"
    echo "$m" | grep 'nodevitals_dns_requests_total{.*result="noerror"' || fail "no DNS answer from the guest's dnsmasq"
    ls -la /var/lib/nodevitals
    http /status | head -c 2000
    echo
    journalctl -u nodevitals --no-pager -p warning | tail -n 20
}

# hang_by_sigstop UNIT TARGET: SIGSTOPs the unit's main process and waits for
# the agent to restart it through systemd and see it answer again.
hang_by_sigstop() {
    local unit=$1 target=$2 pid n0 ok0 t0 t1
    pid=$(prop "$unit" MainPID)
    n0=$(prop "$unit" NRestarts)
    ok0=$(mval nodevitals_remediation_restarts_total "target=\"$target\"" 'method="systemd"' 'result="success"')
    echo "$unit MainPID=$pid NRestarts=$n0 Restart=$(prop "$unit" Restart) successes=$ok0"
    kill -STOP "$pid"
    t0=$(now_ms)
    wait_for 120 "$unit has a new main process" \
        new_main_pid "$unit" "$pid" ||
        { kill -CONT "$pid"; return 1; }
    t1=$(now_ms)
    measure hang_to_new_main_pid_ms $((t1 - t0))
    wait_for 120 "the agent to count a successful restart of $target" \
        successes_above "$target" "$ok0" ||
        return 1
    measure hang_to_recovered_ms $(($(now_ms) - t0))
    echo "after: MainPID=$(prop "$unit" MainPID) NRestarts=$(prop "$unit" NRestarts)"
    LAST_NRESTARTS_BEFORE=$n0
}

agent_restarts_hung_dockerd_through_systemd() {
    hang_by_sigstop docker.service docker || return 1
    (($(prop docker.service NRestarts) > LAST_NRESTARTS_BEFORE)) || fail "NRestarts did not rise: not restarted by systemd's Restart="
    journalctl -u nodevitals --no-pager -o cat | grep -F 'KillUnit docker.service' || fail "the agent's log does not say it used KillUnit"
    http /status | grep -o 'KillUnit docker.service[^"]*' | head -n1 || fail "/status has no KillUnit event"
    docker run --rm busybox:latest true || fail "docker run after the restart"
}

agent_restarts_hung_containerd_through_systemd() {
    http /status | grep -o 'method systemd: containerd[^;"]*' || fail "/status does not say the systemd method was chosen for containerd, and why"
    journalctl -u nodevitals --no-pager -o cat | grep -F 'runs in containerd.service' >/dev/null || fail "the log does not say why the method was chosen"
    hang_by_sigstop containerd.service containerd || return 1
    (($(prop containerd.service NRestarts) > LAST_NRESTARTS_BEFORE)) || fail "NRestarts did not rise"
    journalctl -u nodevitals --no-pager -o cat | grep -F 'KillUnit containerd.service' || fail "the agent's log does not say it used KillUnit"
}

# A unit a kill would leave dead: the agent must use RestartUnit and say so.
unit_without_restart_policy_is_restarted_not_killed() {
    mkdir -p /run/systemd/system/docker.service.d
    printf '[Service]\nRestart=no\n' >/run/systemd/system/docker.service.d/restart-no.conf
    systemctl daemon-reload
    [[ $(prop docker.service Restart) == no ]] || fail "drop-in not applied"
    local n0
    n0=$(prop docker.service NRestarts)
    hang_by_sigstop docker.service docker
    local status=$?
    rm -rf /run/systemd/system/docker.service.d
    systemctl daemon-reload
    ((status == 0)) || return 1
    journalctl -u nodevitals --no-pager -o cat | grep -F 'RestartUnit docker.service' || fail "no RestartUnit in the agent's log"
    journalctl -u nodevitals --no-pager -o cat | grep -F 'not killing' || fail "the agent did not say why it did not kill"
    # systemd counts its own restarts after a death; a RestartUnit job resets
    # the count instead.
    (($(prop docker.service NRestarts) <= n0)) || fail "NRestarts rose: systemd restarted it after a death, so it was killed"
}

# reload_config TEXT: installs the agent's config and waits for the reload.
reload_config() {
    local ok0
    ok0=$(mval nodevitals_config_reloads_total 'result="success"')
    printf '%s\n' "$1" >/etc/nodevitals/config.toml
    systemctl reload nodevitals.service || fail "systemctl reload"
    wait_for 30 "the config reload" eval "above \"\$(mval nodevitals_config_reloads_total 'result=\"success\"')\" $ok0"
}

# The signal method on a systemd-managed runtime looks at Restart= first.
signal_method_does_not_kill_a_unit_into_a_dead_state() {
    reload_config "${AGENT_CONFIG/method = \"systemd\"/method = \"signal\"}" || return 1
    mkdir -p /run/systemd/system/docker.service.d
    printf '[Service]\nRestart=no\n' >/run/systemd/system/docker.service.d/restart-no.conf
    systemctl daemon-reload
    hang_by_sigstop docker.service docker
    local status=$?
    rm -rf /run/systemd/system/docker.service.d
    systemctl daemon-reload
    reload_config "$AGENT_CONFIG" || return 1
    ((status == 0)) || return 1
    journalctl -u nodevitals --no-pager -o cat | grep -F 'signal method: not killed; RestartUnit docker.service' | tail -n 1 ||
        fail "the signal method did not restart the unit instead of killing it"
}

watchdog_restarts_a_wedged_agent() {
    # A short watchdog for this check only (the shipped unit's is 60 s); a
    # drop-in, so the unit file itself stays as shipped. Threads held by
    # ptrace do not take the watchdog's SIGABRT: systemd waits
    # TimeoutAbortSec before its SIGKILL, shortened here too (a wedged agent
    # in production dies of the SIGABRT itself).
    mkdir -p /run/systemd/system/nodevitals.service.d
    printf '[Service]\nWatchdogSec=12s\nTimeoutAbortSec=3s\n' >/run/systemd/system/nodevitals.service.d/watchdog.conf
    systemctl daemon-reload
    systemctl restart nodevitals.service || fail "restart with the short watchdog"
    local before pid n0 t0
    before=$(budgets)
    pid=$(prop nodevitals.service MainPID)
    n0=$(prop nodevitals.service NRestarts)
    echo "agent PID $pid NRestarts=$n0 WatchdogUSec=$(prop nodevitals.service WatchdogUSec) budgets: $before"
    t0=$(now_ms)
    ./wedge_threads "$pid" tokio- 120 &
    local wedge=$!
    wait_for 120 "systemd to restart the agent" \
        nrestarts_above nodevitals.service "$n0" || { kill $wedge; return 1; }
    measure wedge_to_restart_ms $(($(now_ms) - t0))
    wait "$wedge"
    journalctl -u nodevitals --no-pager | grep -i 'watchdog' | tail -n 3
    journalctl -u nodevitals --no-pager | grep -qi 'watchdog timeout' || fail "systemd's journal shows no watchdog timeout"
    wait_for 60 "the agent active again" systemctl is-active -q nodevitals.service || return 1
    wait_for 60 "the agent serving" http /readyz || return 1
    local after
    after=$(budgets)
    echo "budgets after: $after"
    [[ $after == "$before" ]] || fail "restart budget changed across the agent's restart: $before -> $after"
    rm -rf /run/systemd/system/nodevitals.service.d
    systemctl daemon-reload
}

BURN='while :; do :; done'

# series ID: the agent's CPU series of container ID (64 hex) or other label.
series() { http /metrics | grep -E '^nodevitals_container_cpu_' | grep -F "$1"; }
# sample NAME FILTER: one series' value.
sample() { series "$2" | grep -E "^$1[{ ]" | awk '{print $NF; exit}'; }
# kernel FILE KEY: a cpu.stat field.
kernel() { awk -v k="$2" '$1 == k {print $2}' "$1"; }
# same A B: two decimal numbers equal to a microsecond.
same() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; exit !(d < 0.0000015 && d > -0.0000015) }'; }

# A throttled container; checks its series against the kernel's files.
limit_is_a_tenth() { [[ $(sample nodevitals_container_cpu_limit_cores "$1") == 0.1 ]]; }

# throttled_container_matches_the_kernel FILTER CGROUP_DIR ID
throttled_container_matches_the_kernel() {
    local filter=$1 cg=$2 id=$3
    [[ -d $cg ]] || fail "no cgroup $cg"
    echo "cgroup $cg cpu.max=$(cat "$cg/cpu.max")"
    wait_for 90 "a throttled ratio above 0.5 for $filter" \
        ratio_above_half "$filter" ||
        { series "$filter"; return 1; }
    measure throttled_ratio "$(sample nodevitals_container_cpu_throttled_ratio "$filter")"
    # A limit is at most four scans old (8 s at the 2 s interval here).
    wait_for 10 "limit_cores 0.1" limit_is_a_tenth "$filter" ||
        fail "limit_cores is not 0.1: $(sample nodevitals_container_cpu_limit_cores "$filter")"
    local p1 p2
    p1=$(pressure_some "$filter")
    [[ -n $p1 ]] || fail "no per-container cpu.pressure series"
    wait_for 30 "the container's cpu.pressure to rise" \
        pressure_moved "$filter" "$p1" ||
        return 1
    p2=$(pressure_some "$filter")
    echo "cpu.pressure some: $p1 -> $p2"
    awk -v a="$p1" -v b="$p2" 'BEGIN { exit !(b > a) }' || fail "pressure did not rise"
    # Frozen, the counters stand still: then the agent's must equal the kernel's.
    docker pause "$id" >/dev/null || fail "docker pause"
    local a b
    wait_for 30 "the agent's counters to settle" settled "$filter" || return 1
    cat "$cg/cpu.stat"
    series "$filter"
    [[ $(sample nodevitals_container_cpu_periods_total "$filter") == "$(kernel "$cg/cpu.stat" nr_periods)" ]] || fail "periods differ from cpu.stat nr_periods"
    [[ $(sample nodevitals_container_cpu_throttled_periods_total "$filter") == "$(kernel "$cg/cpu.stat" nr_throttled)" ]] || fail "throttled periods differ from nr_throttled"
    same "$(sample nodevitals_container_cpu_throttled_seconds_total "$filter")" "$(awk '$1 == "throttled_usec" {printf "%.6f", $2 / 1e6}' "$cg/cpu.stat")" || fail "throttled seconds differ from throttled_usec"
    same "$(sample nodevitals_container_cpu_usage_seconds_total "$filter")" "$(awk '$1 == "usage_usec" {printf "%.6f", $2 / 1e6}' "$cg/cpu.stat")" || fail "usage seconds differ from usage_usec"
    docker unpause "$id" >/dev/null
}

cgroup_v2_docker_container_with_the_systemd_driver() {
    [[ $(docker info -f '{{.CgroupDriver}} {{.CgroupVersion}}') == "systemd 2" ]] || fail "docker is not on the systemd driver with cgroup v2: $(docker info -f '{{.CgroupDriver}} {{.CgroupVersion}}')"
    local id
    id=$(docker run -d --name burn --cpus 0.1 busybox:latest sh -c "$BURN") || fail "docker run"
    throttled_container_matches_the_kernel "id=\"$id\"" "/sys/fs/cgroup/system.slice/docker-$id.scope" "$id" || return 1
    docker rm -f burn >/dev/null
    wait_for 30 "the container's series to go" eval "! has_series '$id'" || fail "series still there after docker rm -f"
}

cgroup_v2_kubelet_style_slice() {
    local uid=6a0c2e4f-9b1d-4c3e-8a7f-1e2d3c4b5a69 id
    local slice="kubepods-burstable-pod${uid//-/_}.slice"
    id=$(docker run -d --name kube-burn --cpus 0.1 --cgroup-parent "$slice" \
        --label io.kubernetes.pod.namespace=guest-ns --label io.kubernetes.pod.name=burner-pod \
        --label io.kubernetes.container.name=burner --label io.kubernetes.docker.type=container \
        --label io.kubernetes.pod.uid=$uid busybox:latest sh -c "$BURN") || fail "docker run"
    local cg="/sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice/$slice/docker-$id.scope"
    local filter='container="burner",namespace="guest-ns",pod="burner-pod"'
    wait_for 30 "series of the pod's container" has_series 'pod="burner-pod"' ||
        { http /metrics | grep container_cpu_usage; return 1; }
    series 'pod="burner-pod"' | head -n 3
    filter=$(series 'pod="burner-pod"' | head -n1 | sed 's/^[^{]*{\([^}]*\)}.*/\1/')
    echo "labels: $filter"
    echo "$filter" | grep -F 'namespace="guest-ns"' | grep -F 'container="burner"' >/dev/null || fail "not labelled namespace/pod/container"
    throttled_container_matches_the_kernel "$filter" "$cg" "$id" || return 1
    docker rm -f kube-burn >/dev/null
    wait_for 30 "the pod's series to go" eval "! has_series 'pod=\"burner-pod\"'" || fail "series still there after docker rm -f"
}

node_psi_from_proc_pressure() {
    local agent kernel_now
    agent=$(http /metrics | grep -F 'nodevitals_node_cpu_pressure_seconds_total{kind="some"}' | awk '{print $NF}')
    kernel_now=$(awk '/^some/ { for (i = 1; i <= NF; i++) if ($i ~ /^total=/) { sub("total=", "", $i); printf "%.6f", $i / 1e6 } }' /proc/pressure/cpu)
    echo "agent some=$agent kernel some now=$kernel_now"
    [[ -n $agent ]] || fail "no node PSI series"
    awk -v a="$agent" -v k="$kernel_now" 'BEGIN { exit !(a > 0 && a <= k) }' || fail "node PSI is not the kernel's (0 < agent <= kernel)"
}

# The scan on 1,000 real v2 cgroups, as a ratio to plainly reading the same
# files: emulated time means nothing on its own, the ratio does.
scan_of_1000_cgroups_against_plain_reads() {
    local parent=/sys/fs/cgroup/scan-bench.slice i
    mkdir -p "$parent" || fail "mkdir $parent"
    echo +cpu >"$parent/cgroup.subtree_control" || fail "enable cpu for $parent"
    # One mkdir for all: a process per cgroup costs a minute under emulation.
    local dirs=() id
    for ((i = 1; i <= 1000; i++)); do
        printf -v id '%064x' "$i"
        dirs+=("$parent/docker-$id.scope")
    done
    mkdir "${dirs[@]}" || fail "mkdir the 1,000 cgroups"
    wait_for 120 "1,000 containers in the agent's series" bench_series_at_least 1000 || return 1
    local s0 c0 s1 c1
    read -r s0 c0 < <(http /metrics | awk '/^nodevitals_probe_duration_seconds_sum\{probe="cpu"\}/ {s=$NF} /^nodevitals_probe_duration_seconds_count\{probe="cpu"\}/ {c=$NF} END {print s, c}')
    wait_for 120 "five more scans" cpu_scans_at_least $((c0 + 5)) || return 1
    read -r s1 c1 < <(http /metrics | awk '/^nodevitals_probe_duration_seconds_sum\{probe="cpu"\}/ {s=$NF} /^nodevitals_probe_duration_seconds_count\{probe="cpu"\}/ {c=$NF} END {print s, c}')
    local scan_ms plain_ms start
    scan_ms=$(awk -v a="$s0" -v b="$s1" -v n=$((c1 - c0)) 'BEGIN { printf "%.1f", (b - a) / n * 1000 }')
    # The same three files per container, opened and read by one process.
    start=$(date +%s%N)
    cat "$parent"/*/cpu.stat "$parent"/*/cpu.max "$parent"/*/cpu.pressure >/dev/null
    plain_ms=$(awk -v t=$(($(date +%s%N) - start)) 'BEGIN { printf "%.1f", t / 1e6 }')
    measure scan_ms "$scan_ms"
    measure plain_read_ms "$plain_ms"
    measure scan_to_plain_ratio "$(awk -v a="$scan_ms" -v b="$plain_ms" 'BEGIN { printf "%.2f", a / b }')"
}

run_all() {
    check host_is_systemd_cgroup2
    check shipped_unit_starts_and_is_ready
    check every_probe_works_in_the_sandbox
    check agent_restarts_hung_dockerd_through_systemd
    check agent_restarts_hung_containerd_through_systemd
    check unit_without_restart_policy_is_restarted_not_killed
    check signal_method_does_not_kill_a_unit_into_a_dead_state
    check cgroup_v2_docker_container_with_the_systemd_driver
    check cgroup_v2_kubelet_style_slice
    check node_psi_from_proc_pressure
    check watchdog_restarts_a_wedged_agent
    # Last: its 1,000 cgroups are left for the guest's power-off to discard.
    check scan_of_1000_cgroups_against_plain_reads
    journalctl -u nodevitals --no-pager >/payload/out/nodevitals-journal.log 2>&1
}

run_all
