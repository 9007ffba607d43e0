#!/usr/bin/env bash
# The single-node figures of BENCHMARKS.md ("Targets"): every scenario RUNS
# times, a fresh server per run (stopped with SIGTERM after it), the load
# generator beside it on loopback. Prints the load generator's summary lines,
# the server's peak RSS and the load average before each run.
# usage: testkit/scripts/single-node.sh [adapter-tokio|adapter-smol] [RUNS] [SCENARIO...]
# scenarios: fanout500 fanout2000 idle durable (default: all)
set -u
SERVER=${1:-adapter-tokio}; RUNS=${2:-3}; shift 2 2>/dev/null || shift $#
SCENARIOS=${*:-fanout500 fanout2000 idle durable}
BIN=${BIN:-target/release}; PORT=${PORT:-18080}; URL=http://127.0.0.1:$PORT
DIR=$(mktemp -d); trap 'rm -rf "$DIR"' EXIT
ulimit -n 65536 2>/dev/null || ulimit -n 20000

wait_port() {
    for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && return; sleep 0.05; done
    echo "server did not listen on $PORT" >&2; exit 1
}

for scenario in $SCENARIOS; do
    for run in $(seq 1 "$RUNS"); do
        store=(--memory)
        case $scenario in
        fanout500) gen=(fanout --subscribers 1000 --topics 1 --publishers 1 --rate 500 --duration 10) ;;
        fanout2000) gen=(fanout --subscribers 1000 --topics 1 --publishers 4 --rate 2000 --duration 10) ;;
        idle) gen=(idle --connections 10000 --hold 5) ;;
        durable)
            rm -f "$DIR"/s.db*; store=(--db "$DIR/s.db")
            gen=(sync --clients 32 --duration 10 --scope load --no-pull)
            ;;
        *) echo "unknown scenario $scenario" >&2; exit 2 ;;
        esac
        load=$(cut -d' ' -f1 /proc/loadavg)
        "$BIN/$SERVER" --addr 127.0.0.1:$PORT "${store[@]}" --log-level warn &
        pid=$!
        wait_port
        [ "$scenario" = idle ] && gen+=(--server-pid "$pid")
        out=$("$BIN/loadgen" --url "$URL" "${gen[@]}" 2>&1)
        peak=$(awk '/VmHWM/ {print $2 " kB"}' /proc/$pid/status)
        kill -TERM "$pid"; wait "$pid"; rc=$?
        echo "== $SERVER $scenario run $run (load average $load; server peak RSS $peak; exit $rc)"
        echo "$out" | grep -E 'delivered/expected|deliveries/s|latency|closed as slow|mutations/s|per connection|pushes:|open,'
    done
done
