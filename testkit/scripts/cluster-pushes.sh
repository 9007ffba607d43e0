#!/usr/bin/env bash
# Durable pushes on PostgreSQL through NODES server processes (CLIENTS
# clients in all, 32 unless set; fresh schema per run); prints the summed
# mutations/s and failures, then the CPU each mutation cost over the middle
# of the run (from /proc: the servers, every `postgres:` process, the load
# generators, in µs) and how busy the machine was.
# Every client pushes to scope `load`, or with --scope-per-client to a scope
# of its own (`load-nI-K`: node I's client K, so no two clients of the
# cluster share one).
# usage: [CLIENTS=32] testkit/scripts/cluster-pushes.sh NODES [--scope-per-client]
set -u
export PGOPTIONS="-c client_min_messages=warning"
N=$1; shift; EXTRA="$*"; BIN=${BIN:-target/release}; CLIENTS=${CLIENTS:-32}
DUR=6
# CPU ticks (user + system) of the given processes that still run.
ticks() { local t=0 p; for p in "$@"; do [ -r /proc/$p/stat ] && t=$((t + $(awk '{print $14+$15}' /proc/$p/stat))); done; echo $t; }
# Busy and total ticks of the whole machine.
machine() { awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat; }
S=bench_$$
psql -q -h 127.0.0.1 -U postgres -d test -c "DROP SCHEMA IF EXISTS $S CASCADE; CREATE SCHEMA $S" >/dev/null
URL="postgres://postgres@127.0.0.1/test?options=-c%20search_path%3D$S"
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
s0=$(ticks "${pids[@]}"); p0=$(ticks $(pgrep -f '^postgres:')); l0=$(ticks "${outs[@]}"); read b0 a0 < <(machine)
sleep 4
s1=$(ticks "${pids[@]}"); p1=$(ticks $(pgrep -f '^postgres:')); l1=$(ticks "${outs[@]}"); read b1 a1 < <(machine)
wait "${outs[@]}"; kill "${pids[@]}"; wait 2>/dev/null
total=0; fail=0
for i in $(seq 1 $N); do
  d=$(grep -o 'mutations/s: [0-9]*' ${TMPDIR:-/tmp}/push.$i.out | awk '{print $2}'); total=$((total+${d:-0}))
  f=$(grep -o '[0-9]* failed' ${TMPDIR:-/tmp}/push.$i.out | awk '{print $1}'); fail=$((fail+${f:-0}))
done
psql -q -h 127.0.0.1 -U postgres -d test -c "DROP SCHEMA $S CASCADE" >/dev/null
awk -v t=$total -v s=$((s1-s0)) -v p=$((p1-p0)) -v l=$((l1-l0)) -v b=$((b1-b0)) -v a=$((a1-a0)) \
    -v hz=$(getconf CLK_TCK) -v head="nodes=$N $EXTRA mutations/s=$total failed=$fail" 'BEGIN {
  m = t * 4; if (m == 0) m = 1
  printf "%s server_us=%.0f postgres_us=%.0f loadgen_us=%.0f busy=%.0f%%\n", head,
    s * 1e6 / hz / m, p * 1e6 / hz / m, l * 1e6 / hz / m, 100 * b / (a ? a : 1) }'
