// Every function of the client once, for USER (node dist/example.js USER), one JSON line a
// step: what an app's handlers do, and what the suite checks (tests/test_ts_client.py).
import { Pool } from "pg";

import * as credits from "./index";

async function main(userId: string): Promise<void> {
  const pool = new Pool({ connectionString: process.env.DATABASE_URL });
  const say = (step: string, body: object): void => console.log(JSON.stringify({ step, ...body }));
  try {
    say("bonus", await credits.grantRegistrationBonus(pool, userId));
    say("can buy", await credits.canBuyPackage(pool, userId, "small"));
    say("pack", await credits.buyPackage(pool, userId, "small", `pay-${userId}`));
    say(
      "grant",
      await credits.grantCredits(pool, {
        userId,
        amount: 5,
        source: "promotion",
        referenceId: `promo-${userId}`,
        validityDays: 30,
        metadata: { campaign: "spring" },
      }),
    );
    say("spend service", await credits.spendService(pool, userId, "chat", 3, `ai-${userId}-1`));
    say("reverse", await credits.reverseSpend(pool, userId, `ai-${userId}-1`));

    // The app's own row and the spend commit together: one client, one short transaction.
    const client = await pool.connect();
    try {
      await client.query("BEGIN");
      const spent = await credits.spend(client, userId, 10, `ai-${userId}-2`, { prompt: "a cat" });
      await client.query("COMMIT");
      say("spend in a transaction", spent);
    } catch (err) {
      await client.query("ROLLBACK");
      throw err;
    } finally {
      client.release();
    }

    try {
      await credits.spend(pool, userId, 1_000_000, `ai-${userId}-3`);
    } catch (err) {
      if (!(err instanceof credits.CreditsError && err.is(credits.CODES.INSUFFICIENT_CREDITS))) throw err;
      const detail = err.detail as credits.InsufficientCreditsDetail | null;
      say("refused", { code: err.code, detail, message: err.message });
    }
    try {
      await credits.spend(pool, userId, -5, `ai-${userId}-4`);
    } catch (err) {
      if (!(err instanceof credits.CreditsError)) throw err;
      say("bad argument", { code: err.code, message: err.message });
    }
    say("void", await credits.voidGrant(pool, `pay-${userId}`));
    say("account", await credits.account(pool, userId));
    const first = await credits.statement(pool, userId, { limit: 3 });
    const rest = await credits.statement(pool, userId, { before: first.next_cursor });
    say("statement", { first, rest });
  } finally {
    await pool.end();
  }
}

main(process.argv[2] ?? "alice").catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
