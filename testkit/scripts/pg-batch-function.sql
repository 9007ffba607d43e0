-- The function pg-batch-call.sql and pg-batch-turn.sql call: the statements
-- of pg-batch.sql in one PL/pgSQL function, as sync-postgres sends a batch (one call of a
-- function of its statements, outside a transaction block, so the call is
-- its own transaction). Created by pg-ceiling.sh with SHAPE=call.
CREATE FUNCTION pgbench_write(sc text, b int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE v bigint;
BEGIN
  INSERT INTO sync_scopes (scope, version) VALUES (sc, 0) ON CONFLICT (scope) DO NOTHING;
  SELECT version INTO v FROM sync_scopes WHERE scope = sc FOR UPDATE;
  INSERT INTO sync_changes (scope, cursor, group_end, time, data)
    SELECT sc, v * b + i, v * b + i, 1795328895000,
           '{"name":"put","key":"k' || i || '-' || v || '","value":' || i || '}'
    FROM generate_series(1, b) AS i;
  INSERT INTO sync_clients (scope, client_id, seq, keep_from, result, version)
    SELECT sc, 'client-' || i, v + 1, v + 1, '{"ok": true,"cursor":' || (v * b + i) || '}', v + 1
    FROM generate_series(1, b) AS i
    ON CONFLICT (scope, client_id, seq)
    DO UPDATE SET keep_from = excluded.keep_from, result = excluded.result, version = excluded.version;
  DELETE FROM sync_clients c WHERE c.scope = sc AND c.seq < v + 1;
  INSERT INTO sync_ids (scope, id, time, result, version)
    SELECT sc, 'm-' || v || '-' || i, 1795328895000, '{"ok": true,"cursor":' || (v * b + i) || '}', v + 1
    FROM generate_series(1, b) AS i
    ON CONFLICT (scope, id) DO UPDATE SET time = excluded.time, result = excluded.result, version = excluded.version;
  UPDATE sync_scopes SET version = version + 1 WHERE scope = sc;
  PERFORM pg_notify('pgbench_sync', sc);
END $$;
