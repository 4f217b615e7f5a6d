#!/usr/bin/env bash
# Token issuance (client credentials) on loopback, against a baseline measured in the same
# run:
#
#   bash bench/issuance.sh               # from any directory; ~1 minute on an idle machine
#
#   1. oidc-provider (npm, the Node.js OAuth server people pick), client_secret_basic: one
#      client with the client_credentials grant, in-memory adapter, default (opaque) access
#      tokens                                                               — the baseline
#   2. warden, client_secret_basic: the secret checked against its HMAC digest
#   3. warden, private_key_jwt: a fresh signed assertion on every request (each `jti` is
#      single-use), from a file through bench/fresh_assertions.lua
#   Warden's tokens are EdDSA-signed JWTs, each recorded in the audit log (durable before
#   it is answered); oidc-provider's are random handles kept in memory.
#
# The server under test (`warden serve` from a release build, or `node` with oidc-provider) is
# pinned to CPU 1, `wrk -t1 -c16` to CPU 0. Tokens/s from wrk; CPU µs per token from the
# server process's own utime + stime (/proc/PID/stat) over the run, so the idle server on the
# same CPU does not count.
#
# Env: DURATION (s, default 10), WARMUP (s, default 2), CONNECTIONS (default 16),
#      ASSERTIONS (fresh assertions made for case 3, default 60000; the report says if wrk
#      ran out and reused some, which are then refused),
#      WARDEN_BIN (default target/release/warden, built if missing),
#      OIDC_DIR (default /tmp/warden-bench-oidc-provider: where oidc-provider is installed
#      with npm when it is not there yet),
#      QUIET_WAIT (s, default 120): before each case, wait up to this long for the machine to
#      be idle (other processes < 10% of a CPU); the table says if a case ran on a busy one.
# Installs wrk from Debian's packages when missing, and python3's `cryptography` (signs the
# assertions) with pip. Needs node and npm. Stops everything it started.
set -euo pipefail

