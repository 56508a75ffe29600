"""GitHub Actions: the workflow's two jobs' scripts, run by bash as the runner does."""

import os
import subprocess

import yaml

from testing import SECRET

from .support import COMPLETE, DEPLOY, INCOMPLETE

# Off the hour, when GitHub delays and drops the most scheduled runs; grant before expire.
SCHEDULES = {"grant": "23 1 * * *", "expire": "23 4 * * *", "deliver": "*/5 * * * *"}


def workflow():
    return yaml.safe_load((DEPLOY / "github-actions" / "credits-jobs.yml").read_text())


def run_step(step, env):
    """A step's script with the env the workflow gives it, under the runner's bash flags."""
    assert step["shell"] == "bash" and "${{" not in step["run"]
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def pick(tmp_path, schedule="", requested_job=""):
    """Run the `pick` job as GitHub would for this start; its output `job`, and the result."""
    [step] = workflow()["jobs"]["pick"]["steps"]
    outputs = tmp_path / "github_output"
    outputs.write_text("")
    result = run_step(
        step, {"SCHEDULE": schedule, "REQUESTED_JOB": requested_job, "GITHUB_OUTPUT": outputs}
    )
    values = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    return values.get("job"), result


def run_workflow(tmp_path, url, schedule="", requested_job="", secret=SECRET):
    """Both jobs in order, as a run started this way goes; the `call` step's output."""
    job, result = pick(tmp_path, schedule, requested_job)
    if result.returncode != 0:
        return result
    [step] = workflow()["jobs"]["call"]["steps"]
    return run_step(step, {"CREDITS_URL": url, "CRON_SECRET": secret, "JOB": job})


def concurrency_group(job):
    """The `call` job's concurrency group once `needs.pick.outputs.job` is known."""
    group = workflow()["jobs"]["call"]["concurrency"]["group"]
    return group.replace("${{ needs.pick.outputs.job }}", job)


def test_workflow_schedules_grant_before_expire_off_the_hour_and_can_be_run_by_hand():
    spec = workflow()
    triggers = spec[True]  # YAML 1.1 reads the key `on` as true
    crons = [s["cron"] for s in triggers["schedule"]]
    assert crons == [SCHEDULES["grant"], SCHEDULES["expire"], SCHEDULES["deliver"]]
    assert all(cron.split()[0] != "0" for cron in crons)
    assert triggers["workflow_dispatch"]["inputs"]["job"]["options"] == [
        "grant",
        "expire",
        "deliver",
    ]
    [pick_step] = spec["jobs"]["pick"]["steps"]
    assert pick_step["env"]["SCHEDULE"] == "${{ github.event.schedule }}"
    assert pick_step["env"]["REQUESTED_JOB"] == "${{ inputs.job }}"
    [call_step] = spec["jobs"]["call"]["steps"]
    assert call_step["env"]["CRON_SECRET"] == "${{ secrets.CRON_SECRET }}"
    assert call_step["env"]["JOB"] == "${{ needs.pick.outputs.job }}"
    assert spec["jobs"]["call"]["needs"] == "pick"
    assert spec["jobs"]["pick"]["outputs"]["job"] == "${{ steps.pick.outputs.job }}"


def test_one_concurrency_group_per_job_however_the_run_was_started(tmp_path):
    spec = workflow()
    assert "concurrency" not in spec  # not per workflow: grant and expire do not wait on each other
    assert spec["jobs"]["call"]["concurrency"]["cancel-in-progress"] is False  # a second one waits
    groups = {}
    for job in ("grant", "expire"):
        scheduled, _ = pick(tmp_path, schedule=SCHEDULES[job])
        by_hand, _ = pick(tmp_path, requested_job=job)
        assert scheduled == by_hand == job
        groups[job] = concurrency_group(scheduled)
        assert concurrency_group(by_hand) == groups[job]
    assert groups == {"grant": "credits-grant", "expire": "credits-expire"}


def test_pick_refuses_a_schedule_or_a_job_it_does_not_know(tmp_path):
    job, result = pick(tmp_path, schedule="0 2 * * *")
    assert job is None and result.returncode == 1
    assert "No credits job is scheduled at '0 2 * * *'" in result.stdout
    job, result = pick(tmp_path, requested_job="refund")
    assert job is None and result.returncode == 1


