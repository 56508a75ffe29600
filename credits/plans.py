"""Plans: what each subscription plan grants, loaded by operators from a TOML file."""

import tomllib

from credits.db import connection, queries


class PlanFileError(ValueError):
    """The plans file cannot be loaded; nothing was written."""


def read_plans(path):
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


def load_plans(pool, path):
    """Create or update every plan in the file, all or none; plans not in it are kept."""
    plans = read_plans(path)
    with connection(pool) as conn, conn.transaction():
        with conn.cursor() as cur:
            cur.executemany(queries["upsert_plan"], plans)
    return plans


def _plan(plan_id, fields):
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


def _positive_int(value):
    # int4 columns: a larger number would fail in the database instead of here.
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**31
