# A throwaway PostgreSQL for the store's tests. Source it, don't run it:
#
#   source scripts/postgres.sh        # starts PostgreSQL, exports the variables below
#   trap stop_postgres EXIT           # stops it and removes its files
#
# Exports:
#   WARDEN_TEST_POSTGRES_URL=postgres://warden:PASSWORD@127.0.0.1:PORT/warden_test
# (Without it the PostgreSQL tests fail, unless WARDEN_TEST_POSTGRES=skip opts out of them.)
#
# Installs PostgreSQL from the Debian packages when no `initdb` can be found. The cluster
# lives in a fresh temporary directory, listens on 127.0.0.1 only, on a free port, with its
# Unix socket in that directory, and asks for a random password; durability is switched off
# (fsync, synchronous_commit) because it is thrown away. As root it runs as the `postgres`
# user, since PostgreSQL refuses to run as root. Sourcing it again while its server is up
# does nothing.

_warden_pg_log() { echo "postgres.sh: $*" >&2; }

# Runs a command as the user the server runs as.
_warden_pg_as_owner() {
  if [ "$(id -u)" -ne 0 ]; then
    "$@"
  elif command -v runuser >/dev/null 2>&1; then
    runuser -u postgres -- "$@"
  else
    su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
  fi
}

# The directory holding initdb, pg_ctl and postgres: PATH first, then the Debian layout
# (newest version first).
_warden_pg_bindir() {
  local initdb dir
  if initdb=$(command -v initdb 2>/dev/null) && [ -n "$initdb" ]; then
    dir=$(dirname "$(readlink -f "$initdb")")
    if [ -x "$dir/pg_ctl" ]; then
      echo "$dir"
      return 0
    fi
  fi
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
      echo "$dir"
      return 0
    fi
  done
  return 1
}

_warden_pg_install() {
  _warden_pg_log "no initdb found; installing PostgreSQL from the Debian packages"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 &&
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
}

# A TCP port nobody listens on at 127.0.0.1 (a race remains; the caller retries).
_warden_pg_free_port() {
  local port i
  for i in $(seq 1 50); do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  return 1
}

stop_postgres() {
  if [ -n "${WARDEN_PG_DIR:-}" ] && [ -d "$WARDEN_PG_DIR" ]; then
    if [ -n "${WARDEN_PG_BIN:-}" ] && [ -f "$WARDEN_PG_DIR/data/postmaster.pid" ]; then
      _warden_pg_as_owner "$WARDEN_PG_BIN/pg_ctl" -D "$WARDEN_PG_DIR/data" -m immediate -w stop \
        >/dev/null 2>&1 || true
    fi
    rm -rf "$WARDEN_PG_DIR"
  fi
  unset WARDEN_PG_DIR WARDEN_PG_BIN WARDEN_TEST_POSTGRES_URL
}

_warden_pg_start() {
  # Already up from an earlier `source`: keep it.
  if [ -n "${WARDEN_PG_DIR:-}" ] && [ -n "${WARDEN_TEST_POSTGRES_URL:-}" ] &&
    [ -f "$WARDEN_PG_DIR/data/postmaster.pid" ]; then
    return 0
  fi

  local bin
  if ! bin=$(_warden_pg_bindir); then
    _warden_pg_install || { _warden_pg_log "could not install PostgreSQL"; return 1; }
    bin=$(_warden_pg_bindir) || { _warden_pg_log "PostgreSQL installed, initdb not found"; return 1; }
  fi

  if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin postgres ||
      { _warden_pg_log "cannot create the postgres user to run the server as"; return 1; }
  fi

  # Under /tmp rather than $TMPDIR: as root, $TMPDIR may be a directory postgres cannot enter.
  local dir password
  dir=$(mktemp -d /tmp/warden-pg.XXXXXX) || return 1
  WARDEN_PG_DIR=$dir
  WARDEN_PG_BIN=$bin
  password=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  printf '%s\n' "$password" >"$dir/pwfile"
  chmod 700 "$dir"
  chmod 600 "$dir/pwfile"
  if [ "$(id -u)" -eq 0 ]; then chown -R postgres: "$dir"; fi

  if ! _warden_pg_as_owner "$bin/initdb" -D "$dir/data" -U warden --pwfile="$dir/pwfile" \
    --auth=scram-sha-256 -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1; then
    _warden_pg_log "initdb failed:"
    cat "$dir/initdb.log" >&2
    stop_postgres
    return 1
  fi

  local port attempt started=0
  for attempt in 1 2 3; do
    port=$(_warden_pg_free_port) || break
    if _warden_pg_as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
      start >/dev/null 2>&1; then
      started=1
      break
    fi
  done
  if [ "$started" -ne 1 ]; then
    _warden_pg_log "the server did not start:"
    cat "$dir/server.log" >&2 2>/dev/null || true
    stop_postgres
    return 1
  fi

  if ! PGPASSWORD=$password "$bin/psql" -X -q -h 127.0.0.1 -p "$port" -U warden -d postgres \
    -c "CREATE DATABASE warden_test" >/dev/null; then
    _warden_pg_log "could not create database warden_test"
    stop_postgres
    return 1
  fi

  export WARDEN_PG_DIR WARDEN_PG_BIN
  export WARDEN_TEST_POSTGRES_URL="postgres://warden:$password@127.0.0.1:$port/warden_test"
  _warden_pg_log "PostgreSQL $("$bin/pg_ctl" --version | awk '{print $3}') on 127.0.0.1:$port (data in $dir)"
}

_warden_pg_start
