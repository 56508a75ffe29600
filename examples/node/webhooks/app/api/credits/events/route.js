// A Next.js route handler (app/api/credits/events/route.js) that receives the credits
// service's events: it verifies each request with the `standardwebhooks` package on the raw
// body, stores the event once by its webhook-id (the same on every retry) and logs it. It
// e-mails nobody: that is the app's to add where it says so.
import { appendFile, readFile } from "node:fs/promises";
import { Webhook, WebhookVerificationError } from "standardwebhooks";

// Where the events are kept: a JSON line each. An app would insert into its own table with
// the webhook-id as its primary key instead.
const STORE = process.env.CREDITS_EVENTS_FILE ?? "credits-events.jsonl";

async function seen(webhookId) {
  const text = await readFile(STORE, "utf8").catch(() => "");
  return text.split("\n").some((line) => line && JSON.parse(line).webhookId === webhookId);
}

export async function POST(request) {
  const body = await request.text(); // the raw body: the signature covers its bytes
  const headers = Object.fromEntries(request.headers);
  let event;
  try {
    event = new Webhook(process.env.CREDITS_WEBHOOK_SECRET).verify(body, headers);
  } catch (error) {
    if (!(error instanceof WebhookVerificationError)) throw error;
    console.warn(`credits event refused: ${error.message}`);
    return new Response("invalid signature", { status: 401 });
  }
  const webhookId = headers["webhook-id"];
  if (await seen(webhookId)) {
    return new Response(null, { status: 204 }); // a retry of one already stored
  }
  await appendFile(STORE, JSON.stringify({ webhookId, ...event }) + "\n");
  console.log(`credits event ${webhookId}: ${event.type} for ${event.data.user_id ?? "-"}`);
  // Here the app would e-mail on credits.balance_low, credits.expiring_soon, ...
  return new Response(null, { status: 204 });
}
