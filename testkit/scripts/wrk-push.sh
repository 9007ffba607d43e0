#!/usr/bin/env bash
# Pushes as an outside load generator sees them: wrk (Debian's package) with
# wrk-fresh-push.lua, one fresh mutation per request over 100 scopes, 32
# connections, one wrk thread, against a fresh server per run. Prints per run
# the pushes/s, the non-2xx answers and the server's CPU per push (utime +
# stime from /proc/PID/stat over the wrk run only), then the medians.
# usage: testkit/scripts/wrk-push.sh [BIN_DIR] [SERVER] [STORE] [RUNS] [SECONDS]
#   BIN_DIR  default target/release; SERVER adapter-tokio (default) or adapter-smol
#   STORE    memory (default) or sqlite (a fresh file, synchronous=FULL)
set -u
BIN=${1:-target/release}; SERVER=${2:-adapter-tokio}; STORE=${3:-memory}
RUNS=${4:-3}; SECONDS_=${5:-5}; PORT=${PORT:-18280}
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=$(mktemp -d); trap 'rm -rf "$DIR"' EXIT
TCK=$(getconf CLK_TCK)
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 2; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR) print (NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2)}'; }

rates=(); costs=()
for run in $(seq 1 "$RUNS"); do
    case $STORE in
    memory) store=(--memory) ;;
    sqlite) rm -f "$DIR"/w.db*; store=(--db "$DIR/w.db" --durability full) ;;
    *) echo "unknown store $STORE" >&2; exit 2 ;;
    esac
    env $(env | grep -o '^LIVE_SYNC_[A-Z_]*' | sed 's/^/-u /') \
        "$BIN/$SERVER" --addr "127.0.0.1:$PORT" "${store[@]}" --log-level warn >"$DIR/server.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done
    load=$(cut -d' ' -f1 /proc/loadavg)
    before=$(cpu_ticks "$pid")
    out=$(wrk -t1 -c32 -d"${SECONDS_}s" -s "$HERE/wrk-fresh-push.lua" "http://127.0.0.1:$PORT" -- "run$run" 2>&1)
    after=$(cpu_ticks "$pid")
    kill -TERM "$pid"; wait "$pid"
    requests=$(echo "$out" | awk '/requests in/ {print $1}')
    rate=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    bad=$(echo "$out" | awk '/Non-2xx/ {print $NF}'); bad=${bad:-0}
    errors=$(echo "$out" | grep -E 'Socket errors' || true)
    cost=$(awk -v t=$((after - before)) -v hz="$TCK" -v n="$requests" 'BEGIN {printf "%.1f", n ? t / hz / n * 1e6 : 0}')
    echo "$SERVER $STORE run $run: $rate pushes/s ($requests requests, $bad non-2xx${errors:+, $errors}); server CPU $cost µs per push (load $load)"
    rates+=("$rate"); costs+=("$cost")
done
echo "$SERVER $STORE median: $(printf '%s\n' "${rates[@]}" | median) pushes/s, $(printf '%s\n' "${costs[@]}" | median) µs server CPU per push"
