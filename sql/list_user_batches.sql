-- list_user_batches: one user's batches whatever their status, active first in the order they
-- would be spent, then the others newest first, with what remains of each, for the console.
-- Found through the user's grant entries (every batch has one: transactions_user_id_id_idx),
-- as batches are indexed by user only while active.
SELECT b.id, b.source, b.reference_id, b.amount, b.remaining, b.granted_at, b.expires_at,
       b.status
  FROM credits.batches b
 WHERE b.id IN (SELECT t.batch_id
                  FROM credits.transactions t
                 WHERE t.user_id = %(user_id)s AND t.type = 'grant')
 ORDER BY b.status <> 'active', b.expires_at ASC NULLS LAST, b.granted_at DESC, b.id DESC
 LIMIT %(limit)s
