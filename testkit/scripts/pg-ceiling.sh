#!/usr/bin/env bash
# PostgreSQL's own ceiling for the shape of a sync-postgres batch: pgbench
# running one transaction of BATCH changes, client records and mutation id
# records on fresh sync tables, CLIENTS connections for DUR seconds. SHAPE=call (the default, as
# sync-postgres writes a batch): one call of a function holding the batch's
# statements (pg-batch-function.sql, pg-batch-call.sql); SHAPE=pipeline:
# the statements themselves, pipelined in one flight (pg-batch.sql);
# SHAPE=turn: a transaction that locks the scope and reads what two other
# writers added since its last turn, and writes after that answer came
# back, as a node writes a scope other nodes write too (pg-batch-turn.sql).
# SCOPES=shared: every connection writes one scope (they queue on its row
# lock, as nodes on one scope do); SCOPES=own: one scope per connection.
# Prints transactions/s and the mutations/s they carry (tps x BATCH), and
# the machine's busy CPU per transaction in µs (from /proc/stat; pgbench's
# own share of it given apart).
# usage: testkit/scripts/pg-ceiling.sh CLIENTS BATCH [shared|own]
# psql: no NOTICE lines about schemas created and dropped.
export PGOPTIONS="-c client_min_messages=warning"
set -eu
C=$1; B=$2; MODE=${3:-shared}; DUR=${DUR:-6}; SHAPE=${SHAPE:-call}
S=pgceiling_$$
DIR=$(cd "$(dirname "$0")" && pwd)
PSQL="psql -q -h 127.0.0.1 -U postgres -d test"
case $SHAPE in
  call) SCRIPT=$DIR/pg-batch-call.sql ;;
  pipeline) SCRIPT=$DIR/pg-batch.sql ;;
  turn) SCRIPT=$DIR/pg-batch-turn.sql ;;
  *) echo "SHAPE is call, pipeline or turn" >&2; exit 2 ;;
esac
case $MODE in shared|own) ;; *) echo "scopes are shared or own" >&2; exit 2 ;; esac
$PSQL -c "DROP SCHEMA IF EXISTS $S CASCADE; CREATE SCHEMA $S" >/dev/null
# Dropped however the run ends.
trap '$PSQL -c "DROP SCHEMA IF EXISTS $S CASCADE" >/dev/null; rm -f /tmp/pg-batch-own.$$.sql' EXIT
# The tables as sync-postgres creates them (schema 3, without its function).
PGOPTIONS="-c client_min_messages=warning -c search_path=$S" $PSQL <<SQL >/dev/null
CREATE TABLE sync_changes (scope TEXT NOT NULL, cursor BIGINT NOT NULL, group_end BIGINT NOT NULL,
  time BIGINT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (scope, cursor));
CREATE TABLE sync_clients (scope TEXT NOT NULL, client_id TEXT NOT NULL, seq BIGINT NOT NULL,
  keep_from BIGINT NOT NULL, result TEXT NOT NULL, version BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (scope, client_id, seq));
CREATE TABLE sync_scopes (scope TEXT NOT NULL PRIMARY KEY, version BIGINT NOT NULL,
  ids_expired BIGINT NOT NULL DEFAULT 0);
CREATE TABLE sync_ids (scope TEXT NOT NULL, id TEXT NOT NULL, time BIGINT NOT NULL,
  result TEXT NOT NULL, version BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (scope, id));
CREATE TABLE sync_bases (scope TEXT NOT NULL PRIMARY KEY, before BIGINT NOT NULL, base TEXT NOT NULL);
CREATE INDEX sync_clients_by_version ON sync_clients (scope, version);
CREATE INDEX sync_ids_by_version ON sync_ids (scope, version);
\\i $DIR/pg-batch-function.sql
SQL
# :client_id is pgbench's own per-connection number.
if [ "$MODE" = own ]; then SCOPE='-D scope=:client_id'; else SCOPE='-D scope=0'; fi
[ "$MODE" = own ] && { sed 's/:scope/:client_id/g' "$SCRIPT" > /tmp/pg-batch-own.$$.sql; SCRIPT=/tmp/pg-batch-own.$$.sql; SCOPE=; }
. "$DIR/cpu-per-op.sh"
read -r b0 _ < <(machine)
# With the settings of sync-postgres's writing connection (one generic plan
# per statement, reached through keys).
out=$(PGOPTIONS="-c client_min_messages=warning -c search_path=$S -c plan_cache_mode=force_generic_plan -c enable_seqscan=off" /usr/bin/time -f "pgbench-cpu %U %S" \
  pgbench -h 127.0.0.1 -U postgres -n -M prepared -c "$C" -j "$C" -T "$DUR" \
  -D batch="$B" $SCOPE -f "$SCRIPT" test 2>&1) || { echo "$out"; exit 1; }
read -r b1 _ < <(machine)
tps=$(echo "$out" | grep -o 'tps = [0-9.]*' | head -1 | awk '{print $3}')
lat=$(echo "$out" | grep -o 'latency average = [0-9.]* ms' | awk '{print $4}')
read -r u sy < <(echo "$out" | awk '/^pgbench-cpu/{print $2, $3}')
per_txn() { awk -v x="$1" -v t="$tps" -v d="$DUR" 'BEGIN{printf "%.0f", x * 1e6 / (t * d)}'; }
echo "shape=$SHAPE clients=$C batch=$B scopes=$MODE tps=$tps mutations/s=$(awk "BEGIN{printf \"%d\", $tps*$B}") latency_ms=$lat" \
  "busy_us_per_txn=$(per_txn "$(awk -v b=$((b1-b0)) -v hz="$(getconf CLK_TCK)" 'BEGIN{print b / hz}')")" \
  "pgbench_us_per_txn=$(per_txn "$(awk -v u="${u:-0}" -v s="${sy:-0}" 'BEGIN{print u + s}')")"
