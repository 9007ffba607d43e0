#!/usr/bin/env bash
# A soak: MINUTES of mixed load on one fresh server, then a check that it
# came back to where it was and lost nothing.
#
# Load, all at once, from three load generators beside the server:
#   fan-out  500 subscribers on one topic, 500 publishes/s (250 000
#            deliveries/s, about half of what one node delivers here)
#   pushes   32 clients, 4 000 pushes/s in all, each over 100 keys of its own
#            scope, SQLite with synchronous=FULL (about a fifth of a node's
#            push capacity, beside the fan-out: together about half the
#            machine); the same 32 client ids in every round, each resuming
#            from the sequence the server last applied for it (the server
#            keeps up to 1024 results per client id it has seen, so new ids
#            every round would grow it by design, not by a leak)
#   churn    200 clients a second connecting, subscribing, hearing their own
#            publish and leaving after 1 s
# The server runs with --keep-changes 1000: the engine holds each scope's
# retained log in memory, and a bounded log is what a long-running
# deployment runs with. The warm-up writes the same 32 scopes, long enough
# (at the rate above) to fill each log to its bound, so "before" already
# holds the working set.
#
# Levels (resident memory, open file descriptors, threads, and the server's
# own gauges of open connections and WebSocket tasks) are read three times:
# right after start ("cold"), after a WARMUP-second run of the same load and
# 15 s of rest ("before": the working set of allocator, caches and tables
# established), and after the soak and 15 s of rest ("after"). The soak
# passes when every "after" level is within 10 % of "before" (connections
# and tasks exactly back to it), no fan-out message was lost or subscriber
# closed, no churn client failed, no push failed, and every client's
# acknowledged pushes are in its snapshot (loadgen sync --verify).
#
# usage: testkit/scripts/soak.sh [BIN_DIR] [SERVER] [MINUTES] [WARMUP]
#   BIN_DIR default target/release; SERVER adapter-tokio (default) or
#   adapter-smol; MINUTES default 10; WARMUP seconds, default 60.
set -u
BIN=${1:-target/release}; SERVER=${2:-adapter-tokio}; MINUTES=${3:-10}; WARMUP=${4:-60}
PORT=${PORT:-18480}; URL="http://127.0.0.1:$PORT"
DIR=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null; rm -rf "$DIR"; }
trap cleanup EXIT; trap 'exit 130' INT TERM
for b in "$BIN/$SERVER" "$BIN/loadgen"; do
    [ -x "$b" ] || { echo "no executable $b" >&2; exit 2; }
done
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

gauge() { curl -s "$URL/metrics" | awk -v n="$1" '$1 == n {print $2}'; }
# Sets RSS (kB), FDS, THREADS, CONNS (besides the one reading), WS.
levels() {
    RSS=$(awk '/^VmRSS/ {print $2}' "/proc/$PID/status")
    THREADS=$(awk '/^Threads/ {print $2}' "/proc/$PID/status")
    FDS=$(ls "/proc/$PID/fd" | wc -l)
    CONNS=$(( $(gauge server_connections) - 1 ))
    WS=$(gauge server_websockets)
}
show() { echo "$1: RSS $RSS kB, $FDS open fds, $THREADS threads, $CONNS connections, $WS WebSocket tasks"; }

# One round of the load for $1 seconds; output in $DIR/{fanout,sync,churn}.$2
load() {
    local secs=$1 tag=$2 fpid spid cpid
    "$BIN/loadgen" --url "$URL" fanout --subscribers 500 --topics 1 --publishers 1 \
        --rate 500 --duration "$secs" >"$DIR/fanout.$tag" 2>&1 &
    fpid=$!
    "$BIN/loadgen" --url "$URL" sync --clients 32 --rate 4000 --keys 100 --duration "$secs" \
        --scope soak --scope-per-client --client-prefix soak --no-pull --verify >"$DIR/sync.$tag" 2>&1 &
    spid=$!
    "$BIN/loadgen" --url "$URL" churn --rate 200 --duration "$secs" --stay 1 >"$DIR/churn.$tag" 2>&1 &
    cpid=$!
    wait "$fpid"; FANOUT_RC=$?
    wait "$spid"; SYNC_RC=$?
    wait "$cpid"; CHURN_RC=$?
}

