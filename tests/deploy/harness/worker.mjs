// Runs worker.js's scheduled handler once, as a Cloudflare Cron Trigger does, with a fake event.
// Prints the timeout each call was given (TIMEOUTS: [...]); with SHORTEN_TIMEOUTS set, a call's
// timeout lasts 200 ms, so a service that never answers is given up on within the test.
const timeouts = [];
const realTimeout = AbortSignal.timeout.bind(AbortSignal);
AbortSignal.timeout = (ms) => {
  timeouts.push(ms);
  return realTimeout(process.env.SHORTEN_TIMEOUTS ? 200 : ms);
};

const worker = (await import(process.env.WORKER_URL)).default;
const env = { CREDITS_URL: process.env.CREDITS_URL, CRON_SECRET: process.env.CRON_SECRET };
const event = { type: "scheduled", cron: process.env.CRON, scheduledTime: Date.now() };
try {
  await worker.scheduled(event, env, { waitUntil() {}, passThroughOnException() {} });
  console.log("HANDLER RESOLVED");
} catch (error) {
  console.log(`HANDLER THREW: ${error.message}`);
  process.exitCode = 1;
}
console.log(`TIMEOUTS: ${JSON.stringify(timeouts)}`);
