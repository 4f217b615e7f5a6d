#!/usr/bin/env bash
# Gateway benchmarks on loopback, all cases in one run, against a baseline measured in the
# same run:
#
#   bash bench/gateway.sh                # from any directory; ~11 minutes on an idle machine
#
#   1. plain nginx reverse proxy (1 worker, keepalive upstream)        — the baseline
#   1b. the gateway's HTTP stack with nothing of Warden in it (a tokio event loop, hyper, the
#      gateway's upstream pool: crates/warden-gateway/examples/bare_proxy.rs): 2 vs 1b is
#      what Warden adds
#   2. warden gateway, one token reused (verified-token cache hits)
#   3. warden gateway, a fresh token on every request (full verification each time)
#   4. nginx auth_request -> warden /authz -> upstream (the external-call pattern)
#   5. warden gateway, one DPoP-bound token with a fresh proof per request (vs. case 2)
#   6. the peer people pick today to check JWTs at the proxy: HAProxy (Debian's, 1 thread)
#      with `http-request ... jwt_verify(...)` on ES256 tokens (it cannot verify EdDSA), plus
#      the alg, exp, nbf, iss, aud and scope checks a real deployment makes; one token
#      reused (HAProxy has no verified-token cache: every request verifies the signature)
#   7. as 6, a fresh ES256 token on every request (vs. case 3)
#   The ES256 tokens are Warden's access token re-signed: same header fields (typ at+jwt,
#   kid), same claims, a new jti (and iat/nbf/exp) each; key from openssl, signed by
#   python3's `cryptography`. The report ends with Warden vs HAProxy: 2 vs 6 and 3 vs 7.
#   and, to show what the policy phase costs, 2 again on a second gateway without policies
#   (`warden gateway`, same authority, audit on); and 2c, that second gateway's config with
#   behavioural telemetry on (`[gateway.behaviour] enabled = true`): 2c vs 2b is its cost.
#
# Every case proxies GET to the same upstream: nginx (1 worker) answering `200 ok`.
# The gateway is `warden serve --config` (release build) with audit on (`audit_log` in the
# temp dir) and the example Cedar policies (`policies/`, after `warden policy test` passes).
# CPU pinning: the proxy under test (nginx proxy, the bare proxy, warden, or warden + the nginx in front
# of it in case 4) on CPU 1; wrk and the upstream nginx on CPU 0.
#
# Then cases 1, 1b, 2, 2b, 4 and 6 again over one connection (-c1, DURATION/2): the latency a
# request pays with no queueing, which is where "added latency" means something; at 32
# connections a saturated proxy's latency is mostly its queue (Little's law).
#
# Env: DURATION (s, default 10), WARMUP (s, default 2), CONNECTIONS (default 32), ROUNDS
#      (default 3: cases 1 to 2c and 6 are run this many times, interleaved, and reported by
#      their median round),
#      FRESH_MAX (most tokens to issue for case 3, and for case 7, default 200000),
#      WARDEN_BIN (default target/release/warden, built if missing), BARE_BIN (default
#      target/release/examples/bare_proxy, built if missing),
#      QUIET_WAIT (s, default 120): before each case, wait up to this long for the machine
#      to be idle (other processes < 10% of a CPU), since 2 shared cores make any build
#      running alongside distort the figures; the table says if a case ran on a busy machine.
#      BASE_BIN (unset by default): another warden binary (an older build of the same CLI,
#      e.g. a checkout's target/release/warden) for a before/after comparison in the same
#      run: a second `warden serve --config` from BASE_BIN, configured as case 2's (same
#      config, policies, audit on; its own data dir, ports and authority; CPU 1), measured as
#      case 2base (one token of its own, interleaved in the rounds right after case 2) and
#      3base (fresh tokens from its own `warden token --count`, right after case 3). Only one
#      warden is under load at a time; the other sits idle on CPU 1, and a case is flagged if
#      the idle one used CPU meanwhile. The report adds new/base ratio rows and each binary's
#      CPU us/request over case 1b for cases 2 and 3.
#      PERF=1 also runs `perf record` on warden during cases 2 and 3 and prints the top
#      symbols (needs perf).
# Installs wrk, nginx and haproxy from Debian's packages when missing (and python3's
# `cryptography` with pip). Stops everything it started.
set -euo pipefail

