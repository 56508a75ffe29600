"""The schema's versioned migrations (sql/migrations/) and its function files
(sql/functions/): which a database lacks, applying them, and writing them for a host's tool."""

import hashlib
from dataclasses import dataclass

import psycopg.sql

from credits.db import SQL_DIR, Connection, one, queries

# The schema's versioned migrations, NNNN_name.sql, applied in order, each once.
MIGRATIONS_DIR = SQL_DIR / "migrations"
# The schema's functions, a file by concern, each applied again whenever its text changes.
FUNCTIONS_DIR = SQL_DIR / "functions"


@dataclass(frozen=True)
class Migration:
    """One file of sql/migrations: its version (the number it starts with), name and text."""

    version: int
    name: str
    sql: bytes


@dataclass(frozen=True)
class FunctionFile:
    """One file of sql/functions: its name, text and the text's sha256."""

    file: str
    sql: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.sql).hexdigest()


def migrations() -> list[Migration]:
    """Every migration, in the order they are applied."""
    found = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        version, _, name = path.stem.partition("_")
        found.append(Migration(int(version), name, path.read_bytes()))
    return found


def pending_migrations(conn: Connection) -> list[Migration]:
    """The migrations this database has not had, in order (all before the first made the
    credits.schema_migrations table, or when this role may not read it)."""
    applied = set()
    if one(conn.execute(queries["check_schema"]))["present"]:
        applied = {row["version"] for row in conn.execute(queries["list_migrations"])}
    return [migration for migration in migrations() if migration.version not in applied]


def function_files() -> list[FunctionFile]:
    """Every file of sql/functions, in the order they are applied."""
    return [
        FunctionFile(path.name, path.read_bytes()) for path in sorted(FUNCTIONS_DIR.glob("*.sql"))
    ]


def stale_function_files(conn: Connection) -> list[FunctionFile]:
    """The files of sql/functions whose text this database does not have (all of them before
    migration 0003 made credits.schema_functions)."""
    applied = {}
    if not pending_migrations(conn):
        applied = {
            row["file"]: row["sha256"] for row in conn.execute(queries["list_function_files"])
        }
    return [found for found in function_files() if applied.get(found.file) != found.sha256]


def functions_migration() -> str:
    """Every file of sql/functions with the statement that records it, as one migration of a
    host's own tool (Prisma Migrate, Drizzle Kit) applies them: the service then finds them
    current."""
    parts = []
    for functions in function_files():
        record = queries["record_function_file"] % {
            "file": psycopg.sql.Literal(functions.file).as_string(),
            "sha256": psycopg.sql.Literal(functions.sha256).as_string(),
        }
        parts.append(f"{functions.sql.decode()}\n{record};\n")
    return "\n".join(parts)


def schema_is_current(conn: Connection) -> bool:
    """Whether this database has had every migration and every function file's text."""
    return not pending_migrations(conn) and not stale_function_files(conn)


def migrate(conn: Connection) -> list[Migration | FunctionFile]:
    """Apply each pending migration, then each changed function file, each in its own
    transaction, one applier at a time; answer what was applied.

    Services starting at once (and `init-db`) take turns on an advisory lock: the later ones
    find nothing pending. An up-to-date database is only read.
    """
    conn.execute(queries["lock_migrations"])
    try:
        migrated = pending_migrations(conn)
        for migration in migrated:
            with conn.transaction():
                # Each file records itself in credits.schema_migrations on its last line.
                conn.execute(migration.sql)
        refreshed = stale_function_files(conn)
        for functions in refreshed:
            with conn.transaction():
                conn.execute(functions.sql)
                conn.execute(
                    queries["record_function_file"],
                    {"file": functions.file, "sha256": functions.sha256},
                )
        return [*migrated, *refreshed]
    finally:
        conn.execute(queries["unlock_migrations"])
