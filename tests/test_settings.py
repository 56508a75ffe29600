"""Settings are declared once (credits.config.SETTINGS); the README's table is made from them."""

import re
from pathlib import Path

from credits import config

ROOT = Path(__file__).resolve().parent.parent
REGENERATE = "python -c 'from credits import config; print(config.settings_table())'"


def readme_settings_table():
    """The README's settings table, from its header row to the first line that is not a row."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    start = lines.index("| name | required | default | meaning |")
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def test_readme_settings_table_says_what_the_service_declares():
    """Each setting's name, requirement, default and meaning in the README are the declared ones."""
    assert readme_settings_table() == config.settings_table().splitlines(), (
        f"README.md differs from credits.config.SETTINGS; make its table with {REGENERATE}"
    )


def test_every_setting_the_service_reads_is_declared():
    """No setting is read from the environment by a name the settings table does not declare."""
    sources = [ROOT / "app.py", ROOT / "wsgi.py", ROOT / "gunicorn.conf.py"]
    sources += sorted((ROOT / "credits").rglob("*.py"))
    read = re.compile(r"""(?:environ|values)(?:\.get\(|\[)["']([A-Z][A-Z0-9_]*)["']""")
    names = {name for path in sources for name in read.findall(path.read_text(encoding="utf-8"))}
    assert names, "the pattern finds the settings read today"
    assert names <= {s.name for s in config.SETTINGS}
