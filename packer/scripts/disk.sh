#!/usr/bin/env bash
# First step: the system disk. The base disk (scripts/appliance-base.sh) is smaller than the
# appliance's and has no boot loader, the build having booted its kernel directly: grow the
# root partition and its file system to the disk, then install GRUB on the disk.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

part=$(findmnt -no SOURCE /)
disk=/dev/$(lsblk -no PKNAME "$part")
# The root partition is the disk's first and last: extend it to the end, tell the kernel the
# new size (partx: the partition is in use), grow ext4 online.
echo ', +' | sfdisk -q --no-reread -N 1 "$disk"
partx -u "$disk"
resize2fs "$part"

apt-get update -q
# No install device recorded: the disk is vda here, sda under vSphere's SCSI controller.
# Upgrades of grub-pc then leave the boot sector and /boot/grub/i386-pc alone (they stay a
# matching pair) and only regenerate grub.cfg.
echo 'grub-pc grub-pc/install_devices_empty boolean true' | debconf-set-selections
echo 'grub-pc grub-pc/install_devices multiselect' | debconf-set-selections
apt-get install -y -q --no-install-recommends grub-pc
grub-install --target=i386-pc "$disk"
update-grub
