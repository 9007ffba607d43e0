#!/usr/bin/env bash
# CLIENTS clients resuming at once after a node restart (BENCHMARKS.md,
# "Resuming after a node restart"). Node A holds the clients (loadgen
# `resume`), node B the publisher; both share BROKER, which keeps the
# topic's history. After UP seconds of publishing, A is stopped with SIGNAL
# and started again on the same port after DOWN seconds; every client
# reconnects (spread over JITTER seconds) and resumes from its position.
# Without a broker (BROKER=none) one node does both and its restart loses
# the history: every client is told it was not recovered.
# Prints the load generator's report. Run from the workspace root after
#   cargo build --release -p adapter-tokio -p testkit --bin loadgen
# usage: testkit/scripts/resume-restart.sh [BROKER] [SERVER]
#   BROKER  redis://127.0.0.1:6379 (default), nats://127.0.0.1:4222 or none
#   env: CLIENTS=1000 RATE=200 DURATION=10 UP=3 DOWN=1 JITTER=1 SIGNAL=TERM DRAIN=10
#   (DRAIN: seconds the clients keep reading after the last publish)
set -u
BROKER=${1:-redis://127.0.0.1:6379}; SERVER=${2:-adapter-tokio}
CLIENTS=${CLIENTS:-1000}; RATE=${RATE:-200}; DURATION=${DURATION:-10}
UP=${UP:-3}; DOWN=${DOWN:-1}; JITTER=${JITTER:-1}; SIGNAL=${SIGNAL:-TERM}; DRAIN=${DRAIN:-10}
BIN=${BIN:-target/release}
PORT_A=${PORT_A:-18911}; PORT_B=${PORT_B:-18912}
TOPIC=resume-$$
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
DIR=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$DIR"; }
trap cleanup EXIT; trap 'exit 130' INT TERM

node() { # node PORT: starts it, its pid in NODE_PID
    local broker=()
    [ "$BROKER" != none ] && broker=(--broker "$BROKER")
    env -u LIVE_SYNC_HISTORY "$BIN/$SERVER" --addr "127.0.0.1:$1" --memory "${broker[@]}" \
        --history 'resume-*=100000/600s' --log-level warn >>"$DIR/node-$1.log" 2>&1 &
    NODE_PID=$!; pids+=("$NODE_PID")
}
ready() { # ready PORT: wait until it answers
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "node on $1 did not start:" >&2; cat "$DIR/node-$1.log" >&2; exit 1
}

node "$PORT_A"; a=$NODE_PID; ready "$PORT_A"
publish=()
if [ "$BROKER" != none ]; then
    node "$PORT_B"; ready "$PORT_B"
    publish=(--publish-url "http://127.0.0.1:$PORT_B")
fi
"$BIN/loadgen" --url "http://127.0.0.1:$PORT_A" resume --clients "$CLIENTS" --topic "$TOPIC" \
    "${publish[@]}" --rate "$RATE" --duration "$DURATION" --jitter "$JITTER" --drain "$DRAIN" \
    >"$DIR/loadgen.out" 2>"$DIR/loadgen.err" &
gen=$!
# Restart A once the clients are in and publishing has gone on UP seconds.
until grep -q "clients subscribed" "$DIR/loadgen.err" 2>/dev/null; do
    kill -0 "$gen" 2>/dev/null || break
    sleep 0.1
done
sleep "$UP"
ms() { date +%s%3N; }
t_kill=$(ms)
kill "-$SIGNAL" "$a"; wait "$a" 2>/dev/null
t_exit=$(ms)
sleep "$DOWN"
node "$PORT_A"; ready "$PORT_A"
t_up=$(ms)
wait "$gen"; rc=$?
echo "== $SERVER broker=$BROKER clients=$CLIENTS rate=$RATE/s jitter=${JITTER}s (loadgen exit $rc)"
echo "node A: SIG$SIGNAL at $t_kill ms, exited $((t_exit - t_kill)) ms later, listening again $((t_up - t_kill)) ms after the signal"
cat "$DIR/loadgen.out"
last=$(grep -o 'last reply at [0-9]*' "$DIR/loadgen.out" | grep -o '[0-9]*$')
[ -n "$last" ] && echo "last client reply $((last - t_up)) ms after node A listened again"
grep -v "clients subscribed" "$DIR/loadgen.err" | tail -5
exit $rc
