"""Plans: what each subscription plan grants, loaded by operators from a TOML file."""

import tomllib
from pathlib import Path
from typing import Any

from credits.db import Pool, connection, queries

# A plan as the upsert_plan statement takes it.
Plan = dict[str, Any]


class PlanFileError(ValueError):
    """The plans file cannot be loaded; nothing was written."""


def read_plans(path: str | Path) -> list[Plan]:
    """Read and check `[plans.<plan_id>]` tables from a TOML file."""
    try:
        with open(path, "rb") as f:
            document = tomllib.load(f)
    except OSError as exc:
        raise PlanFileError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PlanFileError(f"{path} is not valid TOML: {exc}") from None

    unknown = set(document) - {"plans"}
    if unknown:
        raise PlanFileError(
            f"{path}: unknown top-level key(s) {sorted(unknown)}; expected [plans.<id>]"
        )
    tables = document.get("plans")
    if not isinstance(tables, dict) or not tables:
        raise PlanFileError(f"{path} defines no plans; expected [plans.<id>] tables")
    return [_plan(plan_id, fields) for plan_id, fields in tables.items()]


def load_plans(pool: Pool, path: str | Path) -> list[Plan]:
    """Create or update every plan in the file, all or none; plans not in it are kept."""
    plans = read_plans(path)
    with connection(pool) as conn, conn.transaction():
        with conn.cursor() as cur:
            cur.executemany(queries["upsert_plan"], plans)
    return plans


def _plan(plan_id: str, fields: object) -> Plan:
    """One plan's row, or a PlanFileError that names the plan and the field."""
    if not isinstance(fields, dict):
        raise PlanFileError(f"plan {plan_id!r} must be a table of fields")
    unknown = set(fields) - {"monthly_credits", "validity_days"}
    if unknown:
        raise PlanFileError(f"plan {plan_id!r}: unknown field(s) {sorted(unknown)}")
    if "monthly_credits" not in fields:
        raise PlanFileError(f"plan {plan_id!r}: monthly_credits is required")
    for name in ("monthly_credits", "validity_days"):
        value = fields.get(name)
        if name in fields and not _positive_int(value):
            raise PlanFileError(
                f"plan {plan_id!r}: {name} must be a whole number above 0, got {value!r}"
            )
    return {
        "plan_id": plan_id,
        "monthly_credits": fields["monthly_credits"],
        "validity_days": fields.get("validity_days"),
    }


def _positive_int(value: object) -> bool:
    """True for a whole number that fits the int4 columns, bools aside."""
    # A larger number would fail in the database instead of here.
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**31
