// The credits jobs on Cloudflare Cron Triggers: one Worker, both schedules (see wrangler.toml).
// The trigger's cron string picks the job. Any answer but 2xx throws, so Cloudflare records the
// invocation as failed; an answer with "complete": false is called again, up to MAX_CALLS times.
// Only the default export: the Workers runtime takes every export of this module for a handler.

const JOBS = {
  "0 1 * * *": "grant",
  "0 4 * * *": "expire",
};

const MAX_CALLS = 10;

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
    // redirect: "manual" so that a redirect (http to https, a moved domain) is reported, not
    // followed without the Authorization header.
    const response = await fetch(url, {
      method: "GET",
      headers: { Authorization: `Bearer ${env.CRON_SECRET}` },
      redirect: "manual",
    });
    const text = await response.text();
    if (response.status < 200 || response.status > 299) {
      throw new Error(`credits ${job}: ${url} answered HTTP ${response.status}: ${text.slice(0, 500)}`);
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
