#!/usr/bin/env bash
# The GoToSocial stage: a real GoToSocial (pinned, built from the Go module
# proxy by install.sh, cached) and crieur federate over https on loopback,
# and gtscheck drives GoToSocial's client API through the checks. See
# README.md beside this file.
#
#   sudo bash interop/gotosocial/run.sh      # from anywhere; needs root
#
# What it adds to the machine for the run, and removes on exit (normal,
# failure, Ctrl-C or TERM): two lines in /etc/hosts (gts.crieur.test on
# 127.0.0.2, crieur.crieur.test on 127.0.0.3) and a CA made for the run in the
# system trust store. Every process it starts is stopped by its PID. Nothing
# listens beyond 127.0.0.0/8.
#
# Exit status: gtscheck's (1 when a check failed), 2 when the run could not
# start. GTS_INTEROP_LOGS=<dir> keeps the logs of GoToSocial, crieur and the
# proxy there.
set -uo pipefail

GTS_HOST=gts.crieur.test
GTS_IP=127.0.0.2
CRIEUR_HOST=crieur.crieur.test
CRIEUR_IP=127.0.0.3
CRIEUR_PORT=8080      # crieur's own plain-http listener, on 127.0.0.3 only
HANDLE=reports
MARK="# crieur-gts-interop"
CA_NAME=crieur-gts-interop
CA_DIR=/usr/local/share/ca-certificates
READY_TIMEOUT=180     # GoToSocial's first start compiles its WASM sqlite and ffmpeg
CHECK_TIMEOUT=60      # each check's wait for its condition
STAGE_TIMEOUT=900     # the whole check run
STOP_TIMEOUT=10       # seconds between TERM and KILL at cleanup

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

log() { printf '# gotosocial/run.sh: %s\n' "$*"; }
die() { printf 'gotosocial/run.sh: %s\n' "$*" >&2; exit 2; }

[ "$(id -u)" -eq 0 ] || die "needs root (/etc/hosts, the trust store, port 443)"

# --- packages: openssl for the CA, ca-certificates for the trust store
missing=()
command -v openssl >/dev/null || missing+=(openssl)
command -v update-ca-certificates >/dev/null || missing+=(ca-certificates)
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null ||
    die "apt-get install ${missing[*]} failed"
fi

# --- GoToSocial: built once, then cached
gts_bin=$(bash "$here/install.sh" | tail -n 1) || die "install.sh failed"
[ -x "$gts_bin" ] || die "install.sh gave no binary"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/crieur-gts.XXXXXX") || die "mktemp failed"
pids=()
names=()
hosts_added=
ca_added=

remove_hosts_lines() {
  # /etc/hosts may be a bind mount: rewrite it in place, never rename over it.
  if grep -q "$MARK" /etc/hosts; then
    grep -v "$MARK" /etc/hosts >"$tmp/hosts.new" && cat "$tmp/hosts.new" >/etc/hosts
  fi
}

# Debian's update-ca-certificates adds a local CA (links in /etc/ssl/certs,
# the bundle, and its hooks: Java's cacerts) but, for a CA file that is simply
# deleted, only rebuilds the bundle: its links stay and the hooks are not told.
# So the removal is done as the script does it for a CA it removes itself.
untrust_ca() {
  local link=/etc/ssl/certs/$CA_NAME.pem hook
  rm -f "$CA_DIR/$CA_NAME.crt"
  if [ -L "$link" ]; then
    find /etc/ssl/certs -maxdepth 1 -type l -lname "$CA_NAME.pem" -delete
    rm -f "$link"
    if [ -d /etc/ca-certificates/update.d ]; then
      run-parts --test -- /etc/ca-certificates/update.d | while read -r hook; do
        echo "-$link" | "$hook" >/dev/null 2>&1 || echo "gotosocial/run.sh: trust-store hook $hook failed" >&2
      done
    fi
  fi
  update-ca-certificates >/dev/null 2>&1 || echo "gotosocial/run.sh: update-ca-certificates failed" >&2
}

