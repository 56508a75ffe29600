"""Kubernetes: the CronJobs' commands, run from the image's working folder."""

import os
import subprocess
import sys

import yaml

from .support import DEPLOY, ROOT, dockerfile

SCHEDULES = {"grant": "0 1 * * *", "expire": "0 4 * * *", "deliver": "*/5 * * * *"}


def kubernetes_cronjobs():
    return list(yaml.safe_load_all((DEPLOY / "kubernetes" / "cronjobs.yaml").read_text()))


def test_kubernetes_cronjobs_run_each_job_once_a_day_in_utc_never_overlapping():
    jobs = {}
    for doc in kubernetes_cronjobs():
        assert (doc["apiVersion"], doc["kind"]) == ("batch/v1", "CronJob")
        spec = doc["spec"]
        assert spec["timeZone"] == "Etc/UTC" and spec["concurrencyPolicy"] == "Forbid"
        [container] = spec["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        assert container["envFrom"] == [{"secretRef": {"name": "credits"}}]
        jobs[spec["schedule"]] = container["command"]
    assert jobs == {
        SCHEDULES["grant"]: ["python", "-m", "credits", "grant"],
        SCHEDULES["expire"]: ["python", "-m", "credits", "expire"],
        SCHEDULES["deliver"]: ["python", "-m", "credits", "deliver", "--budget", "240"],
    }


def test_kubernetes_commands_run_the_jobs_from_the_image_workdir(
    database_url, due_subscription, granted, job_runs
):
    [workdir] = [args for name, args in dockerfile() if name == "WORKDIR"]
    assert workdir == "/app"  # where COPY . . puts the project, so `-m credits` is found
    for doc in kubernetes_cronjobs():
        [container] = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        command = [sys.executable, *container["command"][1:]]
        env = {"PATH": os.environ.get("PATH", ""), "DATABASE_URL": database_url}
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, timeout=120)
        assert result.returncode == 0, result.stderr
    assert granted() == [{"user_id": "alice", "amount": 100}]
    assert job_runs() == ["grant", "expire"]
