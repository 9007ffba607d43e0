-- pgbench script: one turn of a node writing a scope that other nodes write
-- too, in the two flights sync-postgres sends. First BEGIN, the lock of the
-- scope's version row, and the read of what the two other nodes wrote
-- since this one's last turn (their two batches: changes after its head,
-- client and id rows stamped after the version it knew, trim bases and
-- the scope's version), one statement as sync-postgres words it; then, once
-- that answer is back (where a node applies those rows and computes its
-- batch), the batch's call and COMMIT. The node's own work between the
-- flights is left out, so this is the most such turns can give.
-- usage: see pg-ceiling.sh (SHAPE=turn)
\startpipeline
BEGIN;
SELECT scope, version FROM sync_scopes WHERE scope = ANY(ARRAY['pgbench_' || (:scope)::text]) ORDER BY scope FOR UPDATE;
SELECT 0::int2 AS kind, s.scope, s.version AS a, s.ids_expired AS b, NULL::int8 AS c, NULL::text AS t, NULL::text AS u FROM sync_scopes s WHERE s.scope = ANY(ARRAY['pgbench_' || (:scope)::text])
UNION ALL SELECT 1::int2, b.scope, b.before, NULL, NULL, b.base, NULL
  FROM UNNEST(ARRAY['pgbench_' || (:scope)::text], ARRAY[1::int8]) AS h(scope, first_kept),
      LATERAL (SELECT * FROM sync_bases b WHERE b.scope = h.scope AND b.before > h.first_kept OFFSET 0) AS b
UNION ALL SELECT 2::int2, c.scope, c.cursor, c.group_end, c.time, c.data, NULL
  FROM UNNEST(ARRAY['pgbench_' || (:scope)::text],
              ARRAY[(SELECT (version - 2) * (:batch)::int FROM sync_scopes WHERE scope = 'pgbench_' || (:scope)::text)]) AS h(scope, head),
      LATERAL (SELECT * FROM sync_changes c WHERE c.scope = h.scope AND c.cursor > h.head OFFSET 0) AS c
UNION ALL SELECT 3::int2, c.scope, c.seq, c.keep_from, NULL, c.client_id, c.result
  FROM UNNEST(ARRAY['pgbench_' || (:scope)::text],
              ARRAY[(SELECT version - 2 FROM sync_scopes WHERE scope = 'pgbench_' || (:scope)::text)]) AS k(scope, known),
      LATERAL (SELECT * FROM sync_clients c WHERE c.scope = k.scope AND c.version > k.known OFFSET 0) AS c
UNION ALL SELECT 4::int2, i.scope, i.time, NULL, NULL, i.id, i.result
  FROM UNNEST(ARRAY['pgbench_' || (:scope)::text],
              ARRAY[(SELECT version - 2 FROM sync_scopes WHERE scope = 'pgbench_' || (:scope)::text)]) AS k(scope, known),
      LATERAL (SELECT CASE WHEN s.ids_expired > k.known THEN -1 ELSE k.known END AS after
               FROM sync_scopes s WHERE s.scope = k.scope OFFSET 0) AS s,
      LATERAL (SELECT * FROM sync_ids i WHERE i.scope = k.scope AND i.version > s.after OFFSET 0) AS i;
\endpipeline
\startpipeline
SELECT pgbench_write('pgbench_' || (:scope)::text, (:batch)::int);
COMMIT;
\endpipeline
