-- pgbench script: one sync batch as sync-postgres writes it, one call of the
-- function pg-batch-function.sql defines. usage: see pg-ceiling.sh
SELECT pgbench_write('pgbench_' || (:scope)::text, (:batch)::int);
