"""Upstash QStash: the schedule commands, sent to a stand-in for QStash's API."""

import os
import subprocess

from testing import SECRET

from .support import DEPLOY

SCHEDULES = {"grant": "0 1 * * *", "expire": "0 4 * * *"}


def run_qstash_schedules(qstash_url, **env):
    env = {
        "PATH": os.environ.get("PATH", ""),
        "QSTASH_URL": qstash_url,
        "QSTASH_TOKEN": "qstash-token-0123",
        "CREDITS_URL": "https://credits.example.com/",
        **env,
    }
    return subprocess.run(
        ["bash", str(DEPLOY / "qstash" / "schedules.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_qstash_schedules_post_both_jobs_at_their_hours_to_the_schedules_api(scripted):
    api = scripted((201, {"scheduleId": "credits-grant"}))
    result = run_qstash_schedules(api.url)
    assert result.returncode == 0, result.stderr
    assert [(method, path) for method, path, _ in api.requests] == [
        ("POST", "/v2/schedules/https://credits.example.com/api/jobs/credits/grant"),
        ("POST", "/v2/schedules/https://credits.example.com/api/jobs/credits/expire"),
        ("POST", "/v2/schedules/https://credits.example.com/api/jobs/credits/deliver"),
    ]
    for job, (_, _, headers) in zip(["grant", "expire"], api.requests[:2], strict=True):
        minute, hour, *rest = headers["Upstash-Cron"].split()
        assert (minute.split(",")[0], hour, rest) == ("0", SCHEDULES[job].split()[1], ["*"] * 3)
        assert headers["Authorization"] == "Bearer qstash-token-0123"
        assert headers["Upstash-Method"] == "POST"
        assert headers["Upstash-Schedule-Id"] == f"credits-{job}"  # run again: updated, not doubled
        assert "Upstash-Forward-Authorization" not in headers  # signing keys: no secret at QStash


def test_qstash_schedules_deliver_the_events_every_5_minutes(scripted):
    api = scripted((201, {"scheduleId": "credits-deliver"}))
    result = run_qstash_schedules(api.url)
    assert result.returncode == 0, result.stderr
    _, _, headers = api.requests[2]
    assert headers["Upstash-Cron"] == "*/5 * * * *"
    assert headers["Upstash-Method"] == "POST"
    assert headers["Upstash-Schedule-Id"] == "credits-deliver"


def test_qstash_schedules_forward_the_bearer_secret_only_when_given(scripted):
    api = scripted((201, {"scheduleId": "credits-grant"}))
    result = run_qstash_schedules(api.url, CRON_SECRET=SECRET)
    assert result.returncode == 0, result.stderr
    forwarded = [headers["Upstash-Forward-Authorization"] for _, _, headers in api.requests]
    assert forwarded == [f"Bearer {SECRET}"] * 3


def test_qstash_schedules_stop_at_the_first_refusal(scripted):
    api = scripted((401, {"error": "unauthorized"}))
    result = run_qstash_schedules(api.url)
    assert result.returncode != 0
    assert "unauthorized" in result.stdout
    assert len(api.requests) == 1


def test_qstash_schedules_need_a_token_and_the_service_url():
    result = run_qstash_schedules("http://127.0.0.1:9", QSTASH_TOKEN="")
    assert result.returncode != 0 and "set QSTASH_TOKEN" in result.stderr
