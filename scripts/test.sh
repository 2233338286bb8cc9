#!/usr/bin/env bash
# The project's one test command: `scripts/test.sh [extra cargo test args]`.
#
# 1. Makes sure PostgreSQL (127.0.0.1:5432), Redis (127.0.0.1:6379) and NATS with JetStream
#    (127.0.0.1:4222) answer: a stopped service is started, a missing one is installed from
#    Debian's packages when running as root (otherwise the script stops and says what to install).
#    A service whose TEST_*_URL is already set is the caller's business and is left alone.
# 2. Drops per-test databases `sst_*` left behind by a crashed earlier run (only those nobody is
#    connected to and older than ten minutes, so a concurrent test run keeps its databases).
# 3. Exports TEST_DATABASE_URL, TEST_REDIS_URL, TEST_NATS_URL (unless already set) and runs
#    `cargo test --workspace --all-targets --no-fail-fast "$@"` (every test binary runs, so the
#    totals are complete; benches run once each as smoke tests), then the doctests (only when
#    called without arguments: `--doc` cannot be mixed with target filters), then prints a
#    summary with the totals over all test binaries.
#
# Every wait is bounded (WAIT_SECS, default 30 s per service). Exits non-zero on any failure.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

WAIT_SECS="${WAIT_SECS:-30}"
PG_PORT=5432
REDIS_PORT=6379
NATS_PORT=4222

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'test.sh: error: %s\n' "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" -eq 0 ]; }
have() { command -v "$1" >/dev/null 2>&1; }

# Runs a command under `timeout` when that exists; the callers' commands are short anyway.
bounded() {
    local secs="$1"; shift
    if have timeout; then timeout "$secs" "$@"; else "$@"; fi
}

