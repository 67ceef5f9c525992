#!/usr/bin/env bash
# The appliances' Debian 12 base disk, from Debian packages alone (no installer ISO):
# debootstrap bookworm into a directory, then a partitioned disk image made without loop
# devices or mounts (mkfs.ext4 -d on a partition image, sfdisk, dd). No boot loader yet: the
# packer build boots it with qemu's direct kernel boot (the kernel and initrd written next to
# the image) and packer/scripts/disk.sh installs GRUB from inside the VM.
#
#   bash scripts/appliance-base.sh [OUT_DIR]     (root: debootstrap chroots; make appliance)
#
# Writes OUT_DIR/debian-12-base.qcow2, OUT_DIR/vmlinuz, OUT_DIR/initrd.img. Root logs in over
# SSH with the build password until packer/scripts/cleanup.sh locks it and removes the build
# network file. Environment: HCC_DEBIAN_MIRROR (http://deb.debian.org/debian),
# HCC_BUILD_PASSWORD (hcc-build-only, packer's build_password), HCC_BASE_SIZE (4G; packer grows
# the disk to the appliance's size).
set -euo pipefail

out=${1:-build/appliance/base}
mirror=${HCC_DEBIAN_MIRROR:-http://deb.debian.org/debian}
password=${HCC_BUILD_PASSWORD:-hcc-build-only}
size=${HCC_BASE_SIZE:-4G}
suite=bookworm

[ "$(id -u)" -eq 0 ] || { echo "appliance-base: run as root (debootstrap)" >&2; exit 1; }
for tool in debootstrap mkfs.ext4 sfdisk qemu-img; do
    command -v "$tool" >/dev/null || {
        echo "appliance-base: $tool missing: bash scripts/install-system-deps.sh appliance" >&2
        exit 1
    }
done

mkdir -p "$out"
work=$(mktemp -d "$out/work.XXXXXX")
root=$work/root
cleanup() {
    for m in dev/pts dev proc sys; do
        mountpoint -q "$root/$m" 2>/dev/null && umount -l "$root/$m"
    done
    rm -rf "$work"
}
trap cleanup EXIT

# What the netinst installer puts on a disk with the "SSH server" task, minus the installer
# itself: debootstrap's default (required + important), a kernel, SSH; GRUB comes in the VM
# (packer/scripts/disk.sh), where grub-pc sees the real disk. The appliance packages proper
# come from packer/scripts/base.sh.
debootstrap --arch=amd64 \
    --include=linux-image-amd64,openssh-server,fdisk,e2fsprogs,ca-certificates,dbus,sudo \
    "$suite" "$root" "$mirror"

cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb ${mirror%/debian}/debian-security $suite-security main
EOF

mount -t proc proc "$root/proc"
mount -t sysfs sys "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
# Security and point-release updates, as the installer's pkgsel/upgrade=full-upgrade does.
chroot "$root" env DEBIAN_FRONTEND=noninteractive sh -ec '
    apt-get update -q
    apt-get full-upgrade -y -q
    apt-get clean
'
for m in dev/pts dev proc sys; do umount -l "$root/$m"; done

uuid=$(cat /proc/sys/kernel/random/uuid)
printf 'UUID=%s / ext4 errors=remount-ro 0 1\n' "$uuid" >"$root/etc/fstab"
echo hcc >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\thcc\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
    >"$root/etc/hosts"
ln -sf /usr/share/zoneinfo/Etc/UTC "$root/etc/localtime"
echo 'LANG=C.UTF-8' >"$root/etc/default/locale"
# The build's network only: DHCP on qemu's user network, its DNS. cleanup.sh removes the file;
# systemd-resolved (installed last) replaces resolv.conf; first boot writes 10-hcc.network.
cat >"$root/etc/systemd/network/99-hcc-build.network" <<'EOF'
[Match]
Name=en* eth*

[Network]
DHCP=yes
EOF
echo 'nameserver 10.0.2.3' >"$root/etc/resolv.conf"
chroot "$root" systemctl enable systemd-networkd.service
chroot "$root" sh -c "echo 'root:$password' | chpasswd"
echo 'PermitRootLogin yes' >"$root/etc/ssh/sshd_config.d/00-packer-build.conf"
# GRUB's settings for disk.sh. Both consoles: a serial port, and the VM console in vSphere
# (tty0, last: it is /dev/console, where first boot prints its errors).
mkdir -p "$root/etc/default/grub.d"
cat >"$root/etc/default/grub.d/hcc.cfg" <<'EOF'
GRUB_TIMEOUT=1
GRUB_CMDLINE_LINUX_DEFAULT="console=ttyS0,115200 console=tty0"
EOF
truncate -s 0 "$root/etc/machine-id"

cp -L "$root/vmlinuz" "$work/vmlinuz"
cp -L "$root/initrd.img" "$work/initrd.img"

# One ext4 root partition from 1 MiB (the gap GRUB's core image goes in), MBR, BIOS boot.
part=$work/root.ext4
bytes=$(numfmt --from=iec "$size")
part_bytes=$((bytes - 1024 * 1024))
truncate -s "$part_bytes" "$part"
mkfs.ext4 -q -L hcc-root -U "$uuid" -d "$root" "$part"
disk=$work/disk.raw
truncate -s "$bytes" "$disk"
printf 'label: dos\nstart=2048, type=83, bootable\n' | sfdisk -q "$disk"
dd if="$part" of="$disk" bs=1M seek=1 conv=notrunc,sparse status=none
rm -f "$part"
qemu-img convert -c -f raw -O qcow2 "$disk" "$work/debian-12-base.qcow2"

mv "$work/vmlinuz" "$work/initrd.img" "$out/"
mv "$work/debian-12-base.qcow2" "$out/"
ls -l "$out"
