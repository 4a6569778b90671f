#!/usr/bin/env bash
# Boots the test guest once with a payload disk and brings its results back.
#   scripts/vm/run-guest.sh IMAGE_DIR IN_DIR OUT_DIR
# IN_DIR is copied to /payload/in in the guest, where run.sh runs as root
# once the boot is done; what it writes to /payload/out comes back to OUT_DIR
# (with rc, run.log and the guest's console.log). The root image is booted
# with snapshot=on, so the cached image is never changed. No network card.
# Env: VM_TIMEOUT (s, default 600), VM_MEM (MiB, 2048), VM_SMP (2).
# Exit status: run.sh's, or 255 when the guest produced none.
set -euo pipefail
image=${1:?IMAGE_DIR}
in=${2:?IN_DIR}
out=${3:?OUT_DIR}
log() { echo "[run-guest $(date -u +%T)] $*" >&2; }
for tool in qemu-system-x86_64 mkfs.ext4 debugfs; do
    command -v "$tool" >/dev/null || { log "$tool missing: run scripts/test.sh once (scripts/test-packages.txt)"; exit 1; }
done

run=$(mktemp -d /tmp/nodevitals-guest.XXXXXX)
cleanup() {
    # qemu's own PID (from -pidfile): $! would be timeout's.
    if [[ -s $run/qemu.pid ]]; then kill "$(cat "$run/qemu.pid")" 2>/dev/null || true; fi
    rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 143' INT TERM

mkdir -p "$run/pay/in" "$run/pay/out"
cp -a "$in"/. "$run/pay/in/"
# Room for what the guest writes back.
size_mb=$(($(du -sm "$run/pay" | cut -f1) + 128))
truncate -s "${size_mb}M" "$run/payload.img"
mkfs.ext4 -q -F -L payload -d "$run/pay" "$run/payload.img"

start=$SECONDS
status=0
# TCG: /dev/kvm on these hosts cannot run a stock kernel. No stdin in CI, so
# no -nographic; serial 0 is the console, serial 1 the checks' output.
timeout -k 10 "${VM_TIMEOUT:-600}" qemu-system-x86_64 \
    -accel tcg,thread=multi -cpu max -m "${VM_MEM:-2048}" -smp "${VM_SMP:-2}" \
    -display none -monitor none -no-reboot -nic none \
    -kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0 quiet panic=-1 apparmor=0 systemd.unified_cgroup_hierarchy=1" \
    -drive "file=$image/root.img,if=virtio,format=raw,snapshot=on,cache=unsafe" \
    -drive "file=$run/payload.img,if=virtio,format=raw,cache=unsafe" \
    -serial "file:$run/console.log" -serial "file:$run/stream.log" \
    -pidfile "$run/qemu.pid" </dev/null || status=$?
rm -f "$run/qemu.pid"
log "guest ran $((SECONDS - start)) s (qemu status $status)"

rm -rf "$out"
mkdir -p "$out"
debugfs -R "rdump /out $run" "$run/payload.img" >/dev/null 2>&1 || true
if [[ -d $run/out ]]; then cp -a "$run/out"/. "$out/"; fi
cp "$run/console.log" "$out/console.log"
cp "$run/stream.log" "$out/stream.log"
echo "$((SECONDS - start))" >"$out/wall_s"
rc=$(cat "$out/rc" 2>/dev/null || echo 255)
if [[ $rc == 255 ]]; then
    log "the guest wrote no result; last console lines:"
    tail -n 40 "$run/console.log" >&2
fi
exit "$rc"
