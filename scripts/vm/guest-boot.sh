#!/bin/bash
# Inside the test guest: once the boot is done, mounts the payload disk
# (/dev/vdb), runs its run.sh with output to the second serial port, records
# the exit status in out/rc and powers off. Installed by build-guest.sh.
systemctl is-system-running --wait >/dev/null 2>&1
mkdir -p /payload
if ! mount /dev/vdb /payload; then
    echo "nodevitals-guest: no payload disk" >/dev/ttyS1
    systemctl poweroff
    exit 1
fi
mkdir -p /payload/out
echo "boot_state=$(systemctl is-system-running) uptime_s=$(cut -d' ' -f1 /proc/uptime)" >/payload/out/boot.txt
cd /payload/in
bash ./run.sh 2>&1 | tee /payload/out/run.log >/dev/ttyS1
echo "${PIPESTATUS[0]}" >/payload/out/rc
cd /
sync
umount /payload
systemctl poweroff
