-- pgbench script: one sync batch as sync-postgres writes it, in one pipeline
-- (one flight): lock the scope version row, insert a batch of changes at
-- the next cursors, upsert as many client records stamped with the new
-- version and prune their older sequences, upsert as many mutation id
-- records, bump the version, notify, commit. (No pgbench variable may appear in these comments, nor a colon
-- right before a word inside the JSON literals.) usage: see pg-ceiling.sh
\startpipeline
BEGIN;
INSERT INTO sync_scopes (scope, version) VALUES ('pgbench_' || (:scope)::text, 0) ON CONFLICT (scope) DO NOTHING;
SELECT scope, version FROM sync_scopes WHERE scope = 'pgbench_' || (:scope)::text FOR UPDATE;
INSERT INTO sync_changes (scope, cursor, group_end, time, data)
  SELECT 'pgbench_' || (:scope)::text, v.version * (:batch)::int + i, v.version * (:batch)::int + i, 1795328895000,
         '{"name":"put","key":"k' || i || '-' || v.version || '","value":' || i || '}'
  FROM generate_series(1, (:batch)::int) AS i,
       (SELECT version FROM sync_scopes WHERE scope = 'pgbench_' || (:scope)::text) AS v;
INSERT INTO sync_clients (scope, client_id, seq, keep_from, result, version)
  SELECT 'pgbench_' || (:scope)::text, 'client-' || i, v.version + 1, v.version + 1,
         '{"ok": true,"cursor":' || (v.version * (:batch)::int + i) || '}', v.version + 1
  FROM generate_series(1, (:batch)::int) AS i,
       (SELECT version FROM sync_scopes WHERE scope = 'pgbench_' || (:scope)::text) AS v
  ON CONFLICT (scope, client_id, seq)
  DO UPDATE SET keep_from = excluded.keep_from, result = excluded.result, version = excluded.version;
DELETE FROM sync_clients c USING sync_scopes v
  WHERE v.scope = 'pgbench_' || (:scope)::text AND c.scope = v.scope AND c.seq < v.version + 1;
INSERT INTO sync_ids (scope, id, time, result, version)
  SELECT 'pgbench_' || (:scope)::text, 'm-' || v.version || '-' || i, 1795328895000,
         '{"ok": true,"cursor":' || (v.version * (:batch)::int + i) || '}', v.version + 1
  FROM generate_series(1, (:batch)::int) AS i,
       (SELECT version FROM sync_scopes WHERE scope = 'pgbench_' || (:scope)::text) AS v
  ON CONFLICT (scope, id) DO UPDATE SET time = excluded.time, result = excluded.result, version = excluded.version;
UPDATE sync_scopes SET version = version + 1 WHERE scope = 'pgbench_' || (:scope)::text;
SELECT pg_notify('pgbench_sync', 'pgbench_' || (:scope)::text);
COMMIT;
\endpipeline
