#!/usr/bin/env bash
# The single-node figures of BENCHMARKS.md ("Targets"): every scenario RUNS
# times, a fresh server per run (stopped with SIGTERM after it), the load
# generator beside it on loopback. Prints the load generator's summary lines,
# the server's peak RSS and CPU time and the load average before each run.
# The run itself is bench_run in bench-run.sh (shared with compare.sh).
# usage: testkit/scripts/single-node.sh [adapter-tokio|adapter-smol] [RUNS] [SCENARIO...]
# scenarios: fanout500 fanout2000 idle durable (default: all four) fanout2500 memory
set -u
SERVER=${1:-adapter-tokio}; RUNS=${2:-3}; shift 2 2>/dev/null || shift $#
SCENARIOS=${*:-fanout500 fanout2000 idle durable}
BIN=${BIN:-target/release}; PORT=${PORT:-18080}
. "$(dirname "${BASH_SOURCE[0]}")/bench-run.sh"
DIR=$(mktemp -d); trap 'bench_cleanup; rm -rf "$DIR"' EXIT; trap 'exit 130' INT TERM
bench_limits

for scenario in $SCENARIOS; do
    for run in $(seq 1 "$RUNS"); do
        if ! bench_run "$BIN" "$SERVER" "$scenario" "$DIR"; then
            echo "== $SERVER $scenario run $run: not run: $BENCH_ERR"
            case $BENCH_ERR in unknown*|no\ executable*) exit 2 ;; esac
            continue
        fi
        echo "== $SERVER $scenario run $run (load average $BENCH_LOAD; server peak RSS $BENCH_PEAK; server CPU ${BENCH_CPU:-?} s; exit $BENCH_RC)"
        echo "$BENCH_OUT" | grep -E 'delivered/expected|deliveries/s|latency|closed as slow|mutations/s|per connection|pushes:|open,|^loadgen:'
    done
done
