#!/usr/bin/env bash
# Create, or update when run again, the three QStash schedules that call the credits jobs.
#   QSTASH_TOKEN   your QStash token (Upstash console, QStash)           required
#   CREDITS_URL    where the service answers, e.g. https://credits.example.com   required
#   QSTASH_URL     the QStash address shown in your console     default https://qstash.upstash.io
#   CRON_SECRET    only when the service has no QStash signing keys: QStash then forwards it
#                  as the Authorization header (and keeps a copy of it)
set -euo pipefail
: "${QSTASH_TOKEN:?set QSTASH_TOKEN (Upstash console, QStash)}"
: "${CREDITS_URL:?set CREDITS_URL, e.g. https://credits.example.com}"
qstash="${QSTASH_URL:-https://qstash.upstash.io}"

# Each job is called six times in its hour (UTC): the first call does the work, a call that
# finds it done costs one quick run, and a run cut short by its time budget is resumed.
schedule() {
    local job="$1" cron="$2"
    local headers=(
        -H "Authorization: Bearer $QSTASH_TOKEN"
        -H "Upstash-Cron: $cron"
        -H "Upstash-Method: POST"
        -H "Upstash-Retries: 3"
        -H "Upstash-Schedule-Id: credits-$job"
    )
    if [ -n "${CRON_SECRET:-}" ]; then
        headers+=(-H "Upstash-Forward-Authorization: Bearer $CRON_SECRET")
    fi
    echo "credits-$job at \"$cron\":"
    curl --fail-with-body --silent --show-error -X POST "${headers[@]}" \
        "$qstash/v2/schedules/${CREDITS_URL%/}/api/jobs/credits/$job"
    echo
}

schedule grant "0,10,20,30,40,50 1 * * *"
schedule expire "0,10,20,30,40,50 4 * * *"
# The events' webhooks go out between the jobs too (docs/EVENTS.md).
schedule deliver "*/5 * * * *"
