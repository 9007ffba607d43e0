#!/usr/bin/env bash
# How long a push waits when PostgreSQL stops answering, as in a network
# partition, and how soon pushes are served again once it answers. One node
# reaches PostgreSQL through `tcp-proxy` (testkit), which is told to go
# silent (hold every connection open, forward nothing) for SILENT_FOR
# seconds, then to forward new connections again; the connections that went
# silent stay silent, as when a firewall or NAT forgot them. Prints the
# answer to the push sent while nothing answers and how long it took, then
# how long after PostgreSQL answers again the first push is answered 200
# (or that none was within 60 s).
# usage: [BIN=target/release] [ARGS="--db-timeout-ms 1000"] [SILENT_FOR=12] \
#        testkit/scripts/pg-unanswered.sh
export PGOPTIONS="-c client_min_messages=warning"
set -u
BIN=${BIN:-target/release}; ARGS=${ARGS:-}; SILENT_FOR=${SILENT_FOR:-12}
PORT=18990; PROXY=127.0.0.1:18991; S=unanswered_$$; T=${TMPDIR:-/tmp}
URL=http://127.0.0.1:$PORT/_sync/push
psql -q -h 127.0.0.1 -U postgres -d test -c "DROP SCHEMA IF EXISTS $S CASCADE; CREATE SCHEMA $S" >/dev/null
rm -f $T/proxy.$$.in; mkfifo $T/proxy.$$.in
$BIN/tcp-proxy $PROXY 127.0.0.1:5432 < $T/proxy.$$.in > $T/proxy.$$.out & proxy=$!
exec 3> $T/proxy.$$.in
for _ in $(seq 100); do grep -q forwarding $T/proxy.$$.out 2>/dev/null && break; sleep 0.05; done
DB="postgres://postgres@$PROXY/test?options=-c%20search_path%3D$S&application_name=$S"
# shellcheck disable=SC2086
$BIN/adapter-tokio --addr 127.0.0.1:$PORT --db "$DB" --log-level ${LOG:-error} $ARGS & pid=$!
trap 'kill $pid $proxy 2>/dev/null; rm -f $T/proxy.$$.*
  psql -q -h 127.0.0.1 -U postgres -d test -c "DROP SCHEMA IF EXISTS $S CASCADE" >/dev/null' EXIT
for _ in $(seq 100); do curl -sf http://127.0.0.1:$PORT/healthz >/dev/null && break; sleep 0.1; done
now() { date +%s.%N; }
push() { # id -> "STATUS SECONDS"
  curl -s -o /dev/null -w '%{http_code} %{time_total}' --max-time 120 -H 'content-type: application/json' \
    -d "{\"mutations\":[{\"id\":\"$1\",\"scope\":\"s\",\"name\":\"put\",\"args\":{\"key\":\"$1\",\"value\":1}}]}" $URL
}
[ "$(push m1 | cut -d' ' -f1)" = 200 ] || { echo "the first push failed" >&2; exit 1; }
echo silence >&3; start=$(now); sleep 0.1
read -r status took < <(push m2)
echo "while PostgreSQL does not answer: $status after ${took}s"
sleep "$(awk "BEGIN{r = $SILENT_FOR - ($(now) - $start); print (r > 0 ? r : 0)}")"
echo restore >&3; back=$(now); tries=0
while :; do
  tries=$((tries + 1))
  read -r status _ < <(push m2)
  [ "$status" = 200 ] && break
  if awk "BEGIN{exit !($(now) - $back > 60)}"; then
    echo "answering again: no push answered 200 within 60 s ($tries tries, the last $status)"
    status=
    break
  fi
  sleep 0.1
done
[ -n "$status" ] &&
  echo "answering again: push answered 200 after $(awk "BEGIN{printf \"%.2f\", $(now) - $back}")s ($tries tries)"
kill $pid; wait $pid 2>/dev/null
exec 3>&-
