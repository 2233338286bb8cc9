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
SCRIPT=cluster-bench.sh
# shellcheck source=scripts/lib/cluster.sh
. scripts/lib/cluster.sh

CONNECTIONS="${CONNECTIONS:-10000}"
SAMPLES="${SAMPLES:-1000}"
RATE="${RATE:-100}"
NODES=3

is_count "$CONNECTIONS" && [ "$CONNECTIONS" -le 19900 ] || die "CONNECTIONS must be 1..19900"
is_count "$SAMPLES" && [ "$SAMPLES" -le "$CONNECTIONS" ] || die "SAMPLES must be 1..CONNECTIONS"
is_count "$RATE" && [ "$RATE" -le 10000 ] || die "RATE must be 1..10000"

# The load generator holds every connection itself; each node a third of them.
cluster_up "$NODES" $((CONNECTIONS + 100))
cluster_tokens "$CONNECTIONS"

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
    cluster_tail_logs
fi
exit "$STATUS"