if [[ -n "${WARDEN_BIN:-}" && "$WARDEN_BIN" != /* ]]; then
  WARDEN_BIN="$PWD/$WARDEN_BIN"
fi
BASE_BIN=${BASE_BIN:-}
if [[ -n "$BASE_BIN" && "$BASE_BIN" != /* ]]; then
  BASE_BIN="$PWD/$BASE_BIN"
fi
cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNECTIONS=${CONNECTIONS:-32}
ROUNDS=${ROUNDS:-3}
FRESH_MAX=${FRESH_MAX:-200000}
PERF=${PERF:-0}

say() { echo "bench: $*" >&2; }

# ---- tools -------------------------------------------------------------------
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || missing+=(nginx)
command -v haproxy >/dev/null || missing+=(haproxy)
if ((${#missing[@]})); then
  say "installing ${missing[*]} from Debian packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v taskset >/dev/null || { say "taskset (util-linux) is required"; exit 2; }
command -v openssl >/dev/null || { say "openssl is required (the ES256 key of cases 6 and 7)"; exit 2; }
if ! python3 -c 'import cryptography' 2>/dev/null; then
  say "installing python3's cryptography (signs the ES256 tokens of cases 6 and 7)"
  python3 -m pip install -q cryptography
fi
if [[ "$(nproc)" -lt 2 ]]; then
  say "needs 2 CPUs for the pinning (CPU 0: load and upstream, CPU 1: proxy under test)"
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
if [[ -z "${BARE_BIN:-}" ]]; then
  BARE_BIN=$ROOT/target/release/examples/bare_proxy
  if [[ ! -x "$BARE_BIN" ]]; then
    say "building the bare proxy"
    cargo build --release -p warden-gateway --example bare_proxy
  fi
fi
[[ -x "$BARE_BIN" ]] || { say "no bare proxy binary at $BARE_BIN"; exit 2; }
if [[ -n "$BASE_BIN" ]]; then
  [[ -x "$BASE_BIN" ]] || { say "no base warden binary at BASE_BIN=$BASE_BIN"; exit 2; }
fi

# ---- processes -------------------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/warden-bench-gw.XXXXXX")
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

read -r UP_PORT PROXY_PORT GW_PORT FRONT_PORT GW2_PORT GW3_PORT BARE_PORT HAP_PORT BASE_GW_PORT \
  GW_OPS_PORT GW2_OPS_PORT GW3_OPS_PORT BASE_GW_OPS_PORT < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(13)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')

# The ops flags of a binary (a base binary from before the ops listener has none, and serves
# /healthz on its public port): `ops_flags BIN OPS_PORT` prints them; `health_url BIN PORT
# OPS_PORT` where its /healthz is.
ops_flags() { # bin ops_port
  if "$1" serve --help 2>/dev/null | grep -q -- --gateway-ops-listen; then
    echo "--ops-listen 127.0.0.1:0 --gateway-ops-listen 127.0.0.1:$2"
  fi
}
health_url() { # bin port ops_port
  if "$1" serve --help 2>/dev/null | grep -q -- --gateway-ops-listen; then
    echo "http://127.0.0.1:$3/healthz"
  else
    echo "http://127.0.0.1:$2/healthz"
  fi
}

wait_http() { # name url
  local _
  for _ in $(seq 150); do
    curl -s -o /dev/null --max-time 1 "$2" && return 0
    sleep 0.1
  done
  die "$1 did not answer on $2"
}

# `nginx_conf NAME PORT HTTP_EXTRA SERVER_BODY`: an nginx config with one server.
nginx_conf() {
  local dir=$TMP/nginx-$1
  mkdir -p "$dir"
  cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
daemon off;
user root;
pid $dir/nginx.pid;
error_log $TMP/nginx-$1.log warn;
worker_rlimit_nofile 65536;
events { worker_connections 4096; }
http {
  access_log off;
  default_type text/plain;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
$3
  server {
    listen 127.0.0.1:$2 backlog=4096;
$4
  }
}
EOF
}
start_nginx() { # name cpu
  local dir=$TMP/nginx-$1
  nginx -p "$dir" -c "$dir/nginx.conf" -e "$TMP/nginx-$1.log" -t >/dev/null 2>"$TMP/nginx-$1.log" ||
    die "nginx $1: bad config"
  taskset -c "$2" nginx -p "$dir" -c "$dir/nginx.conf" -e "$TMP/nginx-$1.log" 2>>"$TMP/nginx-$1.log" &
  PIDS+=($!)
}

# The upstream: CPU 0.
nginx_conf upstream "$UP_PORT" "" '    location / { return 200 "ok"; }'
start_nginx upstream 0

# Case 1's proxy: CPU 1.
nginx_conf proxy "$PROXY_PORT" "  upstream up { server 127.0.0.1:$UP_PORT; keepalive 64; }" '
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }'
start_nginx proxy 1

# Case 1b's proxy: CPU 1.
taskset -c 1 "$BARE_BIN" "127.0.0.1:$BARE_PORT" "127.0.0.1:$UP_PORT" >"$TMP/bare.log" 2>&1 &
PIDS+=($!)

# The policies, if their own tests pass.
POLICY_LINE=""
POLICIES="none"
if "$WARDEN_BIN" policy test "$ROOT/policies" >"$TMP/policy-test.out" 2>&1; then
  POLICY_LINE="policy_dir = \"$ROOT/policies\""
  POLICIES="policies/ ($(tail -n 1 "$TMP/policy-test.out"))"
else
  say "warden policy test policies failed; benchmarking without policies:"
  tail -n 5 "$TMP/policy-test.out" >&2
fi
if [[ -n "$BASE_BIN" && -n "$POLICY_LINE" ]] &&
  ! "$BASE_BIN" policy test "$ROOT/policies" >"$TMP/policy-test-base.out" 2>&1; then
  tail -n 5 "$TMP/policy-test-base.out" >&2
  die "BASE_BIN: warden policy test policies failed with the base binary (case 2base would not be like case 2)"
fi

# The gateway (and its authority): CPU 1.
DATA=$TMP/data
cat >"$TMP/warden.toml" <<EOF
[gateway]
audit_log = "$TMP/audit.jsonl"
# The nginx of case 4 calls /authz from loopback.
trusted_proxies = ["127.0.0.1/32"]
$POLICY_LINE

[[gateway.route]]
prefix = "/api/"
upstream = "http://127.0.0.1:$UP_PORT"
audience = "api"
[gateway.route.scopes]
GET = "api:read"
EOF
# shellcheck disable=SC2046 # the ops flags are words
taskset -c 1 "$WARDEN_BIN" serve --data-dir "$DATA" --listen 127.0.0.1:0 --config "$TMP/warden.toml" \
  --gateway-listen "127.0.0.1:$GW_PORT" $(ops_flags "$WARDEN_BIN" "$GW_OPS_PORT") >"$TMP/warden.log" 2>&1 &
WARDEN_PID=$!
PIDS+=("$WARDEN_PID")

# Case 4's front: nginx auth_request -> warden /authz, then the upstream. CPU 1, with warden.
nginx_conf front "$FRONT_PORT" "  upstream up { server 127.0.0.1:$UP_PORT; keepalive 64; }
  upstream warden_authz { server 127.0.0.1:$GW_PORT; keepalive 64; }" '
    location /api/ {
      auth_request /_warden;
      auth_request_set $warden_auth $upstream_http_x_warden_authorization;
      proxy_set_header Authorization $warden_auth;
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
    location = /_warden {
      internal;
      proxy_pass http://warden_authz/authz;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Forwarded-Method "";
      proxy_set_header X-Forwarded-Uri "";
    }'
start_nginx front 1

wait_http "upstream nginx" "http://127.0.0.1:$UP_PORT/"
wait_http "proxy nginx" "http://127.0.0.1:$PROXY_PORT/"
wait_http "bare proxy" "http://127.0.0.1:$BARE_PORT/"
wait_http "warden gateway" "http://127.0.0.1:$GW_OPS_PORT/healthz"
wait_http "front nginx" "http://127.0.0.1:$FRONT_PORT/"

# A second gateway, without policies, against the same authority: CPU 1.
AUTHORITY_URL=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["authority_url"])' "$DATA/server.json")
grep -v '^policy_dir' "$TMP/warden.toml" | sed "s|$TMP/audit.jsonl|$TMP/audit-nopolicy.jsonl|" >"$TMP/warden-nopolicy.toml"
taskset -c 1 "$WARDEN_BIN" gateway --authority "$AUTHORITY_URL" --config "$TMP/warden-nopolicy.toml" \
  --listen "127.0.0.1:$GW2_PORT" --ops-listen "127.0.0.1:$GW2_OPS_PORT" \
  --admin-token-file "$DATA/admin.token" >"$TMP/warden-nopolicy.log" 2>&1 &
PIDS+=($!)
wait_http "warden gateway without policies" "http://127.0.0.1:$GW2_OPS_PORT/healthz"

# A third, as the second but with behavioural telemetry on: 2c vs 2b is its cost.
sed "s|$TMP/audit-nopolicy.jsonl|$TMP/audit-behaviour.jsonl|" "$TMP/warden-nopolicy.toml" >"$TMP/warden-behaviour.toml"
python3 - "$TMP/warden-behaviour.toml" <<'PY'
import sys
p = sys.argv[1]
text = open(p).read()
head, sep, routes = text.partition("[[gateway.route]]")
open(p, "w").write(head + "[gateway.behaviour]\nenabled = true\n\n" + sep + routes)
PY
taskset -c 1 "$WARDEN_BIN" gateway --authority "$AUTHORITY_URL" --config "$TMP/warden-behaviour.toml" \
  --listen "127.0.0.1:$GW3_PORT" --ops-listen "127.0.0.1:$GW3_OPS_PORT" \
  --admin-token-file "$DATA/admin.token" >"$TMP/warden-behaviour.log" 2>&1 &
PIDS+=($!)
wait_http "warden gateway with behaviour" "http://127.0.0.1:$GW3_OPS_PORT/healthz"

# With BASE_BIN: case 2's gateway again, from the base binary (`warden serve`, its own
# authority and data dir, the same config but for the audit file's name): CPU 1, idle but
# for cases 2base and 3base.
BASE_PID=""
if [[ -n "$BASE_BIN" ]]; then
  BASE_DATA=$TMP/data-base
  sed "s|$TMP/audit.jsonl|$TMP/audit-base.jsonl|" "$TMP/warden.toml" >"$TMP/warden-base.toml"
  # shellcheck disable=SC2046 # the ops flags are words
  taskset -c 1 "$BASE_BIN" serve --data-dir "$BASE_DATA" --listen 127.0.0.1:0 --config "$TMP/warden-base.toml" \
    --gateway-listen "127.0.0.1:$BASE_GW_PORT" $(ops_flags "$BASE_BIN" "$BASE_GW_OPS_PORT") \
    >"$TMP/warden-base.log" 2>&1 &
  BASE_PID=$!
  PIDS+=("$BASE_PID")
  wait_http "base warden gateway" "$(health_url "$BASE_BIN" "$BASE_GW_PORT" "$BASE_GW_OPS_PORT")"
fi

# ---- identity: tenant, agent, token ------------------------------------------------
warden() { "$WARDEN_BIN" "$@" --data-dir "$DATA"; }
warden tenant create bench --json >/dev/null || die "tenant create failed"
warden keygen --out "$TMP/agent.jwk" >/dev/null
warden principal create --tenant bench --kind agent --name loadgen --scopes "api:read" \
  --public-key "$TMP/agent.jwk.pub" --json >"$TMP/agent.json" || die "principal create failed"
AGENT=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["id"])' "$TMP/agent.json")
TOKEN=$(warden token --client-id "$AGENT" --key "$TMP/agent.jwk" --scope api:read) || die "token failed"
# The base gateway's own: the same commands, with the base binary and its data dir.
if [[ -n "$BASE_BIN" ]]; then
  warden_base() { "$BASE_BIN" "$@" --data-dir "$BASE_DATA"; }
  warden_base tenant create bench --json >/dev/null || die "base: tenant create failed"
  warden_base keygen --out "$TMP/agent-base.jwk" >/dev/null
  warden_base principal create --tenant bench --kind agent --name loadgen --scopes "api:read" \
    --public-key "$TMP/agent-base.jwk.pub" --json >"$TMP/agent-base.json" || die "base: principal create failed"
  BASE_AGENT=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["id"])' "$TMP/agent-base.json")
  BASE_TOKEN=$(warden_base token --client-id "$BASE_AGENT" --key "$TMP/agent-base.jwk" --scope api:read) ||
    die "base: token failed"
fi

# ---- cases 6 and 7: HAProxy checking ES256 JWTs ---------------------------------------------
# An EC P-256 key pair, and a signer that re-signs Warden's access token with it: the same
# header fields and claims, with iat/nbf now, the same lifetime and a new jti for each token.
openssl ecparam -name prime256v1 -genkey -noout -out "$TMP/es256.key" 2>"$TMP/openssl.log" ||
  die "openssl: no EC key"
openssl ec -in "$TMP/es256.key" -pubout -out "$TMP/es256.pub.pem" 2>>"$TMP/openssl.log" ||
  die "openssl: no EC public key"
cat >"$TMP/es256_tokens.py" <<'PY'
# es256_tokens.py KEY TEMPLATE_JWT COUNT [expired]: COUNT ES256 tokens, one a line.
import base64, json, secrets, sys, time
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=")

def unb64(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))

key = serialization.load_pem_private_key(open(sys.argv[1], "rb").read(), password=None)
head, body, _ = sys.argv[2].split(".")
header, claims = json.loads(unb64(head)), json.loads(unb64(body))
header.update(alg="ES256", typ="at+jwt", kid="bench-es256-1")
head = b64(json.dumps(header, separators=(",", ":")).encode())
lifetime = claims["exp"] - claims["iat"]
now = int(time.time())
claims.update(iat=now, nbf=now, exp=now - 120 if sys.argv[4:] == ["expired"] else now + lifetime)
jti_len = len(str(claims.get("jti", ""))) or 22
out = sys.stdout
for _ in range(int(sys.argv[3])):
    claims["jti"] = secrets.token_urlsafe(jti_len)[:jti_len]
    signing = head + b"." + b64(json.dumps(claims, separators=(",", ":")).encode())
    r, s = utils.decode_dss_signature(key.sign(signing, ec.ECDSA(hashes.SHA256())))
    out.write((signing + b"." + b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))).decode() + "\n")
PY
es256_tokens() { # count [expired]
  taskset -c 0 python3 "$TMP/es256_tokens.py" "$TMP/es256.key" "$TOKEN" "$@"
}
HAP_TOKEN=$(es256_tokens 1) || die "ES256 token failed"
HAP_EXPIRED=$(es256_tokens 1 expired) || die "expired ES256 token failed"
read -r TOKEN_ISS TOKEN_AUD < <(python3 -c '
import base64, json, sys
b = sys.argv[1].split(".")[1]
c = json.loads(base64.urlsafe_b64decode(b + "=" * (-len(b) % 4)))
aud = c["aud"] if isinstance(c["aud"], str) else c["aud"][0]
print(c["iss"], aud)' "$TOKEN")

# HAProxy: one thread, CPU 1, keepalive (http-reuse) to the same upstream. Beyond the
# signature it checks what Warden checks of a token for this route (alg, exp and nbf with
# Warden's 30 s leeway, iss, aud, the route's scope); json_query reads `aud` only as a string.
cat >"$TMP/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 8192

defaults
  mode http
  timeout connect 5s
  timeout client 120s
  timeout server 120s
  timeout http-keep-alive 120s

frontend jwt
  bind 127.0.0.1:$HAP_PORT backlog 4096
  http-request set-var(txn.bearer) http_auth_bearer
  http-request deny deny_status 401 unless { var(txn.bearer) -m found }
  http-request set-var(txn.jwt_alg) var(txn.bearer),jwt_header_query('\$.alg')
  http-request deny unless { var(txn.jwt_alg) -m str ES256 }
  http-request deny unless { var(txn.bearer),jwt_verify(txn.jwt_alg,"$TMP/es256.pub.pem") -m int 1 }
  http-request set-var(txn.now) date()
  http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('\$.exp','int')
  http-request set-var(txn.nbf) var(txn.bearer),jwt_payload_query('\$.nbf','int')
  http-request deny unless { var(txn.exp),add(30),sub(txn.now) -m int ge 0 }
  http-request deny unless { var(txn.now),add(30),sub(txn.nbf) -m int ge 0 }
  http-request deny unless { var(txn.bearer),jwt_payload_query('\$.iss') -m str $TOKEN_ISS }
  http-request deny unless { var(txn.bearer),jwt_payload_query('\$.aud') -m str $TOKEN_AUD }
  http-request deny unless { var(txn.bearer),jwt_payload_query('\$.scope') -m reg (^|\\ )api:read(\\ |\$) }
  default_backend up

backend up
  http-reuse always
  server up 127.0.0.1:$UP_PORT
EOF
haproxy -c -q -f "$TMP/haproxy.cfg" >"$TMP/haproxy.log" 2>&1 || die "haproxy: bad config"
taskset -c 1 haproxy -db -f "$TMP/haproxy.cfg" >>"$TMP/haproxy.log" 2>&1 &
PIDS+=($!)
wait_http "haproxy" "http://127.0.0.1:$HAP_PORT/"
HAP=http://127.0.0.1:$HAP_PORT/api/x
# What it lets through and what it refuses.
tampered=$(python3 -c '
import base64, json, sys
h, b, s = sys.argv[1].split(".")
c = json.loads(base64.urlsafe_b64decode(b + "=" * (-len(b) % 4)))
c["scope"] = "api:read api:write"
print(h + "." + base64.urlsafe_b64encode(json.dumps(c).encode()).rstrip(b"=").decode() + "." + s)' "$HAP_TOKEN")
for check in "200:$HAP_TOKEN" "403:$tampered" "403:${HAP_TOKEN%?????}AAAAA" "403:$HAP_EXPIRED" "403:$TOKEN" "401:"; do
  want=${check%%:*} tok=${check#*:}
  code=$(curl -s -o /dev/null -w '%{http_code}' ${tok:+-H "Authorization: Bearer $tok"} "$HAP")
  [[ "$code" == "$want" ]] || die "sanity check: haproxy answered $code, not $want, to ${tok:-no token}"
done

for url in "http://127.0.0.1:$PROXY_PORT/api/x" "http://127.0.0.1:$BARE_PORT/api/x" "http://127.0.0.1:$GW_PORT/api/x" "http://127.0.0.1:$FRONT_PORT/api/x" \
  "http://127.0.0.1:$GW2_PORT/api/x" "http://127.0.0.1:$GW3_PORT/api/x" "$HAP"; do
  tok=$TOKEN
  [[ "$url" == "$HAP" ]] && tok=$HAP_TOKEN
  body=$(curl -s --max-time 5 -H "Authorization: Bearer $tok" "$url") || true
  [[ "$body" == ok ]] || die "sanity check: GET $url answered: ${body:0:300}"
done
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$GW_PORT/api/x")
[[ "$code" == 401 ]] || die "sanity check: the gateway answered $code without a token"
if [[ -n "$BASE_BIN" ]]; then
  body=$(curl -s --max-time 5 -H "Authorization: Bearer $BASE_TOKEN" "http://127.0.0.1:$BASE_GW_PORT/api/x") || true
  [[ "$body" == ok ]] || die "sanity check: the base gateway answered: ${body:0:300}"
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$BASE_GW_PORT/api/x")
  [[ "$code" == 401 ]] || die "sanity check: the base gateway answered $code without a token"
fi

# ---- measuring -------------------------------------------------------------------------
# CPU busy fraction per CPU between two /proc/stat samples.
cpu_sample() { awk '/^cpu[01] / { print $1, $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8 }' /proc/stat; }
cpu_busy() { # before after -> "cpu0% cpu1%"
  paste <(echo "$1") <(echo "$2") | awk '{ d = $6 - $3; if (d <= 0) d = 1; printf "%d ", 100 * ($5 - $2) / d }'
}

# Waits (up to QUIET_WAIT s) until nothing else uses more than 10% of either CPU; marks the
# case NAME as measured on a busy machine otherwise.
QUIET_WAIT=${QUIET_WAIT:-120}
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

# With BASE_BIN, two `warden serve` share CPU 1: the one not under test must stay idle.
# `idle_sample NAME`: the CPU ticks so far of the warden that case NAME leaves idle (the main
# one for the base cases, the base one for all others); `idle_check NAME SAMPLE SECONDS`
# flags NAME ($TMP/NAME.other) if that warden used more than 1% of a CPU meanwhile.
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
proc_ticks() { { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null || true; } | awk '{ print $12 + $13 }'; }
idle_sample() { # name
  [[ -n "$BASE_PID" ]] || return 0
  if [[ "$1" == *base* ]]; then echo "$WARDEN_PID $(proc_ticks "$WARDEN_PID")"; else echo "$BASE_PID $(proc_ticks "$BASE_PID")"; fi
}
idle_check() { # name sample seconds
  [[ -n "$2" ]] || return 0
  local pid=${2%% *} t0=${2#* } t1 ms
  t1=$(proc_ticks "$pid")
  [[ -n "$t1" && -n "$t0" ]] || return 0
  if (((t1 - t0) * 100 > $3 * CLK_TCK)); then
    ms=$(((t1 - t0) * 1000 / CLK_TCK))
    say "WARNING: $1: the idle warden (pid $pid) used $ms ms of CPU during the run"
    echo "$ms" >"$TMP/$1.other"
  fi
}

# `measure NAME URL [wrk args...]`: warm-up, then the measured run; writes $TMP/NAME.wrk.
# C and D override the connections and the duration.
measure() {
  local name=$1 url=$2 before after idle c=${C:-$CONNECTIONS} d=${D:-$DURATION}
  shift 2
  wait_quiet "$name"
  [[ "$name" == cached-r1 ]] && perf_start "$name"
  taskset -c 0 wrk -t1 -c"$c" -d"${WARMUP}s" "$@" "$url" >/dev/null 2>&1 || true
  idle=$(idle_sample "$name")
  before=$(cpu_sample)
  taskset -c 0 wrk -t1 -c"$c" -d"${d}s" --latency "$@" "$url" >"$TMP/$name.wrk" 2>&1 ||
    die "wrk failed for $name: $(tail -n 5 "$TMP/$name.wrk")"
  after=$(cpu_sample)
  cpu_busy "$before" "$after" >"$TMP/$name.cpu"
  idle_check "$name" "$idle" "$d"
  flag_errors "$name"
}
# Marks a run whose wrk report shows non-2xx answers or socket errors.
flag_errors() { # name
  if grep -qE 'Non-2xx|Socket errors' "$TMP/$1.wrk"; then
    say "$1: $(grep -E 'Non-2xx|Socket errors' "$TMP/$1.wrk" | sed 's/^ *//' | tr '\n' ' ')"
    echo bad >"$TMP/$1.non2xx"
  fi
}
# Fields of a wrk --latency report: requests/s, p50 ms, p99 ms.
wrk_fields() {
  awk '
    function ms(v) {
      if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0
      if (v ~ /m$/) return v * 60000; if (v ~ /s$/) return v * 1000; return v
    }
    /^Requests\/sec:/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    END { printf "%.0f %.3f %.3f\n", rps, p50, p99 }' "$1"
}

perf_start() { # name
  [[ "$PERF" == 1 ]] || return 0
  perf record -F 999 -g -p "$WARDEN_PID" -o "$TMP/$1.perf" -- sleep "$((WARMUP + DURATION))" >/dev/null 2>&1 &
  PERF_PID=$!
}
perf_report() { # name
  [[ "$PERF" == 1 ]] || return 0
  wait "$PERF_PID" 2>/dev/null || true
  echo "---- perf: warden during $1: by thread ----"
  perf report -i "$TMP/$1.perf" --no-children --sort comm --stdio 2>/dev/null | grep -E '^ +[0-9]' | sed 's/ *$//'
  echo "---- perf: warden during $1: top self time ----"
  perf report -i "$TMP/$1.perf" --no-children --sort symbol --stdio 2>/dev/null |
    grep -E '^ +[0-9.]+%' | cut -c1-150 | sed 's/ *$//' | sed -n 1,25p
}

GW=http://127.0.0.1:$GW_PORT/api/x
BASE_GW=http://127.0.0.1:$BASE_GW_PORT/api/x
# Cases 1, 1b, 2, 2b, 2c and 6 run ROUNDS times, interleaved, so that a slow spell of the
# shared machine lands on every case alike; each is reported by its median round (by req/s).
for round in $(seq "$ROUNDS"); do
  say "round $round/$ROUNDS: case 1: plain nginx proxy"
  measure "plain-r$round" "http://127.0.0.1:$PROXY_PORT/api/x" -H "Authorization: Bearer $TOKEN"
  say "round $round/$ROUNDS: case 1b: the gateway's HTTP stack, bare"
  measure "bare-r$round" "http://127.0.0.1:$BARE_PORT/api/x" -H "Authorization: Bearer $TOKEN"
  say "round $round/$ROUNDS: case 2: gateway, one token (cache hits)"
  measure "cached-r$round" "$GW" -H "Authorization: Bearer $TOKEN"
  [[ "$round" == 1 ]] && perf_report cached-r1 >"$TMP/perf-cached.txt"
  if [[ -n "$BASE_BIN" ]]; then
    say "round $round/$ROUNDS: case 2base: base binary's gateway, one token (cache hits)"
    measure "cachedbase-r$round" "$BASE_GW" -H "Authorization: Bearer $BASE_TOKEN"
  fi
  say "round $round/$ROUNDS: case 2b: gateway without policies, one token (cache hits)"
  measure "nopolicy-r$round" "http://127.0.0.1:$GW2_PORT/api/x" -H "Authorization: Bearer $TOKEN"
  say "round $round/$ROUNDS: case 2c: as 2b with behavioural telemetry on"
  measure "behaviour-r$round" "http://127.0.0.1:$GW3_PORT/api/x" -H "Authorization: Bearer $TOKEN"
  say "round $round/$ROUNDS: case 6: haproxy jwt_verify, one ES256 token"
  measure "hap-r$round" "$HAP" -H "Authorization: Bearer $HAP_TOKEN"
done
# `median NAME`: the round with the median req/s becomes NAME's result; the spread is kept.
median() {
  local r rounds=()
  for r in $(seq "$ROUNDS"); do
    rounds+=("$(wrk_fields "$TMP/$1-r$r.wrk" | cut -d' ' -f1) $r")
  done
  r=$(printf '%s\n' "${rounds[@]}" | sort -n | awk -v m=$(((ROUNDS + 1) / 2)) 'NR == m { print $2 }')
  cp "$TMP/$1-r$r.wrk" "$TMP/$1.wrk"
  cp "$TMP/$1-r$r.cpu" "$TMP/$1.cpu"
  for f in non2xx busy other; do
    [[ -e "$TMP/$1-r$r.$f" ]] && cp "$TMP/$1-r$r.$f" "$TMP/$1.$f"
  done
  printf '%s\n' "${rounds[@]}" | sort -n | awk '{ print $1 }' | paste -sd/ >"$TMP/$1.spread"
}
for name in plain bare cached nopolicy behaviour hap ${BASE_BIN:+cachedbase}; do median "$name"; done

# Cases 3 and 7 need a distinct token for every request of their warm-up and their run. A
# fresh-token case cannot be faster than its one-token case (2, 6), whose rate bounds how
# many it can use.
fresh_need() { # one-token case
  local rps
  read -r rps _ < <(wrk_fields "$TMP/$1.wrk")
  rps=$(((rps * (DURATION + WARMUP)) * 11 / 10 + 1000))
  echo $((rps > FRESH_MAX ? FRESH_MAX : rps))
}
# `split_tokens NAME`: $TMP/NAME-tokens.txt into the warm-up's and the run's share.
split_tokens() {
  local issued warm_n
  issued=$(sort -u "$TMP/$1-tokens.txt" | wc -l)
  warm_n=$((issued * WARMUP / (DURATION + WARMUP)))
  head -n "$warm_n" "$TMP/$1-tokens.txt" >"$TMP/$1-tokens-warm.txt"
  tail -n +"$((warm_n + 1))" "$TMP/$1-tokens.txt" >"$TMP/$1-tokens-run.txt"
  echo "$issued"
}
# `measure_fresh NAME URL`: as measure, each request with the next token of NAME's list
# (bench/fresh_tokens.lua); writes $TMP/NAME.wrk and NAME's note, "N tokens loaded, ...".
measure_fresh() {
  local name=$1 url=$2 before after idle note warm_note
  wait_quiet "$name"
  [[ "$name" == fresh ]] && perf_start "$name"
  taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d"${WARMUP}s" -s "$ROOT/bench/fresh_tokens.lua" "$url" \
    -- "$TMP/$name-tokens-warm.txt" >"$TMP/$name-warm.out" 2>&1 || true
  idle=$(idle_sample "$name")
  before=$(cpu_sample)
  taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$ROOT/bench/fresh_tokens.lua" "$url" \
    -- "$TMP/$name-tokens-run.txt" >"$TMP/$name.wrk" 2>&1 || die "wrk failed for $name: $(tail -n 5 "$TMP/$name.wrk")"
  after=$(cpu_sample)
  cpu_busy "$before" "$after" >"$TMP/$name.cpu"
  idle_check "$name" "$idle" "$DURATION"
  [[ "$name" == fresh ]] && perf_report "$name" >"$TMP/perf-fresh.txt"
  flag_errors "$name"
  note=$(grep '^fresh_tokens:' "$TMP/$name.wrk" || true)
  warm_note=$(grep '^fresh_tokens:' "$TMP/$name-warm.out" || true)
  echo "${note#fresh_tokens: }" >"$TMP/$name.note"
  say "$name: warm-up ${warm_note#fresh_tokens: }; run ${note#fresh_tokens: }"
  if grep -q 'wrapped [1-9]' <<<"$note"; then
    say "WARNING: $name ran out of distinct tokens and reused some (raise FRESH_MAX or lower DURATION)"
  fi
}

need=$(fresh_need cached)
say "issuing $need distinct tokens for case 3"
t0=$(date +%s)
taskset -c 0 "$WARDEN_BIN" token --client-id "$AGENT" --key "$TMP/agent.jwk" --scope api:read \
  --count "$need" --data-dir "$DATA" >"$TMP/fresh-tokens.txt" || die "warden token --count $need failed"
issued=$(split_tokens fresh)
say "issued $issued distinct tokens in $(($(date +%s) - t0)) s"
if [[ -n "$BASE_BIN" ]]; then
  need=$(fresh_need cachedbase)
  say "issuing $need distinct tokens for case 3base (base binary)"
  t0=$(date +%s)
  taskset -c 0 "$BASE_BIN" token --client-id "$BASE_AGENT" --key "$TMP/agent-base.jwk" --scope api:read \
    --count "$need" --data-dir "$BASE_DATA" >"$TMP/freshbase-tokens.txt" || die "base: warden token --count $need failed"
  issued=$(split_tokens freshbase)
  say "issued $issued distinct tokens in $(($(date +%s) - t0)) s"
fi
need=$(fresh_need hap)
say "signing $need distinct ES256 tokens for case 7"
t0=$(date +%s)
es256_tokens "$need" >"$TMP/hapfresh-tokens.txt" || die "signing $need ES256 tokens failed"
issued=$(split_tokens hapfresh)
say "signed $issued distinct ES256 tokens in $(($(date +%s) - t0)) s"

# Back to back, so that 3 and 7 share the machine's mood.
say "case 3: gateway, a fresh token per request"
measure_fresh fresh "$GW"
if [[ -n "$BASE_BIN" ]]; then
  say "case 3base: base binary's gateway, a fresh token per request"
  measure_fresh freshbase "$BASE_GW"
fi
say "case 7: haproxy jwt_verify, a fresh ES256 token per request"
measure_fresh hapfresh "$HAP"

# Case 5: one DPoP-bound token, a fresh proof per request (each proof is single use, so
# each request pays the proof's Ed25519 verification). Compare with case 2 (one bearer token).
warden keygen --out "$TMP/dpop.jwk" >/dev/null
DPOP_TOKEN=$(warden token --client-id "$AGENT" --key "$TMP/agent.jwk" --scope api:read --dpop-key "$TMP/dpop.jwk") \
  || die "DPoP-bound token failed"
proofs_needed=$(fresh_need cached)
say "making $proofs_needed DPoP proofs for case 5"
taskset -c 0 "$WARDEN_BIN" dpop-proof --key "$TMP/dpop.jwk" --url "$GW" --token "$DPOP_TOKEN" \
  --count "$proofs_needed" >"$TMP/proofs.txt" || die "warden dpop-proof failed"
warm_p=$((proofs_needed * WARMUP / (DURATION + WARMUP)))
head -n "$warm_p" "$TMP/proofs.txt" >"$TMP/proofs-warm.txt"
tail -n +"$((warm_p + 1))" "$TMP/proofs.txt" >"$TMP/proofs-run.txt"
say "case 5: gateway, DPoP-bound token, a fresh proof per request"
wait_quiet dpop
taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d"${WARMUP}s" -s "$ROOT/bench/dpop_proofs.lua" "$GW" \
  -- "$DPOP_TOKEN" "$TMP/proofs-warm.txt" >"$TMP/dpop-warm.out" 2>&1 || true
idle=$(idle_sample dpop)
before=$(cpu_sample)
taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$ROOT/bench/dpop_proofs.lua" "$GW" \
  -- "$DPOP_TOKEN" "$TMP/proofs-run.txt" >"$TMP/dpop.wrk" 2>&1 || die "wrk failed for dpop: $(tail -n 5 "$TMP/dpop.wrk")"
after=$(cpu_sample)
cpu_busy "$before" "$after" >"$TMP/dpop.cpu"
idle_check dpop "$idle" "$DURATION"
flag_errors dpop
dpop_note=$(grep '^dpop_proofs:' "$TMP/dpop.wrk" || true)
say "case 5 ${dpop_note#dpop_proofs: }"

say "case 4: nginx auth_request -> warden /authz -> upstream"
measure authz "http://127.0.0.1:$FRONT_PORT/api/x" -H "Authorization: Bearer $TOKEN"

say "one connection: cases 1, 1b, 2, 2b, 4, 6"
export C=1 D=$(((DURATION + 1) / 2))
measure plain-c1 "http://127.0.0.1:$PROXY_PORT/api/x" -H "Authorization: Bearer $TOKEN"
measure bare-c1 "http://127.0.0.1:$BARE_PORT/api/x" -H "Authorization: Bearer $TOKEN"
measure cached-c1 "$GW" -H "Authorization: Bearer $TOKEN"
measure nopolicy-c1 "http://127.0.0.1:$GW2_PORT/api/x" -H "Authorization: Bearer $TOKEN"
measure authz-c1 "http://127.0.0.1:$FRONT_PORT/api/x" -H "Authorization: Bearer $TOKEN"
measure hap-c1 "$HAP" -H "Authorization: Bearer $HAP_TOKEN"
unset C D

# ---- report ------------------------------------------------------------------------------
# `warden serve` puts its gateway's decisions in the chained audit log of its data directory.
audit_lines=$({ cat "$TMP/audit.jsonl" "$DATA/audit/audit.jsonl" 2>/dev/null || true; } | wc -l)
health=$(curl -s "http://127.0.0.1:$GW_OPS_PORT/healthz")
read -r rps1 p50_1 p99_1 < <(wrk_fields "$TMP/plain.wrk")
read -r rps1b p50_1b p99_1b < <(wrk_fields "$TMP/bare.wrk")
read -r rps2 p50_2 p99_2 < <(wrk_fields "$TMP/cached.wrk")
read -r rps3 p50_3 p99_3 < <(wrk_fields "$TMP/fresh.wrk")
read -r rps4 p50_4 p99_4 < <(wrk_fields "$TMP/authz.wrk")
read -r rps2b p50_2b p99_2b < <(wrk_fields "$TMP/nopolicy.wrk")
read -r rps2c p50_2c p99_2c < <(wrk_fields "$TMP/behaviour.wrk")
read -r rps5 p50_5 p99_5 < <(wrk_fields "$TMP/dpop.wrk")
read -r rps6 p50_6 p99_6 < <(wrk_fields "$TMP/hap.wrk")
read -r rps7 p50_7 p99_7 < <(wrk_fields "$TMP/hapfresh.wrk")
if [[ -n "$BASE_BIN" ]]; then
  read -r rps2base p50_2base p99_2base < <(wrk_fields "$TMP/cachedbase.wrk")
  read -r rps3base p50_3base p99_3base < <(wrk_fields "$TMP/freshbase.wrk")
  base_audit_lines=$({ cat "$TMP/audit-base.jsonl" "$BASE_DATA/audit/audit.jsonl" 2>/dev/null || true; } | wc -l)
fi

echo
echo "gateway benchmark: $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(wrk --version 2>&1 | head -n 1 | awk '{print "wrk " $2}'), warden $("$WARDEN_BIN" --version | awk '{print $NF}')"
echo "wrk -t1 -c$CONNECTIONS -d${DURATION}s --latency after a ${WARMUP}s warm-up; CPU 1: proxy under test; CPU 0: wrk + upstream nginx"
echo "gateway: audit on ($audit_lines entries written), policies: $POLICIES; 2b: a second gateway, no policies"
if [[ -n "$BASE_BIN" ]]; then
  echo "base (2base, 3base): $BASE_BIN, warden $("$BASE_BIN" --version | awk '{print $NF}'), its own warden serve, same config (audit on, $base_audit_lines entries written)"
fi
echo "haproxy $(haproxy -v | awk 'NR == 1 { print $3 }'), 1 thread: jwt_verify ES256 + alg/exp/nbf/iss/aud/scope checks; tokens: Warden EdDSA ${#TOKEN} bytes, ES256 ${#HAP_TOKEN} bytes"
echo
# `us_req NAME RPS`: CPU 1's busy time per request, in µs. CPU 1 holds only the proxy under
# test: its busy time per request is what a request costs.
us_req() {
  awk -v c="$(cut -d' ' -f2 "$TMP/$1.cpu")" -v r="$2" 'BEGIN { if (r > 0) printf "%.1f", c * 10000 / r; else print "-" }'
}
row() { # case rps p50 p99 cpufile
  local cpu ratio added us
  cpu=$(cat "$TMP/$5.cpu")
  ratio=$(awk -v a="$2" -v b="$rps1" 'BEGIN { printf "%.2fx", a / b }')
  added=$(awk -v a="$4" -v b="$p99_1" 'BEGIN { printf "%+.2f", a - b }')
  us=$(us_req "$5" "$2")
  printf '| %-44s | %9s | %8s | %8s | %8s | %10s | %5s%% | %5s%% | %7s |%s\n' "$1" "$2" "$3" "$4" "$ratio" "$added" \
    "$(cut -d' ' -f2 <<<"$cpu")" "$(cut -d' ' -f1 <<<"$cpu")" "$us" \
    "$([[ -e "$TMP/$5.non2xx" ]] && echo ' ERRORS (non-2xx or socket)!')$([[ -e "$TMP/$5.busy" ]] && echo " machine was busy ($(cat "$TMP/$5.busy")%)")$([[ -e "$TMP/$5.other" ]] && echo " idle warden used $(cat "$TMP/$5.other") ms CPU")"
}
# `ratio_row LABEL NEW BASE` (case names): NEW / BASE of req/s, p50, p99 and CPU us/request.
ratio_row() {
  local rn pn qn rb pb qb
  read -r rn pn qn < <(wrk_fields "$TMP/$2.wrk")
  read -r rb pb qb < <(wrk_fields "$TMP/$3.wrk")
  awk -v l="$1" -v rn="$rn" -v rb="$rb" -v pn="$pn" -v pb="$pb" -v qn="$qn" -v qb="$qb" \
    -v un="$(us_req "$2" "$rn")" -v ub="$(us_req "$3" "$rb")" '
    function r(a, b) { return (b > 0 ? sprintf("%.2fx", a / b) : "-") }
    BEGIN { printf "| %-44s | %9s | %8s | %8s | %8s | %10s | %6s | %6s | %7s |\n", l, r(rn, rb), r(pn, pb), r(qn, qb), "-", "-", "-", "-", r(un, ub) }'
}
printf '| %-44s | %9s | %8s | %8s | %8s | %10s | %6s | %6s | %7s |\n' case "req/s" "p50 ms" "p99 ms" "vs plain" "+p99 ms" "CPU 1" "CPU 0" "us/req"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..46})" ----------- ---------- ---------- ---------- ------------ -------- -------- ---------
row "1 nginx proxy (baseline)" "$rps1" "$p50_1" "$p99_1" plain
row "1b tokio + hyper proxy, no auth (stack floor)" "$rps1b" "$p50_1b" "$p99_1b" bare
row "2 warden gateway, one token (cache hits)" "$rps2" "$p50_2" "$p99_2" cached
row "2b the same without policies (audit on)" "$rps2b" "$p50_2b" "$p99_2b" nopolicy
row "2c 2b with behavioural telemetry on" "$rps2c" "$p50_2c" "$p99_2c" behaviour
if [[ -n "$BASE_BIN" ]]; then
  row "2base as 2, base binary (BASE_BIN)" "$rps2base" "$p50_2base" "$p99_2base" cachedbase
  ratio_row "2 / 2base (new / base)" cached cachedbase
