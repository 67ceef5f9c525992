#!/usr/bin/env bash
# Installs the Debian packages hcc's tests and demo need, when missing and when we are root.
# rabbitmq-server (the broker, when none runs), golang-go + govmomi source (vcsim), qemu-utils
# (real VMDKs for test disks), openssl, chromium (the UI tests' browser); packer, shellcheck, nftables, systemd (appliance checks).
# `install-system-deps.sh appliance` (make appliance): what building the OVAs needs instead —
# packer, qemu, debootstrap and the disk tools of scripts/appliance-base.sh.
set -euo pipefail
want=(rabbitmq-server golang-go golang-github-vmware-govmomi-dev qemu-utils packer shellcheck nftables systemd chromium)
[ "${1:-}" = appliance ] && want=(packer qemu-system-x86 qemu-utils debootstrap fdisk e2fsprogs)
missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "install-system-deps: missing Debian packages: ${missing[*]} (run as root or install them)" >&2
    exit 1
fi
echo "install-system-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || apt-get update
# policy-rc.d: do not start services from the package scripts; hcc starts what it needs itself.
apt-get install -y -qq --no-install-recommends "${missing[@]}"
