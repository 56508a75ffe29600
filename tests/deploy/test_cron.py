"""Plain cron: the crontab's commands, the command line instead of HTTP."""

import os
import subprocess
import sys

from .support import DEPLOY, ROOT

SCHEDULES = {"grant": "0 1 * * *", "expire": "0 4 * * *", "deliver": "*/5 * * * *"}


def crontab_commands():
    lines = (DEPLOY / "cron" / "crontab").read_text().splitlines()
    entries = [line.split(maxsplit=5) for line in lines if line and line[0] in "0123456789*"]
    return {" ".join(entry[:5]): entry[5] for entry in entries}


def installed(command, log):
    """A crontab command as installed: in /srv/credits with its .venv, logging to /var/log."""
    command = command.replace("/srv/credits", str(ROOT)).replace("/var/log/credits.log", str(log))
    return command.replace(".venv/bin/python", sys.executable)


def test_crontab_runs_grant_at_01_expire_at_04_utc_and_delivers_every_5_minutes():
    text = (DEPLOY / "cron" / "crontab").read_text()
    assert "CRON_TZ=UTC" in text.splitlines()
    commands = crontab_commands()
    assert list(commands) == [SCHEDULES["grant"], SCHEDULES["expire"], SCHEDULES["deliver"]]
    deliver = commands[SCHEDULES["deliver"]]
    assert deliver.endswith("-m credits deliver >> /var/log/credits.log 2>&1")
    assert commands[SCHEDULES["grant"]].endswith("-m credits grant >> /var/log/credits.log 2>&1")


def test_crontab_commands_run_the_jobs(tmp_path, database_url, due_subscription, granted, job_runs):
    log = tmp_path / "credits.log"
    env = {"PATH": os.environ.get("PATH", ""), "DATABASE_URL": database_url}
    for command in crontab_commands().values():
        result = subprocess.run(
            ["sh", "-c", installed(command, log)], env=env, capture_output=True, timeout=120
        )
        assert result.returncode == 0, log.read_text()
    assert granted() == [{"user_id": "alice", "amount": 100}]
    assert job_runs() == ["grant", "expire"]
    output = log.read_text()
    assert "Completed in" in output and '"successful": 1' in output


def test_crontab_command_exits_1_when_the_job_fails(tmp_path):
    log = tmp_path / "credits.log"
    command = installed(crontab_commands()[SCHEDULES["grant"]], log)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none?connect_timeout=1",
        "CREDITS_DB_TIMEOUT": "1",
    }
    result = subprocess.run(["sh", "-c", command], env=env, capture_output=True, timeout=120)
    assert result.returncode == 1
    assert "database unavailable" in log.read_text()
