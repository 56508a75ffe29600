// An app's three credit-touching handlers, in plain JavaScript with `pg`. Each is one call of
// a function in the credits schema (docs/API.md); the database keeps every rule.
"use strict";

// The refusals' SQLSTATEs (docs/API.md): match err.code, never the message text.
const CODES = {
  INSUFFICIENT_CREDITS: "CR001",
  REFERENCE_REUSED: "CR002",
  OVER_BALANCE_CAP: "CR003",
  UNKNOWN_PACKAGE: "CR004",
  UNKNOWN_SERVICE: "CR005",
  UNKNOWN_REFERENCE: "CR006",
  NO_REGISTRATION_BONUS: "CR007",
  NOT_VOIDABLE: "CR008",
};

// Sign-up: grant the bonus of [registration]. Safe to call on every login: once per user.
async function signup(pool, userId) {
  const { rows } = await pool.query(
    "SELECT credits.grant_registration_bonus($1) AS answer",
    [userId],
  );
  return rows[0].answer;
}

// Payment webhook: grant the pack bought, once per purchase, however often the provider
// retries. Over the balance cap: answered so the app can refund (ask first with
// credits.can_buy_package before taking payment).
async function paymentWebhook(pool, userId, packageId, purchaseReference) {
  try {
    const { rows } = await pool.query(
      "SELECT credits.buy_package($1, $2, $3) AS answer",
      [userId, packageId, purchaseReference],
    );
    return { ok: true, ...rows[0].answer };
  } catch (err) {
    if (err.code === CODES.OVER_BALANCE_CAP) {
      return { ok: false, error: "over_balance_cap", message: err.message };
    }
    throw err;
  }
}

// An AI call: the app's own row and the spend commit together or not at all. Short of
// credits, both roll back and the caller is told so. A retry of the same call id finds its
// row and replays its spend: charged once.
async function aiCall(pool, userId, callId, prompt, quantity = 1) {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    await client.query(
      "INSERT INTO ai_calls (id, user_id, prompt) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
      [callId, userId, prompt],
    );
    const { rows } = await client.query(
      "SELECT credits.spend_service($1, $2, $3, $4, $5) AS answer",
      [userId, "chat", quantity, callId, { prompt_chars: prompt.length }],
    );
    await client.query("COMMIT");
    return { ok: true, ...rows[0].answer };
  } catch (err) {
    await client.query("ROLLBACK");
    if (err.code === CODES.INSUFFICIENT_CREDITS) {
      return { ok: false, error: "insufficient_credits", message: err.message };
    }
    throw err;
  } finally {
    client.release();
  }
}

// What the user sees: balance, what expires next, the next subscription grant, and the
// newest entries of their statement (pass the last entry_id as `before` for the next page).
async function accountPage(pool, userId, limit = 10, before = null) {
  const account = await pool.query("SELECT credits.account($1) AS answer", [userId]);
  const entries = await pool.query(
    "SELECT * FROM credits.statement($1, $2, $3)",
    [userId, limit, before],
  );
  return { account: account.rows[0].answer, entries: entries.rows };
}

module.exports = { CODES, signup, paymentWebhook, aiCall, accountPage };