# True when something accepts TCP connections on 127.0.0.1:$1.
# shellcheck disable=SC2016 # $1 expands in the child shell, on purpose
port_open() {
    bounded 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# Polls "$@" once a second until it succeeds or WAIT_SECS pass.
wait_until() {
    local what="$1"; shift
    local i
    for ((i = 0; i < WAIT_SECS; i++)); do
        if "$@"; then return 0; fi
        sleep 1
    done
    die "$what did not come up within ${WAIT_SECS}s"
}

can_apt() { is_root && have apt-get; }

APT_UPDATED=0
apt_install() {
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        apt-get update -qq || die "apt-get update failed"
        APT_UPDATED=1
    fi
    log "apt-get install -y $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null \
        || die "apt-get install $* failed"
}

# Stops the script with what to install, for a non-root user or a system without apt-get.
need_install() {
    die "$1 is not installed and this script cannot install it (needs root and apt-get).
  Install it, e.g. 'sudo apt-get install -y $2', start it on 127.0.0.1:$3, and run again;
  or point $4 at a running server."
}

need_root_to_start() {
    die "$1 is installed but not running on 127.0.0.1:$2, and starting it needs root. Start it with:
  $3"
}

# --- PostgreSQL -------------------------------------------------------------------------------

pg_ready() {
    if have pg_isready; then
        bounded 5 pg_isready -q -h 127.0.0.1 -p "$PG_PORT"
    else
        port_open "$PG_PORT"
    fi
}

pg_version() { find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort | head -1; }

# A fresh Debian cluster asks for a password on 127.0.0.1; the tests connect as postgres without
# one, so trust loopback connections (first matching line wins, hence the insert at the top).
pg_trust_loopback() {
    local hba
    hba="/etc/postgresql/$(pg_version)/main/pg_hba.conf"
    [ -f "$hba" ] || return 0
    if bounded 5 psql -w -h 127.0.0.1 -U postgres -d postgres -Atqc 'SELECT 1' >/dev/null 2>&1; then
        return 0
    fi
    log "configuring trust authentication for loopback in $hba"
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    pg_ctlcluster --skip-systemctl-redirect "$(pg_version)" main reload
}

pg_start_cmd() { echo "pg_ctlcluster --skip-systemctl-redirect $(pg_version) main start"; }

ensure_postgres() {
    if pg_ready; then log "PostgreSQL is up on 127.0.0.1:$PG_PORT"; return; fi
    local fresh=0
    if ! { have pg_ctlcluster && [ -n "$(pg_version)" ]; }; then
        can_apt || need_install PostgreSQL postgresql "$PG_PORT" TEST_DATABASE_URL
        apt_install postgresql
        fresh=1
    fi
    if ! pg_ready; then
        is_root || need_root_to_start PostgreSQL "$PG_PORT" "$(pg_start_cmd)"
        log "starting PostgreSQL: $(pg_start_cmd)"
        # `start` fails when the cluster is already starting; the wait below is the judge.
        pg_ctlcluster --skip-systemctl-redirect "$(pg_version)" main start || true
    fi
    wait_until "PostgreSQL on 127.0.0.1:$PG_PORT" pg_ready
    if [ "$fresh" -eq 1 ] && have psql; then pg_trust_loopback; fi
    log "PostgreSQL is up on 127.0.0.1:$PG_PORT"
}

# The tests log in as postgres without a password; say so plainly when that is refused, rather
# than let every database test fail on it.
check_postgres_login() {
    have psql || return 0
    bounded 10 psql -w -X -d "$TEST_DATABASE_URL" -Atqc 'SELECT 1' >/dev/null && return 0
    die "PostgreSQL refuses $TEST_DATABASE_URL (see above). Trust loopback connections in
  pg_hba.conf ('host all all 127.0.0.1/32 trust'), or export TEST_DATABASE_URL with a password."
}

# --- Redis ------------------------------------------------------------------------------------

redis_ready() {
    if have redis-cli; then
        [ "$(bounded 5 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]
    else
        port_open "$REDIS_PORT"
    fi
}

REDIS_START='redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log'

ensure_redis() {
    if redis_ready; then log "Redis is up on 127.0.0.1:$REDIS_PORT"; return; fi
    if ! have redis-server; then
        can_apt || need_install Redis redis-server "$REDIS_PORT" TEST_REDIS_URL
        apt_install redis-server
    fi
    # The package may have started its own server already.
    if ! redis_ready; then
        is_root || need_root_to_start Redis "$REDIS_PORT" "$REDIS_START"
        log "starting Redis"
        mkdir -p /var/lib/redis /var/log/redis
        redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" \
            --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
    fi
    wait_until "Redis on 127.0.0.1:$REDIS_PORT" redis_ready
    log "Redis is up on 127.0.0.1:$REDIS_PORT"
}

# --- NATS -------------------------------------------------------------------------------------

# The first line a NATS server sends is `INFO {...}`; it says `"jetstream":true` when enabled.
# shellcheck disable=SC2016 # as above
nats_info() {
    bounded 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && IFS= read -r -t 2 line <&3 && printf "%s\n" "$line"' \
        _ "$NATS_PORT" 2>/dev/null
}
nats_ready() { local info; info="$(nats_info)" && [[ $info == INFO\ * ]]; }

nats_bin() {
    if have nats-server; then command -v nats-server
    elif [ -x /usr/sbin/nats-server ]; then echo /usr/sbin/nats-server
    fi
}

NATS_START='start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log'

ensure_nats() {
    if ! nats_ready; then
        if [ -z "$(nats_bin)" ]; then
            can_apt || need_install "NATS server" nats-server "$NATS_PORT" TEST_NATS_URL
            apt_install nats-server
        fi
        if ! nats_ready; then
            is_root || need_root_to_start "NATS server" "$NATS_PORT" "$NATS_START"
            local bin
            bin="$(nats_bin)"
            [ -n "$bin" ] || die "nats-server was installed but cannot be found"
            log "starting NATS with JetStream"
            mkdir -p /var/lib/nats-server
            local args=(-a 127.0.0.1 -p "$NATS_PORT" -js -sd /var/lib/nats-server -l /var/log/nats-server.log)
            if have start-stop-daemon; then
                # The pid file makes start-stop-daemon judge by our own instance: matching on the
                # executable alone, a nats-server running on another port would pass for ours.
                start-stop-daemon --start --oknodo --background --make-pidfile \
                    --pidfile /run/nats-server-test.pid --exec "$bin" -- "${args[@]}"
            else
                nohup "$bin" "${args[@]}" >/dev/null 2>&1 &
            fi
        fi
        wait_until "NATS on 127.0.0.1:$NATS_PORT" nats_ready
    fi
    # A server started by someone else (e.g. a distribution unit) may lack JetStream; it is not
    # ours to restart, so say so rather than let the event tests fail obscurely.
    local info
    info="$(nats_info)" || true
    [[ $info == *'"jetstream":true'* ]] \
        || die "the NATS server on 127.0.0.1:$NATS_PORT runs without JetStream; restart it with -js"
    log "NATS with JetStream is up on 127.0.0.1:$NATS_PORT"
}

# --- leftovers --------------------------------------------------------------------------------

# Per-test databases are dropped by the tests themselves; a crashed run leaves them behind. Only
# databases nobody is connected to and created over ten minutes ago go, so a test run in progress
# elsewhere on this server is not disturbed. The age is the mtime of the database's PG_VERSION
# file, which needs a superuser to read; without one nothing is dropped. (`missing_ok` because a
# database being created or dropped right now has no such file yet, or any more.)
drop_leftover_databases() {
    if ! have psql; then log "psql not found: not dropping leftover sst_* databases"; return; fi
    local psql_cmd=(psql -w -X -q -At -v ON_ERROR_STOP=1 -d "$TEST_DATABASE_URL")
    local query="SELECT datname FROM pg_database d
        WHERE datname LIKE 'sst\_%'
          AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datid = d.oid)
          AND (pg_stat_file('base/' || d.oid || '/PG_VERSION', true)).modification
              < now() - interval '10 minutes'"
    local names
    if ! names="$(bounded 15 "${psql_cmd[@]}" -c "$query")"; then
        log "could not list leftover sst_* databases (needs a superuser); going on"
        return
    fi
    local name dropped=0
    while IFS= read -r name; do
        [ -n "$name" ] || continue
        if bounded 30 "${psql_cmd[@]}" -c "DROP DATABASE IF EXISTS \"$name\""; then
            dropped=$((dropped + 1))
        else
            log "could not drop leftover database $name; going on"
        fi
    done <<<"$names"
    log "dropped $dropped leftover sst_* database(s)"
}

# --- main -------------------------------------------------------------------------------------

have cargo || die "cargo is not on PATH (install Rust with rustup)"

if [ -n "${TEST_DATABASE_URL:-}" ]; then log "using TEST_DATABASE_URL from the environment"; else ensure_postgres; fi
if [ -n "${TEST_REDIS_URL:-}" ]; then log "using TEST_REDIS_URL from the environment"; else ensure_redis; fi
if [ -n "${TEST_NATS_URL:-}" ]; then log "using TEST_NATS_URL from the environment"; else ensure_nats; fi

export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:$PG_PORT/postgres}"
export TEST_REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:$REDIS_PORT}"
export TEST_NATS_URL="${TEST_NATS_URL:-nats://127.0.0.1:$NATS_PORT}"

