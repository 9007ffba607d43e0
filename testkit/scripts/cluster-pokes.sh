#!/usr/bin/env bash
# Cross-node poke latency on PostgreSQL: two nodes on a fresh schema, a
# subscriber of sync:pokes on node B, COUNT pushes one at a time on node A;
# prints loadgen's "push sent -> poke" and "push answered -> poke" figures.
# With LOAD=1, 16 loadgen sync clients push on each node meanwhile (another
# scope), so the pokes travel beside a write load.
# usage: [LOAD=1] testkit/scripts/cluster-pokes.sh [COUNT]
# psql: no NOTICE lines about schemas created and dropped.
export PGOPTIONS="-c client_min_messages=warning"
set -u
COUNT=${1:-200}; BIN=${BIN:-target/release}
S=pokes_$$
psql -q -h 127.0.0.1 -U postgres -d test -c "DROP SCHEMA IF EXISTS $S CASCADE; CREATE SCHEMA $S" >/dev/null
URL="postgres://postgres@127.0.0.1/test?options=-c%20search_path%3D$S"
pids=()
for i in 1 2; do
  $BIN/adapter-tokio --addr 127.0.0.1:$((18920+i)) --db "$URL" --log-level error & pids+=($!)
done
sleep 1.5
load=()
if [ "${LOAD:-0}" = 1 ]; then
  for i in 1 2; do
    $BIN/loadgen --url http://127.0.0.1:$((18920+i)) sync --clients 16 --duration 60 --no-pull --scope load >/dev/null 2>&1 & load+=($!)
  done
  sleep 1
fi
$BIN/loadgen --url http://127.0.0.1:18921 pokes --watch-url http://127.0.0.1:18922 --count "$COUNT"
[ ${#load[@]} -gt 0 ] && kill "${load[@]}" 2>/dev/null
kill "${pids[@]}"; wait 2>/dev/null
psql -q -h 127.0.0.1 -U postgres -d test -c "DROP SCHEMA $S CASCADE" >/dev/null
