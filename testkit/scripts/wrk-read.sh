#!/usr/bin/env bash
# What reads cost, as an outside load generator sees them: a fresh server per
# run, one scope filled with CHANGES changes (distinct keys, pushed 100
# mutations per request), then wrk (Debian's package), 32 connections, one
# thread, SECONDS each: pulls of 100-change pages walking the whole log
# (wrk-pull.lua), then whole-scope snapshots (wrk-snapshot.lua). Prints per
# run and kind the requests/s, the non-2xx answers and the server's CPU per
# request (utime + stime from /proc/PID/stat over the wrk run only), then the
# medians.
# usage: testkit/scripts/wrk-read.sh [BIN_DIR] [SERVER] [STORE] [RUNS] [SECONDS] [CHANGES]
#   BIN_DIR  default target/release; SERVER adapter-tokio (default) or adapter-smol
#   STORE    memory (default) or sqlite (a fresh file, synchronous=FULL)
set -u
BIN=${1:-target/release}; SERVER=${2:-adapter-tokio}; STORE=${3:-memory}
RUNS=${4:-3}; SECONDS_=${5:-5}; CHANGES=${6:-10000}; PORT=${PORT:-18380}
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=$(mktemp -d); trap 'rm -rf "$DIR"' EXIT
TCK=$(getconf CLK_TCK)
URL="http://127.0.0.1:$PORT"
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 2; }
command -v curl >/dev/null || { echo "curl is not installed" >&2; exit 2; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR) print (NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2)}'; }

# Pushes CHANGES puts on distinct keys of scope "big", 100 per request.
fill() {
    local first body status
    for first in $(seq 0 100 $((CHANGES - 1))); do
        body=$(awk -v f="$first" -v n="$CHANGES" 'BEGIN {
            printf "{\"mutations\":["
            for (i = f; i < f + 100 && i < n; i++)
                printf "%s{\"id\":\"fill-%d\",\"scope\":\"big\",\"name\":\"put\",\"args\":{\"key\":\"k%d\",\"value\":%d}}", (i > f ? "," : ""), i, i, i
            printf "]}" }')
        status=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
            --data-binary "$body" "$URL/_sync/push")
        [ "$status" = 200 ] || { echo "filling the scope: push answered $status" >&2; return 1; }
    done
    # The snapshot must stand at the last change.
    curl -s -H 'Content-Type: application/json' --data-binary '{"scope":"big"}' "$URL/_sync/snapshot" \
        | grep -q "\"cursor\":$CHANGES[,}]" || { echo "filling the scope: snapshot cursor is not $CHANGES" >&2; return 1; }
}

# wrk with script $2 (args after --: $3...) against server $1; sets RATE, BAD, COST.
measure() {
    local pid=$1 script=$2 before after out requests errors
    shift 2
    before=$(cpu_ticks "$pid")
    out=$(wrk -t1 -c32 -d"${SECONDS_}s" -s "$HERE/$script" "$URL" -- "$@" 2>&1)
    after=$(cpu_ticks "$pid")
    requests=$(echo "$out" | awk '/requests in/ {print $1}')
    RATE=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    BAD=$(echo "$out" | awk '/Non-2xx/ {print $NF}'); BAD=${BAD:-0}
    errors=$(echo "$out" | grep -E 'Socket errors' || true)
    [ -n "$errors" ] && BAD="$BAD, $errors"
    COST=$(awk -v t=$((after - before)) -v hz="$TCK" -v n="$requests" 'BEGIN {printf "%.1f", n ? t / hz / n * 1e6 : 0}')
}

pull_rates=(); pull_costs=(); snap_rates=(); snap_costs=()
for run in $(seq 1 "$RUNS"); do
    case $STORE in
    memory) store=(--memory) ;;
    sqlite) rm -f "$DIR"/r.db*; store=(--db "$DIR/r.db" --durability full) ;;
    *) echo "unknown store $STORE" >&2; exit 2 ;;
    esac
    env $(env | grep -o '^LIVE_SYNC_[A-Z_]*' | sed 's/^/-u /') \
        "$BIN/$SERVER" --addr "127.0.0.1:$PORT" "${store[@]}" --log-level warn >"$DIR/server.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done
    if ! fill; then kill -TERM "$pid"; wait "$pid"; exit 1; fi
    load=$(cut -d' ' -f1 /proc/loadavg)
    measure "$pid" wrk-pull.lua big "$CHANGES"
    echo "$SERVER $STORE run $run pull: $RATE pages/s ($BAD non-2xx); server CPU $COST µs per page of 100 (load $load)"
    pull_rates+=("$RATE"); pull_costs+=("$COST")
    load=$(cut -d' ' -f1 /proc/loadavg)
    measure "$pid" wrk-snapshot.lua big
    echo "$SERVER $STORE run $run snapshot: $RATE snapshots/s ($BAD non-2xx); server CPU $COST µs per snapshot of $CHANGES keys (load $load)"
    snap_rates+=("$RATE"); snap_costs+=("$COST")
    kill -TERM "$pid"; wait "$pid"
done
echo "$SERVER $STORE pull median: $(printf '%s\n' "${pull_rates[@]}" | median) pages/s, $(printf '%s\n' "${pull_costs[@]}" | median) µs server CPU per page"
echo "$SERVER $STORE snapshot median: $(printf '%s\n' "${snap_rates[@]}" | median) snapshots/s, $(printf '%s\n' "${snap_costs[@]}" | median) µs server CPU per snapshot"
