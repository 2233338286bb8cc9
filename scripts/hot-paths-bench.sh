#!/usr/bin/env bash
# Hot paths on a three-node cluster, open loop: `scripts/hot-paths-bench.sh`.
#
#   1. builds the release server and load generator;
#   2. starts a private redis-server (random free port, no persistence, temporary directory) and
#      creates a fresh Postgres database on 127.0.0.1:5432 (user postgres, trust);
#   3. starts three nodes on random free ports sharing that database, that Redis (prefix `bench`)
#      and one data directory (see scripts/lib/cluster.sh);
#   4. creates SESSIONS sessions through node 1 (`loadtest ws-tokens`);
#   5. primes the session cache: every session validated once (at 5,000/s, not measured), so the
#      runs measure cache hits, as a service whose sessions are in use serves them;
#   6. for each scenario and each rate, runs `loadtest paced`: requests due on a fixed grid at
#      RATE per second, request k to node k % 3, timed from its due time, WARMUP seconds not
#      counted, then DURATION seconds measured:
#        validate  `POST /session/validate` with a refresh token (served from the session cache);
#        ws-auth   a new WebSocket per request from source addresses 127.0.0.2-127.0.0.9,
#                  `auth` -> `welcome`, then closed;
#   7. prints each report and stops everything it started (redis, the nodes, the database).
#
# Environment: SCENARIOS (default "validate ws-auth"), RATES (requests per second, default
# "10000"; several values run one after the other), DURATION (default 10), WARMUP (default 2),
# SESSIONS (default 20000), MAX_IN_FLIGHT (default 2000), PRIME_RATE (validations per second of the
# priming pass, default 5000; lower it where the cold reads cannot keep up, or the runs measure
# cache misses), KEEP=1 keeps the temporary directory.
# Exits non-zero when a run had failed or skipped requests (the report is printed first). Every
# wait is bounded; the script always ends by itself and stops only the processes it started.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
SCRIPT=hot-paths-bench.sh
# shellcheck source=scripts/lib/cluster.sh
. scripts/lib/cluster.sh

SCENARIOS="${SCENARIOS:-validate ws-auth}"
RATES="${RATES:-10000}"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"
SESSIONS="${SESSIONS:-20000}"
MAX_IN_FLIGHT="${MAX_IN_FLIGHT:-2000}"
NODES=3

for s in $SCENARIOS; do [[ "$s" == validate || "$s" == ws-auth ]] || die "unknown scenario $s"; done
for r in $RATES; do is_count "$r" && [ "$r" -le 100000 ] || die "RATES must be 1..100000 each"; done
is_count "$DURATION" && [ "$DURATION" -le 600 ] || die "DURATION must be 1..600"
[[ "$WARMUP" =~ ^[0-9]+$ ]] && [ "$WARMUP" -le 120 ] || die "WARMUP must be 0..120"
PRIME_RATE="${PRIME_RATE:-5000}"
is_count "$PRIME_RATE" || die "PRIME_RATE must be a positive count"
is_count "$SESSIONS" && [ "$SESSIONS" -le 1000000 ] || die "SESSIONS must be 1..1000000"
is_count "$MAX_IN_FLIGHT" && [ "$MAX_IN_FLIGHT" -le 19000 ] || die "MAX_IN_FLIGHT must be 1..19000"

cluster_up "$NODES" $((MAX_IN_FLIGHT + 200))
cluster_tokens "$SESSIONS"

PRIME_SECS=$(((SESSIONS + PRIME_RATE - 1) / PRIME_RATE))
log "priming the cache: $SESSIONS validations at $PRIME_RATE/s"
RUST_BACKTRACE=0 timeout --kill-after=30 $((PRIME_SECS + 60)) "$LOADTEST" paced --base-urls "$BASE_URLS" \
    --tokens-file "$WORK/tokens" --scenario validate --rate "$PRIME_RATE" --duration-secs "$PRIME_SECS" --warmup-secs 0 \
    --sessions "$SESSIONS" --max-in-flight "$MAX_IN_FLIGHT" >"$WORK/prime.out" 2>&1 ||
    log "priming had failed or skipped requests (not measured): $(grep '^requests' "$WORK/prime.out")"

STATUS=0
# Each run ends within its warm-up, duration and drain (request timeout 5 s + 10 s).
LIMIT=$((WARMUP + DURATION + 60))
for scenario in $SCENARIOS; do
    for rate in $RATES; do
        log "paced $scenario at $rate/s over $NODES nodes (${WARMUP} s warm-up, ${DURATION} s measured)"
        out="$WORK/paced-$scenario-$rate.out"
        set +e
        RUST_BACKTRACE=0 timeout --kill-after=30 "$LIMIT" "$LOADTEST" paced --base-urls "$BASE_URLS" --tokens-file "$WORK/tokens" \
            --scenario "$scenario" --rate "$rate" --duration-secs "$DURATION" --warmup-secs "$WARMUP" \
            --sessions "$SESSIONS" --max-in-flight "$MAX_IN_FLIGHT" --source-ips "$SOURCE_IPS" >"$out"
        run=$?
        set -e
        echo
        cat "$out"
        if [ "$run" -ne 0 ]; then
            log "paced $scenario at $rate/s exited with status $run"
            STATUS=$run
        fi
    done
done
[ "$STATUS" -eq 0 ] || { log "last lines of the node logs:"; cluster_tail_logs; }
exit "$STATUS"
