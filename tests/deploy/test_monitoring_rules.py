"""deploy/monitoring: the alert rules are valid, pass their own unit tests, and read only the
metrics and labels GET /metrics exposes."""

import re
import subprocess
from shutil import which

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from testing import SECRET

from .support import DEPLOY

MONITORING = DEPLOY / "monitoring"
PROMTOOL = which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is not installed (apt-get install prometheus; .ci/run installs it)",
)
# The labels Prometheus adds to every series it scrapes.
TARGET_LABELS = {"job", "instance"}
# A metric's name and its matchers; not a label name in `by (...)`.
SELECTOR = re.compile(r"(?<!by \()\b(credits_[a-z_]+)\b(?:\{([^}]*)\})?")
MATCHER = re.compile(r"([a-z_]+)\s*(?:=~|!~|!=|=)")


def promtool(*args):
    return subprocess.run(
        [PROMTOOL, *args], cwd=MONITORING, capture_output=True, text=True, timeout=120
    )


@needs_promtool
def test_promtool_finds_the_five_alert_rules_valid():
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 5 rules found" in result.stdout


@needs_promtool
def test_each_alert_fires_in_its_unit_tests_and_only_there():
    result = promtool("test", "rules", "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    tested = yaml.safe_load((MONITORING / "alerts.test.yml").read_text())["tests"]
    alerts = {case["alertname"] for test in tested for case in test["alert_rule_test"]}
    fired = {
        case["alertname"]
        for test in tested
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    quiet = {
        case["alertname"]
        for test in tested
        for case in test["alert_rule_test"]
        if not case["exp_alerts"]
    }
    assert alerts == fired == quiet == set(rule_names())


def rule_names():
    return [rule["alert"] for rule in rules()]


def rules():
    groups = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_the_rules_are_the_five_alerts():
    assert rule_names() == [
        "CreditsJobFailed",
        "CreditsSlowResponses",
        "CreditsHighErrorRate",
        "CreditsNoSuccessIn24h",
        "CreditsDeliveryFailing",
    ]


def test_the_rules_read_only_metrics_and_labels_the_service_exposes(client, auth, due_subscription):
    assert client.get("/api/jobs/credits/grant", headers=auth).status_code == 200
    assert client.get("/api/jobs/credits/expire", headers=auth).status_code == 200
    response = client.get("/metrics", headers={"Authorization": f"Bearer {SECRET}"})
    exposed = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            exposed.setdefault(sample.name, set()).update(sample.labels)
    used = 0
    for rule in rules():
        for name, matchers in SELECTOR.findall(rule["expr"]):
            assert name in exposed, (rule["alert"], name)
            labels = set(MATCHER.findall(matchers))
            assert labels <= exposed[name] | TARGET_LABELS, (rule["alert"], name, labels)
            used += 1
    assert used >= 4