check_postgres_login
drop_leftover_databases

LOG="$(mktemp "${TMPDIR:-/tmp}/session-service-test.XXXXXX")"
trap 'rm -f "$LOG"' EXIT

declare -a SUMMARY=()
FAILED=0
# Runs one cargo step, its output also kept in $LOG for the totals below.
run_step() {
    local name="$1"; shift
    local start=$SECONDS rc=0
    log "$*"
    "$@" 2>&1 | tee -a "$LOG" || rc=$?
    SUMMARY+=("$(printf '%-20s %-6s %5ss' "$name" "$([ "$rc" -eq 0 ] && echo ok || echo FAILED)" \
        "$((SECONDS - start))")")
    [ "$rc" -eq 0 ] || FAILED=1
}

run_step "tests (all targets)" cargo test --workspace --all-targets --no-fail-fast "$@"
if [ "$#" -eq 0 ]; then
    run_step "doctests" cargo test --workspace --doc
fi

# Totals over every `test result:` line of every test binary.
TOTALS="$(awk '/^test result:/ {
        for (i = 2; i <= NF; i++) {
            if ($i == "passed;") p += $(i - 1)
            if ($i == "failed;") f += $(i - 1)
            if ($i == "ignored;") s += $(i - 1)
        }
    } END { printf "%d passed, %d failed, %d skipped", p, f, s }' "$LOG")"

printf '\n==> summary\n'
printf '  %s\n' "${SUMMARY[@]}"
printf 'tests: %s\n' "$TOTALS"
if [ "$FAILED" -ne 0 ]; then
    printf '==> FAILED\n'
    exit 1
fi
printf '==> all test steps passed\n'
