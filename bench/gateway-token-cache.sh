#!/usr/bin/env bash
# Fresh-token throughput of the gateway as its verified-token cache fills up:
#
#   bash bench/gateway-token-cache.sh     # from any directory; ~2 minutes
#
# A gateway without policies (audit on, `token_cache_entries` = CACHE, default 100000, the
# gateway's default) on CPU 1 in front of nginx `return 200` on CPU 0. TOKENS distinct
# tokens (default 250000) are issued first, then sent in chunks of CHUNK (default 25000),
# each token once, `wrk -t1 -c32 -d2s` per chunk; each line shows the chunk's rate and
# the cache size after it. A cache whose inserts stay cheap when full keeps the rate flat
# once `cached` reaches CACHE.
#
# Env: WARDEN_BIN (default target/release/warden, built if missing), TOKENS, CHUNK,
# CACHE, CHUNK_SECS (default 2: must be short enough that a chunk is not used up).
# Installs wrk and nginx from Debian's packages when missing. Stops everything it started.
set -euo pipefail

if [[ -n "${WARDEN_BIN:-}" && "$WARDEN_BIN" != /* ]]; then
  WARDEN_BIN="$PWD/$WARDEN_BIN"
fi
cd "$(dirname "$0")/.."
ROOT=$PWD
TOKENS=${TOKENS:-250000}
CHUNK=${CHUNK:-25000}
CACHE=${CACHE:-100000}
CHUNK_SECS=${CHUNK_SECS:-2}

say() { echo "bench: $*" >&2; }

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || missing+=(nginx)
if ((${#missing[@]})); then
  say "installing ${missing[*]} from Debian packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [[ -z "${WARDEN_BIN:-}" ]]; then
  WARDEN_BIN=$ROOT/target/release/warden
  [[ -x "$WARDEN_BIN" ]] || cargo build --release -p warden
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/warden-bench-cache.XXXXXX")
PIDS=()
cleanup() {
  local rc=$? pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"
export no_proxy="$NO_PROXY"

read -r UP_PORT GW_PORT < <(python3 -c '
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
  say "$1 did not answer on $2"
  tail -n 20 "$TMP"/*.log >&2 || true
  exit 1
}

mkdir -p "$TMP/nginx"
cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
user root;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  default_type text/plain;
  keepalive_requests 1000000;
  client_body_temp_path $TMP/nginx/body;
  proxy_temp_path $TMP/nginx/proxy;
  fastcgi_temp_path $TMP/nginx/fastcgi;
  uwsgi_temp_path $TMP/nginx/uwsgi;
  scgi_temp_path $TMP/nginx/scgi;
  server {
    listen 127.0.0.1:$UP_PORT backlog=4096;
    location / { return 200 "ok"; }
  }
}
EOF
taskset -c 0 nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx.log" 2>>"$TMP/nginx.log" &
PIDS+=($!)

DATA=$TMP/data
cat >"$TMP/warden.toml" <<EOF
[gateway]
audit_log = "$TMP/audit.jsonl"
token_cache_entries = $CACHE

[[gateway.route]]
prefix = "/api/"
upstream = "http://127.0.0.1:$UP_PORT"
audience = "api"
[gateway.route.scopes]
GET = "api:read"
EOF
taskset -c 1 "$WARDEN_BIN" serve --data-dir "$DATA" --listen 127.0.0.1:0 --config "$TMP/warden.toml" \
  --gateway-listen "127.0.0.1:$GW_PORT" >"$TMP/warden.log" 2>&1 &
PIDS+=($!)
wait_http nginx "http://127.0.0.1:$UP_PORT/"
wait_http "warden gateway" "http://127.0.0.1:$GW_PORT/healthz"

warden() { "$WARDEN_BIN" "$@" --data-dir "$DATA"; }
warden tenant create bench --json >/dev/null
warden keygen --out "$TMP/agent.jwk" >/dev/null
AGENT=$(warden principal create --tenant bench --kind agent --name loadgen --scopes api:read \
  --public-key "$TMP/agent.jwk.pub" --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
say "issuing $TOKENS tokens"
taskset -c 0 "$WARDEN_BIN" token --client-id "$AGENT" --key "$TMP/agent.jwk" --scope api:read \
  --count "$TOKENS" --data-dir "$DATA" >"$TMP/tokens.txt"
split -l "$CHUNK" -d -a 3 "$TMP/tokens.txt" "$TMP/chunk."

echo "token_cache_entries = $CACHE; wrk -t1 -c32 -d${CHUNK_SECS}s per chunk of $CHUNK fresh tokens"
printf '| %-5s | %9s | %9s | %9s |\n' chunk "req/s" "used" "cached"
printf '|%s|%s|%s|%s|\n' ------- ----------- ----------- -----------
i=0
for f in "$TMP"/chunk.*; do
  out=$(taskset -c 0 wrk -t1 -c32 -d"${CHUNK_SECS}s" -s "$ROOT/bench/fresh_tokens.lua" \
    "http://127.0.0.1:$GW_PORT/api/x" -- "$f" 2>&1)
  rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' <<<"$out")
  used=$(sed -nE 's/.* ([0-9]+) handed out, wrapped ([0-9]+) times/\1 \2/p' <<<"$out")
  cached=$(curl -s "http://127.0.0.1:$GW_PORT/healthz" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["verified_tokens_cached"])')
  printf '| %-5s | %9s | %9s | %9s |%s\n' "$i" "$rps" "${used% *}" "$cached" \
    "$([[ "${used#* }" != 0 ]] && echo ' chunk wrapped: lower CHUNK_SECS')$(grep -qE 'Non-2xx|Socket errors' <<<"$out" && echo ' ERRORS')"
  i=$((i + 1))
done
