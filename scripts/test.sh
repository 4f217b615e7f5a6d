#!/usr/bin/env bash
# Runs every test Warden has, on a fresh machine as on a developer's:
#   unit and integration tests of every crate (cargo test),
#   the end-to-end demo (`warden demo` must exit 0),
#   interop with real third-party clients (Python: PyJWT, Authlib; Node: openid-client, jose),
#   the gateway behind a real nginx (auth_request) in front of a Python upstream,
#   people's pages in a real Chromium (Debian's, driven by playwright-core).
# The store's conformance suite runs against SQLite and against a throwaway PostgreSQL
# (scripts/postgres.sh). A PostgreSQL test that finds no server fails, here as anywhere;
# only WARDEN_TEST_POSTGRES=skip, set by hand, skips them.
# Installs what it needs into throwaway directories; leaves nothing running.
set -euo pipefail
cd "$(dirname "$0")/.."

log=$(mktemp)
trap 'rm -f "$log"; if declare -F stop_postgres >/dev/null; then stop_postgres; fi' EXIT

echo "== PostgreSQL (for the store's tests)"
source scripts/postgres.sh

echo "== cargo test (workspace)"
cargo test --workspace 2>&1 | tee "$log"
read -r cargo_passed cargo_failed < <(
  awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
       END { print p + 0, f + 0 }' "$log")

echo "== warden demo"
# `cargo test --workspace` built the binary for the integration tests, with the workspace's
# features; building it again alone (`-p warden`) would recompile dependencies under other
# features.
test -x target/debug/warden
demo_passed=0
if target/debug/warden demo; then demo_passed=1; fi

echo "== interop (Python, Node)"
interop_line=$(WARDEN_BIN=target/debug/warden bash tests/interop/run.sh 2>&1 | tee /dev/stderr | grep -E '^interop: [0-9]+ passed, [0-9]+ failed$' | tail -n 1 || true)
interop_passed=$(sed -E 's/^interop: ([0-9]+) passed.*/\1/' <<<"${interop_line:-interop: 0 passed, 1 failed}")
interop_failed=$(sed -E 's/.* ([0-9]+) failed$/\1/' <<<"${interop_line:-interop: 0 passed, 1 failed}")

echo "== gateway (nginx auth_request, Python upstream)"
gateway_line=$(WARDEN_BIN=target/debug/warden bash tests/gateway/run.sh 2>&1 | tee /dev/stderr | grep -E '^gateway: [0-9]+ passed, [0-9]+ failed$' | tail -n 1 || true)
gateway_passed=$(sed -E 's/^gateway: ([0-9]+) passed.*/\1/' <<<"${gateway_line:-gateway: 0 passed, 1 failed}")
gateway_failed=$(sed -E 's/.* ([0-9]+) failed$/\1/' <<<"${gateway_line:-gateway: 0 passed, 1 failed}")

echo "== browser (Chromium, playwright-core)"
browser_line=$(WARDEN_BIN=target/debug/warden bash tests/browser/run.sh 2>&1 | tee /dev/stderr | grep -E '^browser: [0-9]+ passed, [0-9]+ failed$' | tail -n 1 || true)
browser_passed=$(sed -E 's/^browser: ([0-9]+) passed.*/\1/' <<<"${browser_line:-browser: 0 passed, 1 failed}")
browser_failed=$(sed -E 's/.* ([0-9]+) failed$/\1/' <<<"${browser_line:-browser: 0 passed, 1 failed}")

passed=$((cargo_passed + demo_passed + interop_passed + gateway_passed + browser_passed))
failed=$((cargo_failed + (1 - demo_passed) + interop_failed + gateway_failed + browser_failed))
echo
echo "cargo: $cargo_passed passed, $cargo_failed failed; demo: $demo_passed passed, $((1 - demo_passed)) failed; ${interop_line:-interop: did not finish}; ${gateway_line:-gateway: did not finish}; ${browser_line:-browser: did not finish}"
echo "all: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
