#!/usr/bin/env bash
# Compares two builds on the single-node scenarios of BENCHMARKS.md in
# alternating runs: for each scenario A, B, A, B, ... (ROUNDS rounds), a fresh
# server per run, the run itself exactly as single-node.sh does it (bench_run
# in bench-run.sh). On a shared, noisy machine only runs interleaved like this
# compare; two series taken minutes apart do not.
#
# usage: testkit/scripts/compare.sh BIN_DIR_A BIN_DIR_B [SERVER] [ROUNDS] [SCENARIO...]
#   BIN_DIR_*  directories holding SERVER and loadgen (e.g. a copy of target/release)
#   SERVER     adapter-tokio (default) or adapter-smol
#   ROUNDS     default 3
#   SCENARIO   fanout500 fanout2000 idle durable memory (default: all five)
# environment: PORT (first port tried, default 18180), LOADGEN (one load
#   generator for both sides; default each side's own BIN_DIR/loadgen),
#   LOGDIR (keep every run's load generator and server output there).
#
# Per run it prints the key figure (fan-out: delivered/expected and
# deliveries/s; idle: server RSS bytes per connection; durable and memory:
# mutations/s) and the server's CPU time (utime+stime from /proc/PID/stat,
# read just before SIGTERM, so connection setup is included) per operation:
# per delivery, per idle connection, per mutation. Then the median of each
# side per scenario and the ratio B/A.
set -u
usage() { sed -n '/^# usage:/,/^#   LOGDIR/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 2 ] || usage
A=$(cd "$1" 2>/dev/null && pwd) || { echo "no directory $1" >&2; exit 2; }
B=$(cd "$2" 2>/dev/null && pwd) || { echo "no directory $2" >&2; exit 2; }
SERVER=${3:-adapter-tokio}; ROUNDS=${4:-3}
shift $(( $# < 4 ? $# : 4 ))
. "$(dirname "${BASH_SOURCE[0]}")/bench-run.sh"
SCENARIOS=${*:-$BENCH_SCENARIOS_ALL}
PORT=${PORT:-18180}
case $ROUNDS in '' | *[!0-9]* | 0) echo "ROUNDS must be a positive integer, not '$ROUNDS'" >&2; exit 2 ;; esac
for s in $SCENARIOS; do
    case " $BENCH_SCENARIOS_ALL " in *" $s "*) ;; *) echo "unknown scenario $s (known: $BENCH_SCENARIOS_ALL)" >&2; exit 2 ;; esac
done
for d in "$A" "$B"; do
    for f in "$SERVER" loadgen; do
        [ -n "${LOADGEN:-}" ] && [ "$f" = loadgen ] && continue
        [ -x "$d/$f" ] || { echo "no executable $d/$f" >&2; exit 2; }
    done
done
[ -z "${LOADGEN:-}" ] || [ -x "$LOADGEN" ] || { echo "no executable LOADGEN=$LOADGEN" >&2; exit 2; }
DIR=$(mktemp -d); trap 'bench_cleanup; rm -rf "$DIR"' EXIT; trap 'exit 130' INT TERM
[ -z "${LOGDIR:-}" ] || mkdir -p "$LOGDIR" || exit 2
bench_limits

describe() { # SIDE DIR
    local c=
    [ -r "$2/COMMIT" ] && c=", commit $(head -c 12 "$2/COMMIT")"
    echo "$1 = $2 ($SERVER sha256 $(sha256sum "$2/$SERVER" | head -c 12)$c; loadgen ${LOADGEN:-$2/loadgen})"
}
echo "compare: $SERVER, $ROUNDS round(s) of $SCENARIOS; $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, ulimit -n $(ulimit -n), load average $(cut -d' ' -f1-3 /proc/loadavg)"
describe A "$A"
describe B "$B"

