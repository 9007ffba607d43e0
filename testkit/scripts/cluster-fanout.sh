#!/usr/bin/env bash
# Fan-out across NODES server processes sharing BROKER, one loadgen per node
# (SUBS subscribers and RATE publishes/s in all, split evenly); prints the
# summed deliveries/s, and the CPU the servers and load generators spent
# per 1000 deliveries over the run's middle (from /proc). ARGS: more flags
# for every node (--broker-ca-file FILE for a broker over TLS, say). Run from
# the workspace root after a release build.
# usage: [ARGS=...] testkit/scripts/cluster-fanout.sh NODES BROKER
set -u
N=$1; BROKER=$2; SUBS=${SUBS:-300}; RATE=${RATE:-1000}; DUR=${DUR:-10}
BIN=${BIN:-target/release}
# shellcheck source=testkit/scripts/cpu-per-op.sh
. "$(dirname "$0")/cpu-per-op.sh"
pids=()
for i in $(seq 1 $N); do
  port=$((18800+i))
  # shellcheck disable=SC2086 # ARGS is a list of flags
  $BIN/adapter-tokio --addr 127.0.0.1:$port --memory --broker $BROKER ${ARGS:-} --log-level error &
  pids+=($!)
done
sleep 1.5
outs=()
for i in $(seq 1 $N); do
  port=$((18800+i))
  $BIN/loadgen --url http://127.0.0.1:$port fanout --subscribers $((SUBS/N)) --topics 1 --publishers 1 --rate $(echo "$RATE/$N" | bc -l) --duration $DUR --settle 2 > ${TMPDIR:-/tmp}/fan.$i.out 2>&1 &
  outs+=($!)
done
# The middle of the run: after the settle (2 s) and connecting, before the end.
window=$((DUR - 2)); [ "$window" -lt 1 ] && window=1
sleep 3
cpu_mark "${pids[*]}" "${outs[*]}"
sleep $window
cpu_mark "${pids[*]}" "${outs[*]}"
wait "${outs[@]}"
for p in "${pids[@]}"; do kill $p; done
wait 2>/dev/null
total=0
for i in $(seq 1 $N); do
  d=$(grep -o 'deliveries/s: [0-9]*' ${TMPDIR:-/tmp}/fan.$i.out | awk '{print $2}')
  total=$((total + ${d:-0}))
done
echo "nodes=$N broker=$BROKER deliveries/s=$total"
echo "per 1000 deliveries: $(cpu_report "$(echo "$total / 1000" | bc -l)" $window loadgen | sed 's/ postgres_us=[0-9]*//')"
