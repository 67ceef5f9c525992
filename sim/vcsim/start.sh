#!/usr/bin/env bash
# Builds (if needed) and runs vcsim on a free 127.0.0.1 port until Ctrl-C.
# Arguments: --seed NAME[:MIB,...] (a powered-off VM with real disks; repeatable) and vcsim
# flags, e.g.: sim/vcsim/start.sh --seed web-01:64,8 -app 1 -vm 3
# Prints: vcsim https://127.0.0.1:PORT/sdk user=hcc password=hcc-secret pid=PID
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bash "$root/sim/vcsim/build.sh"
cd "$root"
exec .venv/bin/python -m sim.vcsim.process "$@"
