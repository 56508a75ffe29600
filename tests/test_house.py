"""The house stays light enough to read: files a newcomer opens first stay short."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def lines(path):
    return len(path.read_text(encoding="utf-8").splitlines())


def test_no_python_file_of_the_service_is_over_300_lines():
    long = {str(p.relative_to(ROOT)): lines(p) for p in (ROOT / "credits").rglob("*.py")}
    assert {name: count for name, count in long.items() if count > 300} == {}


def test_the_readme_is_at_most_250_lines():
    assert lines(ROOT / "README.md") <= 250


def test_gunicorn_conf_holds_settings_only():
    text = (ROOT / "gunicorn.conf.py").read_text(encoding="utf-8")
    assert "\nclass " not in text and "\ndef " not in text
