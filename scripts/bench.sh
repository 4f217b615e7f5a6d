#!/usr/bin/env bash
# Every benchmark, release build, figures to stdout:
#   token verify (criterion): Warden's full verify vs. bare ed25519-dalek verify_strict;
#   token issuance over HTTP on loopback vs. a plain GET on the same server.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -p warden-core --bench verify -- --warm-up-time 2 --measurement-time 5 2>&1 \
  | grep -E '^verify/|time:'
CONCURRENCY=${CONCURRENCY:-1,4,16,64} cargo bench -p warden-authority --bench issuance 2>&1 \
  | grep -vE '^\s*(Compiling|Finished|Running)'
