#!/usr/bin/env bash
# Server memory per idle WebSocket connection: `scripts/ws-memory.sh [N ...]` (default 10000 19000).
#
# For each N, on a fresh release server (embedded SQLite in a temporary data directory, a random
# free port on 127.0.0.1):
#   1. creates N sessions for N distinct users (`loadtest ws-tokens`), so the per-user cap never
#      interferes and the REST work is done before the first sample;
#   2. samples the server's RSS (/proc/<pid>/status VmRSS, and RssAnon), the kernel's TCP
#      socket buffer memory (/proc/net/sockstat "mem", pages) and its slab (/proc/meminfo; socket
#      structures live there, for both ends of each loopback connection, machine-wide);
#   3. opens N connections with `loadtest ws-idle` (subprotocol session.v1.msgpack, `auth` frame),
#      split over ceil(N / PER_PROCESS) processes, each binding its sockets to its own loopback
#      source addresses (127.<run>.<process>.1-8);
#   4. once every process reports all its connections welcomed, waits SETTLE_SECS (longer than the
#      15 s heartbeat interval, so every connection has exchanged at least one ping/pong) and
#      samples again;
#   5. prints the growth per connection, stops the load generators (SIGTERM: they close their
#      connections cleanly), samples once more after the close, and stops the server.
# A table of all runs is printed at the end.
#
# Environment: PER_PROCESS (default 10000; at most 19900, one process may hold 20,000 files),
# SETTLE_SECS (default 20), CONNECT_CONCURRENCY (default 200), KEEP=1 keeps the temporary directory
# (logs, token files). Every wait is bounded; the script always ends by itself and stops only the
# processes it started.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PER_PROCESS="${PER_PROCESS:-10000}"
SETTLE_SECS="${SETTLE_SECS:-20}"
CONNECT_CONCURRENCY="${CONNECT_CONCURRENCY:-200}"
SOURCES_PER_PROCESS=8
PAGE="$(getconf PAGESIZE)"
SCRIPT=ws-memory.sh
# log, die, stop_pid, free_port, SERVER and LOADTEST; this script starts its own single node, not a cluster.
# shellcheck source=scripts/lib/cluster.sh
. scripts/lib/cluster.sh

[ "$#" -gt 0 ] || set -- 10000 19000
for n in "$@"; do
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "connection count '$n' is not a positive integer"
done
if ! [[ "$PER_PROCESS" =~ ^[1-9][0-9]*$ ]] || [ "$PER_PROCESS" -gt 19900 ]; then die "PER_PROCESS must be 1..19900"; fi
[ "$(uname -s)" = Linux ] || die "reads /proc: Linux only"

# The server holds every connection itself: it needs N descriptors plus its own few dozen.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT="$(ulimit -n)"
for n in "$@"; do
    [ "$FD_LIMIT" = unlimited ] || [ $((n + 200)) -le "$FD_LIMIT" ] ||
        die "$n connections need about $((n + 200)) open files in the server; the limit is $FD_LIMIT"
done

log "building release binaries"
cargo build --release --quiet -p session-service -p loadtest

WORK="$(mktemp -d -t ws-memory.XXXXXX)"
SERVER_PID=""
LOAD_PIDS=()