if [[ -n "${WARDEN_BIN:-}" && "$WARDEN_BIN" != /* ]]; then
  WARDEN_BIN="$PWD/$WARDEN_BIN"
fi
cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNECTIONS=${CONNECTIONS:-16}
ASSERTIONS=${ASSERTIONS:-60000}
OIDC_DIR=${OIDC_DIR:-/tmp/warden-bench-oidc-provider}
QUIET_WAIT=${QUIET_WAIT:-120}

say() { echo "bench: $*" >&2; }

# ---- tools -------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
  say "installing wrk from Debian packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq wrk >/dev/null
fi
command -v taskset >/dev/null || { say "taskset (util-linux) is required"; exit 2; }
command -v node >/dev/null && command -v npm >/dev/null || { say "node and npm are required (case 1)"; exit 2; }
if ! python3 -c 'import cryptography' 2>/dev/null; then
  say "installing python3's cryptography (signs the assertions of case 3)"
  python3 -m pip install -q cryptography
fi
if [[ "$(nproc)" -lt 2 ]]; then
  say "needs 2 CPUs for the pinning (CPU 0: wrk, CPU 1: server under test)"
  exit 2
fi
if [[ -z "${WARDEN_BIN:-}" ]]; then
  WARDEN_BIN=$ROOT/target/release/warden
  if [[ ! -x "$WARDEN_BIN" ]]; then
    say "building the release binary"
    cargo build --release -p warden
  fi
fi
[[ -x "$WARDEN_BIN" ]] || { say "no warden binary at $WARDEN_BIN"; exit 2; }
if [[ ! -d "$OIDC_DIR/node_modules/oidc-provider" ]]; then
  say "installing oidc-provider with npm into $OIDC_DIR"
  mkdir -p "$OIDC_DIR"
  (cd "$OIDC_DIR" && { [[ -e package.json ]] || npm init -y >/dev/null; } &&
    npm install --no-audit --no-fund --silent oidc-provider@9 >/dev/null)
fi

# ---- processes -------------------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/warden-bench-iss.XXXXXX")
PIDS=()
cleanup() {
  local rc=$? pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"
export no_proxy="$NO_PROXY"

die() {
  say "$*"
  for f in "$TMP"/*.log; do
    [[ -s "$f" ]] || continue
    echo "---- $(basename "$f") (last 30 lines) ----" >&2
    sed 's/\x1b\[[0-9;]*m//g' "$f" | tail -n 30 >&2
  done
  exit 1
}

read -r WARDEN_PORT OIDC_PORT < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')

wait_http() { # name url
  local _
  for _ in $(seq 150); do
    curl -s -o /dev/null --max-time 1 "$2" && return 0
    sleep 0.1
  done
  die "$1 did not answer on $2"
}

# Warden: CPU 1.
DATA=$TMP/data
taskset -c 1 "$WARDEN_BIN" serve --data-dir "$DATA" --listen "127.0.0.1:$WARDEN_PORT" >"$TMP/warden.log" 2>&1 &
WARDEN_PID=$!
PIDS+=("$WARDEN_PID")

# oidc-provider: CPU 1. One client, client_credentials with client_secret_basic.
OIDC_SECRET=$(python3 -c 'import secrets; print("osec_" + secrets.token_urlsafe(32))')
cat >"$TMP/oidc.mjs" <<'JS'
// node oidc.mjs PORT SECRET: oidc-provider with one client_credentials client.
import { createRequire } from "node:module";
const require = createRequire(process.env.OIDC_DIR + "/");
const { default: Provider } = await import(require.resolve("oidc-provider"));
const [port, secret] = process.argv.slice(2);
const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: "bench",
    client_secret: secret,
    grant_types: ["client_credentials"],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: "client_secret_basic",
    scope: "api:read",
  }],
  scopes: ["api:read"],
  features: { clientCredentials: { enabled: true }, devInteractions: { enabled: false } },
});
provider.listen(Number(port), "127.0.0.1");
JS
OIDC_DIR=$OIDC_DIR NODE_ENV=production taskset -c 1 node "$TMP/oidc.mjs" "$OIDC_PORT" "$OIDC_SECRET" >"$TMP/oidc.log" 2>&1 &
OIDC_PID=$!
PIDS+=("$OIDC_PID")

wait_http "warden" "http://127.0.0.1:$WARDEN_PORT/healthz"
wait_http "oidc-provider" "http://127.0.0.1:$OIDC_PORT/.well-known/openid-configuration"

# ---- identity: tenant, agent with a key and a secret -----------------------------------
warden() { "$WARDEN_BIN" "$@" --data-dir "$DATA"; }
warden tenant create bench --json >/dev/null || die "tenant create failed"
warden keygen --out "$TMP/agent.jwk" >/dev/null
warden principal create --tenant bench --kind agent --name loadgen --scopes "api:read" \
  --public-key "$TMP/agent.jwk.pub" --json >"$TMP/agent.json" || die "principal create failed"
AGENT=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["id"])' "$TMP/agent.json")
warden principal secret "$AGENT" --json >"$TMP/secret.json" || die "principal secret failed"
SECRET=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["client_secret"])' "$TMP/secret.json")

basic() { python3 -c 'import base64, sys; print(base64.b64encode(f"{sys.argv[1]}:{sys.argv[2]}".encode()).decode())' "$@"; }
WARDEN_BASIC=$(basic "$AGENT" "$SECRET")
OIDC_BASIC=$(basic bench "$OIDC_SECRET")

# The client_secret_basic request, the same for both servers but for the credentials.
cat >"$TMP/basic.lua" <<'LUA'
wrk.method = "POST"
wrk.body = "grant_type=client_credentials&scope=api%3Aread"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. os.getenv("BASIC")
LUA

# Assertions for case 3: `assertions.py JWK CLIENT_ID AUD COUNT`, one a line, each with its
# own jti, valid for 5 minutes (the authority's default ceiling).
cat >"$TMP/assertions.py" <<'PY'
import base64, json, secrets, sys, time
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=")

def unb64(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))

jwk = json.load(open(sys.argv[1]))
key = Ed25519PrivateKey.from_private_bytes(unb64(jwk["d"]))
client, aud, count = sys.argv[2], sys.argv[3], int(sys.argv[4])
header = {"alg": "EdDSA", "typ": "JWT"}
if jwk.get("kid"):
    header["kid"] = jwk["kid"]
head = b64(json.dumps(header, separators=(",", ":")).encode())
now = int(time.time())
out = sys.stdout
for _ in range(count):
    claims = {"iss": client, "sub": client, "aud": aud, "iat": now, "exp": now + 290,
              "jti": secrets.token_urlsafe(16)}
    signing = head + b"." + b64(json.dumps(claims, separators=(",", ":")).encode())
    out.write((signing + b"." + b64(key.sign(signing))).decode() + "\n")
PY

# Sanity: every case's request gets a token.
code=$(curl -s -o "$TMP/check.json" -w '%{http_code}' -H "Authorization: Basic $WARDEN_BASIC" \
  -d 'grant_type=client_credentials&scope=api%3Aread' "http://127.0.0.1:$WARDEN_PORT/oauth2/token")
[[ "$code" == 200 ]] || die "sanity check: warden client_secret_basic answered $code: $(head -c 300 "$TMP/check.json")"
code=$(curl -s -o "$TMP/check.json" -w '%{http_code}' -H "Authorization: Basic $OIDC_BASIC" \
  -d 'grant_type=client_credentials&scope=api%3Aread' "http://127.0.0.1:$OIDC_PORT/token")
[[ "$code" == 200 ]] || die "sanity check: oidc-provider answered $code: $(head -c 300 "$TMP/check.json")"
ONE=$(taskset -c 0 python3 "$TMP/assertions.py" "$TMP/agent.jwk" "$AGENT" "http://127.0.0.1:$WARDEN_PORT/oauth2/token" 1)
code=$(curl -s -o "$TMP/check.json" -w '%{http_code}' \
  --data-urlencode grant_type=client_credentials --data-urlencode scope=api:read \
  --data-urlencode client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer \
  --data-urlencode "client_assertion=$ONE" "http://127.0.0.1:$WARDEN_PORT/oauth2/token")
[[ "$code" == 200 ]] || die "sanity check: warden private_key_jwt answered $code: $(head -c 300 "$TMP/check.json")"

# ---- measuring -------------------------------------------------------------------------
cpu_sample() { awk '/^cpu[01] / { print $1, $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8 }' /proc/stat; }
cpu_busy() { # before after -> "cpu0% cpu1%"
  paste <(echo "$1") <(echo "$2") | awk '{ d = $6 - $3; if (d <= 0) d = 1; printf "%d ", 100 * ($5 - $2) / d }'
}
# Waits (up to QUIET_WAIT s) until nothing else uses more than 10% of either CPU; marks the
# case NAME as measured on a busy machine otherwise.
wait_quiet() { # name
  local waited=0 a b busy
  while :; do
    a=$(cpu_sample)
    sleep 1
    b=$(cpu_sample)
    busy=$(cpu_busy "$a" "$b" | awk '{ print ($1 > $2 ? $1 : $2) }')
    ((busy < 10)) && return 0
    if ((waited == 0)); then say "waiting for the machine to be idle (a CPU is ${busy}% busy)"; fi
    waited=$((waited + 1))
    if ((waited >= QUIET_WAIT)); then
      say "$1: the machine is still busy (${busy}%) after ${QUIET_WAIT}s; measuring anyway"
      echo "$busy" >"$TMP/$1.busy"
      return 0
    fi
  done
}
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
proc_ticks() { { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null || true; } | awk '{ print $12 + $13 }'; }

# `measure NAME PID URL [wrk args...]` (after the URL, so a script's own `-- ARGS` reach it): warm-up, then the measured run; writes $TMP/NAME.wrk
# and $TMP/NAME.ticks (the server's CPU ticks during the run). WARMUP=0 skips the warm-up
# (case 3: its assertions are single-use).
measure() {
  local name=$1 pid=$2 url=$3 t0 t1
  shift 3
  wait_quiet "$name"
  if ((WARMUP > 0)); then
    taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d"${WARMUP}s" "$url" "$@" >/dev/null 2>&1 || true
  fi
  t0=$(proc_ticks "$pid")
  taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$url" "$@" >"$TMP/$name.wrk" 2>&1 ||
    die "wrk failed for $name: $(tail -n 5 "$TMP/$name.wrk")"
  t1=$(proc_ticks "$pid")
  echo $((t1 - t0)) >"$TMP/$name.ticks"
  if grep -qE 'Non-2xx|Socket errors' "$TMP/$name.wrk"; then
    say "$name: $(grep -E 'Non-2xx|Socket errors' "$TMP/$name.wrk" | sed 's/^ *//' | tr '\n' ' ')"
    echo bad >"$TMP/$name.non2xx"
  fi
}

say "case 1: oidc-provider client_secret_basic"
BASIC=$OIDC_BASIC measure oidc "$OIDC_PID" "http://127.0.0.1:$OIDC_PORT/token" -s "$TMP/basic.lua"
say "case 2: warden client_secret_basic"
BASIC=$WARDEN_BASIC measure secret "$WARDEN_PID" "http://127.0.0.1:$WARDEN_PORT/oauth2/token" -s "$TMP/basic.lua"
say "case 3: warden private_key_jwt ($ASSERTIONS fresh assertions)"
taskset -c 0 python3 "$TMP/assertions.py" "$TMP/agent.jwk" "$AGENT" "http://127.0.0.1:$WARDEN_PORT/oauth2/token" \
  "$ASSERTIONS" >"$TMP/assertions.txt" || die "making assertions failed"
WARMUP=0 measure assertion "$WARDEN_PID" "http://127.0.0.1:$WARDEN_PORT/oauth2/token" \
  -s "$ROOT/bench/fresh_assertions.lua" -- "$TMP/assertions.txt"

# ---- report ----------------------------------------------------------------------------
wrk_fields() { # requests/s p50-ms p99-ms requests
  awk '
    function ms(v) {
      if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0
      if (v ~ /m$/) return v * 60000; if (v ~ /s$/) return v * 1000; return v
    }
    /^Requests\/sec:/ { rps = $2 }
    / requests in / { n = $1 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    END { printf "%.0f %.3f %.3f %d\n", rps, p50, p99, n }' "$1"
}
us_token() { # name requests
  awk -v t="$(cat "$TMP/$1.ticks")" -v hz="$CLK_TCK" -v n="$2" 'BEGIN { if (n > 0) printf "%.0f", t * 1e6 / hz / n; else print "-" }'
}
read -r rps_o p50_o p99_o n_o < <(wrk_fields "$TMP/oidc.wrk")
us_o=$(us_token oidc "$n_o")

echo
echo "issuance benchmark: warden $("$WARDEN_BIN" --version | awk '{print $NF}'), oidc-provider $(node -p "require('$OIDC_DIR/node_modules/oidc-provider/package.json').version"), node $(node --version), $(wrk --version 2>&1 | head -n 1 | awk '{print "wrk " $2}')"
echo "wrk -t1 -c$CONNECTIONS -d${DURATION}s --latency; CPU 1: the server under test; CPU 0: wrk"
echo
printf '| %-40s | %9s | %8s | %8s | %11s | %14s | %13s |\n' case tokens/s "p50 ms" "p99 ms" "CPU µs/tok" "tokens/s vs 1" "CPU/tok vs 1"
printf '|%s|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..42})" ----------- ---------- ---------- ------------- ---------------- ---------------
row() { # label name
  local rps p50 p99 n us flags=""
  read -r rps p50 p99 n < <(wrk_fields "$TMP/$2.wrk")
  us=$(us_token "$2" "$n")
  [[ -e "$TMP/$2.non2xx" ]] && flags+=" ERRORS (non-2xx or socket)!"
  [[ -e "$TMP/$2.busy" ]] && flags+=" machine was busy ($(cat "$TMP/$2.busy")%)"
  printf '| %-40s | %9s | %8s | %8s | %11s | %14s | %13s |%s\n' "$1" "$rps" "$p50" "$p99" "$us" \
    "$(awk -v a="$rps" -v b="$rps_o" 'BEGIN { printf "%.2fx", a / b }')" \
    "$(awk -v a="$us" -v b="$us_o" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }')" "$flags"
}
row "1 oidc-provider client_secret_basic" oidc
row "2 warden client_secret_basic" secret
row "3 warden private_key_jwt (fresh assertion)" assertion
grep -h '^fresh_assertions:' "$TMP/assertion.wrk" || true
echo
awk -v a="$(wrk_fields "$TMP/secret.wrk" | cut -d' ' -f1)" -v b="$rps_o" \
  'BEGIN { printf "warden client_secret_basic / oidc-provider: %.2fx tokens/s (target >= 3x)\n", a / b }'
