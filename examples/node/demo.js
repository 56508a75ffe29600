// The handlers of app.js run once against DATABASE_URL, each step's answer printed as one JSON
// line. Load the plans first: python -m credits load-plans plans.example.toml
//   DATABASE_URL=postgresql://... node demo.js [user-id]
"use strict";

const { Pool } = require("pg");
const { signup, paymentWebhook, aiCall, accountPage } = require("./app");

async function main() {
  const pool = new Pool({ connectionString: process.env.DATABASE_URL });
  const userId = process.argv[2] || "demo-user";
  const show = (step, answer) => console.log(JSON.stringify({ step, ...answer }));
  try {
    // The app's own table, which the AI call writes in the same transaction as its spend.
    await pool.query(
      "CREATE TABLE IF NOT EXISTS ai_calls (id text PRIMARY KEY, user_id text, prompt text)",
    );
    show("signup", await signup(pool, userId));
    show("signup again", await signup(pool, userId));
    show("payment", await paymentWebhook(pool, userId, "small", `pay-${userId}-1`));
    show("payment retried", await paymentWebhook(pool, userId, "small", `pay-${userId}-1`));
    show("ai call", await aiCall(pool, userId, `call-${userId}-1`, "Write a haiku"));
    show("ai call too big", await aiCall(pool, userId, `call-${userId}-2`, "A novel", 1000000));
    const page = await accountPage(pool, userId, 5);
    show("account", page.account);
    show("statement", { entries: page.entries });
  } finally {
    await pool.end();
  }
}

main().catch((err) => {
  console.error(`error: ${err.message}${err.code ? ` (SQLSTATE ${err.code})` : ""}`);
  process.exit(1);
});
