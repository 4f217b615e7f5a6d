# Client libraries for the shell suites (tests/interop, tests/gateway, tests/browser), sourced by each:
# one throwaway directory per run, or one kept in WARDEN_INTEROP_CACHE and reused while its
# stamp (interpreter version and pins) still matches.
#
#   source tests/lib/deps.sh
#   deps_dir "$TMP"                   # sets DEPS
#   python_venv SUITE                 # sets PY; installs PY_PKGS when the stamp differs
#   node_modules SUITE                # sets NODE_DIR; installs NPM_PKGS likewise

# Pinned to the current major versions; one venv serves both suites.
PY_PKGS=("PyJWT>=2.8,<3" "cryptography>=43,<51" "Authlib>=1.9,<2" "requests>=2.31,<3")
NPM_PKGS=("openid-client@6" "jose@6" "playwright-core@1" "otpauth@9")

deps_dir() { # throwaway parent
  if [[ -n "${WARDEN_INTEROP_CACHE:-}" ]]; then
    mkdir -p "$WARDEN_INTEROP_CACHE"
    DEPS=$(cd "$WARDEN_INTEROP_CACHE" && pwd)
  else
    DEPS=$1/deps
  fi
}

python_venv() { # suite name, for messages
  local venv=$DEPS/venv stamp
  PY=$venv/bin/python
  stamp=$(printf '%s\n' "$(python3 --version 2>&1)" "${PY_PKGS[@]}")
  if [[ -x "$PY" && "$(cat "$venv/.interop-stamp" 2>/dev/null)" == "$stamp" ]] &&
    "$PY" -c 'import jwt, authlib, joserfc, cryptography, requests' 2>/dev/null; then
    echo "$1: reusing Python venv in $venv"
  else
    echo "$1: installing Python packages into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$PY" -m pip install -q --disable-pip-version-check "${PY_PKGS[@]}"
    printf '%s\n' "$stamp" >"$venv/.interop-stamp"
  fi
}

node_modules() { # suite name, for messages
  local stamp
  NODE_DIR=$DEPS/node
  stamp=$(printf '%s\n' "$(node --version)" "${NPM_PKGS[@]}")
  if [[ -d "$NODE_DIR/node_modules" && "$(cat "$NODE_DIR/.interop-stamp" 2>/dev/null)" == "$stamp" ]] &&
    (cd "$NODE_DIR" && node --input-type=module -e "await import('openid-client'); await import('jose'); await import('playwright-core'); await import('otpauth')") 2>/dev/null; then
    echo "$1: reusing node_modules in $NODE_DIR"
  else
    echo "$1: installing npm packages into $NODE_DIR"
    rm -rf "$NODE_DIR"
    mkdir -p "$NODE_DIR"
    (cd "$NODE_DIR" && npm init -y >/dev/null && npm install --no-audit --no-fund --silent "${NPM_PKGS[@]}")
    printf '%s\n' "$stamp" >"$NODE_DIR/.interop-stamp"
  fi
}
