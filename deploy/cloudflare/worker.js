// The credits jobs on Cloudflare Cron Triggers: one Worker, all three schedules (see wrangler.toml).
// The trigger's cron string picks the job. Any answer but 2xx (or 409) throws, so Cloudflare
// records the invocation as failed; an answer with "complete": false is called again, up to
// MAX_CALLS times.
// Only the default export: the Workers runtime takes every export of this module for a handler.

const JOBS = {
  "0 1 * * *": "grant",
  "0 4 * * *": "expire",
  "*/5 * * * *": "deliver",
};

// Cloudflare's limits (https://developers.cloudflare.com/workers/platform/limits/): a Cron
// Trigger invocation runs at most 15 minutes of wall-clock time, and a Free-plan invocation
// makes at most 50 subrequests. MAX_CALLS calls of at most CALL_TIMEOUT_MS each take at most
// 10 minutes and 10 subrequests. A call answers within its time budget (8 s by default).
const MAX_CALLS = 10;
const CALL_TIMEOUT_MS = 60_000;

export default {
  async scheduled(event, env, ctx) {
    const job = JOBS[event.cron];
    if (!job) {
      throw new Error(
        `No credits job is scheduled at "${event.cron}"; wrangler.toml and JOBS in worker.js ` +
          `must list the same cron strings (${Object.keys(JOBS).join(", ")})`,
      );
    }
    await runJob(job, env);
  },
};

async function runJob(job, env) {
  if (!env.CREDITS_URL || !env.CRON_SECRET) {
    throw new Error("Set CREDITS_URL (a var) and CRON_SECRET (a secret) on this Worker");
  }
  const url = `${env.CREDITS_URL.replace(/\/+$/, "")}/api/jobs/credits/${job}`;
  for (let call = 1; call <= MAX_CALLS; call++) {
    const { status, text } = await callOnce(job, url, env.CRON_SECRET);
    if (status === 409) {
      // Cron Triggers are delivered at least once: a second delivery of this trigger (or
      // another caller) finds a run of the job working, and that run finishes the work.
      console.log(`credits ${job} (call ${call}): another run is working: ${text}`);
      return null;
    }
    if (status < 200 || status > 299) {
      throw new Error(`credits ${job}: ${url} answered HTTP ${status}: ${text.slice(0, 500)}`);
    }
    console.log(`credits ${job} (call ${call}): ${text}`);
    let body;
    try {
      body = JSON.parse(text);
    } catch {
      throw new Error(`credits ${job}: ${url} answered 2xx but not JSON: ${text.slice(0, 200)}`);
    }
    // A missing "complete" means the run finished (services without time budgets).
    if (body.complete !== false) {
      return body;
    }
  }
  throw new Error(`credits ${job}: still "complete": false after ${MAX_CALLS} calls`);
}

async function callOnce(job, url, secret) {
  try {
    // redirect: "manual" so that a redirect (http to https, a moved domain) is reported, not
    // followed without the Authorization header.
    const response = await fetch(url, {
      method: "GET",
      headers: { Authorization: `Bearer ${secret}` },
      redirect: "manual",
      signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
    });
    return { status: response.status, text: await response.text() };
  } catch (error) {
    if (error.name === "TimeoutError") {
      throw new Error(`credits ${job}: ${url} did not answer within ${CALL_TIMEOUT_MS / 1000} s`);
    }
    throw error;
  }
}