fi
row "3 warden gateway, fresh token per request" "$rps3" "$p50_3" "$p99_3" fresh
if [[ -n "$BASE_BIN" ]]; then
  row "3base as 3, base binary (BASE_BIN)" "$rps3base" "$p50_3base" "$p99_3base" freshbase
  ratio_row "3 / 3base (new / base)" fresh freshbase
fi
row "4 nginx auth_request -> warden /authz" "$rps4" "$p50_4" "$p99_4" authz
row "5 warden gateway, DPoP token, fresh proof" "$rps5" "$p50_5" "$p99_5" dpop
row "6 haproxy jwt_verify, one ES256 token" "$rps6" "$p50_6" "$p99_6" hap
row "7 haproxy jwt_verify, fresh ES256 token" "$rps7" "$p50_7" "$p99_7" hapfresh
echo
echo "cases 1 to 2c and 6: the median of $ROUNDS interleaved rounds; every round's req/s, sorted: 1 $(cat "$TMP/plain.spread"); 1b $(cat "$TMP/bare.spread"); 2 $(cat "$TMP/cached.spread"); 2b $(cat "$TMP/nopolicy.spread"); 2c $(cat "$TMP/behaviour.spread"); 6 $(cat "$TMP/hap.spread")${BASE_BIN:+; 2base $(cat "$TMP/cachedbase.spread")}"
echo
echo "one connection (-c1 -d$(((DURATION + 1) / 2))s): latency without queueing"
echo
read -r _ l50_1 l99_1 < <(wrk_fields "$TMP/plain-c1.wrk")
printf '| %-44s | %9s | %8s | %8s | %10s | %10s |\n' case "req/s" "p50 ms" "p99 ms" "+p50 ms" "+p99 ms"
printf '|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..46})" ----------- ---------- ---------- ------------ ------------
for pair in "1 nginx proxy (baseline):plain-c1" "1b tokio + hyper proxy, no auth:bare-c1" "2 warden gateway, one token (cache hits):cached-c1" \
  "2b the same without policies (audit on):nopolicy-c1" "4 nginx auth_request -> warden /authz:authz-c1" \
  "6 haproxy jwt_verify, one ES256 token:hap-c1"; do
  read -r r l50 l99 < <(wrk_fields "$TMP/${pair##*:}.wrk")
  printf '| %-44s | %9s | %8s | %8s | %10s | %10s |%s\n' "${pair%%:*}" "$r" "$l50" "$l99" \
    "$(awk -v a="$l50" -v b="$l50_1" 'BEGIN { printf "%+.3f", a - b }')" \
    "$(awk -v a="$l99" -v b="$l99_1" 'BEGIN { printf "%+.3f", a - b }')" \
    "$([[ -e "$TMP/${pair##*:}.non2xx" ]] && echo ' ERRORS (non-2xx or socket)!')$([[ -e "$TMP/${pair##*:}.busy" ]] && echo " machine was busy")"
done
read -r _ _ l99_2 < <(wrk_fields "$TMP/cached-c1.wrk")
echo
awk -v r1="$rps1" -v r1b="$rps1b" -v r2="$rps2" -v r3="$rps3" -v r4="$rps4" -v r2b="$rps2b" -v r2c="$rps2c" -v r5="$rps5" -v q1="$p99_1" -v q2="$p99_2" -v q4="$p99_4" -v m2="$p50_2" -v m4="$p50_4" \
  -v l1="$l99_1" -v l2="$l99_2" -v c="$CONNECTIONS" 'BEGIN {
  t2 = r2 / r1; a2 = q2 - q1; t3 = r3 / r1
  printf "target cache hit >= 0.90x plain: %.2fx %s\n", t2, (t2 >= 0.9 ? "met" : "MISSED")
  printf "target cache hit <= 1 ms added p99: %+.2f ms at %d connections %s; %+.3f ms over one connection %s\n", a2, c, (a2 <= 1 ? "met" : "MISSED"), l2 - l1, (l2 - l1 <= 1 ? "met" : "MISSED")
  printf "target fresh token >= 0.50x plain: %.2fx %s\n", t3, (t3 >= 0.5 ? "met" : "MISSED")
  printf "the HTTP stack alone vs nginx (case 1b vs 1): %.2fx; Warden on that stack (case 2 vs 1b): %.2fx\n", r1b / r1, r2 / r1b
  printf "auth_request pattern vs gateway (case 4 vs 2): %.2fx throughput, %+.2f ms p50, %+.2f ms p99\n", r4 / r2, m4 - m2, q4 - q2
  printf "target behaviour on >= 0.95x off (case 2c vs 2b): %.2fx %s\n", r2c / r2b, (r2c / r2b >= 0.95 ? "met" : "MISSED")
  printf "DPoP on vs off (case 5 vs 2): %.2fx throughput\n", r5 / r2
}'
# Warden vs HAProxy: req/s ratio (> 1: Warden serves more) and CPU per request ratio (< 1:
# Warden spends less); Warden verifies EdDSA, HAProxy ES256.
versus() { # label warden-name warden-rps haproxy-name haproxy-rps
  local uw uh
  uw=$(us_req "$2" "$3")
  uh=$(us_req "$4" "$5")
  awk -v l="$1" -v rw="$3" -v rh="$5" -v uw="$uw" -v uh="$uh" 'BEGIN {
    printf "%s: %.2fx req/s (%d vs %d), %.2fx CPU us/request (%.1f vs %.1f us)\n", l, (rh > 0 ? rw / rh : 0), rw, rh, (uh > 0 ? uw / uh : 0), uw, uh
  }'
}
versus "warden reused (2) vs haproxy reused (6)" cached "$rps2" hap "$rps6"
versus "warden fresh (3) vs haproxy fresh (7)" fresh "$rps3" hapfresh "$rps7"
echo "case 3 tokens: $(cat "$TMP/fresh.note"); case 7 tokens: $(cat "$TMP/hapfresh.note")"
if [[ -n "$BASE_BIN" ]]; then
  # What Warden adds over its bare HTTP stack, in CPU 1 us/request, this build vs the base.
  over_bare() { # name rps
    awk -v a="$(us_req "$1" "$2")" -v b="$(us_req bare "$rps1b")" 'BEGIN { printf "%.1f", a - b }'
  }
  echo "case 3base tokens: $(cat "$TMP/freshbase.note")"
  echo "case 2 - case 1b: $(over_bare cached "$rps2") µs (base: $(over_bare cachedbase "$rps2base") µs)"
  echo "case 3 - case 1b: $(over_bare fresh "$rps3") µs (base: $(over_bare freshbase "$rps3base") µs)"
fi
echo "gateway health after the run: $health"
if [[ "$PERF" == 1 ]]; then
  cat "$TMP/perf-cached.txt" "$TMP/perf-fresh.txt"
fi
