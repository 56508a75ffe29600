"""A host's Drizzle Kit (pinned in examples/node) applies the migrations and the functions as
docs/DATABASE.md says: the database equals a fresh install and the service finds it current."""

import json
import subprocess
import sys

import psycopg
from psycopg.rows import dict_row

from credits import schema
from testing.dumps import schema_dump
from tests.test_migrations import empty_url, fresh_install  # noqa: F401 (fixtures)
from tests.test_node_example import EXAMPLE, as_url, node_modules, pytestmark  # noqa: F401


def drizzle_folder(out):
    """Each migration as one of Drizzle's, then the functions as one more, in its journal."""
    (out / "meta").mkdir(parents=True)
    tags = []
    for migration in sorted(schema.MIGRATIONS_DIR.glob("*.sql")):
        (out / migration.name).write_bytes(migration.read_bytes())
        tags.append(migration.stem)
    tags.append(f"{len(tags) + 1:04d}_credits_functions")
    subprocess.run(
        [sys.executable, "-m", "credits", "functions-migration", str(out / f"{tags[-1]}.sql")],
        check=True,
        capture_output=True,
    )
    entries = [
        {"idx": idx, "version": "7", "when": 1767225600000 + idx, "tag": tag, "breakpoints": False}
        for idx, tag in enumerate(tags)
    ]
    journal = {"version": "7", "dialect": "postgresql", "entries": entries}
    (out / "meta" / "_journal.json").write_text(json.dumps(journal, indent=2))
    return tags


def drizzle_migrate(config):
    """npx drizzle-kit migrate with this config, from examples/node."""
    done = subprocess.run(
        ["npx", "--no-install", "drizzle-kit", "migrate", f"--config={config}"],
        cwd=EXAMPLE,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_drizzle_kit_migrate_gives_a_fresh_install_the_service_finds_current(
    node_modules,  # noqa: F811
    empty_url,  # noqa: F811
    fresh_install,  # noqa: F811
    tmp_path,
):
    tags = drizzle_folder(tmp_path / "drizzle")
    config = tmp_path / "drizzle.config.json"
    out, settings = str(tmp_path / "drizzle"), {"url": as_url(empty_url)}
    config.write_text(json.dumps({"dialect": "postgresql", "out": out, "dbCredentials": settings}))

    drizzle_migrate(config)
    drizzle_migrate(config)  # again, as at each deploy: nothing left to apply

    assert schema_dump(empty_url) == fresh_install
    with psycopg.connect(empty_url, autocommit=True, row_factory=dict_row) as conn:
        assert schema.is_current(conn)
        applied = conn.execute("SELECT count(*) AS n FROM drizzle.__drizzle_migrations")
        assert applied.fetchone() == {"n": len(tags)}
