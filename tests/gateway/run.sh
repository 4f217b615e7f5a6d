#!/usr/bin/env bash
# Gateway end to end: `warden serve --config` with a real route, an upstream in another
# language that verifies the internal token with a stock JWT library (Python, PyJWT), and
# nginx in front using `auth_request` against Warden's forward-auth endpoint (`/authz`).
#
#   bash tests/gateway/run.sh            # from any directory
#
# WARDEN_BIN            warden binary (default target/release/warden if it
#                       exists, else target/debug/warden)
# WARDEN_INTEROP_CACHE  keep the Python venv in this directory and reuse it on
#                       later runs (the same venv as tests/interop; default: throwaway)
#
# Needs python3 (with venv), curl, access to PyPI, and nginx with the auth_request module:
# installed from Debian's packages (apt-get) when `nginx` is missing. nginx runs as a child
# of this script, in a temporary prefix, never as the system service.
# Prints `gateway: N passed, M failed` last; exits 1 if anything failed.
set -euo pipefail

# Resolve WARDEN_BIN against the caller's directory before moving to the repo.
if [[ -n "${WARDEN_BIN:-}" && "$WARDEN_BIN" != /* ]]; then
  WARDEN_BIN="$PWD/$WARDEN_BIN"
fi
cd "$(dirname "$0")/../.."
ROOT=$PWD
HERE=$ROOT/tests/gateway

if [[ -z "${WARDEN_BIN:-}" ]]; then
  if [[ -x target/release/warden ]]; then
    WARDEN_BIN=$ROOT/target/release/warden
  else
    WARDEN_BIN=$ROOT/target/debug/warden
  fi
fi
if [[ ! -x "$WARDEN_BIN" ]]; then
  echo "gateway: no warden binary at $WARDEN_BIN (run: cargo build -p warden)" >&2
  exit 2
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/warden-gateway.XXXXXX")
SERVER_PID=
UPSTREAM_PID=
NGINX_PID=
stop() { # pid variable name
  local pid=${!1}
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  printf -v "$1" '%s' ""
}
stop_all() {
  stop NGINX_PID
  stop UPSTREAM_PID
  stop SERVER_PID
}
cleanup() {
  local rc=$?
  stop_all
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Loopback traffic must never go through a proxy.
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"
export no_proxy="$NO_PROXY"

logs() {
  local name file
  for name in server upstream nginx-error; do
    file=$TMP/$name.log
    [[ -s "$file" ]] || continue
    echo "---- $name log (last 40 lines) ----" >&2
    sed 's/\x1b\[[0-9;]*m//g' "$file" | tail -n 40 >&2 || true
  done
  echo "-----------------------------------" >&2
}
die() {
  echo "gateway: $*" >&2
  logs
  exit 1
}

# ---- nginx -------------------------------------------------------------------
if ! command -v nginx >/dev/null; then
  echo "gateway: installing nginx from Debian packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  pkg=nginx-light
  apt-cache show "$pkg" >/dev/null 2>&1 || pkg=nginx
  apt-get install -y -qq "$pkg" >/dev/null
fi
NGINX=$(command -v nginx) || die "nginx is not installed"
"$NGINX" -V 2>&1 | grep -q -- --with-http_auth_request_module ||
  die "$NGINX lacks the auth_request module"

# ---- Python: the same throwaway (or cached) venv as tests/interop ---------------
source "$ROOT/tests/lib/deps.sh"
deps_dir "$TMP"
python_venv gateway
echo "gateway: python $("$PY" -c 'import sys; print(sys.version.split()[0])'), PyJWT $("$PY" -c 'import jwt; print(jwt.__version__)'), $("$NGINX" -v 2>&1 | sed 's/^nginx version: //')"

# `jget FILE EXPR`: evaluates a Python expression over the JSON document `d` in FILE.
jget() { "$PY" -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

# Free loopback ports, taken at once so they differ: gateway, upstream, two nginx servers,
# the gateway's ops listener.
read -r GW_PORT UP_PORT NGINX_PORT NAIVE_PORT GW_OPS_PORT < <("$PY" -c '
import socket
socks = [socket.socket() for _ in range(5)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
GATEWAY_URL=http://127.0.0.1:$GW_PORT
GATEWAY_OPS_URL=http://127.0.0.1:$GW_OPS_PORT
UPSTREAM_URL=http://127.0.0.1:$UP_PORT
NGINX_URL=http://127.0.0.1:$NGINX_PORT
NAIVE_URL=http://127.0.0.1:$NAIVE_PORT

# Waits until URL answers anything over HTTP (any status) while PID lives.
wait_http() { # name pid url
  local _
  for _ in $(seq 100); do
    if curl -s -o /dev/null --max-time 1 "$3"; then return 0; fi
    kill -0 "$2" 2>/dev/null || die "$1 exited during startup"
    sleep 0.1
  done
  die "$1 did not answer on $3 within 10 s"
}

# ---- warden serve: authority + gateway --------------------------------------------
DATA=$TMP/data
cat >"$TMP/warden.toml" <<EOF
[gateway]
audience = "warden"
upstream_timeout_ms = 5000
# nginx calls /authz from loopback; forward auth answers only trusted proxies.
trusted_proxies = ["127.0.0.1/32"]
forward_auth = "nginx"

[[gateway.route]]
prefix = "/crm/"
upstream = "$UPSTREAM_URL"
audience = "crm"
[gateway.route.scopes]
GET = "crm:contacts:read"
POST = "crm:contacts:write"

# The same service's admin API, behind a stronger scope.
[[gateway.route]]
prefix = "/crm/admin/"
upstream = "$UPSTREAM_URL"
audience = "crm"
[gateway.route.scopes]
GET = "crm:admin:read"
EOF
"$WARDEN_BIN" serve --data-dir "$DATA" --listen 127.0.0.1:0 --ops-listen 127.0.0.1:0 \
  --config "$TMP/warden.toml" --gateway-listen "127.0.0.1:$GW_PORT" \
  --gateway-ops-listen "127.0.0.1:$GW_OPS_PORT" >"$TMP/server.log" 2>&1 &
SERVER_PID=$!

AUTHORITY_URL=
for _ in $(seq 100); do
  if [[ -s "$DATA/server.json" ]] && AUTHORITY_URL=$(jget "$DATA/server.json" 'd["authority_url"]' 2>/dev/null); then
    break
  fi
  AUTHORITY_URL=
  kill -0 "$SERVER_PID" 2>/dev/null || die "warden serve exited during startup"
  sleep 0.1
done
[[ -n "$AUTHORITY_URL" ]] || die "warden serve did not write $DATA/server.json within 10 s"
# server.json is written before the gateway has registered its key and bound its port.
wait_http "the gateway" "$SERVER_PID" "$GATEWAY_OPS_URL/healthz"
# The ops endpoints are on their own listener; on the public one /metrics is a path like any.
[[ $(curl -s -o /dev/null -w '%{http_code}' "$GATEWAY_OPS_URL/metrics") == 200 ]] ||
  die "the gateway's ops listener does not serve /metrics"
curl -s "$GATEWAY_URL/metrics" | grep -q warden_gateway_ && die "the public gateway port serves /metrics"
echo "gateway: warden $("$WARDEN_BIN" --version | awk '{print $NF}'): authority $AUTHORITY_URL, gateway $GATEWAY_URL"

# ---- the Python upstream ------------------------------------------------------------
"$PY" "$HERE/upstream.py" "$UP_PORT" "$AUTHORITY_URL" crm >"$TMP/upstream.log" 2>&1 &
UPSTREAM_PID=$!
wait_http "the upstream" "$UPSTREAM_PID" "$UPSTREAM_URL/"

# ---- state: a tenant, an agent, tokens ------------------------------------------------
warden() { "$WARDEN_BIN" "$@" --data-dir "$DATA"; }
warden tenant create gwtest --json >"$TMP/tenant.json" || die "tenant create failed"
warden keygen --out "$TMP/agent.jwk" >/dev/null || die "keygen failed"
warden principal create --tenant gwtest --kind agent --name crm-bot \
  --scopes "crm:contacts:read crm:contacts:write" --public-key "$TMP/agent.jwk.pub" --json \
  >"$TMP/agent.json" || die "principal create failed"
AGENT=$(jget "$TMP/agent.json" 'd["id"]')
READ=$(warden token --client-id "$AGENT" --key "$TMP/agent.jwk" --scope crm:contacts:read) ||
  die "token (read) failed"
WRITE=$(warden token --client-id "$AGENT" --key "$TMP/agent.jwk" --scope crm:contacts:write) ||
  die "token (write) failed"
echo "gateway: agent $AGENT"

# ---- checks --------------------------------------------------------------------------
PASSED=0
FAILED=0
check() { # name, command...
  local name=$1
  shift
  if "$@"; then
    echo "ok $name"
    PASSED=$((PASSED + 1))
  else
    echo "FAIL $name"
    FAILED=$((FAILED + 1))
  fi
}
# `req OUT METHOD URL [curl args...]`: body to $TMP/OUT.json, status to $TMP/OUT.status.
req() {
  local out=$TMP/$1 method=$2 url=$3
  shift 3
  curl -s -o "$out.json" -D "$out.headers" -w '%{http_code}' --max-time 10 -X "$method" "$@" "$url" \
    >"$out.status" 2>/dev/null || true
}
status_not() { # out unexpected
  local got
  got=$(cat "$TMP/$1.status" 2>/dev/null)
  [[ -n "$got" && "$got" != "$2" ]] || { echo "  $1: status ${got:-none}" >&2; return 1; }
}
# Refused, or at least not something the upstream routes under PREFIX.
not_routed_under() { # out prefix
  local got routed
  got=$(cat "$TMP/$1.status" 2>/dev/null)
  [[ "$got" == 200 ]] || return 0
  routed=$(jget "$TMP/$1.json" 'd["routed_path"]' 2>/dev/null) || routed="(no JSON)"
  [[ "$routed/" != "$2"* ]] || { echo "  $1: 200, and the upstream routes it as $routed" >&2; return 1; }
}
status_is() { # out expected
  local got
  got=$(cat "$TMP/$1.status" 2>/dev/null)
  [[ "$got" == "$2" ]] || { echo "  $1: status ${got:-none}, expected $2" >&2; return 1; }
}
# The upstream's verdict in OUT: verified, and sub/aud/scope as expected.
upstream_verified() { # out scope
  local f=$TMP/$1.json v
  v=$(jget "$f" '(d.get("verified"), d.get("sub"), d.get("aud"), d.get("scope"))' 2>/dev/null) || v="(no JSON)"
  [[ "$v" == "(True, '$AGENT', 'crm', '$2')" ]] ||
    { echo "  $1: upstream saw (verified, sub, aud, scope) = $v" >&2; return 1; }
}
# What reached the upstream: not the external token, none of the forged identity headers.
external_token_hidden() { # out external-token
  local auth
  auth=$(jget "$TMP/$1.json" 'd["headers"].get("authorization", "")' 2>/dev/null) || auth=
  [[ -n "$auth" && "$auth" != *"$2"* ]] || { echo "  $1: upstream got Authorization: ${auth:0:40}…" >&2; return 1; }
}
header_absent() { # out header-name
  local v
  v=$(jget "$TMP/$1.json" "d['headers'].get('$2')" 2>/dev/null) || v="(no JSON)"
  [[ "$v" == "None" ]] || { echo "  $1: upstream saw $2: $v" >&2; return 1; }
}
has_header() { # out header-name
  grep -qi "^$2:" "$TMP/$1.headers" 2>/dev/null || { echo "  $1: no $2 header" >&2; return 1; }
}

# Through the in-process gateway.
req gw_get GET "$GATEWAY_URL/crm/contacts?id=7" -H "Authorization: Bearer $READ" \
  -H "X-Forwarded-User: admin" -H "X-Warden-Subject: usr_forged" -H "Remote-User: admin"
check "gateway: GET with a read token -> 200" status_is gw_get 200
check "gateway: upstream verified the internal token with PyJWT (sub, aud crm, scope crm:contacts:read)" \
  upstream_verified gw_get crm:contacts:read
check "gateway: the external token did not reach the upstream" external_token_hidden gw_get "$READ"
check "gateway: forged X-Forwarded-User did not reach the upstream" header_absent gw_get x-forwarded-user
check "gateway: forged X-Warden-Subject did not reach the upstream" header_absent gw_get x-warden-subject
check "gateway: forged Remote-User did not reach the upstream" header_absent gw_get remote-user

req gw_post_read POST "$GATEWAY_URL/crm/contacts" -H "Authorization: Bearer $READ" --data '{"name":"x"}'
check "gateway: POST with a read token -> 403" status_is gw_post_read 403
req gw_post_write POST "$GATEWAY_URL/crm/contacts" -H "Authorization: Bearer $WRITE" --data '{"name":"x"}'
check "gateway: POST with a write token -> 200" status_is gw_post_write 200
check "gateway: upstream verified the internal token (scope crm:contacts:write)" \
  upstream_verified gw_post_write crm:contacts:write
req gw_none GET "$GATEWAY_URL/crm/contacts"
check "gateway: no token -> 401" status_is gw_none 401
check "gateway: 401 carries WWW-Authenticate" has_header gw_none www-authenticate

INTERNAL=$(jget "$TMP/gw_get.json" 'd["headers"]["authorization"].split(" ", 1)[1]' 2>/dev/null || true)
req gw_replay GET "$GATEWAY_URL/crm/contacts" -H "Authorization: Bearer ${INTERNAL:-none}"
check "gateway: the internal token presented back at the gateway -> 401" status_is gw_replay 401
req up_external GET "$UPSTREAM_URL/crm/contacts" -H "Authorization: Bearer $READ"
check "upstream: the external token sent straight to it is refused (aud warden) -> 401" \
  status_is up_external 401

req gw_admin GET "$GATEWAY_URL/crm/admin/users" -H "Authorization: Bearer $READ"
check "gateway: GET /crm/admin/users with only crm:contacts:read -> 403" status_is gw_admin 403
req gw_dots GET "$GATEWAY_URL/crm/contacts/../admin/users" --path-as-is -H "Authorization: Bearer $READ"
check "gateway: /crm/contacts/../admin/users with a read token does not reach /crm/admin/" \
  not_routed_under gw_dots /crm/admin/
req gw_dots_enc GET "$GATEWAY_URL/crm/contacts/%2e%2e/admin/users" --path-as-is -H "Authorization: Bearer $READ"
check "gateway: /crm/contacts/%2e%2e/admin/users with a read token does not reach /crm/admin/" \
  not_routed_under gw_dots_enc /crm/admin/

# ---- nginx auth_request -> /authz --------------------------------------------------------
# Two servers: NGINX_PORT as it should be deployed; NAIVE_PORT with only the usual
# auth_request lines (it does not clear X-Forwarded-Method/-Uri).
server_block() { # port, extra lines for /_warden
  cat <<EOF
  server {
    listen 127.0.0.1:$1;

    location /crm/ {
      auth_request /_warden;
      auth_request_set \$warden_auth \$upstream_http_x_warden_authorization;
      proxy_set_header Authorization \$warden_auth;
      proxy_pass $UPSTREAM_URL;
    }

    location = /_warden {
      internal;
      proxy_pass $GATEWAY_URL/authz;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI \$request_uri;
      proxy_set_header X-Original-Method \$request_method;
$2
    }
  }
EOF
}
HARDENING='      # Warden also reads Traefik'"'"'s X-Forwarded-Method/-Uri, and prefers them to
      # X-Original-*: a client must not be able to send its own.
      proxy_set_header X-Forwarded-Method "";
      proxy_set_header X-Forwarded-Uri "";'
mkdir -p "$TMP/nginx"
cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
user root;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx-error.log info;
events { worker_connections 256; }
http {
  access_log $TMP/nginx/access.log;
  client_body_temp_path $TMP/nginx/body;
  proxy_temp_path $TMP/nginx/proxy;
  fastcgi_temp_path $TMP/nginx/fastcgi;
  uwsgi_temp_path $TMP/nginx/uwsgi;
  scgi_temp_path $TMP/nginx/scgi;

$(server_block "$NGINX_PORT" "$HARDENING")
$(server_block "$NAIVE_PORT" "")
}
EOF
"$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx-error.log" -t >"$TMP/nginx-t.log" 2>&1 ||
  { cat "$TMP/nginx-t.log" >&2; die "nginx -t refused the configuration"; }
"$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx-error.log" 2>>"$TMP/nginx-error.log" &
NGINX_PID=$!
wait_http nginx "$NGINX_PID" "$NGINX_URL/"
wait_http nginx "$NGINX_PID" "$NAIVE_URL/"

req ng_get GET "$NGINX_URL/crm/contacts?id=7" -H "Authorization: Bearer $READ"
check "nginx: GET with a read token -> 200" status_is ng_get 200
check "nginx: upstream verified the internal token from /authz (sub, aud crm, scope crm:contacts:read)" \
  upstream_verified ng_get crm:contacts:read
check "nginx: the external token did not reach the upstream" external_token_hidden ng_get "$READ"
req ng_none GET "$NGINX_URL/crm/contacts"
check "nginx: no token -> 401" status_is ng_none 401
req ng_post_read POST "$NGINX_URL/crm/contacts" -H "Authorization: Bearer $READ" --data '{"name":"x"}'
check "nginx: POST with a read token -> 403" status_is ng_post_read 403
req ng_post_write POST "$NGINX_URL/crm/contacts" -H "Authorization: Bearer $WRITE" --data '{"name":"x"}'
check "nginx: POST with a write token -> 200" status_is ng_post_write 200
check "nginx: upstream verified the internal token (scope crm:contacts:write)" \
  upstream_verified ng_post_write crm:contacts:write
req ng_spoof POST "$NGINX_URL/crm/contacts" -H "Authorization: Bearer $READ" \
  -H "X-Forwarded-Method: GET" -H "X-Forwarded-Uri: /crm/contacts" --data '{"name":"x"}'
check "nginx: POST with a read token and a forged X-Forwarded-Method: GET -> 403" status_is ng_spoof 403
req ng_admin GET "$NGINX_URL/crm/admin/users" -H "Authorization: Bearer $READ"
check "nginx: GET /crm/admin/users with only crm:contacts:read -> 403" status_is ng_admin 403
req ng_dots GET "$NGINX_URL/crm/contacts/../admin/users" --path-as-is -H "Authorization: Bearer $READ"
check "nginx: /crm/contacts/../admin/users with a read token does not reach /crm/admin/" \
  not_routed_under ng_dots /crm/admin/
req ng_put PUT "$NGINX_URL/crm/contacts" -H "Authorization: Bearer $READ" --data '{}'
check "nginx: PUT, a method the route does not list -> a 4xx, not 500" \
  status_not ng_put 500
req naive_spoof POST "$NAIVE_URL/crm/contacts" -H "Authorization: Bearer $READ" \
  -H "X-Forwarded-Method: GET" --data '{"name":"x"}'
check "nginx with the usual auth_request lines: POST with a read token and a forged X-Forwarded-Method: GET -> 403" \
  status_is naive_spoof 403

[[ "$FAILED" -eq 0 ]] || logs
stop_all
echo "gateway: $PASSED passed, $FAILED failed"
[[ "$FAILED" -eq 0 ]]
