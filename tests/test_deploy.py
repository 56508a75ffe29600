"""Each file in deploy/ run the way its platform runs it, against the service on this machine."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.request
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from werkzeug.serving import make_server

from .conftest import SECRET
from .test_served import free_port, procfile_command

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent
SCHEDULES = {"grant": "0 1 * * *", "expire": "0 4 * * *"}
NODE = shutil.which("node")


@pytest.fixture
def due_subscription(add_plan, subscribe):
    """One subscription whose grant is due today, so a grant run has something to do."""
    add_plan("pro", 100, 30)
    subscribe("s1", "alice", "pro", "2026-01-10")


@pytest.fixture
def service(app):
    """The service answering HTTP on a free local port, as a platform would reach it."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


class Scripted:
    """A stand-in service that answers each call with the next scripted (status, body)."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.calls = []
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.calls.append((self.path, self.headers.get("Authorization")))
                outer.requests.append((self.command, self.path, dict(self.headers)))
                status, body = outer.answers.pop(0) if len(outer.answers) > 1 else outer.answers[0]
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_GET

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def scripted():
    servers = []

    def start(*answers):
        servers.append(Scripted(answers))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


INCOMPLETE = (200, {"success": True, "complete": False, "results": {}})
COMPLETE = (200, {"success": True, "complete": True, "results": {}})


def granted(sql_run):
    return sql_run("SELECT user_id, amount FROM credits.batches")


def job_runs(sql_run):
    return [row["job"] for row in sql_run("SELECT job FROM credits.job_runs ORDER BY started_at")]


# --- Cloudflare: the Worker's scheduled handler under Node -----------------------------------

WORKER_HARNESS = """
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
"""


def run_worker(cron, url, secret=SECRET):
    """Call worker.js's scheduled handler with a fake event, as Cloudflare's cron trigger does."""
    if NODE is None:
        pytest.skip("node is not installed: the Cloudflare Worker cannot be run here")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "WORKER_URL": (DEPLOY / "cloudflare" / "worker.js").as_uri(),
        "CREDITS_URL": url,
        "CRON_SECRET": secret,
        "CRON": cron,
    }
    return subprocess.run(
        [NODE, "--input-type=module", "-e", WORKER_HARNESS],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def wrangler_crons():
    config = tomllib.loads((DEPLOY / "cloudflare" / "wrangler.toml").read_text())
    assert config["main"] == "worker.js"
    return config["triggers"]["crons"]


def test_wrangler_schedules_grant_at_01_and_expire_at_04_utc():
    assert wrangler_crons() == [SCHEDULES["grant"], SCHEDULES["expire"]]
    config = tomllib.loads((DEPLOY / "cloudflare" / "wrangler.toml").read_text())
    # Cloudflare refuses to deploy a Worker whose compatibility date is still to come.
    assert date.fromisoformat(config["compatibility_date"]) <= date.today()


def test_worker_module_exports_only_its_handler():
    """The Workers runtime takes every export for a handler and refuses to start on a constant."""
    if NODE is None:
        pytest.skip("node is not installed: the Cloudflare Worker cannot be run here")
    script = "const m = await import(process.argv[1]); console.log(JSON.stringify(Object.keys(m)));"
    result = subprocess.run(
        [NODE, "--input-type=module", "-e", script, (DEPLOY / "cloudflare" / "worker.js").as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["default"]


def test_worker_grant_trigger_grants_through_the_service(service, due_subscription, sql_run):
    result = run_worker(SCHEDULES["grant"], service)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "HANDLER RESOLVED" in result.stdout
    assert granted(sql_run) == [{"user_id": "alice", "amount": 100}]
    assert job_runs(sql_run) == ["grant"]


def test_each_wrangler_trigger_runs_its_own_job(service, sql_run):
    for cron in wrangler_crons():
        result = run_worker(cron, service + "/")  # a trailing slash in CREDITS_URL is fine
        assert result.returncode == 0, result.stdout + result.stderr
    assert job_runs(sql_run) == ["grant", "expire"]


def test_worker_throws_on_401_so_cloudflare_records_a_failure(service, sql_run):
    result = run_worker(SCHEDULES["expire"], service, secret="not-the-secret-0123456789")
    assert result.returncode == 1
    assert "HANDLER THREW: credits expire:" in result.stdout
    assert "answered HTTP 401" in result.stdout
    assert job_runs(sql_run) == []


def test_worker_throws_on_a_cron_string_it_has_no_job_for(service, sql_run):
    result = run_worker("0 2 * * *", service)
    assert result.returncode == 1
    assert 'No credits job is scheduled at "0 2 * * *"' in result.stdout
    assert job_runs(sql_run) == []


def test_worker_throws_when_the_service_cannot_be_reached():
    result = run_worker(SCHEDULES["grant"], "http://127.0.0.1:9")
    assert result.returncode == 1 and "HANDLER THREW" in result.stdout


def test_worker_calls_again_while_the_answer_is_incomplete(scripted):
    stub = scripted(INCOMPLETE, INCOMPLETE, COMPLETE)
    result = run_worker(SCHEDULES["grant"], stub.url)
    assert result.returncode == 0, result.stdout
    assert stub.calls == [("/api/jobs/credits/grant", f"Bearer {SECRET}")] * 3


def test_worker_gives_up_and_throws_after_10_incomplete_answers(scripted):
    stub = scripted(INCOMPLETE)
    result = run_worker(SCHEDULES["expire"], stub.url)
    assert result.returncode == 1
    assert 'still "complete": false after 10 calls' in result.stdout
    assert len(stub.calls) == 10


def test_worker_throws_on_a_server_error_between_calls(scripted):
    stub = scripted(INCOMPLETE, (500, {"success": False, "error": "internal error"}))
    result = run_worker(SCHEDULES["grant"], stub.url)
    assert result.returncode == 1 and "answered HTTP 500" in result.stdout
    assert len(stub.calls) == 2


# --- GitHub Actions: the workflow's step, run by bash as the runner does ----------------------


def workflow():
    return yaml.safe_load((DEPLOY / "github-actions" / "credits-jobs.yml").read_text())


def run_workflow_step(url, schedule="", requested_job="", secret=SECRET):
    """The step's script with the env the workflow gives it, under the runner's bash flags."""
    [step] = workflow()["jobs"]["call"]["steps"]
    assert step["shell"] == "bash" and "${{" not in step["run"]
    env = {
        "PATH": os.environ.get("PATH", ""),
        "CREDITS_URL": url,
        "CRON_SECRET": secret,
        "SCHEDULE": schedule,
        "REQUESTED_JOB": requested_job,
    }
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_workflow_schedules_grant_at_01_and_expire_at_04_and_can_be_run_by_hand():
    spec = workflow()
    triggers = spec[True]  # YAML 1.1 reads the key `on` as true
    assert [s["cron"] for s in triggers["schedule"]] == [SCHEDULES["grant"], SCHEDULES["expire"]]
    assert triggers["workflow_dispatch"]["inputs"]["job"]["options"] == ["grant", "expire"]
    env = spec["jobs"]["call"]["steps"][0]["env"]
    assert env["CRON_SECRET"] == "${{ secrets.CRON_SECRET }}"
    assert env["SCHEDULE"] == "${{ github.event.schedule }}"


def test_workflow_step_on_the_grant_schedule_grants(service, due_subscription, sql_run):
    result = run_workflow_step(service, schedule=SCHEDULES["grant"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "credits grant (call 1): HTTP 200" in result.stdout
    assert granted(sql_run) == [{"user_id": "alice", "amount": 100}]


def test_workflow_step_on_the_expire_schedule_expires(service, sql_run):
    result = run_workflow_step(service, schedule=SCHEDULES["expire"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert job_runs(sql_run) == ["expire"]


def test_workflow_step_run_by_hand_runs_the_chosen_job(service, sql_run):
    result = run_workflow_step(service + "/", requested_job="expire")
    assert result.returncode == 0, result.stdout + result.stderr
    assert job_runs(sql_run) == ["expire"]


def test_workflow_step_fails_on_401(service, sql_run):
    result = run_workflow_step(service, schedule=SCHEDULES["grant"], secret="wrong-secret-0123456")
    assert result.returncode == 1
    assert "::error::credits grant answered HTTP 401" in result.stdout
    assert job_runs(sql_run) == []


def test_workflow_step_fails_when_the_service_cannot_be_reached():
    result = run_workflow_step("http://127.0.0.1:9", schedule=SCHEDULES["grant"])
    assert result.returncode == 1
    assert "::error::credits grant answered HTTP 000" in result.stdout


def test_workflow_step_fails_without_its_settings():
    result = run_workflow_step("", schedule=SCHEDULES["grant"])
    assert result.returncode == 1
    assert "Set the CREDITS_URL variable and the CRON_SECRET secret" in result.stdout


def test_workflow_step_calls_again_while_incomplete_then_stops(scripted):
    stub = scripted(INCOMPLETE, INCOMPLETE, COMPLETE)
    result = run_workflow_step(stub.url, schedule=SCHEDULES["expire"])
    assert result.returncode == 0, result.stdout
    assert stub.calls == [("/api/jobs/credits/expire", f"Bearer {SECRET}")] * 3


def test_workflow_step_fails_after_10_incomplete_answers(scripted):
    stub = scripted(INCOMPLETE)
    result = run_workflow_step(stub.url, schedule=SCHEDULES["grant"])
    assert result.returncode == 1
    assert "still not complete after 10 calls" in result.stdout
    assert len(stub.calls) == 10


# --- Upstash QStash: the schedule commands, sent to a stand-in for QStash's API --------------


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
    ]
    for job, (_, _, headers) in zip(["grant", "expire"], api.requests, strict=True):
        minute, hour, *rest = headers["Upstash-Cron"].split()
        assert (minute.split(",")[0], hour, rest) == ("0", SCHEDULES[job].split()[1], ["*"] * 3)
        assert headers["Authorization"] == "Bearer qstash-token-0123"
        assert headers["Upstash-Method"] == "POST"
        assert headers["Upstash-Schedule-Id"] == f"credits-{job}"  # run again: updated, not doubled
        assert "Upstash-Forward-Authorization" not in headers  # signing keys: no secret at QStash


def test_qstash_schedules_forward_the_bearer_secret_only_when_given(scripted):
    api = scripted((201, {"scheduleId": "credits-grant"}))
    result = run_qstash_schedules(api.url, CRON_SECRET=SECRET)
    assert result.returncode == 0, result.stderr
    forwarded = [headers["Upstash-Forward-Authorization"] for _, _, headers in api.requests]
    assert forwarded == [f"Bearer {SECRET}"] * 2


def test_qstash_schedules_stop_at_the_first_refusal(scripted):
    api = scripted((401, {"error": "unauthorized"}))
    result = run_qstash_schedules(api.url)
    assert result.returncode != 0
    assert "unauthorized" in result.stdout
    assert len(api.requests) == 1


def test_qstash_schedules_need_a_token_and_the_service_url():
    result = run_qstash_schedules("http://127.0.0.1:9", QSTASH_TOKEN="")
    assert result.returncode != 0 and "set QSTASH_TOKEN" in result.stderr


# --- Vercel: vercel.json's crons against api/index.py, with Vercel's bearer header ------------

VERCEL_HARNESS = """
import json, runpy, sys
app = runpy.run_path("api/index.py")["app"]
client = app.test_client()
answers = []
for cron in json.load(open("vercel.json"))["crons"]:
    response = client.get(cron["path"], headers={
        "Authorization": "Bearer " + sys.argv[1], "User-Agent": "vercel-cron/1.0"})
    answers.append([cron["path"], response.status_code, response.get_json()])
