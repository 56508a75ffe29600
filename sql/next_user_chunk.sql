-- next_user_chunk: the next chunk of an expire stripe: up to chunk_size users after
-- after_key and up to upper_key, in user_id order (the balances' primary key: a walk that
-- needs no statistics to plan well). A user's batches all fall in one chunk, so the pass
-- counts each user once.
SELECT max(user_id) AS last_key, count(*) AS keys
  FROM (SELECT user_id
          FROM credits.balances
         WHERE (%(after_key)s::text IS NULL OR user_id > %(after_key)s)
           AND (%(upper_key)s::text IS NULL OR user_id <= %(upper_key)s)
         ORDER BY user_id
         LIMIT %(chunk_size)s) AS chunk
