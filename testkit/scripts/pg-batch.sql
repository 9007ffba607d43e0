-- pgbench script: one sync batch as sync-postgres writes it, in one pipeline
-- (one flight): lock the scope's version row, insert :batch changes at the
-- next cursors, upsert :batch client records stamped with the new version
-- and prune their older sequences, bump the version, notify, commit.
-- Every client of a run writes the scope 'pgbench_:scope'.
-- usage: see pg-ceiling.sh
\startpipeline
BEGIN;
INSERT INTO sync_scopes (scope, version) VALUES ('pgbench_' || :scope, 0) ON CONFLICT (scope) DO NOTHING;
SELECT scope, version FROM sync_scopes WHERE scope = 'pgbench_' || :scope FOR UPDATE;
INSERT INTO sync_changes (scope, cursor, group_end, time, data)
  SELECT 'pgbench_' || :scope, v.version * :batch + i, v.version * :batch + i, 1795328895000,
         '{"name":"put","key":"k' || i || '-' || v.version || '","value":' || i || '}'
  FROM generate_series(1, :batch) AS i,
       (SELECT version FROM sync_scopes WHERE scope = 'pgbench_' || :scope) AS v;
INSERT INTO sync_clients (scope, client_id, seq, keep_from, result, version)
  SELECT 'pgbench_' || :scope, 'client-' || i, v.version + 1, v.version + 1,
         '{"ok":true,"cursor":' || (v.version * :batch + i) || '}', v.version + 1
  FROM generate_series(1, :batch) AS i,
       (SELECT version FROM sync_scopes WHERE scope = 'pgbench_' || :scope) AS v
  ON CONFLICT (scope, client_id, seq)
  DO UPDATE SET keep_from = excluded.keep_from, result = excluded.result, version = excluded.version;
DELETE FROM sync_clients c USING sync_scopes v
  WHERE v.scope = 'pgbench_' || :scope AND c.scope = v.scope AND c.seq < v.version + 1;
UPDATE sync_scopes SET version = version + 1 WHERE scope = 'pgbench_' || :scope;
SELECT pg_notify('pgbench_sync', 'pgbench_' || :scope);
COMMIT;
\endpipeline
