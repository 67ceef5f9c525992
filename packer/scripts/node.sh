#!/usr/bin/env bash
# The node: transfer storage on the second disk (made at first boot), hcc-node.
set -euo pipefail
: "${HCC_FILES:?}"

install -d -o hcc -g hcc -m 0750 /var/lib/hcc-node/transfer
install -m 0755 "$HCC_FILES/sbin/hcc-transfer-disk" /usr/local/sbin/hcc-transfer-disk
# No fstab entry: hcc-transfer-disk mounts it, after growing the file system to the disk.

install -m 0644 "$HCC_FILES/systemd/hcc-transfer-disk.service" /etc/systemd/system/
install -m 0644 "$HCC_FILES/systemd/hcc-node.service" /etc/systemd/system/
systemctl enable hcc-transfer-disk.service hcc-node.service
