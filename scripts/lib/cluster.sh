# Shared by the cluster benchmarks (`scripts/cluster-bench.sh`, `scripts/hot-paths-bench.sh`):
# a private redis-server, a fresh Postgres database and N release nodes sharing both, all stopped
# by `cluster_cleanup` (installed as the EXIT trap by `cluster_init`). Sourced, not run.
#
# The caller sets SCRIPT (its name, for messages) before sourcing, then calls, in order:
#   cluster_init             checks the tools and Postgres, builds, makes WORK, installs the traps
#   cluster_start_redis      redis-server on a free port of 127.0.0.1 (REDIS_PORT)
#   cluster_create_db        database DB on 127.0.0.1:5432
#   cluster_start_node N     node N (1-based) on a free port; appends its base URL to BASES
# (or `cluster_up NODES FDS` for all four), optionally `cluster_tokens COUNT` (sessions created
# through node 1, written to $WORK/tokens),
# and then uses KEY (the service key), BASES, BASE_URLS, WORK, SERVER and LOADTEST.
# Every wait is bounded; only the processes started here are stopped.

PG=(-h 127.0.0.1 -p 5432 -U postgres)
SERVER=./target/release/session-service
LOADTEST=./target/release/loadtest
SOURCE_IPS=127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8,127.0.0.9

log() { printf '==> %s\n' "$*" >&2; }
die() { printf '%s: error: %s\n' "$SCRIPT" "$*" >&2; exit 1; }
is_count() { [[ "$1" =~ ^[1-9][0-9]*$ ]]; }

WORK=""
DB="bench_$$_${RANDOM}"
DB_CREATED=0
REDIS_PID=""
REDIS_PORT=""
NODE_PIDS=()
BASES=()
BASE_URLS=""
KEY=""
USED_PORTS=" "
PORT=""

stop_pid() { # stop_pid PID SECS: SIGTERM, wait up to SECS, then SIGKILL.
    local pid="$1" secs="$2" i
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < secs * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cluster_cleanup() {
    local pid
    for pid in "${NODE_PIDS[@]}"; do stop_pid "$pid" 20; done
    NODE_PIDS=()
    [ -z "$REDIS_PID" ] || stop_pid "$REDIS_PID" 10
    REDIS_PID=""
    if [ "$DB_CREATED" = 1 ]; then
        timeout 30 psql "${PG[@]}" -qc "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 ||
            printf '%s: could not drop database %s\n' "$SCRIPT" "$DB" >&2
        DB_CREATED=0
    fi
    [ -n "$WORK" ] || return 0
    if [ "${KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}

cluster_init() { # cluster_init FDS: FDS open files needed by the load generator.
    local fds="$1" tool limit
    for tool in redis-server redis-cli psql curl timeout; do
        command -v "$tool" >/dev/null || die "$tool is not installed"
    done
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    limit="$(ulimit -n)"
    [ "$limit" = unlimited ] || [ "$fds" -le "$limit" ] || die "the load generator needs about $fds open files; the limit is $limit"
    timeout 30 psql "${PG[@]}" -Atqc 'SELECT 1' >/dev/null 2>&1 || die "Postgres does not answer on 127.0.0.1:5432 (user postgres)"
    log "building release binaries"
    timeout 3600 cargo build --release --quiet -p session-service --bin session-service -p loadtest --bin loadtest
    WORK="$(mktemp -d -t "${SCRIPT%.sh}.XXXXXX")"
    mkdir -p "$WORK/redis" "$WORK/data"
    trap cluster_cleanup EXIT
    trap 'exit 130' INT TERM
}

# Sets PORT to a port below the ephemeral range (32768+), so no outgoing connection holds it, free
# now and not handed out before by this script. A variable, not output: in `$(free_port)` the
# record of the ports handed out would stay in the subshell.
free_port() {
    local i
    for ((i = 0; i < 100; i++)); do
        PORT=$((20000 + RANDOM % 12000))
        [[ "$USED_PORTS" == *" $PORT "* ]] && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
            USED_PORTS+="$PORT "
            return 0
        fi
    done
    die "no free port found"
}

cluster_start_redis() {
    local i
    free_port
    REDIS_PORT="$PORT"
    log "starting redis-server on 127.0.0.1:$REDIS_PORT"
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no --dir "$WORK/redis" \
        --logfile "$WORK/redis.log" --daemonize no --maxclients 1000 >/dev/null 2>&1 &
    REDIS_PID=$!
    for ((i = 0; ; i++)); do
        kill -0 "$REDIS_PID" 2>/dev/null || { cat "$WORK/redis.log" >&2; die "redis-server exited at start-up"; }
        [ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && break
        [ "$i" -lt 100 ] || die "redis-server did not answer within 10 s"
        sleep 0.1
    done
}

cluster_create_db() {
    log "creating database $DB"
    timeout 30 psql "${PG[@]}" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE \"$DB\"" >/dev/null || die "CREATE DATABASE failed"
    DB_CREATED=1
}

# Nodes start one at a time, each only once the one before answers /healthz: the first generates
# the keys (signing, refresh, service key) in the shared data directory that the others read.
cluster_start_node() { # cluster_start_node N
    local n="$1" port pid base i
    free_port
    port="$PORT"
    base="http://127.0.0.1:$port"
    DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB" \
        REDIS_URL="redis://127.0.0.1:$REDIS_PORT" REDIS_PREFIX=bench \
        LISTEN="127.0.0.1:$port" DATA_DIR="$WORK/data" WS_MAX_CONNECTIONS=20000 RUST_LOG=warn \
        "$SERVER" >"$WORK/node-$n.log" 2>&1 &
    pid=$!
    NODE_PIDS+=("$pid")
    for ((i = 0; i < 300; i++)); do
        kill -0 "$pid" 2>/dev/null || { tail -n 30 "$WORK/node-$n.log" >&2; die "node $n exited at start-up"; }
        if curl -sf --max-time 2 "$base/healthz" >/dev/null 2>&1 && [ -s "$WORK/data/service-key" ]; then
            BASES+=("$base")
            BASE_URLS="$(IFS=,; echo "${BASES[*]}")"
            KEY="$(cat "$WORK/data/service-key")"
            log "node $n up at $base (pid $pid)"
            return 0
        fi
        sleep 0.1
    done
    die "node $n did not answer /healthz within 30 s"
}

cluster_up() { # cluster_up NODES FDS: everything above, for NODES nodes and a generator needing FDS files.
    local n
    cluster_init "$2"
    cluster_start_redis
    cluster_create_db
    for ((n = 1; n <= $1; n++)); do cluster_start_node "$n"; done
}

cluster_tokens() { # cluster_tokens COUNT: COUNT sessions created through node 1, in $WORK/tokens.
    log "creating $1 sessions through node 1"
    LOADTEST_SERVICE_KEY="$KEY" timeout 900 "$LOADTEST" ws-tokens --base-url "${BASES[0]}" \
        --count "$1" --out "$WORK/tokens" 2>"$WORK/tokens.log" ||
        { tail -n 20 "$WORK/tokens.log" >&2; die "creating sessions failed"; }
}

cluster_tail_logs() { # cluster_tail_logs: the last lines of every node's log, on stderr.
    local n
    for ((n = 1; n <= ${#BASES[@]}; n++)); do tail -n 5 "$WORK/node-$n.log" | sed "s/^/node $n: /" >&2; done
}
