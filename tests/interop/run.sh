#!/usr/bin/env bash
# Interop suite: real third-party OAuth/JOSE clients against a running Warden.
#
#   bash tests/interop/run.sh            # from any directory
#
# WARDEN_BIN            warden binary (default target/release/warden if it
#                       exists, else target/debug/warden)
# WARDEN_INTEROP_CACHE  keep the Python venv and node_modules in this directory
#                       and reuse them on later runs (default: throwaway)
#
# Needs python3 (with venv), node >= 20 and npm, and access to PyPI and npm.
# Prints `interop: N passed, M failed` last; exits 1 if anything failed.
set -euo pipefail

# Resolve WARDEN_BIN against the caller's directory before moving to the repo.
if [[ -n "${WARDEN_BIN:-}" && "$WARDEN_BIN" != /* ]]; then
  WARDEN_BIN="$PWD/$WARDEN_BIN"
fi
cd "$(dirname "$0")/../.."
ROOT=$PWD
HERE=$ROOT/tests/interop

if [[ -z "${WARDEN_BIN:-}" ]]; then
  if [[ -x target/release/warden ]]; then
    WARDEN_BIN=$ROOT/target/release/warden
  else
    WARDEN_BIN=$ROOT/target/debug/warden
  fi
fi
if [[ ! -x "$WARDEN_BIN" ]]; then
  echo "interop: no warden binary at $WARDEN_BIN (run: cargo build -p warden)" >&2
  exit 2
fi

source "$ROOT/tests/lib/deps.sh"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/warden-interop.XXXXXX")
SERVER_PID=
stop_server() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=
}
cleanup() {
  local rc=$?
  stop_server
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Loopback traffic must never go through a proxy.
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"
export no_proxy="$NO_PROXY"

server_log() {
  echo "---- warden server log (last 60 lines) ----" >&2
  sed 's/\x1b\[[0-9;]*m//g' "$TMP/server.log" 2>/dev/null | tail -n 60 >&2 || true
  echo "-------------------------------------------" >&2
}
die() {
  echo "interop: $*" >&2
  [[ -n "$SERVER_PID" ]] && server_log
  exit 1
}

# ---- client libraries ----------------------------------------------------
deps_dir "$TMP"
python_venv interop
node_modules interop

"$PY" - <<'PYEOF'
import importlib.metadata as m, sys
names = ["PyJWT", "Authlib", "joserfc", "cryptography", "requests"]
print("interop: python " + sys.version.split()[0] + ", " + ", ".join(f"{n} {m.version(n)}" for n in names))
PYEOF
(cd "$NODE_DIR" && node -e '
  const v = (p) => require(`./node_modules/${p}/package.json`).version
  console.log(`interop: node ${process.versions.node}, openid-client ${v("openid-client")}, oauth4webapi ${v("oauth4webapi")}, jose ${v("jose")}`)
')

# ---- the server ------------------------------------------------------------
DATA=$TMP/data
"$WARDEN_BIN" serve --data-dir "$DATA" --listen 127.0.0.1:0 --ops-listen 127.0.0.1:0 >"$TMP/server.log" 2>&1 &
SERVER_PID=$!

json_field() { "$PY" -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

AUTHORITY_URL=
for _ in $(seq 100); do
  if [[ -s "$DATA/server.json" ]] &&
    AUTHORITY_URL=$(json_field authority_url <"$DATA/server.json" 2>/dev/null); then
    break
  fi
  AUTHORITY_URL=
  kill -0 "$SERVER_PID" 2>/dev/null || die "warden serve exited during startup"
  sleep 0.1
done
[[ -n "$AUTHORITY_URL" ]] || die "warden serve did not write $DATA/server.json within 10 s"
echo "interop: warden $("$WARDEN_BIN" --version | awk '{print $NF}') serving on $AUTHORITY_URL"

# ---- state: a tenant and one agent per client ------------------------------
warden() { "$WARDEN_BIN" "$@" --data-dir "$DATA"; }

warden tenant create interop --json >"$TMP/tenant.json" || die "tenant create failed"
TENANT_ID=$(json_field id <"$TMP/tenant.json")

declare -A CLIENT_IDS
for name in pyjwt-authlib node; do
  warden keygen --out "$TMP/$name.jwk" >/dev/null || die "keygen for $name failed"
  warden principal create --tenant interop --kind agent --name "$name" \
    --scopes "crm:contacts:read email:send" --public-key "$TMP/$name.jwk.pub" --json \
    >"$TMP/$name.principal.json" || die "principal create for $name failed"
  CLIENT_IDS[$name]=$(json_field id <"$TMP/$name.principal.json")
done
echo "interop: tenant $TENANT_ID, agents ${CLIENT_IDS[pyjwt-authlib]} (python), ${CLIENT_IDS[node]} (node)"

# ---- the clients -------------------------------------------------------------
PASSED=0
FAILED=0
run_suite() { # name, command...
  local name=$1 rc=0 ok bad
  shift
  "$@" | tee "$TMP/$name.out" || rc=$?
  ok=$(grep -c '^ok ' "$TMP/$name.out" || true)
  bad=$(grep -c '^FAIL ' "$TMP/$name.out" || true)
  if [[ "$rc" -ne 0 && "$bad" -eq 0 ]]; then
    echo "FAIL $name: exited with status $rc without reporting a failed check"
    bad=1
  elif [[ "$ok" -eq 0 && "$bad" -eq 0 ]]; then
    echo "FAIL $name: reported no check"
    bad=1
  fi
  PASSED=$((PASSED + ok))
  FAILED=$((FAILED + bad))
}

AUTHORITY_URL=$AUTHORITY_URL CLIENT_ID=${CLIENT_IDS[pyjwt-authlib]} KEY_FILE=$TMP/pyjwt-authlib.jwk \
  run_suite python "$PY" "$HERE/python/test_interop.py"

# ES module imports resolve packages next to the importing file.
cp "$HERE/node/test_interop.mjs" "$NODE_DIR/test_interop.mjs"
AUTHORITY_URL=$AUTHORITY_URL CLIENT_ID=${CLIENT_IDS[node]} KEY_FILE=$TMP/node.jwk \
  run_suite node node "$NODE_DIR/test_interop.mjs"

[[ "$FAILED" -eq 0 ]] || server_log
stop_server
echo "interop: $PASSED passed, $FAILED failed"
[[ "$FAILED" -eq 0 ]]
