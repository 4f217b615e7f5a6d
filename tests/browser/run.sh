#!/usr/bin/env bash
# Browser suite: people's pages in a real Chromium (Debian's `chromium`, driven by
# `playwright-core` from npm), against a running `warden serve`.
#
#   bash tests/browser/run.sh            # from any directory
#
# WARDEN_BIN            warden binary (default target/release/warden if it exists, else
#                       target/debug/warden)
# WARDEN_INTEROP_CACHE  keep node_modules in this directory and reuse it (default: throwaway)
# SHOTS_DIR             keep each page's screenshot here (default: thrown away with the run)
#
# Installs chromium from Debian's packages when /usr/bin/chromium is missing. Prints
# `browser: N passed, M failed` last; exits 1 if anything failed.
set -euo pipefail

if [[ -n "${WARDEN_BIN:-}" && "$WARDEN_BIN" != /* ]]; then
  WARDEN_BIN="$PWD/$WARDEN_BIN"
fi
cd "$(dirname "$0")/../.."
ROOT=$PWD
if [[ -z "${WARDEN_BIN:-}" ]]; then
  if [[ -x target/release/warden ]]; then
    WARDEN_BIN=$ROOT/target/release/warden
  else
    WARDEN_BIN=$ROOT/target/debug/warden
  fi
fi
[[ -x "$WARDEN_BIN" ]] || { echo "browser: no warden binary at $WARDEN_BIN" >&2; exit 2; }

if [[ ! -x /usr/bin/chromium ]]; then
  echo "browser: installing chromium from Debian packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi

source "$ROOT/tests/lib/deps.sh"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/warden-browser.XXXXXX")
SERVER_PID=
cleanup() {
  local rc=$?
  if [[ -n "$SERVER_PID" ]]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"
export no_proxy="$NO_PROXY"

deps_dir "$TMP"
node_modules browser

DATA=$TMP/data
"$WARDEN_BIN" serve --data-dir "$DATA" --listen 127.0.0.1:0 --ops-listen 127.0.0.1:0 >"$TMP/warden.log" 2>&1 &
SERVER_PID=$!
# The server is up for the CLI once it has written server.json.
URL=
for _ in $(seq 300); do
  if [[ -s "$DATA/server.json" ]]; then
    URL=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["authority_url"])' "$DATA/server.json" 2>/dev/null || true)
    [[ -n "$URL" ]] && curl -s -o /dev/null --max-time 1 "$URL/healthz" && break
  fi
  URL=
  sleep 0.1
done
[[ -n "$URL" ]] || { echo "FAIL browser: warden serve did not start"; tail -n 30 "$TMP/warden.log"; echo "browser: 0 passed, 1 failed"; exit 1; }
warden() { "$WARDEN_BIN" "$@" --data-dir "$DATA"; }
warden tenant create acme --json >/dev/null
INVITE_ANN=$(warden user invite --tenant acme --name ann)
INVITE_BOB=$(warden user invite --tenant acme --name bob)

cp "$ROOT/tests/browser/people.mjs" "$NODE_DIR/people.mjs"
SHOTS=${SHOTS_DIR:-$TMP/shots}
mkdir -p "$SHOTS"
set +e
AUTHORITY_URL=$URL INVITE_ANN=$INVITE_ANN INVITE_BOB=$INVITE_BOB SHOTS=$SHOTS \
  node "$NODE_DIR/people.mjs" | tee "$TMP/out.txt"
rc=${PIPESTATUS[0]}
set -e
PASSED=$(grep -c '^ok ' "$TMP/out.txt" || true)
FAILED=$(grep -c '^FAIL ' "$TMP/out.txt" || true)
if [[ "$rc" -ne 0 && "$FAILED" -eq 0 ]]; then
  echo "FAIL browser: exited with status $rc without reporting a failed check"
  FAILED=1
fi
if [[ "$FAILED" -ne 0 ]]; then
  echo "---- warden log (last 30 lines) ----"
  tail -n 30 "$TMP/warden.log"
fi
echo "browser: $PASSED passed, $FAILED failed"
[[ "$FAILED" -eq 0 ]]
