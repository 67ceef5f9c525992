#!/usr/bin/env bash
# hcc from the wheel `make dist` built, into /opt/hcc/venv, with the locked dependency versions.
set -euo pipefail
: "${HCC_WHEEL:?}" "${HCC_LOCK:?}" "${HCC_APPLIANCE:?}"

python3 -m venv /opt/hcc/venv
/opt/hcc/venv/bin/pip install --no-cache-dir -q --upgrade pip
# -c: the lock pins every version; only hcc's own dependencies get installed (no test tools).
/opt/hcc/venv/bin/pip install --no-cache-dir -q -c "$HCC_LOCK" "$HCC_WHEEL"
ln -sf /opt/hcc/venv/bin/hcc /usr/local/bin/hcc
/opt/hcc/venv/bin/hcc --help >/dev/null
/opt/hcc/venv/bin/python -m firstboot firewall --kind "$HCC_APPLIANCE" >/etc/nftables.conf
rm -f "$HCC_WHEEL" "$HCC_LOCK"
