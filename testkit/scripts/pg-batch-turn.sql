-- pgbench script: one turn of a node writing a scope that other nodes write
-- too, in the two flights sync-postgres sends: BEGIN and the lock of the
-- scope's version row; once that answer is back (where a node reads what
-- the others wrote and computes its batch), the batch's call and COMMIT.
-- The node's own work between the flights is left out, so this is the most
-- such turns can give. usage: see pg-ceiling.sh (SHAPE=turn)
\startpipeline
BEGIN;
SELECT version FROM sync_scopes WHERE scope = 'pgbench_' || (:scope)::text FOR UPDATE;
\endpipeline
\startpipeline
SELECT pgbench_write('pgbench_' || (:scope)::text, (:batch)::int);
COMMIT;
\endpipeline
