#!/usr/bin/env bash
# Boot-checks a built OVA in qemu, on vSphere's virtual hardware (pvscsi disks, vmxnet3 NIC,
# BIOS): the OVA's own disks, converted back from its VMDKs, boot through their GRUB. The vApp
# properties go into /etc/hcc/ovf-env.xml (first boot's fallback where VMware Tools have no
# OVF environment), written into a copy of the system disk with debugfs: no mount needed.
# Then over SSH as hccadmin (admin.ssh_key opens 22): first boot ran, the services are up.
#
#   bash scripts/appliance-bootcheck.sh build/appliance/hcc-node-0.1.0.ova node [kvm|tcg]
#
# Prints the checks and the boot time; exit 0 when all pass. Needs qemu-system-x86,
# qemu-utils, e2fsprogs (debugfs), openssh-client. Everything it makes is in a temp dir.
set -euo pipefail

ova=${1:?OVA file}
kind=${2:?server or node}
accel=${3:-$([ -e /dev/kvm ] && echo kvm || echo tcg)}
boot_timeout=${HCC_BOOT_TIMEOUT:-1200}

work=$(mktemp -d /tmp/hcc-bootcheck.XXXXXX)
qemu_pid=
# shellcheck disable=SC2317  # called by the trap
cleanup() {
    if [ -n "$qemu_pid" ]; then kill "$qemu_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

tar -xf "$ova" -C "$work"
qemu-img convert -O raw "$work"/*-disk1.vmdk "$work/system.raw"
ssh-keygen -q -t ed25519 -N '' -C hcc-bootcheck -f "$work/key"

props=$work/ovf-env.xml
{
    echo "hostname = hcc-$kind-check"
    echo "admin.ssh_key = $(cat "$work/key.pub")"
    echo "admin.password = bootcheck-Pw-1"
    if [ "$kind" = node ]; then
        # No server to enroll with: the node starts, then retries its enrollment.
        echo "hcc.node_id = n1"
        echo "hcc.server_url = http://10.0.2.2:9"
        echo "hcc.enroll_token = bootcheck-token"
    else
        echo "hcc.public_url = http://hcc-server-check:8080"
        echo "hcc.admin_password = bootcheck-Admin-1"
    fi
} >"$props"
chmod 0600 "$props"
# The root file system is partition 1 at 1 MiB (scripts/appliance-base.sh).
debugfs -w -R "write $props /etc/hcc/ovf-env.xml" "$work/system.raw?offset=1048576" >/dev/null
debugfs -R "stat /etc/hcc/ovf-env.xml" "$work/system.raw?offset=1048576" 2>/dev/null |
    grep -q 'Mode:  0600' || { echo "bootcheck: ovf-env.xml not written" >&2; exit 1; }

# shellcheck disable=SC2054  # qemu's option values have commas
disks=(-drive "file=$work/system.raw,if=none,id=d1,format=raw" -device scsi-hd,drive=d1,bus=scsi0.0)
disk2=$(find "$work" -name '*-disk2.vmdk')
if [ -n "$disk2" ]; then
    qemu-img convert -O qcow2 "$disk2" "$work/transfer.qcow2"
    # shellcheck disable=SC2054
    disks+=(-drive "file=$work/transfer.qcow2,if=none,id=d2,format=qcow2" -device scsi-hd,drive=d2,bus=scsi0.0)
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start=$(date +%s)
qemu-system-x86_64 -machine "type=pc,accel=$accel" -m 2048 -smp 2 -display none \
    -device pvscsi,id=scsi0 "${disks[@]}" \
    -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$port-:22" -device vmxnet3,netdev=n0 \
    -serial "file:$work/console.log" &
qemu_pid=$!

ssh_opts=(-i "$work/key" -p "$port" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
    -o ConnectTimeout=10 -o BatchMode=yes -o LogLevel=ERROR)
# shellcheck disable=SC2029  # the commands are meant to run in the guest
guest() { ssh "${ssh_opts[@]}" hccadmin@127.0.0.1 "$@"; }
until guest true 2>/dev/null; do
    kill -0 "$qemu_pid" 2>/dev/null || { echo "bootcheck: qemu exited" >&2; exit 1; }
    if [ $(($(date +%s) - start)) -gt "$boot_timeout" ]; then
        echo "bootcheck: no SSH after ${boot_timeout}s; console:" >&2
        tail -40 "$work/console.log" >&2
        exit 1
    fi
    sleep 5
done
echo "bootcheck: SSH as hccadmin after $(($(date +%s) - start)) s ($accel)"

if [ "$kind" = node ]; then
    units=(hcc-firstboot@node hcc-transfer-disk hcc-node nftables systemd-networkd)
else
    units=(hcc-firstboot@server rabbitmq-server hcc-broker-setup hcc-server nftables systemd-networkd)
fi
# The services start after SSH does: give them the same time budget, polling their state.
failed=0
for unit in "${units[@]}"; do
    state=$(guest systemctl is-active "$unit" || true)
    while [ "$state" = activating ] && [ $(($(date +%s) - start)) -lt "$boot_timeout" ]; do
        sleep 5
        state=$(guest systemctl is-active "$unit" || true)
    done
    echo "bootcheck: $unit: $state"
    [ "$state" = active ] || failed=1
done
guest 'sudo journalctl -b -o cat -u "hcc-firstboot@*" | tail -5; hostname; sudo sh -c "cat /etc/hcc/*.env" | cut -d= -f1 | tr "\n" " "; echo'
# shellcheck disable=SC2016  # expanded in the guest
guest 'echo "failed units: $(systemctl --failed --no-legend --plain | cut -d" " -f1 | tr "\n" " ")"'
if [ "$kind" = node ]; then
    guest 'findmnt -no SOURCE,FSTYPE,SIZE /var/lib/hcc-node/transfer' || failed=1
    guest 'lsblk -o NAME,TYPE,RM,SIZE,FSTYPE,LABEL,MOUNTPOINTS'
    guest 'sudo journalctl -b -o cat -u hcc-transfer-disk -u hcc-node | tail -8'
else
    # hcc-server is active once started; it answers after its migrations and start-up.
    get='/opt/hcc/venv/bin/python -c "import urllib.request as u; print(u.urlopen(\"http://127.0.0.1:8080/\").status)" 2>/dev/null'
    code=$(guest "$get" || true)
    while [ "$code" != 200 ] && [ $(($(date +%s) - start)) -lt "$boot_timeout" ]; do
        sleep 5
        code=$(guest "$get" || true)
    done
    guest 'sudo grep ^HCC_LISTEN /etc/hcc/server.env; sudo journalctl -b -o cat -u hcc-server | tail -4'
    echo "bootcheck: GET http://127.0.0.1:8080/ in the guest: $code after $(($(date +%s) - start)) s"
    [ "$code" = 200 ] || failed=1
fi
guest 'sudo nft list ruleset | grep -c dport' | sed 's/^/bootcheck: firewall rules with a port: /'
guest 'sudo systemctl poweroff' || true
wait "$qemu_pid" || true
qemu_pid=
[ "$failed" -eq 0 ] && echo "bootcheck: $kind OK" || echo "bootcheck: $kind FAILED"
exit "$failed"
