-- next_subscription_chunk: the next chunk of a grant stripe: up to chunk_size subscriptions
-- after after_key and up to upper_key, in id order (the primary key's: a walk that needs no
-- statistics to plan well). Answers its last id and its size.
SELECT max(id) AS last_key, count(*) AS keys
  FROM (SELECT id
          FROM credits.subscriptions
         WHERE (%(after_key)s::text IS NULL OR id > %(after_key)s)
           AND (%(upper_key)s::text IS NULL OR id <= %(upper_key)s)
         ORDER BY id
         LIMIT %(chunk_size)s) AS chunk
