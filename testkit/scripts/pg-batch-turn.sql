-- pgbench script: one turn of a node writing a scope that other nodes write
-- too, in the two flights sync-postgres sends. First BEGIN, the lock of the
-- scope's version row, and the reads of what the two other nodes wrote
-- since this one's last turn (their two batches: changes after its head,
-- client and id rows stamped after the version it knew, trim bases and
-- the scope's version), each read as sync-postgres words it; then, once
-- that answer is back (where a node applies those rows and computes its
-- batch), the batch's call and COMMIT. The node's own work between the
-- flights is left out, so this is the most such turns can give.
-- usage: see pg-ceiling.sh (SHAPE=turn)
\startpipeline
BEGIN;
SELECT scope, version FROM sync_scopes WHERE scope = ANY(ARRAY['pgbench_' || (:scope)::text]) ORDER BY scope FOR UPDATE;
SELECT scope, version, ids_expired FROM sync_scopes WHERE scope = ANY(ARRAY['pgbench_' || (:scope)::text]);
SELECT b.scope, b.before, b.base
  FROM UNNEST(ARRAY['pgbench_' || (:scope)::text], ARRAY[1::int8]) AS h(scope, first_kept),
      LATERAL (SELECT * FROM sync_bases b WHERE b.scope = h.scope AND b.before > h.first_kept OFFSET 0) AS b;
SELECT c.scope, c.cursor, c.group_end, c.time, c.data
  FROM UNNEST(ARRAY['pgbench_' || (:scope)::text],
              ARRAY[(SELECT (version - 2) * (:batch)::int FROM sync_scopes WHERE scope = 'pgbench_' || (:scope)::text)]) AS h(scope, head),
      LATERAL (SELECT * FROM sync_changes c WHERE c.scope = h.scope AND c.cursor > h.head OFFSET 0) AS c
  ORDER BY c.scope, c.cursor;
SELECT c.scope, c.client_id, c.seq, c.keep_from, c.result
  FROM UNNEST(ARRAY['pgbench_' || (:scope)::text],
              ARRAY[(SELECT version - 2 FROM sync_scopes WHERE scope = 'pgbench_' || (:scope)::text)]) AS k(scope, known),
      LATERAL (SELECT * FROM sync_clients c WHERE c.scope = k.scope AND c.version > k.known OFFSET 0) AS c
  ORDER BY c.scope, c.client_id, c.seq;
SELECT i.scope, i.id, i.time, i.result
  FROM UNNEST(ARRAY['pgbench_' || (:scope)::text],
              ARRAY[(SELECT version - 2 FROM sync_scopes WHERE scope = 'pgbench_' || (:scope)::text)]) AS k(scope, known),
      LATERAL (SELECT CASE WHEN s.ids_expired > k.known THEN -1 ELSE k.known END AS after
               FROM sync_scopes s WHERE s.scope = k.scope OFFSET 0) AS s,
      LATERAL (SELECT * FROM sync_ids i WHERE i.scope = k.scope AND i.version > s.after OFFSET 0) AS i
  ORDER BY i.scope, i.id;
\endpipeline
\startpipeline
SELECT pgbench_write('pgbench_' || (:scope)::text, (:batch)::int);
COMMIT;
\endpipeline