# Checks one round's outputs; prints them and what failed; returns 1 on failure.
judge() {
    local tag=$1 ok=0
    echo "-- fan-out"; grep -E 'delivered/expected|deliveries/s|latency|closed' "$DIR/fanout.$tag"
    echo "-- pushes"; grep -E 'pushes:|mutations/s|push latency|verified|error|server:' "$DIR/sync.$tag"
    echo "-- churn"; grep -E 'churn:|first failure|heard|error' "$DIR/churn.$tag"
    [ "$FANOUT_RC" = 0 ] && awk -F'[ /]' '/^delivered\/expected:/ { exit !($3 == $4 && $3 > 0) }' "$DIR/fanout.$tag" \
        && grep -q 'closed as slow (4008): 0, closed otherwise: 0' "$DIR/fanout.$tag" \
        || { echo "FAIL: fan-out lost messages or subscribers (exit $FANOUT_RC)"; ok=1; }
    [ "$SYNC_RC" = 0 ] && grep -q ' 0 failed' "$DIR/sync.$tag" && grep -q '^verified:' "$DIR/sync.$tag" \
        || { echo "FAIL: pushes failed or acknowledged pushes are missing (exit $SYNC_RC)"; ok=1; }
    [ "$CHURN_RC" = 0 ] && grep -q ' 0 failed$' "$DIR/churn.$tag" \
        || { echo "FAIL: churn clients failed (exit $CHURN_RC)"; ok=1; }
    return $ok
}

# within A B: B is within 10 % of A (and at most 1 above for tiny counts).
within() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(b <= a * 1.1 || b <= a + 1) }'; }

env $(env | grep -o '^LIVE_SYNC_[A-Z_]*' | sed 's/^/-u /') \
    "$BIN/$SERVER" --addr "127.0.0.1:$PORT" --db "$DIR/soak.db" --durability full \
    --keep-changes 1000 --log-level warn >"$DIR/server.log" 2>&1 &
PID=$!
for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done
echo "== $SERVER soak: $MINUTES min, warm-up $WARMUP s, load average $(cut -d' ' -f1 /proc/loadavg)"
levels; show cold

load "$WARMUP" warm
sleep 15
levels; show before
read -r B_RSS B_FDS B_THREADS B_CONNS B_WS <<<"$RSS $FDS $THREADS $CONNS $WS"
judge warm >/dev/null || { echo "the warm-up already failed:"; judge warm; exit 1; }

started=$(date +%s)
cpu0=$(awk '{print $14 + $15}' "/proc/$PID/stat")
# Resident memory once a minute during the soak: a leak climbs, a working
# set levels off.
( while sleep 60; do awk '/^VmRSS/ {printf "%s ", $2}' "/proc/$PID/status" 2>/dev/null || break; done ) >"$DIR/rss" &
SAMPLER=$!
load $(( MINUTES * 60 )) soak
kill "$SAMPLER" 2>/dev/null
cpu1=$(awk '{print $14 + $15}' "/proc/$PID/stat")
PEAK=$(awk '/^VmHWM/ {print $2}' "/proc/$PID/status")
sleep 15
levels; show after
echo "RSS each minute of the soak (kB): $(cat "$DIR/rss")"
echo "soak took $(( $(date +%s) - started )) s; server CPU $(awk -v t=$((cpu1 - cpu0)) -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.0f", t / hz}') s; peak RSS $PEAK kB; load average $(cut -d' ' -f1 /proc/loadavg)"
failed=0
judge soak || failed=1
within "$B_RSS" "$RSS" || { echo "FAIL: RSS $RSS kB is not within 10 % of $B_RSS kB"; failed=1; }
within "$B_FDS" "$FDS" || { echo "FAIL: $FDS open fds, $B_FDS before"; failed=1; }
within "$B_THREADS" "$THREADS" || { echo "FAIL: $THREADS threads, $B_THREADS before"; failed=1; }
[ "$CONNS" = "$B_CONNS" ] || { echo "FAIL: $CONNS connections open, $B_CONNS before"; failed=1; }
[ "$WS" = "$B_WS" ] || { echo "FAIL: $WS WebSocket tasks, $B_WS before"; failed=1; }
kill -TERM "$PID"; wait "$PID"; rc=$?; PID=
[ "$rc" = 0 ] || { echo "FAIL: the server exited with $rc after SIGTERM"; failed=1; }
if [ "$failed" = 0 ]; then echo "== $SERVER soak: PASS"; else echo "== $SERVER soak: FAIL"; fi
exit "$failed"
