#!/usr/bin/env bash
# Runs the whole pytest suite. pytest exits 5 when it collected nothing: that is a failure here.
# Each run gets a temp root of its own: pytest prunes old numbered temp dirs under the shared
# /tmp/pytest-of-$USER, which breaks a run when another one starts beside it.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
tmp_root=$(mktemp -d -t hcc-pytest-XXXXXX)
trap 'rm -rf "$tmp_root"' EXIT
.venv/bin/pytest --basetemp="$tmp_root/t" --durations=25 "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
    echo "run-tests: pytest collected no tests; failing" >&2
    exit 1
fi
exit "$rc"
