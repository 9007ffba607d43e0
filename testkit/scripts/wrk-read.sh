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
URL="http://127.0.0.1:$PORT"
DIR=$(mktemp -d); trap 'rm -rf "$DIR"' EXIT
. "$(dirname "${BASH_SOURCE[0]}")/wrk-run.sh"
command -v curl >/dev/null || { echo "curl is not installed" >&2; exit 2; }

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

pull_rates=(); pull_costs=(); snap_rates=(); snap_costs=()
for run in $(seq 1 "$RUNS"); do
    wrk_start r
    if ! fill; then wrk_stop; exit 1; fi
    load=$(cut -d' ' -f1 /proc/loadavg)
    wrk_measure wrk-pull.lua big "$CHANGES"
    echo "$SERVER $STORE run $run pull: $RATE pages/s ($BAD non-2xx); server CPU $COST µs per page of 100 (load $load)"
    pull_rates+=("$RATE"); pull_costs+=("$COST")
    load=$(cut -d' ' -f1 /proc/loadavg)
    wrk_measure wrk-snapshot.lua big
    echo "$SERVER $STORE run $run snapshot: $RATE snapshots/s ($BAD non-2xx); server CPU $COST µs per snapshot of $CHANGES keys (load $load)"
    snap_rates+=("$RATE"); snap_costs+=("$COST")
    wrk_stop
done
echo "$SERVER $STORE pull median: $(printf '%s\n' "${pull_rates[@]}" | median) pages/s, $(printf '%s\n' "${pull_costs[@]}" | median) µs server CPU per page"
echo "$SERVER $STORE snapshot median: $(printf '%s\n' "${snap_rates[@]}" | median) snapshots/s, $(printf '%s\n' "${snap_costs[@]}" | median) µs server CPU per snapshot"
