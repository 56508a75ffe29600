"""cron-job.org: the REST API's job bodies, sent as cron-job.org sends them."""

import json
import urllib.request

import pytest

from testing import SECRET

from .support import DEPLOY

SCHEDULES = {"grant": "0 1 * * *", "expire": "0 4 * * *"}
CRON_JOB_ORG_METHODS = {0: "GET", 1: "POST"}


@pytest.mark.parametrize("job", ["grant", "expire"])
def test_cron_job_org_body_calls_its_job_at_its_hour_in_utc(job, service, job_runs):
    spec = json.loads((DEPLOY / "cron-job-org" / f"{job}-job.json").read_text())["job"]
    schedule = spec["schedule"]
    assert schedule["timezone"] == "UTC"
    assert schedule["hours"] == [int(SCHEDULES[job].split()[1])]
    assert schedule["minutes"][0] == 0 and len(schedule["minutes"]) <= 10
    assert schedule["mdays"] == schedule["months"] == schedule["wdays"] == [-1]
    assert spec["notification"]["onFailure"] is True
    # cron-job.org's onSuccess is the mail when a job succeeds again after failing.
    assert spec["notification"]["onSuccess"] is True

    headers = dict(spec["extendedData"]["headers"])
    assert headers["Authorization"] == "Bearer YOUR_CRON_SECRET"
    headers["Authorization"] = f"Bearer {SECRET}"
    url = spec["url"].replace("https://credits.example.com", service)
    request = urllib.request.Request(
        url, headers=headers, method=CRON_JOB_ORG_METHODS[spec["requestMethod"]]
    )
    with urllib.request.urlopen(request, timeout=spec["requestTimeout"]) as response:
        assert response.status == 200
        assert json.loads(response.read())["success"] is True
    assert job_runs() == [job]


def test_cron_job_org_deliver_body_calls_the_deliver_route_every_5_minutes(service):
    spec = json.loads((DEPLOY / "cron-job-org" / "deliver-job.json").read_text())["job"]
    schedule = spec["schedule"]
    assert schedule["timezone"] == "UTC"
    assert schedule["hours"] == schedule["mdays"] == schedule["months"] == [-1]
    assert schedule["minutes"] == list(range(0, 60, 5))
    assert spec["notification"] == {"onFailure": True, "onSuccess": True, "onDisable": True}
    assert spec["extendedData"]["headers"] == {"Authorization": "Bearer YOUR_CRON_SECRET"}
    url = spec["url"].replace("https://credits.example.com", service)
    assert url == service + "/api/jobs/credits/deliver"
    request = urllib.request.Request(
        url,
        headers={"Authorization": f"Bearer {SECRET}"},
        method=CRON_JOB_ORG_METHODS[spec["requestMethod"]],
    )
    with urllib.request.urlopen(request, timeout=spec["requestTimeout"]) as response:
        assert response.status == 200
        assert "complete" in json.loads(response.read())


def test_the_guide_creates_the_deliver_job_with_the_two_others():
    assert "for job in grant expire deliver; do" in guide()


# cron-job.org switches a job off when its failures in a row exceed this (its scheduler's
# max_failures, 15 by default).
MAX_FAILURES = 15
ORDINALS = {1: "first", 2: "second", 3: "third", 4: "fourth"}


def guide():
    return (DEPLOY / "cron-job-org" / "README.md").read_text()


def console_settings():
    """The guide's console table as a user reads it: setting -> (grant, expire)."""
    rows = {}
    for line in guide().split("## In the console", 1)[1].split("\n## ", 1)[0].splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 3:
            rows[cells[0]] = (cells[1], cells[2])
    return rows


@pytest.mark.parametrize("job", ["grant", "expire"])
def test_the_disable_mail_is_on_in_the_console_and_the_json(job):
    spec = json.loads((DEPLOY / "cron-job-org" / f"{job}-job.json").read_text())["job"]
    assert spec["notification"]["onDisable"] is True
    settings = console_settings()
    disable = [name for name in settings if "disabled" in name and name.startswith("Notify")]
    assert disable, "the console steps do not turn on the mail for a job switched off"
    assert settings[disable[0]] == ("on", "on")


def test_the_guide_says_when_a_failing_job_is_switched_off_and_how_to_turn_it_on():
    spec = json.loads((DEPLOY / "cron-job-org" / "grant-job.json").read_text())["job"]
    calls_a_day = len(spec["schedule"]["hours"]) * len(spec["schedule"]["minutes"])
    day = -(-(MAX_FAILURES + 1) // calls_a_day)  # the day of the failed call that switches off
    text = " ".join(guide().split())
    assert f"more than {MAX_FAILURES} failed executions in a row" in text
    assert f"the {MAX_FAILURES + 1}th failed call, on the {ORDINALS[day]} day" in text
    assert "Enable job" in text and '{"job": {"enabled": true}}' in text