def test_workflow_on_the_grant_schedule_grants(tmp_path, service, due_subscription, granted):
    result = run_workflow(tmp_path, service, schedule=SCHEDULES["grant"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "credits grant (call 1): HTTP 200" in result.stdout
    assert granted() == [{"user_id": "alice", "amount": 100}]


def test_workflow_on_the_expire_schedule_expires(tmp_path, service, job_runs):
    result = run_workflow(tmp_path, service, schedule=SCHEDULES["expire"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert job_runs() == ["expire"]


def test_workflow_run_by_hand_runs_the_chosen_job(tmp_path, service, job_runs):
    result = run_workflow(tmp_path, service + "/", requested_job="expire")
    assert result.returncode == 0, result.stdout + result.stderr
    assert job_runs() == ["expire"]


def test_workflow_fails_on_401(tmp_path, service, job_runs):
    result = run_workflow(
        tmp_path, service, schedule=SCHEDULES["grant"], secret="wrong-secret-0123456"
    )
    assert result.returncode == 1
    assert "::error::credits grant answered HTTP 401" in result.stdout
    assert job_runs() == []


def test_workflow_fails_when_the_service_cannot_be_reached(tmp_path):
    result = run_workflow(tmp_path, "http://127.0.0.1:9", schedule=SCHEDULES["grant"])
    assert result.returncode == 1
    assert "::error::credits grant answered HTTP 000" in result.stdout


def test_workflow_fails_without_its_settings(tmp_path):
    result = run_workflow(tmp_path, "", schedule=SCHEDULES["grant"])
    assert result.returncode == 1
    assert "Set the CREDITS_URL variable and the CRON_SECRET secret" in result.stdout


def test_workflow_on_the_deliver_schedule_calls_the_deliver_route(tmp_path, scripted):
    stub = scripted(COMPLETE)
    result = run_workflow(tmp_path, stub.url, schedule=SCHEDULES["deliver"])
    assert result.returncode == 0, result.stdout
    assert stub.calls == [("/api/jobs/credits/deliver", f"Bearer {SECRET}")]


def test_workflow_on_the_deliver_schedule_reaches_the_service(tmp_path, service):
    result = run_workflow(tmp_path, service, schedule=SCHEDULES["deliver"])
    assert result.returncode == 0, result.stdout
    assert "HTTP 200" in result.stdout


def test_workflow_calls_again_while_incomplete_then_stops(tmp_path, scripted):
    stub = scripted(INCOMPLETE, INCOMPLETE, COMPLETE)
    result = run_workflow(tmp_path, stub.url, schedule=SCHEDULES["expire"])
    assert result.returncode == 0, result.stdout
    assert stub.calls == [("/api/jobs/credits/expire", f"Bearer {SECRET}")] * 3


def test_workflow_fails_after_10_incomplete_answers(tmp_path, scripted):
    stub = scripted(INCOMPLETE)
    result = run_workflow(tmp_path, stub.url, schedule=SCHEDULES["grant"])
    assert result.returncode == 1
    assert "still not complete after 10 calls" in result.stdout
    assert len(stub.calls) == 10


def test_a_failed_call_is_tried_again_before_the_step_fails(tmp_path, scripted):
    """One 503 (a database blip, a restarting service) does not lose the day."""
    stub = scripted((503, {"success": False, "error": "database unavailable"}), COMPLETE)
    result = run_workflow(tmp_path, stub.url, schedule=SCHEDULES["grant"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert stub.calls == [("/api/jobs/credits/grant", f"Bearer {SECRET}")] * 2


def test_the_guide_turns_a_disabled_schedule_back_on_the_way_github_does():
    """A disabled scheduled workflow stays off after an ordinary push."""
    guide = " ".join((DEPLOY / "github-actions" / "README.md").read_text().split())
    assert "or push a commit" not in guide
    assert "a push does **not** start them again" in guide
    assert "**Enable workflow**" in guide and "gh workflow enable credits-jobs.yml" in guide