cleanup() {
  local i pid waited
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    pid=${pids[$i]}
    kill -TERM "$pid" 2>/dev/null || continue
    waited=0
    while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt $((STOP_TIMEOUT * 10)) ]; do
      sleep 0.1
      waited=$((waited + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "${names[$i]} (pid $pid) did not stop on TERM: KILL"
      kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
  done
  pids=()
  [ -n "$hosts_added" ] && remove_hosts_lines
  [ -n "$ca_added" ] && untrust_ca
  if [ -n "${GTS_INTEROP_LOGS:-}" ]; then
    mkdir -p "$GTS_INTEROP_LOGS" && cp "$tmp"/*.log "$GTS_INTEROP_LOGS"/ 2>/dev/null
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "# gotosocial/run.sh: interrupted"; exit 130' INT
trap 'echo "# gotosocial/run.sh: terminated"; exit 143' TERM

start() { # name logfile command...
  local name=$1 logf=$2
  shift 2
  "$@" >"$logf" 2>&1 &
  pids+=("$!")
  names+=("$name")
}

log_tails() {
  local f
  for f in "$tmp"/gts.log "$tmp"/crieur.log "$tmp"/proxy.log; do
    [ -s "$f" ] || continue
    log "last lines of $(basename "$f"):"
    tail -n 40 "$f" | sed 's/^/#   /'
  done
}

# Leftovers of a run that was killed before its cleanup (kill -9).
if grep -q "$MARK" /etc/hosts; then
  log "removing /etc/hosts lines left by an earlier run"
  hosts_added=1
  remove_hosts_lines
  hosts_added=
fi
if [ -e "$CA_DIR/$CA_NAME.crt" ] || [ -L "/etc/ssl/certs/$CA_NAME.pem" ]; then
  log "removing a CA left by an earlier run"
  untrust_ca
fi

# --- build crieur and the checker
log "building crieur and gtscheck"
(cd "$repo" && go build -o "$tmp/crieur" ./cmd/crieur) || die "go build ./cmd/crieur failed"
(cd "$here" && go build -o "$tmp/gtscheck" ./gtscheck) || die "go build ./gtscheck failed"

# --- a CA for this run, and one certificate for both names
mkdir -p "$tmp/tls"
(
  cd "$tmp/tls" &&
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=crieur GoToSocial interop CA $$" \
      -keyout ca.key -out ca.crt -addext basicConstraints=critical,CA:TRUE \
      -addext keyUsage=critical,keyCertSign,cRLSign &&
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$GTS_HOST" -keyout site.key -out site.csr &&
    printf 'subjectAltName=DNS:%s,DNS:%s\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' \
      "$GTS_HOST" "$CRIEUR_HOST" >site.ext &&
    openssl x509 -req -in site.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
      -extfile site.ext -out site.crt &&
    cat site.crt ca.crt >chain.crt
) >"$tmp/openssl.log" 2>&1 || { cat "$tmp/openssl.log"; die "openssl failed"; }

cp "$tmp/tls/ca.crt" "$CA_DIR/$CA_NAME.crt" || die "cannot write $CA_DIR"
ca_added=1
update-ca-certificates >/dev/null 2>&1 || die "update-ca-certificates failed"

# --- the names, on loopback
hosts_added=1
printf '%s %s %s\n%s %s %s\n' "$GTS_IP" "$GTS_HOST" "$MARK" "$CRIEUR_IP" "$CRIEUR_HOST" "$MARK" >>/etc/hosts ||
  die "cannot write /etc/hosts"

# --- GoToSocial: config, the server, then the checker's user (its admin CLI
# refuses to make users before the server has run once: it needs the
# instance application the first start creates).
gts_dir="$tmp/gts"
# Empty asset folders: GoToSocial reads its default avatars and themes there.
mkdir -p "$gts_dir/storage" "$gts_dir/assets/default_avatars" "$gts_dir/assets/themes"
cat >"$gts_dir/config.yaml" <<EOF
host: "$GTS_HOST"
protocol: "https"
bind-address: "$GTS_IP"
port: 443
db-type: "sqlite"
db-address: "$gts_dir/sqlite.db"
web-template-base-dir: "$here/web/template"
web-asset-base-dir: "$gts_dir/assets"
storage-backend: "local"
storage-local-base-path: "$gts_dir/storage"
letsencrypt-enabled: false
tls-certificate-chain: "$tmp/tls/chain.crt"
tls-certificate-key: "$tmp/tls/site.key"
accounts-registration-open: false
advanced-rate-limit-requests: 0
advanced-throttling-multiplier: 0
log-level: "info"
log-client-ip: false
http-client:
  allow-ips: ["127.0.0.0/8"]
EOF
export GTS_WAZERO_COMPILATION_CACHE
GTS_WAZERO_COMPILATION_CACHE="$(dirname "$gts_bin")/wazero-cache"
mkdir -p "$GTS_WAZERO_COMPILATION_CACHE"

log "starting GoToSocial $("$gts_bin" --version 2>/dev/null | head -n 1) on https://$GTS_HOST ($GTS_IP:443)"
start gotosocial "$tmp/gts.log" "$gts_bin" --config-path "$gts_dir/config.yaml" server start
gts_pid=${pids[-1]}
t0=$SECONDS
"$tmp/gtscheck" wait -timeout "${READY_TIMEOUT}s" -pid "$gts_pid" -url "https://$GTS_HOST/api/v1/instance" ||
  { log_tails; die "GoToSocial did not come up"; }
log "GoToSocial up after $((SECONDS - t0)) s"
# The user the checks sign in as (its sqlite is in WAL mode: the CLI and the
# running server share it).
user=checker
email=checker@$GTS_HOST
password="Crieur-$(openssl rand -hex 16)-Interop!"
gts_admin() { "$gts_bin" --config-path "$gts_dir/config.yaml" "$@"; }
{
  gts_admin admin account create --username "$user" --email "$email" --password "$password" &&
    gts_admin admin account confirm --username "$user"
} >"$tmp/gts-admin.log" 2>&1 || { tail -n 20 "$tmp/gts-admin.log"; die "gotosocial admin account create/confirm failed"; }

# --- crieur, with a profile the checks can recognise, behind TLS
mkdir -p "$tmp/posts" "$tmp/data" "$tmp/scratch"
# The repo's articles as back catalogue (not delivered: they exist before
# the first start), so GoToSocial sees a real outbox.
find "$repo/posts" -maxdepth 1 -name '*.md' ! -iname 'README.md' -exec cp {} "$tmp/posts/" \;
"$tmp/gtscheck" png -out "$tmp/avatar.png" || die "gtscheck png failed"
name="Crieur Reports"
bio="Articles of the GoToSocial stage."
field_name=Website
field_value="https://$CRIEUR_HOST"
log "starting crieur on http://$CRIEUR_IP:$CRIEUR_PORT, behind https://$CRIEUR_HOST"
start crieur "$tmp/crieur.log" "$tmp/crieur" serve -base-url "https://$CRIEUR_HOST" \
  -listen "$CRIEUR_IP:$CRIEUR_PORT" -posts "$tmp/posts" -data "$tmp/data" -handle "$HANDLE" \
  -name "$name" -bio "$bio" -field "$field_name=$field_value" -avatar "$tmp/avatar.png" \
  -allow-private
crieur_pid=${pids[-1]}
start proxy "$tmp/proxy.log" "$tmp/gtscheck" proxy -listen "$CRIEUR_IP:443" \
  -cert "$tmp/tls/chain.crt" -key "$tmp/tls/site.key" -to "http://$CRIEUR_IP:$CRIEUR_PORT"

"$tmp/gtscheck" wait -timeout 30s -pid "$crieur_pid" \
  -url "https://$CRIEUR_HOST/.well-known/webfinger?resource=acct:$HANDLE@$CRIEUR_HOST" ||
  { log_tails; die "crieur is not reachable over https"; }
log "crieur up"

GTSCHECK_PASSWORD=$password timeout "$STAGE_TIMEOUT" "$tmp/gtscheck" check -gts "https://$GTS_HOST" -email "$email" \
  -crieur "https://$CRIEUR_HOST" -handle "$HANDLE" -posts "$tmp/posts" -scratch "$tmp/scratch" \
  -name "$name" -bio "$bio" -field-name "$field_name" -field-value "$field_value" \
  -crieur-bin "$tmp/crieur" -data "$tmp/data" -timeout "${CHECK_TIMEOUT}s" &
pids+=("$!")
names+=(gtscheck)
wait "${pids[-1]}"
rc=$?
if [ "$rc" -eq 124 ]; then
  echo "FAIL the checks did not finish within ${STAGE_TIMEOUT}s"
  echo "0 passed, 1 failed"
fi
for pid_name in "$gts_pid:GoToSocial" "$crieur_pid:crieur"; do
  if ! kill -0 "${pid_name%%:*}" 2>/dev/null; then
    echo "# gotosocial/run.sh: ${pid_name#*:} exited during the checks"
    [ "$rc" -eq 0 ] && rc=1
  fi
done
[ "$rc" -ne 0 ] && log_tails
exit "$rc"
