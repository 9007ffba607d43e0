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
DIR=$(mktemp -d); trap 'rm -rf "$DIR"' EXIT
. "$(dirname "${BASH_SOURCE[0]}")/wrk-run.sh"

rates=(); costs=()
for run in $(seq 1 "$RUNS"); do
    wrk_start w
    load=$(cut -d' ' -f1 /proc/loadavg)
    wrk_measure wrk-fresh-push.lua "run$run"
    wrk_stop
    echo "$SERVER $STORE run $run: $RATE pushes/s ($REQUESTS requests, $BAD non-2xx); server CPU $COST µs per push (load $load)"
    rates+=("$RATE"); costs+=("$COST")
done
echo "$SERVER $STORE median: $(printf '%s\n' "${rates[@]}" | median) pushes/s, $(printf '%s\n' "${costs[@]}" | median) µs server CPU per push"