median() {
    printf '%s\n' "$@" | grep -v '^$' | sort -g | awk 'BEGIN { OFMT = "%.10g" } { a[NR] = $1 }
        END { if (NR == 0) print "n/a"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a" || a + 0 == 0) print "n/a"; else printf "%.3f\n", b / a }'; }
field() { # REGEX (with one group) from BENCH_OUT
    echo "$BENCH_OUT" | sed -nE "s/$1/\1/p" | head -n 1
}

declare -A KEY CPU PCT
for scenario in $SCENARIOS; do
    case $scenario in
    fanout*) key_name=deliveries/s; op=delivery ;;
    idle) key_name="bytes per connection"; op=connection ;;
    *) key_name=mutations/s; op=mutation ;;
    esac
    for round in $(seq 1 "$ROUNDS"); do
        for side in A B; do
            [ $side = A ] && bin=$A || bin=$B
            tag="$scenario $side $round"
            key= ops= pct=
            if ! bench_run "$bin" "$SERVER" "$scenario" "$DIR" "${LOADGEN:-$bin/loadgen}"; then
                echo "$tag: not run: $BENCH_ERR"
                continue
            fi
            if [ -n "${LOGDIR:-}" ]; then
                echo "$BENCH_OUT" >"$LOGDIR/$scenario-$side-$round.loadgen.txt"
                cp "$BENCH_LOG" "$LOGDIR/$scenario-$side-$round.server.txt"
            fi
            case $scenario in
            fanout*)
                de=$(field '^delivered\/expected: ([0-9]+\/[0-9]+ \([0-9.]+%\)).*')
                pct=$(field '^delivered\/expected: [0-9]+\/[0-9]+ \(([0-9.]+)%\).*')
                ops=$(field '^delivered\/expected: ([0-9]+)\/.*')
                key=$(field '^deliveries\/s: ([0-9.]+).*')
                slow=$(field '^closed as slow \(4008\): ([0-9]+).*')
                figure="delivered/expected ${de:-?}, ${key:-?} deliveries/s, ${slow:-?} closed as slow"
                ;;
            idle)
                ops=$(field '^idle: ([0-9]+) open.*')
                failed=$(field '^idle: [0-9]+ open, ([0-9]+) failed.*')
                key=$(field '.*\(([0-9.-]+) bytes per connection\).*')
                figure="${key:-?} bytes per connection (${ops:-?} open, ${failed:-?} failed)"
                ;;
            *)
                ops=$(field '^pushes: ([0-9]+) ok.*')
                failed=$(field '^pushes: [0-9]+ ok, ([0-9]+) failed.*')
                key=$(field '^mutations\/s: ([0-9.]+).*')
                figure="${key:-?} mutations/s (${ops:-?} pushes, ${failed:-?} failed)"
                ;;
            esac
            cpu_op=
            if [ -n "$BENCH_TICKS" ] && [ -n "${ops:-}" ] && [ "$ops" -gt 0 ]; then
                cpu_op=$(awk -v t="$BENCH_TICKS" -v hz="$BENCH_CLK_TCK" -v n="$ops" 'BEGIN { printf "%#.3g", t / hz / n * 1e6 }')
            fi
            note=
            [ "$BENCH_GEN_RC" = 0 ] || note="; loadgen exit $BENCH_GEN_RC: $(echo "$BENCH_OUT" | grep '^loadgen:' | head -n 1)"
            [ "$BENCH_RC" = 0 ] || note="$note; server log: $(tail -n 2 "$BENCH_LOG" | tr '\n' ' ')"
            echo "$tag: $figure; server CPU ${BENCH_CPU:-?} s, ${cpu_op:-?} µs per $op (load $BENCH_LOAD, peak RSS $BENCH_PEAK, exit $BENCH_RC$note)"
            # A run whose load generator failed gives no figure for the medians.
            if [ "$BENCH_GEN_RC" = 0 ]; then
                KEY[$scenario:$side]="${KEY[$scenario:$side]:-} ${key:-}"
                CPU[$scenario:$side]="${CPU[$scenario:$side]:-} $cpu_op"
                PCT[$scenario:$side]="${PCT[$scenario:$side]:-} ${pct:-}"
            fi
        done
    done
done

echo
echo "medians (A = $A, B = $B)"
printf '%-11s %12s %12s %7s  %s\n' scenario 'A median' 'B median' B/A figure
row() { # SCENARIO LABEL ARRAY
    local -n arr=$3
    local ma mb
    # shellcheck disable=SC2086
    ma=$(median ${arr[$1:A]:-}); mb=$(median ${arr[$1:B]:-})
    printf '%-11s %12s %12s %7s  %s\n' "$1" "$ma" "$mb" "$(ratio "$ma" "$mb")" "$2"
}
for scenario in $SCENARIOS; do
    case $scenario in
    fanout*)
        row "$scenario" deliveries/s KEY
        row "$scenario" "delivered %" PCT
        row "$scenario" "CPU µs per delivery" CPU
        ;;
    idle)
        row "$scenario" "bytes per connection" KEY
        row "$scenario" "CPU µs per connection" CPU
        ;;
    *)
        row "$scenario" mutations/s KEY
        row "$scenario" "CPU µs per mutation" CPU
        ;;
    esac
done
