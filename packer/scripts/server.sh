#!/usr/bin/env bash
# The server: RabbitMQ (node name pinned, so a host name set at first boot changes nothing),
# hcc-broker-setup (hcc's broker user), hcc-server.
set -euo pipefail
: "${HCC_FILES:?}"
export DEBIAN_FRONTEND=noninteractive

apt-get install -y -q --no-install-recommends rabbitmq-server
systemctl stop rabbitmq-server
install -m 0644 "$HCC_FILES/etc/rabbitmq-env.conf" /etc/rabbitmq/rabbitmq-env.conf
install -m 0644 "$HCC_FILES/etc/rabbitmq.conf" /etc/rabbitmq/rabbitmq.conf
install -D -m 0644 "$HCC_FILES/systemd/rabbitmq-server-hcc.conf" \
    /etc/systemd/system/rabbitmq-server.service.d/hcc.conf
# A fresh broker at first boot: no data from the build, a new Erlang cookie per appliance.
rm -rf /var/lib/rabbitmq/mnesia /var/lib/rabbitmq/.erlang.cookie

install -m 0644 "$HCC_FILES/systemd/hcc-broker-setup.service" /etc/systemd/system/
install -m 0644 "$HCC_FILES/systemd/hcc-server.service" /etc/systemd/system/
systemctl enable rabbitmq-server.service hcc-broker-setup.service hcc-server.service