print(json.dumps(answers))
"""


def test_vercel_crons_reach_both_jobs_through_api_index(
    tmp_path, database_url, due_subscription, sql_run
):
    config = json.loads((DEPLOY / "vercel" / "vercel.json").read_text())
    schedules = {cron["path"]: cron["schedule"] for cron in config["crons"]}
    assert schedules == {
        "/api/jobs/credits/grant": SCHEDULES["grant"],
        "/api/jobs/credits/expire": SCHEDULES["expire"],
    }
    assert config["rewrites"] == [{"source": "/(.*)", "destination": "/api/index"}]
    # The project as Vercel lays it out once the guide's two files are copied in.
    project = tmp_path / "project"
    project.mkdir()
    for name in ("app.py", "wsgi.py", "credits", "sql"):
        (project / name).symlink_to(ROOT / name)
    (project / "api").mkdir()
    shutil.copy(DEPLOY / "vercel" / "index.py", project / "api" / "index.py")
    shutil.copy(DEPLOY / "vercel" / "vercel.json", project / "vercel.json")

    env = {**os.environ, "DATABASE_URL": database_url, "CRON_SECRET": SECRET}
    result = subprocess.run(
        [sys.executable, "-c", VERCEL_HARNESS, SECRET],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    assert [(path, status) for path, status, _ in answers] == [
        ("/api/jobs/credits/grant", 200),
        ("/api/jobs/credits/expire", 200),
    ]
    assert answers[0][2]["results"]["successful"] == 1
    assert granted(sql_run) == [{"user_id": "alice", "amount": 100}]


# --- cron-job.org: the REST API's job bodies, sent as cron-job.org sends them -----------------

CRON_JOB_ORG_METHODS = {0: "GET", 1: "POST"}


@pytest.mark.parametrize("job", ["grant", "expire"])
def test_cron_job_org_body_calls_its_job_at_its_hour_in_utc(job, service, sql_run):
    spec = json.loads((DEPLOY / "cron-job-org" / f"{job}-job.json").read_text())["job"]
    schedule = spec["schedule"]
    assert schedule["timezone"] == "UTC"
    assert schedule["hours"] == [int(SCHEDULES[job].split()[1])]
    assert schedule["minutes"][0] == 0 and len(schedule["minutes"]) <= 10
    assert schedule["mdays"] == schedule["months"] == schedule["wdays"] == [-1]
    assert spec["notification"]["onFailure"] is True

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
    assert job_runs(sql_run) == [job]


# --- Plain cron and Kubernetes: the command line instead of HTTP ------------------------------


def crontab_commands():
    lines = (DEPLOY / "cron" / "crontab").read_text().splitlines()
    entries = [line.split(maxsplit=5) for line in lines if line and line[0].isdigit()]
    return {" ".join(entry[:5]): entry[5] for entry in entries}


def test_crontab_runs_grant_at_01_and_expire_at_04_utc():
    text = (DEPLOY / "cron" / "crontab").read_text()
    assert "CRON_TZ=UTC" in text.splitlines()
    commands = crontab_commands()
    assert list(commands) == [SCHEDULES["grant"], SCHEDULES["expire"]]
    assert commands[SCHEDULES["grant"]].endswith("-m credits grant >> /var/log/credits.log 2>&1")


def test_crontab_commands_run_the_jobs(tmp_path, database_url, due_subscription, sql_run):
    log = tmp_path / "credits.log"
    env = {"PATH": os.environ.get("PATH", ""), "DATABASE_URL": database_url}
    for command in crontab_commands().values():
        # As installed: the service in /srv/credits with its .venv, logging to /var/log.
        command = command.replace("/srv/credits", str(ROOT)).replace(
            "/var/log/credits.log", str(log)
        )
        command = command.replace(".venv/bin/python", sys.executable)
        result = subprocess.run(["sh", "-c", command], env=env, capture_output=True, timeout=120)
        assert result.returncode == 0, log.read_text()
    assert granted(sql_run) == [{"user_id": "alice", "amount": 100}]
    assert job_runs(sql_run) == ["grant", "expire"]
    output = log.read_text()
    assert "Completed in" in output and '"successful": 1' in output


def test_crontab_command_exits_1_when_the_job_fails(tmp_path):
    log = tmp_path / "credits.log"
    command = crontab_commands()[SCHEDULES["grant"]]
    command = command.replace("/srv/credits", str(ROOT)).replace("/var/log/credits.log", str(log))
    command = command.replace(".venv/bin/python", sys.executable)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none?connect_timeout=1",
        "CREDITS_DB_TIMEOUT": "1",
    }
    result = subprocess.run(["sh", "-c", command], env=env, capture_output=True, timeout=120)
    assert result.returncode == 1
    assert "database unavailable" in log.read_text()


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
    }


def test_kubernetes_commands_run_the_jobs_from_the_image_workdir(
    database_url, due_subscription, sql_run
):
    [workdir] = [args for name, args in dockerfile() if name == "WORKDIR"]
    assert workdir == "/app"  # where COPY . . puts the project, so `-m credits` is found
    for doc in kubernetes_cronjobs():
        [container] = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        command = [sys.executable, *container["command"][1:]]
        env = {"PATH": os.environ.get("PATH", ""), "DATABASE_URL": database_url}
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, timeout=120)
        assert result.returncode == 0, result.stderr
    assert granted(sql_run) == [{"user_id": "alice", "amount": 100}]
    assert job_runs(sql_run) == ["grant", "expire"]


# --- PaaS: Procfile, Python version, Dockerfile ----------------------------------------------


def test_python_version_file_matches_the_dockerfile_and_is_supported():
    version = (ROOT / ".python-version").read_text().strip()
    assert re.fullmatch(r"3\.\d+", version)
    assert tuple(map(int, version.split("."))) >= (3, 11)  # tomllib
    base = re.search(r"^FROM python:(\S+)-slim$", (ROOT / "Dockerfile").read_text(), re.M)[1]
    assert base == version


def dockerfile():
    """The Dockerfile's instructions as (NAME, arguments), continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return [tuple(line.split(maxsplit=1)) for line in lines]


