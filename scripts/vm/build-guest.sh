#!/usr/bin/env bash
# Builds the test guest once: a Debian bookworm root filesystem (debootstrap)
# with systemd as PID 1, dockerd and containerd as units, booted by QEMU with
# its own cloud kernel. Cached under target/vm/guest-KEY, KEY being a hash of
# the package list, this script and the guest's boot script, so a change to
# any of them rebuilds it (older guest-* directories can be deleted).
#   scripts/vm/build-guest.sh      prints the cache directory (vmlinuz,
#                                  initrd.img, root.img) on stdout
# Needs root and the Debian mirror (VM_MIRROR); the guest itself never gets a
# network card.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=scripts/vm
log() { echo "[build-guest $(date -u +%T)] $*" >&2; }

key=$(cat "$here/guest-packages.txt" "$here/build-guest.sh" "$here/guest-boot.sh" | sha256sum | cut -c1-16)
out="$PWD/target/vm/guest-$key"
if [[ -f $out/root.img && -f $out/vmlinuz && -f $out/initrd.img ]]; then
    echo "$out"
    exit 0
fi
[[ $(id -u) == 0 ]] || { log "building the guest needs root (debootstrap, chroot)"; exit 1; }
for tool in debootstrap mkfs.ext4 qemu-system-x86_64; do
    command -v "$tool" >/dev/null || {
        log "$tool missing: scripts/test.sh installs it (scripts/test-packages.txt)"
        exit 1
    }
done

mirror=${VM_MIRROR:-http://deb.debian.org/debian}
pkgs=$(grep -v '^\s*#' "$here/guest-packages.txt" | sed '/^\s*$/d' | paste -sd, -)
work="$out.tmp"
rm -rf "$work"
mkdir -p "$work"
start=$SECONDS
log "debootstrap bookworm ($pkgs)"
if ! debootstrap --variant=minbase --include="$pkgs" bookworm "$work/rootfs" "$mirror" \
    >"$work/debootstrap.log" 2>&1; then
    tail -n 30 "$work/debootstrap.log" >&2
    log "debootstrap failed; full log: $work/debootstrap.log"
    exit 1
fi
log "debootstrap took $((SECONDS - start)) s"

r=$work/rootfs
rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/*
echo nodevitals-guest >"$r/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 nodevitals-guest\n' >"$r/etc/hosts"
echo '/dev/vda / ext4 rw,errors=remount-ro 0 1' >"$r/etc/fstab"
# Timers and services that only cost boot time in a throwaway guest.
for unit in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
    fstrim.timer e2scrub_reap.service systemd-pstore.service remote-fs.target getty@tty1.service \
    serial-getty@ttyS0.service serial-getty@ttyS1.service; do
    chroot "$r" systemctl disable "$unit" >/dev/null 2>&1 || true
done
# No NIC: docker must not want a bridge or iptables.
mkdir -p "$r/etc/docker"
echo '{"bridge":"none","iptables":false,"ip-forward":false,"ip-masq":false,"exec-opts":["native.cgroupdriver=systemd"]}' \
    >"$r/etc/docker/daemon.json"
install -m 0755 "$here/guest-boot.sh" "$r/usr/local/sbin/nodevitals-guest-boot"
cat >"$r/etc/systemd/system/nodevitals-guest-boot.service" <<'UNIT'
[Unit]
Description=Run the payload disk's checks once the system is up, then power off
ConditionPathExists=/dev/vdb
[Service]
# simple, not ordered after multi-user.target (that would be a cycle): the
# script waits for the boot to finish itself.
Type=simple
ExecStart=/usr/local/sbin/nodevitals-guest-boot
[Install]
WantedBy=multi-user.target
UNIT
chroot "$r" systemctl enable nodevitals-guest-boot.service >/dev/null 2>&1
# A busybox root filesystem the checks import as the image busybox:latest.
bb=$work/bb
mkdir -p "$bb/bin"
cp "$r/bin/busybox" "$bb/bin/busybox"
for applet in $(chroot "$r" /bin/busybox --list); do
    [[ $applet == busybox ]] || ln -s busybox "$bb/bin/$applet"
done
mkdir -p "$r/opt/nodevitals"
tar -C "$bb" -cf "$r/opt/nodevitals/busybox-rootfs.tar" .

cp "$r"/boot/vmlinuz-* "$work/vmlinuz"
cp "$r"/boot/initrd.img-* "$work/initrd.img"
truncate -s 8G "$work/root.img"
mkfs.ext4 -q -F -L nodevitals-guest -d "$r" "$work/root.img"
rm -rf "$r" "$bb"
rm -rf "$out"
mv "$work" "$out"
log "guest image built in $((SECONDS - start)) s: $out"
echo "$out"
