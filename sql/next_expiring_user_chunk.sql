-- next_expiring_user_chunk: the next chunk of an expire pass: up to chunk_size users after
-- after_key, in user_id order, who have an active batch due by the pass's cutoff. A user's
-- batches all fall in one chunk, so the pass counts each user once.
SELECT max(user_id) AS last_key, count(*) AS keys
  FROM (SELECT DISTINCT user_id
          FROM credits.batches
         WHERE status = 'active'
           AND expires_at <= %(cutoff)s
           AND (%(after_key)s::text IS NULL OR user_id > %(after_key)s)
         ORDER BY user_id
         LIMIT %(chunk_size)s) AS chunk
