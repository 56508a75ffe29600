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
