-- consume_batches: spend amount credits of one user, soonest-expiring batch first and
-- never-expiring batches last, only from batches not past expires_at (at, or now).
-- When the spendable credits are short it changes nothing and reports what was spendable.
WITH spendable AS (
    SELECT id,
           remaining,
           sum(remaining) OVER (ORDER BY expires_at ASC NULLS LAST, id) - remaining AS drawn_before,
           sum(remaining) OVER () AS available
      FROM credits.batches
     WHERE user_id = %(user_id)s
       AND status = 'active'
       AND (expires_at IS NULL OR expires_at > coalesce(%(at)s::timestamptz, now()))
),
draws AS (
    SELECT id, least(remaining, %(amount)s - drawn_before) AS drawn
      FROM spendable
     WHERE drawn_before < %(amount)s
       AND available >= %(amount)s
),
drawn AS (
    UPDATE credits.batches b
       SET remaining = b.remaining - d.drawn,
           status = CASE WHEN b.remaining = d.drawn THEN 'consumed' ELSE 'active' END
      FROM draws d
     WHERE b.id = d.id
    RETURNING b.id, d.drawn
),
ledger AS (
    INSERT INTO credits.transactions (user_id, batch_id, type, amount, reference_id)
    SELECT %(user_id)s, id, 'consume', -drawn, %(reference_id)s
      FROM drawn
),
lowered AS (
    UPDATE credits.balances
       SET balance = balance - (SELECT sum(drawn) FROM drawn), updated_at = now()
     WHERE user_id = %(user_id)s
       AND EXISTS (SELECT 1 FROM drawn)
    RETURNING balance
)
SELECT coalesce((SELECT max(available) FROM spendable), 0) AS available,
       (SELECT balance FROM lowered) AS balance
