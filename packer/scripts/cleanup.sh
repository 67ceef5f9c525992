#!/usr/bin/env bash
# Last step: systemd-networkd only, with no network file of the build's (first boot writes
# its own), no build credentials or CA bundle, no per-machine identity left in the image.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

rm -f /etc/network/interfaces.d/* /etc/ssh/sshd_config.d/00-packer-build.conf \
    /etc/systemd/network/99-hcc-build.network /tmp/hcc-build-ca.crt
printf 'auto lo\niface lo inet loopback\n' >/etc/network/interfaces
systemctl enable systemd-networkd.service
# systemd-resolved replaces /etc/resolv.conf: installed last, after every download.
apt-get install -y -q --no-install-recommends systemd-resolved
systemctl enable systemd-resolved.service

apt-get autoremove -y -q
apt-get clean
rm -rf /var/lib/apt/lists/* /tmp/hcc-files
passwd -l root
rm -f /etc/ssh/ssh_host_*        # regenerated at first start (ssh.service.d/hcc.conf)
truncate -s 0 /etc/machine-id
rm -f /var/lib/dbus/machine-id
journalctl --rotate || true
journalctl --vacuum-time=1s || true
fstrim -av || true
