#!/usr/bin/env bash
# REST on one node before and during a Redis outage: `scripts/redis-outage-bench.sh`.
#
#   1. builds the release server and load generator;
#   2. starts a private redis-server (random free port, no persistence, temporary directory), a
#      fresh Postgres database on 127.0.0.1:5432 and one node on both, with the default Redis
#      settings (REDIS_TIMEOUT_MS 500, NODE_HEARTBEAT_MS 1000; see scripts/lib/cluster.sh);
#   3. for each scenario, a closed-loop `loadtest` REST run: CONCURRENCY workers with one request
#      in flight each, over SESSIONS sessions, WARMUP seconds not counted, DURATION measured:
#        me        `GET /session/me` (access token; the session read from the cache)
#        validate  `POST /session/validate` (refresh token; from the cache)
#        update    `PUT /sessions/{id}` (store write, then a cache invalidation)
#        refresh   `POST /session/refresh` (store compare-and-swap, then an invalidation)
#        get       `GET /sessions/{id}` (store read, presence lookup in Redis)
#   4. takes Redis away: OUTAGE=kill (the default) kills redis-server (SIGKILL: connections are
#      refused at once), OUTAGE=freeze stops it (SIGSTOP: connections stay open, nothing answers,
#      every call waits for its timeout);
#   5. runs the same scenarios again, the first one with no warm-up, so its maximum includes the
#      request that found Redis gone;
#   6. prints each report and stops everything it started.
#
# Environment: OUTAGE (default kill), SCENARIOS (default "me validate update refresh get"),
# CONCURRENCY (default 4), SESSIONS (default 1000), DURATION (default 10), WARMUP (default 2),
# KEEP=1 keeps the temporary directory. Exits non-zero when a run had no successful request. Every wait is bounded; the
# script stops only the processes it started.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
SCRIPT=redis-outage-bench.sh
# shellcheck source=scripts/lib/cluster.sh
. scripts/lib/cluster.sh

OUTAGE="${OUTAGE:-kill}"
SCENARIOS="${SCENARIOS:-me validate update refresh get}"
CONCURRENCY="${CONCURRENCY:-4}"
SESSIONS="${SESSIONS:-1000}"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"

[[ "$OUTAGE" == kill || "$OUTAGE" == freeze ]] || die "OUTAGE must be kill or freeze"
for s in $SCENARIOS; do
    [[ " me validate update refresh get " == *" $s "* ]] || die "unknown scenario $s"
done
is_count "$CONCURRENCY" && [ "$CONCURRENCY" -le 1000 ] || die "CONCURRENCY must be 1..1000"
is_count "$SESSIONS" && [ "$SESSIONS" -le 100000 ] || die "SESSIONS must be 1..100000"
is_count "$DURATION" && [ "$DURATION" -le 600 ] || die "DURATION must be 1..600"
[[ "$WARMUP" =~ ^[0-9]+$ ]] && [ "$WARMUP" -le 120 ] || die "WARMUP must be 0..120"

cluster_up 1 $((CONCURRENCY + 200))

STATUS=0
# A run ends within its warm-up, duration, session set-up and request timeout (10 s).
LIMIT=$((WARMUP + DURATION + 120))
run_all() { # run_all PHASE FIRST_WARMUP
    local phase="$1" warmup="$2" scenario out rc
    for scenario in $SCENARIOS; do
        log "$phase: $scenario, $CONCURRENCY workers (${warmup} s warm-up, ${DURATION} s measured)"
        out="$WORK/$phase-$scenario.out"
        set +e
        RUST_BACKTRACE=0 timeout --kill-after=30 "$LIMIT" "$LOADTEST" --base-url "${BASES[0]}" --service-key "$KEY" \
            --scenario "$scenario" --concurrency "$CONCURRENCY" --sessions "$SESSIONS" \
            --duration-secs "$DURATION" --warmup-secs "$warmup" >"$out" 2>"$out.err"
        rc=$?
        set -e
        echo
        echo "--- $phase: $scenario"
        cat "$out"
        if [ "$rc" -ne 0 ]; then
            log "$phase $scenario exited with status $rc: $(tail -n 3 "$out.err")"
            STATUS=$rc
        fi
        warmup="$WARMUP"
    done
}

run_all redis-up "$WARMUP"
if [ "$OUTAGE" = kill ]; then
    log "killing redis-server (pid $REDIS_PID)"
    kill -KILL "$REDIS_PID"
    wait "$REDIS_PID" 2>/dev/null || true
    REDIS_PID=""
else
    log "freezing redis-server (pid $REDIS_PID)"
    kill -STOP "$REDIS_PID"
fi
run_all redis-down 0
log "breaker series of the node:"
curl -sf --max-time 5 "${BASES[0]}/metrics" | grep -E '^session_bus_(breaker|short|connected)' >&2 || true
# A frozen server would take the cleanup's SIGTERM only once resumed.
[ -z "$REDIS_PID" ] || kill -CONT "$REDIS_PID"
[ "$STATUS" -eq 0 ] || { log "last lines of the node log:"; cluster_tail_logs; }
exit "$STATUS"
