#!/usr/bin/env bash
# Builds GoToSocial (pinned) from the Go module proxy and caches the binary,
# keyed by version, so a second run skips the build. Prints the binary's path
# on the last line of stdout.
#
#   bash interop/gotosocial/install.sh
#
# GTS_VERSION (default v0.19.2) and GTS_CACHE (default /var/cache/crieur-interop,
# or $HOME/.cache/crieur-interop when that is not writable) can be set.
# Needs: go (any recent one: GOTOOLCHAIN fetches go1.24.13 from the module
# proxy for this build alone, since some of GoToSocial's dependencies only
# compile with Go < 1.25).
set -euo pipefail

GTS_VERSION=${GTS_VERSION:-v0.19.2}
GTS_MODULE=github.com/superseriousbusiness/gotosocial
GTS_TOOLCHAIN=${GTS_TOOLCHAIN:-go1.24.13}

cache=${GTS_CACHE:-/var/cache/crieur-interop}
if ! mkdir -p "$cache" 2>/dev/null || [ ! -w "$cache" ]; then
  cache=${HOME:-/root}/.cache/crieur-interop
  mkdir -p "$cache"
fi
out="$cache/gotosocial-$GTS_VERSION/gotosocial"

if [ -x "$out" ] && "$out" --version >/dev/null 2>&1; then
  echo "# install.sh: cached $out" >&2
  echo "$out"
  exit 0
fi

echo "# install.sh: building GoToSocial $GTS_VERSION (a cold build takes minutes)" >&2
start=$(date +%s)
export GOFLAGS=-buildvcs=false
# The module proxy serves the release; its go.mod names the new module path and
# has replace directives, so `go install` refuses it: build in a writable copy.
dir=$(go mod download -json "$GTS_MODULE@$GTS_VERSION" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -n "$dir" ] && [ -d "$dir" ] || { echo "install.sh: go mod download gave no directory" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/gts-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp -r "$dir/." "$work/src"
chmod -R u+w "$work/src"
# The module zip keeps only vendor/modules.txt, not the vendored code: build
# in module mode, with dependencies from the module proxy (checked by go.sum).
rm -rf "$work/src/vendor"

# The flags of GoToSocial's own scripts/build.sh: no cgo, its WASM sqlite,
# the release's version string.
(cd "$work/src" &&
  GOTOOLCHAIN=$GTS_TOOLCHAIN CGO_ENABLED=0 go build -mod=mod -trimpath \
    -tags "netgo osusergo static_build kvformat timetzdata" \
    -ldflags "-s -w -X main.Version=${GTS_VERSION#v}" \
    -o "$work/gotosocial" ./cmd/gotosocial) >&2

mkdir -p "$(dirname "$out")"
mv "$work/gotosocial" "$out.tmp"
mv "$out.tmp" "$out"
echo "# install.sh: built $out in $(( $(date +%s) - start )) s" >&2
echo "$out"
