#!/usr/bin/env bash
# Local PostgreSQL 15, Redis and an S3 server (moto) for the service tests.
#
#   bash scripts/services.sh up     start what is not running (reuses what is), write .services/env
#   bash scripts/services.sh env    print the settings (eval "$(bash scripts/services.sh env)")
#   bash scripts/services.sh down   stop all three and remove their data (safe to repeat)
#   bash scripts/services.sh pg-stop | pg-start | pg-restart
#                                   stop/start PostgreSQL keeping its data and port (the
#                                   database-restart reliability tests use these)
#
# Everything listens on free ports of 127.0.0.1. State lives in .services/ at the repository
# root; PostgreSQL's data directory is a temporary directory owned by the postgres user
# (initdb refuses to run as root, and the postgres user may not be able to enter the repo).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STATE="$ROOT/.services"
ENV_FILE="$STATE/env"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
PG_DB="heimdall_test"
WAIT_S="${SERVICES_WAIT_S:-30}"

if [[ -x "$ROOT/.venv/bin/python" ]]; then PY="$ROOT/.venv/bin/python"; else PY="python3"; fi

log() { echo "services: $*" >&2; }
die() { echo "services: error: $*" >&2; exit 1; }

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Run a command as the postgres user when we are root (initdb and postgres refuse root).
as_pg() {
    if [[ $EUID -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pid_alive() { [[ -f "$1" ]] && kill -0 "$(head -n1 "$1")" 2>/dev/null; }

# Wait until "$@" succeeds, at most WAIT_S seconds.
wait_for() {
    local what="$1"; shift
    local deadline=$((SECONDS + WAIT_S))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then die "$what did not answer within ${WAIT_S}s"; fi
        sleep 0.2
    done
}

# --- PostgreSQL ----------------------------------------------------------------------------

pg_ready() { [[ -f "$STATE/pg.port" ]] && "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$(cat "$STATE/pg.port")"; }

pg_db_ready() {
    [[ "$("$PG_BIN/psql" -h 127.0.0.1 -p "$1" -U postgres -d "$PG_DB" -Atc 'select 1' 2>/dev/null)" == 1 ]]
}

pg_down() {
    if [[ -f "$STATE/pg.dir" ]]; then
        local dir
        dir="$(cat "$STATE/pg.dir")"
        if [[ -f "$dir/data/postmaster.pid" ]]; then
            as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || {
                local pid
                pid="$(head -n1 "$dir/data/postmaster.pid" 2>/dev/null || true)"
                # Only if that pid is still a postgres process (pids get reused).
                if [[ -n "$pid" ]] && grep -qs postgres "/proc/$pid/comm"; then kill "$pid" 2>/dev/null || true; fi
            }
        fi
        # Only ever remove a directory this script made.
        if [[ "$(basename "$dir")" == heimdall-pg.* ]]; then rm -rf "$dir"; fi
    fi
    rm -f "$STATE/pg.dir" "$STATE/pg.port"
}

# Start the server of an existing data directory (pg.dir) on its port (pg.port).
pg_start() {
    [[ -f "$STATE/pg.dir" && -f "$STATE/pg.port" ]] || die "postgresql was never set up (bash scripts/services.sh up)"
    local dir port
    dir="$(cat "$STATE/pg.dir")"
    port="$(cat "$STATE/pg.port")"
    # Loopback only, trust auth (initdb --auth=trust), sockets in the private directory,
    # fsync off: this database is thrown away.
    as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t "$WAIT_S" \
        -o "-p $port -h 127.0.0.1 -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >/dev/null || die "postgresql did not start, see $dir/postgres.log"
    wait_for "postgresql" "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port"
}

# Stop the server, keeping its data directory and port; open connections are cut.
pg_stop() {
    [[ -f "$STATE/pg.dir" ]] || die "postgresql was never set up (bash scripts/services.sh up)"
    as_pg "$PG_BIN/pg_ctl" -D "$(cat "$STATE/pg.dir")/data" -m fast -w stop >/dev/null \
        || die "postgresql did not stop"
}

pg_up() {
    if pg_ready && pg_db_ready "$(cat "$STATE/pg.port")"; then
        log "postgresql already up on port $(cat "$STATE/pg.port")"
        return
    fi
    pg_down
    [[ -x "$PG_BIN/initdb" ]] || die "PostgreSQL 15 not found in $PG_BIN (apt-get install postgresql-15)"
    local dir port
    dir="$(mktemp -d "${TMPDIR:-/tmp}/heimdall-pg.XXXXXX")"
    echo "$dir" >"$STATE/pg.dir"
    if [[ $EUID -eq 0 ]]; then chown postgres: "$dir"; fi
    chmod 700 "$dir"
    as_pg "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --no-sync \
        >"$STATE/pg-initdb.log" 2>&1 || die "initdb failed, see $STATE/pg-initdb.log"
    port="$(free_port)"
    echo "$port" >"$STATE/pg.port"
    pg_start
    as_pg "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres "$PG_DB"
    log "postgresql up on port $port"
}

# --- Redis ---------------------------------------------------------------------------------

redis_ready() {
    [[ -f "$STATE/redis.port" ]] && pid_alive "$STATE/redis.pid" \
        && [[ "$(redis-cli -h 127.0.0.1 -p "$(cat "$STATE/redis.port")" ping 2>/dev/null)" == PONG ]]
}

redis_down() {
    if pid_alive "$STATE/redis.pid"; then
        local pid
        pid="$(head -n1 "$STATE/redis.pid")"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -rf "$STATE/redis.pid" "$STATE/redis.port" "$STATE/redis"
}

redis_up() {
    if redis_ready; then
        log "redis already up on port $(cat "$STATE/redis.port")"
        return
    fi
    redis_down
    if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
        log "installing redis-server (apt-get)"
        [[ $EUID -eq 0 ]] || die "redis-server is missing and only root can install it (apt-get install redis-server)"
        { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server; } \
            >"$STATE/redis-install.log" 2>&1 || die "could not install redis-server, see $STATE/redis-install.log"
    fi
    local port
    port="$(free_port)"
    mkdir -p "$STATE/redis"
    # No persistence: no RDB snapshots, no append-only file.
    redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
        --daemonize yes --pidfile "$STATE/redis.pid" --logfile "$STATE/redis/redis.log" \
        --dir "$STATE/redis" || die "redis-server did not start, see $STATE/redis/redis.log"
    echo "$port" >"$STATE/redis.port"
    wait_for "redis" bash -c "[[ \"\$(redis-cli -h 127.0.0.1 -p $port ping)\" == PONG ]]"
    wait_for "redis pidfile" test -s "$STATE/redis.pid"
    log "redis up on port $port"
}

# --- S3 (moto) -----------------------------------------------------------------------------

http_answers() {
    # Any HTTP status counts: the server is up.
    "$PY" - "$1" <<'EOF'
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=2)
except urllib.error.HTTPError:
    pass
except OSError:
    sys.exit(1)
EOF
}

moto_ready() {
    [[ -f "$STATE/moto.port" ]] && pid_alive "$STATE/moto.pid" \
        && http_answers "http://127.0.0.1:$(cat "$STATE/moto.port")/"
}

moto_down() {
    if pid_alive "$STATE/moto.pid"; then
        local pid
        pid="$(head -n1 "$STATE/moto.pid")"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$STATE/moto.pid" "$STATE/moto.port"
}

moto_up() {
    if moto_ready; then
        log "s3 (moto) already up on port $(cat "$STATE/moto.port")"
        return
    fi
    moto_down
    [[ -x "$ROOT/.venv/bin/moto_server" ]] || die "$ROOT/.venv/bin/moto_server missing (make install)"
    local port
    port="$(free_port)"
    # setsid: its own session, so it outlives this shell and the caller's process group.
    setsid "$ROOT/.venv/bin/moto_server" -H 127.0.0.1 -p "$port" \
        </dev/null >"$STATE/moto.log" 2>&1 &
    echo $! >"$STATE/moto.pid"
    echo "$port" >"$STATE/moto.port"
    wait_for "s3 (moto)" http_answers "http://127.0.0.1:$port/"
    log "s3 (moto) up on port $port"
}

# --- commands ------------------------------------------------------------------------------

write_env() {
    cat >"$ENV_FILE.tmp" <<EOF
export HEIMDALL_TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:$(cat "$STATE/pg.port")/$PG_DB
export HEIMDALL_TEST_REDIS_URL=redis://127.0.0.1:$(cat "$STATE/redis.port")/0
export HEIMDALL_TEST_S3_ENDPOINT_URL=http://127.0.0.1:$(cat "$STATE/moto.port")
EOF
    mv "$ENV_FILE.tmp" "$ENV_FILE"
}

cmd_up() {
    mkdir -p "$STATE"
    pg_up
    redis_up
    moto_up
    write_env
    log "settings in $ENV_FILE (source it)"
}

cmd_down() {
    mkdir -p "$STATE"
    moto_down
    redis_down
    pg_down
    rm -f "$ENV_FILE" "$STATE/pg-initdb.log" "$STATE/moto.log" "$STATE/redis-install.log"
    rmdir "$STATE" 2>/dev/null || true
    log "down"
}

cmd_env() {
    [[ -f "$ENV_FILE" ]] || die "services are not up (bash scripts/services.sh up)"
    cat "$ENV_FILE"
}

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    env) cmd_env ;;
    pg-stop) pg_stop; log "postgresql stopped" ;;
    pg-start) pg_start; log "postgresql up on port $(cat "$STATE/pg.port")" ;;
    pg-restart) pg_stop; pg_start; log "postgresql restarted on port $(cat "$STATE/pg.port")" ;;
    *) echo "usage: $0 up|down|env|pg-stop|pg-start|pg-restart" >&2; exit 2 ;;
esac
