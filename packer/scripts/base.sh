#!/usr/bin/env bash
# Both appliances: packages, users, journald caps, SSH, unattended security updates.
# Runs as root in the build VM; HCC_APPLIANCE is server or node, HCC_FILES the uploaded files/.
set -euo pipefail
: "${HCC_APPLIANCE:?server or node}" "${HCC_FILES:?}"
export DEBIAN_FRONTEND=noninteractive

apt-get update -q
apt-get install -y -q --no-install-recommends \
    python3 python3-venv open-vm-tools nftables unattended-upgrades apt-listchanges \
    systemd-timesyncd e2fsprogs sudo openssh-server logrotate ca-certificates

case "$HCC_APPLIANCE" in
    server) home=/var/lib/hcc ;;
    node) home=/var/lib/hcc-node ;;
    *) echo "base.sh: unknown appliance $HCC_APPLIANCE" >&2; exit 1 ;;
esac

# hcc runs as a system user without a login shell; hccadmin is the operator's account,
# locked until first boot sets its password or SSH key from the vApp properties.
id hcc >/dev/null 2>&1 || useradd --system --user-group --home-dir "$home" --shell /usr/sbin/nologin hcc
install -d -o hcc -g hcc -m 0750 "$home"
id hccadmin >/dev/null 2>&1 || useradd --create-home --shell /bin/bash --groups sudo hccadmin
passwd -l hccadmin
install -d -o hccadmin -g hccadmin -m 0700 /home/hccadmin/.ssh
install -m 0440 "$HCC_FILES/etc/sudoers-hccadmin" /etc/sudoers.d/hccadmin
visudo -cf /etc/sudoers.d/hccadmin

install -d -m 0750 /etc/hcc
install -D -m 0644 "$HCC_FILES/etc/journald-hcc.conf" /etc/systemd/journald.conf.d/hcc.conf
install -D -m 0644 "$HCC_FILES/etc/sshd-hcc.conf" /etc/ssh/sshd_config.d/hcc.conf
install -D -m 0644 "$HCC_FILES/systemd/ssh-hostkeys.conf" /etc/systemd/system/ssh.service.d/hcc.conf
install -m 0644 "$HCC_FILES/etc/20auto-upgrades" /etc/apt/apt.conf.d/20auto-upgrades
install -m 0644 "$HCC_FILES/etc/52hcc-unattended-upgrades" /etc/apt/apt.conf.d/52hcc-unattended-upgrades

install -m 0644 "$HCC_FILES/systemd/hcc-firstboot@.service" /etc/systemd/system/
systemctl enable "hcc-firstboot@${HCC_APPLIANCE}.service" nftables.service \
    unattended-upgrades.service systemd-timesyncd.service open-vm-tools.service