cleanup() {
    local pid
    for pid in "${LOAD_PIDS[@]}"; do stop_pid "$pid" 20; done
    LOAD_PIDS=()
    [ -z "$SERVER_PID" ] || stop_pid "$SERVER_PID" 20
    SERVER_PID=""
    if [ "${KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rss_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
row() { printf '%11s %8s %5s %10s %10s %10s %11s %10s %14s %11s\n' "$@"; }
slab_kib() { awk '$1 == "Slab:" { print $2 }' /proc/meminfo; }
tcp_pages() { awk '$1 == "TCP:" { for (i = 2; i < NF; i++) if ($i == "mem") print $(i + 1) }' /proc/net/sockstat; }
# The first integer field "$2" of the JSON in file "$1"; 0 when absent.
json_num() { { grep -o "\"$2\":[0-9]*" "$1" 2>/dev/null || echo ":0"; } | head -n1 | cut -d: -f2; }

start_server() { # start_server DIR: starts a fresh node, sets SERVER_PID and BASE.
    local dir="$1" port i
    free_port
    port="$PORT"
    DATA_DIR="$dir" LISTEN="127.0.0.1:$port" RUST_LOG=warn \
        MAX_SESSIONS_PER_USER=1000 ACCESS_TTL_SECS=3600 \
        "$SERVER" >"$dir/server.log" 2>&1 &
    SERVER_PID=$!
    BASE="http://127.0.0.1:$port"
    for ((i = 0; i < 300; i++)); do
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$dir/server.log" >&2; die "the server exited at start-up"; }
        if curl -sf --max-time 2 "$BASE/healthz" >/dev/null 2>&1 && [ -s "$dir/service-key" ]; then return 0; fi
        sleep 0.1
    done
    die "the server did not answer /healthz within 30 s"
}

RESULTS=()
RUN=0
for N in "$@"; do
    RUN=$((RUN + 1))
    DIR="$WORK/run-$N"
    mkdir -p "$DIR"
    PROCS=$(((N + PER_PROCESS - 1) / PER_PROCESS))
    log "N=$N: fresh server, $PROCS load process(es)"
    start_server "$DIR"
    KEY="$(cat "$DIR/service-key")"

    COUNTS=()
    for ((p = 0; p < PROCS; p++)); do
        COUNTS[p]=$(((N * (p + 1)) / PROCS - (N * p) / PROCS))
        LOADTEST_SERVICE_KEY="$KEY" timeout 900 "$LOADTEST" ws-tokens --base-url "$BASE" \
            --count "${COUNTS[p]}" --out "$DIR/tokens-$p" 2>>"$DIR/tokens.log" ||
            { cat "$DIR/tokens.log" >&2; die "creating sessions failed"; }
    done

    sleep 2
    RSS_BEFORE="$(rss_kib "$SERVER_PID" VmRSS)"
    ANON_BEFORE="$(rss_kib "$SERVER_PID" RssAnon)"
    TCP_BEFORE="$(tcp_pages)"
    SLAB_BEFORE="$(slab_kib)"
    log "before: server VmRSS ${RSS_BEFORE} KiB (anon ${ANON_BEFORE} KiB), kernel TCP ${TCP_BEFORE} pages, slab ${SLAB_BEFORE} KiB"

    # The generators hold far longer than needed; they are stopped (SIGTERM) once sampled.
    READY_SECS=$((120 + N / 50))
    HOLD=$((READY_SECS + SETTLE_SECS + 120))
    for ((p = 0; p < PROCS; p++)); do
        SOURCES=""
        for ((s = 1; s <= SOURCES_PER_PROCESS; s++)); do SOURCES+="${SOURCES:+,}127.$RUN.$((p + 1)).$s"; done
        timeout --kill-after=30 $((HOLD + READY_SECS + 60)) "$LOADTEST" ws-idle --base-url "$BASE" \
            --tokens-file "$DIR/tokens-$p" --connections "${COUNTS[p]}" --source-ips "$SOURCES" \
            --connect-concurrency "$CONNECT_CONCURRENCY" --hold-secs "$HOLD" --encoding msgpack \
            --ready-file "$DIR/ready-$p" >"$DIR/idle-$p.out" 2>"$DIR/idle-$p.err" &
        LOAD_PIDS+=($!)
    done

    for ((i = 0; ; i++)); do
        ready=0
        for ((p = 0; p < PROCS; p++)); do
            if [ -s "$DIR/ready-$p" ]; then ready=$((ready + 1)); fi
        done
        if [ "$ready" -eq "$PROCS" ]; then break; fi
        for pid in "${LOAD_PIDS[@]}"; do
            kill -0 "$pid" 2>/dev/null || { tail -n 20 "$DIR"/idle-*.err >&2; die "a load generator exited early"; }
        done
        [ "$i" -lt $((READY_SECS * 2)) ] || die "connections not all open within ${READY_SECS} s"
        sleep 0.5
    done
    WELCOMED=0
    for ((p = 0; p < PROCS; p++)); do WELCOMED=$((WELCOMED + $(json_num "$DIR/ready-$p" welcomed))); done
    [ "$WELCOMED" -gt 0 ] || die "no connection was welcomed (see $DIR/idle-*.err)"
    if [ "$WELCOMED" -ne "$N" ]; then log "only $WELCOMED of $N connections were welcomed: $(cat "$DIR"/ready-*)"; fi

    log "all open: $WELCOMED welcomed; settling ${SETTLE_SECS} s"
    sleep "$SETTLE_SECS"
    RSS_AFTER="$(rss_kib "$SERVER_PID" VmRSS)"
    ANON_AFTER="$(rss_kib "$SERVER_PID" RssAnon)"
    TCP_AFTER="$(tcp_pages)"
    SLAB_AFTER="$(slab_kib)"
    FDS="$(find "/proc/$SERVER_PID/fd" -mindepth 1 -maxdepth 1 | wc -l)"

    for pid in "${LOAD_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    LOST=0
    for ((p = 0; p < PROCS; p++)); do
        if ! wait "${LOAD_PIDS[p]}"; then log "load generator $p: $(tail -n 1 "$DIR/idle-$p.err")"; fi
        LOST=$((LOST + $(json_num "$DIR/idle-$p.out" welcomed) - $(json_num "$DIR/idle-$p.out" live)))
    done
    LOAD_PIDS=()
    sleep 3
    RSS_CLOSED="$(rss_kib "$SERVER_PID" VmRSS)"
    stop_pid "$SERVER_PID" 20
    SERVER_PID=""

    PER_CONN=$(((RSS_AFTER - RSS_BEFORE) * 1024 / WELCOMED))
    ANON_PER_CONN=$(((ANON_AFTER - ANON_BEFORE) * 1024 / WELCOMED))
    KERNEL_PER_CONN=$(((TCP_AFTER - TCP_BEFORE) * PAGE / WELCOMED))
    SLAB_PER_CONN=$(((SLAB_AFTER - SLAB_BEFORE) * 1024 / WELCOMED))
    log "N=$N: VmRSS ${RSS_BEFORE} -> ${RSS_AFTER} KiB (${PER_CONN} B/conn), after close ${RSS_CLOSED} KiB; server fds ${FDS}; lost while held ${LOST}"
    RESULTS+=("$(row "$N" "$WELCOMED" "$PROCS" "$RSS_BEFORE" "$RSS_AFTER" "$PER_CONN" \
        "$ANON_PER_CONN" "$RSS_CLOSED" "$KERNEL_PER_CONN" "$SLAB_PER_CONN")")
done

# Per connection: server VmRSS and RssAnon growth; the kernel's TCP buffer memory (sockstat) and
# slab growth, both for the two ends of each loopback connection and the whole machine.
echo
row connections welcomed procs rss_before rss_after rss_B/conn anon_B/conn \
    rss_closed tcp_mem_B/conn slab_B/conn
row "" "" "" KiB KiB "" "" KiB "(2 ends)" "(2 ends)"
printf '%s\n' "${RESULTS[@]}"