def test_dockerfile_cmd_is_the_procfile_command():
    [cmd] = [json.loads(args) for name, args in dockerfile() if name == "CMD"]
    assert cmd == [Path(procfile_command()[0]).name, *procfile_command()[1:]]


def test_dockerfile_command_serves_on_port_and_its_healthcheck_passes(database_url):
    """The image's CMD with the image's ENV: it must listen on 0.0.0.0:$PORT, not localhost."""
    image_env = {}
    for name, args in dockerfile():
        if name == "ENV":
            image_env.update(pair.split("=", 1) for pair in args.split())
    assert image_env["PORT"] == "8000"
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CRON_SECRET")},
        **image_env,
        "PORT": str(port),
        "DATABASE_URL": database_url,
        "CRON_SECRET": SECRET,
    }
    [cmd] = [json.loads(args) for name, args in dockerfile() if name == "CMD"]
    process = subprocess.Popen(
        [str(BIN / cmd[0]), *cmd[1:]],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()[0]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the image's command did not start"
                time.sleep(0.2)
        [healthcheck] = [args for name, args in dockerfile() if name == "HEALTHCHECK"]
        check = json.loads(healthcheck.split("CMD ", 1)[1])
        assert check[0] == "python"
        result = subprocess.run([sys.executable, *check[1:]], env=env, capture_output=True)
        assert result.returncode == 0, result.stderr
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=60)[0]
    assert f"Listening at: http://0.0.0.0:{port}" in output


def test_dockerfile_passes_hadolint():
    hadolint = BIN / "hadolint"
    result = subprocess.run(
        [str(hadolint), "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerignore_keeps_secrets_and_local_data_out_of_the_image():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", ".credits", ".venv", ".git"} <= set(ignored)


def test_healthz_needs_no_secret_over_http(service):
    with urllib.request.urlopen(f"{service}/healthz", timeout=10) as response:
        assert response.status == 200
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{service}/api/jobs/credits/status", timeout=10)
    assert err.value.code == 401
