#!/usr/bin/env bash
# Every benchmark, release builds, figures to stdout:
#   token verify (criterion): Warden's full verify vs. bare ed25519-dalek verify_strict;
#   token issuance over HTTP on loopback vs. a plain GET on the same server;
#   Cedar decision latency with 10, 100 and 1,000 policies (criterion);
#   revocation propagation to 8 gateways and the pipeline with DPoP on vs. off;
#   issuance under wrk vs. oidc-provider (bench/issuance.sh);
#   the gateway under wrk vs. a plain nginx proxy (bench/gateway.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -p warden-core --bench verify -- --warm-up-time 2 --measurement-time 5 2>&1 \
  | grep -E '^verify/|time:'
CONCURRENCY=${CONCURRENCY:-1,4,16,64} cargo bench -p warden-authority --bench issuance 2>&1 \
  | grep -vE '^\s*(Compiling|Finished|Running)'
cargo bench -p warden-policy --bench decide -- --warm-up-time 2 --measurement-time 5 2>&1 \
  | grep -E '^decide|time:'
timeout 1200 cargo bench -p warden-gateway --bench edge 2>&1 \
  | grep -E "^revocation|^decide|time:"
bash bench/issuance.sh
bash bench/gateway.sh
