#!/usr/bin/env bash
# `wrk` pushing one fresh mutation per request over 100 scopes through NODES
# server processes at once (32 connections to each, DUR seconds), on a
# fresh SQLite file (STORE=sqlite, one node only) or a fresh PostgreSQL
# schema (STORE=postgres). Prints the summed requests/s and non-2xx answers,
# then the CPU each push cost over seconds 1 to DUR-1 (see cpu-per-op.sh).
# With CUT_EVERY=S (PostgreSQL), every node's sessions are ended by
# pg_terminate_backend every S seconds during the run, as a failover or an
# operator would, and the cuts are counted.
# usage: STORE=postgres|sqlite [CUT_EVERY=S] testkit/scripts/wrk-pushes.sh NODES
# psql: no NOTICE lines about schemas created and dropped.
export PGOPTIONS="-c client_min_messages=warning"
set -u
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 2; }
N=$1; STORE=${STORE:-postgres}; BIN=${BIN:-target/release}; DUR=${DUR:-6}; CUT_EVERY=${CUT_EVERY:-}
DIR=$(cd "$(dirname "$0")" && pwd)
. "$DIR/cpu-per-op.sh"
S=wrk_$$
T=${TMPDIR:-/tmp}
if [ "$STORE" = sqlite ]; then
  rm -f $T/wrk-push.$$.db*
  DB=$T/wrk-push.$$.db
else
  psql -q -h 127.0.0.1 -U postgres -d test -c "DROP SCHEMA IF EXISTS $S CASCADE; CREATE SCHEMA $S" >/dev/null
  DB="postgres://postgres@127.0.0.1/test?options=-c%20search_path%3D$S&application_name=$S"
fi
pids=()
for i in $(seq 1 $N); do
  $BIN/adapter-tokio --addr 127.0.0.1:$((18950+i)) --db "$DB" --log-level error & pids+=($!)
done
cutter=; cuts=0
if [ -n "$CUT_EVERY" ]; then
  ( sleep 1.5; while sleep "$CUT_EVERY"; do
      psql -qAt -h 127.0.0.1 -U postgres -d test -c \
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '$S'" \
        >/dev/null && echo cut
    done ) > $T/wrk-cuts.$$ & cutter=$!
fi
sleep 1.5
outs=()
for i in $(seq 1 $N); do
  wrk -t1 -c32 -d${DUR}s -s $DIR/wrk-fresh-push.lua http://127.0.0.1:$((18950+i)) -- node$i-$$ \
    > $T/wrk.$i.out 2>&1 & outs+=($!)
done
sleep 1; cpu_mark "${pids[*]}" "${outs[*]}"
sleep $((DUR - 2)); cpu_mark "${pids[*]}" "${outs[*]}"
wait "${outs[@]}"
if [ -n "$cutter" ]; then
  kill $cutter; cuts=$(grep -c cut $T/wrk-cuts.$$); rm -f $T/wrk-cuts.$$
fi
kill "${pids[@]}"; wait 2>/dev/null
if [ "$STORE" = sqlite ]; then rm -f $T/wrk-push.$$.db*; else
  psql -q -h 127.0.0.1 -U postgres -d test -c "DROP SCHEMA $S CASCADE" >/dev/null; fi
total=0; bad=0
for i in $(seq 1 $N); do
  r=$(grep -o 'Requests/sec: *[0-9.]*' $T/wrk.$i.out | awk '{print $2}')
  [ -n "$r" ] || { echo "wrk against node $i gave no figure:" >&2; cat $T/wrk.$i.out >&2; exit 1; }
  total=$(awk "BEGIN{print $total + $r}")
  b=$(grep -o 'Non-2xx or 3xx responses: *[0-9]*' $T/wrk.$i.out | awk '{print $NF}')
  bad=$((bad + ${b:-0}))
done
if [ -n "$CUT_EVERY" ]; then
  # The cuts replace PostgreSQL's backends: their CPU cannot be followed.
  echo "store=$STORE nodes=$N pushes/s=$(printf '%.0f' $total) non2xx=$bad cuts=$cuts"
else
  echo "store=$STORE nodes=$N pushes/s=$(printf '%.0f' $total) non2xx=$bad $(cpu_report $total $((DUR - 2)) wrk)"
fi
