#!/usr/bin/env bash
# Builds sim/vcsim/bin/vcsim offline: Debian's govmomi simulator source (GOPATH mode) with
# hcc's overlay (sim/vcsim/overlay: extra Go files in package simulator + simulator.patch)
# and our own main (sim/vcsim/cmd/vcsim/main.go).
#
# Incremental: a fingerprint of every input (Debian package versions, Go version, overlay,
# main.go, this script) is stored next to the binary; when it matches, the build is skipped
# in milliseconds. Go's build cache (sim/vcsim/build/gocache) keeps a rebuild to seconds.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
govmomi=/usr/share/gocode/src/github.com/vmware/govmomi
bin="$here/bin"
build="$here/build"
out="$bin/vcsim"

if ! command -v go >/dev/null 2>&1 || [ ! -d "$govmomi/simulator" ]; then
    bash "$root/scripts/install-system-deps.sh"
fi

inputs=("$here/build.sh" "$here/cmd/vcsim/main.go" "$here"/overlay/*)
fingerprint="$(
    {
        dpkg-query -W -f='${Package} ${Version}\n' golang-go golang-github-vmware-govmomi-dev 2>/dev/null || true
        go env GOVERSION
        sha256sum "${inputs[@]}" | sed "s#$here/##"
    } | sha256sum | cut -d' ' -f1
)"
if [ -x "$out" ] && [ "$(cat "$build/fingerprint" 2>/dev/null)" = "$fingerprint" ]; then
    exit 0
fi

echo "vcsim: building $out" >&2
gopath="$build/gopath"
sim="$gopath/src/github.com/vmware/govmomi/simulator"
rm -rf "$gopath"
mkdir -p "$(dirname "$sim")" "$gopath/src/hcc/vcsim" "$bin"
# GOPATH mode takes a package from the first GOPATH entry holding its directory, so the
# overlay mirrors govmomi: symlinks to Debian's packages, and a copy of the whole simulator
# tree (with its internal/, esx/, vpx/ subpackages: internal imports are checked by
# directory) minus tests, plus our patch and extra files.
for entry in "$govmomi"/*; do
    [ "$(basename "$entry")" = simulator ] || ln -s "$entry" "$(dirname "$sim")/"
done
cp -r "$govmomi/simulator" "$sim"
chmod -R u+w "$sim"
find "$sim" -name '*_test.go' -delete
rm -rf "$sim/test" "$sim/testdata"
patch --quiet -p1 -d "$gopath/src/github.com/vmware/govmomi" <"$here/overlay/simulator.patch"
cp "$here"/overlay/*.go "$sim/"
cp "$here/cmd/vcsim/main.go" "$gopath/src/hcc/vcsim/main.go"

export GO111MODULE=off GOPROXY=off GOFLAGS='' GOTOOLCHAIN=local
export GOPATH="$gopath:/usr/share/gocode"
export GOCACHE="$build/gocache"
(cd "$gopath/src/hcc/vcsim" && go build -trimpath -o "$out.tmp" .)
mv -f "$out.tmp" "$out"
echo "$fingerprint" >"$build/fingerprint"
echo "vcsim: built $out" >&2
