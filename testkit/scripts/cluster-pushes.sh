#!/usr/bin/env bash
# Durable pushes on PostgreSQL through NODES server processes (CLIENTS
# clients in all, 32 unless set; fresh schema per run); prints the summed
# mutations/s and failures, then the CPU each mutation cost over the middle
# of the run (from /proc: the servers, every `postgres:` process, the load
# generators, in µs) and how busy the machine was.
# Every client pushes to scope `load`, or with --scope-per-client to a scope
# of its own (`load-nI-K`: node I's client K, so no two clients of the
# cluster share one).
# With TLS=1 the nodes reach PostgreSQL over TLS (`sslmode=require`, host
# `localhost`: the server's certificate must be valid for that name and
# signed by an authority the system trusts, as Debian's own is for its
# PostgreSQL).
# usage: [CLIENTS=32] [TLS=1] testkit/scripts/cluster-pushes.sh NODES [--scope-per-client]
set -u
export PGOPTIONS="-c client_min_messages=warning"
N=$1; shift; EXTRA="$*"; BIN=${BIN:-target/release}; CLIENTS=${CLIENTS:-32}
DUR=6
. "$(dirname "$0")/cpu-per-op.sh"
S=bench_$$
psql -q -h 127.0.0.1 -U postgres -d test -c "DROP SCHEMA IF EXISTS $S CASCADE; CREATE SCHEMA $S" >/dev/null
URL="postgres://postgres@127.0.0.1/test?options=-c%20search_path%3D$S"
[ "${TLS:-}" = 1 ] && URL="postgres://postgres@localhost/test?options=-c%20search_path%3D$S&sslmode=require"
# The scope prefix of node I's load generator.
scope_of() { case "$EXTRA" in *--scope-per-client*) echo "load-n$1" ;; *) echo load ;; esac; }
pids=()
for i in $(seq 1 $N); do
  $BIN/adapter-tokio --addr 127.0.0.1:$((18900+i)) --db "$URL" --log-level error & pids+=($!)
done
sleep 1.5
outs=()
for i in $(seq 1 $N); do
  $BIN/loadgen --url http://127.0.0.1:$((18900+i)) sync --clients $((CLIENTS/N)) --duration $DUR --no-pull --scope $(scope_of $i) $EXTRA > ${TMPDIR:-/tmp}/push.$i.out 2>&1 & outs+=($!)
done
# CPU over seconds 1 to 5 of the 6, while every client is pushing.
sleep 1
cpu_mark "${pids[*]}" "${outs[*]}"
sleep 4
cpu_mark "${pids[*]}" "${outs[*]}"
wait "${outs[@]}"; kill "${pids[@]}"; wait 2>/dev/null
psql -q -h 127.0.0.1 -U postgres -d test -c "DROP SCHEMA $S CASCADE" >/dev/null
total=0; fail=0
for i in $(seq 1 $N); do
  d=$(grep -o 'mutations/s: [0-9]*' ${TMPDIR:-/tmp}/push.$i.out | awk '{print $2}')
  [ -n "$d" ] || { echo "loadgen against node $i gave no figure:" >&2; cat ${TMPDIR:-/tmp}/push.$i.out >&2; exit 1; }
  total=$((total+d))
  f=$(grep -o '[0-9]* failed' ${TMPDIR:-/tmp}/push.$i.out | awk '{print $1}'); fail=$((fail+${f:-0}))
done
echo "nodes=$N $EXTRA mutations/s=$total failed=$fail $(cpu_report $total 4 loadgen)"
