#!/usr/bin/env bash
# Cross-node revoke latency on a three-node cluster: `scripts/cluster-bench.sh`.
#
#   1. builds the release server and load generator;
#   2. starts a private redis-server (random free port, no persistence, temporary directory) and
#      creates a fresh Postgres database on 127.0.0.1:5432 (user postgres, trust);
#   3. starts three nodes on random free ports sharing that database, that Redis (prefix
#      `bench`) and one data directory: the first alone until /healthz answers, so the keys it
#      generates (signing, refresh, service key) are the ones the other two read;
#   4. creates CONNECTIONS sessions through node 1 (`loadtest ws-tokens`);
#   5. runs `loadtest ws-revoke`: CONNECTIONS WebSockets, connection i to node i % 3, from source
#      addresses 127.0.0.2-127.0.0.9; then SAMPLES revokes at RATE per second, each through a node
#      other than the one holding the connection, timing the `revoked` push;
#   6. prints the report and stops everything it started (redis, the nodes, the database).
#
# Environment: CONNECTIONS (default 10000, at most 19900), SAMPLES (default 1000, at most
# CONNECTIONS), RATE (revokes per second, default 100), KEEP=1 keeps the temporary directory (node
# logs, tokens). Exits with the load generator's status: non-zero when a connection failed to open
# or a revoke was not delivered. Every wait is bounded; the script always ends by itself and stops
# only the processes it started.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

CONNECTIONS="${CONNECTIONS:-10000}"
SAMPLES="${SAMPLES:-1000}"
RATE="${RATE:-100}"
NODES=3
SOURCE_IPS=127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7,127.0.0.8,127.0.0.9
PG=(-h 127.0.0.1 -p 5432 -U postgres)
SERVER=./target/release/session-service
LOADTEST=./target/release/loadtest

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'cluster-bench.sh: error: %s\n' "$*" >&2; exit 1; }

is_count() { [[ "$1" =~ ^[1-9][0-9]*$ ]]; }
is_count "$CONNECTIONS" && [ "$CONNECTIONS" -le 19900 ] || die "CONNECTIONS must be 1..19900"
is_count "$SAMPLES" && [ "$SAMPLES" -le "$CONNECTIONS" ] || die "SAMPLES must be 1..CONNECTIONS"
is_count "$RATE" && [ "$RATE" -le 10000 ] || die "RATE must be 1..10000"
for tool in redis-server redis-cli psql curl timeout; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done

# The load generator holds every connection itself; each node a third of them.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT="$(ulimit -n)"
[ "$FD_LIMIT" = unlimited ] || [ $((CONNECTIONS + 100)) -le "$FD_LIMIT" ] ||
    die "$CONNECTIONS connections need about $((CONNECTIONS + 100)) open files; the limit is $FD_LIMIT"

timeout 30 psql "${PG[@]}" -Atqc 'SELECT 1' >/dev/null 2>&1 || die "Postgres does not answer on 127.0.0.1:5432 (user postgres)"

log "building release binaries"
timeout 3600 cargo build --release --quiet -p session-service --bin session-service -p loadtest --bin loadtest

WORK="$(mktemp -d -t cluster-bench.XXXXXX)"
DB="cluster_bench_$$_${RANDOM}"
DB_CREATED=0
REDIS_PID=""
NODE_PIDS=()
BASES=()
USED_PORTS=" "

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

cleanup() {
    local pid
    for pid in "${NODE_PIDS[@]}"; do stop_pid "$pid" 20; done
    NODE_PIDS=()
    [ -z "$REDIS_PID" ] || stop_pid "$REDIS_PID" 10
    REDIS_PID=""
    if [ "$DB_CREATED" = 1 ]; then
        timeout 30 psql "${PG[@]}" -qc "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 ||
            printf 'cluster-bench.sh: could not drop database %s\n' "$DB" >&2
        DB_CREATED=0
    fi
    if [ "${KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A port below the ephemeral range (32768+), so no outgoing connection holds it, free now and not
# handed out before by this script.
free_port() {
    local port i
    for ((i = 0; i < 100; i++)); do
        port=$((20000 + RANDOM % 12000))
        [[ "$USED_PORTS" == *" $port "* ]] && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            USED_PORTS+="$port "
            echo "$port"
            return 0
        fi
    done
    die "no free port found"
}

REDIS_PORT="$(free_port)"
mkdir -p "$WORK/redis" "$WORK/data"
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

log "creating database $DB"
timeout 30 psql "${PG[@]}" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE \"$DB\"" >/dev/null || die "CREATE DATABASE failed"
DB_CREATED=1

start_node() { # start_node N: starts node N (1-based), waits for /healthz, appends to BASES.
    local n="$1" port pid base i
    port="$(free_port)"
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
            log "node $n up at $base (pid $pid)"
            return 0
        fi
        sleep 0.1
    done
    die "node $n did not answer /healthz within 30 s"
}

for ((n = 1; n <= NODES; n++)); do start_node "$n"; done
KEY="$(cat "$WORK/data/service-key")"
BASE_URLS="$(IFS=,; echo "${BASES[*]}")"

log "creating $CONNECTIONS sessions through node 1"
LOADTEST_SERVICE_KEY="$KEY" timeout 900 "$LOADTEST" ws-tokens --base-url "${BASES[0]}" \
    --count "$CONNECTIONS" --out "$WORK/tokens" 2>"$WORK/tokens.log" ||
    { tail -n 20 "$WORK/tokens.log" >&2; die "creating sessions failed"; }

# Connecting goes at well over 100 connections a second; the revokes take SAMPLES / RATE seconds,
# each bounded by the 5 s revoke timeout; the closes 15 s. The margin covers the rest.
LIMIT=$((120 + CONNECTIONS / 50 + SAMPLES / RATE + 60))
log "ws-revoke: $CONNECTIONS connections over $NODES nodes, $SAMPLES revokes at $RATE/s (at most ${LIMIT} s)"
set +e
LOADTEST_SERVICE_KEY="$KEY" timeout --kill-after=30 "$LIMIT" "$LOADTEST" ws-revoke --base-urls "$BASE_URLS" \
    --tokens-file "$WORK/tokens" --connections "$CONNECTIONS" --samples "$SAMPLES" --rate "$RATE" \
    --source-ips "$SOURCE_IPS" --encoding msgpack >"$WORK/revoke.out"
STATUS=$?
set -e

echo
cat "$WORK/revoke.out"
if [ "$STATUS" -ne 0 ]; then
    log "ws-revoke exited with status $STATUS; last lines of the node logs:"
    for ((n = 1; n <= NODES; n++)); do tail -n 5 "$WORK/node-$n.log" | sed "s/^/node $n: /" >&2; done
fi
exit "$STATUS"
