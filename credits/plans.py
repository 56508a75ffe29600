"""The plans file: subscription plans, credit packs, service costs, the sign-up bonus, the
balance cap and the notifications' thresholds, loaded by operators from a TOML file into the
credits schema, all or nothing."""

import tomllib
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from credits.db import Pool, connection, queries
from credits.limits import MAX_CREDITS, MAX_TEXT_LENGTH, MAX_VALIDITY_DAYS

# A row to write (a plan, a pack, a service, the bonus, the limits) by column name.
Row = dict[str, Any]
SOURCES = ("registration", "packages", "services", "limits", "notifications")


class PlanFileError(ValueError):
    """The plans file cannot be loaded; nothing was written."""


@dataclass(frozen=True)
class Catalog:
    """What a plans file says; a section left out of the file (None) is kept as it is."""

    plans: list[Row]
    packages: list[Row]
    services: list[Row]
    registration: Row | None
    limits: Row | None
    notifications: Row | None = None


def read_plans(path: str | Path) -> Catalog:
    """Read and check every section of a plans file."""
    try:
        with open(path, "rb") as f:
            document = tomllib.load(f)
    except OSError as exc:
        raise PlanFileError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PlanFileError(f"{path} is not valid TOML: {exc}") from None

    unknown = set(document) - {"plans", *SOURCES}
    if unknown:
        raise PlanFileError(
            f"{path}: unknown top-level key(s) {sorted(unknown)}; expected [plans.<id>], "
            "[packages.<id>], [services], [registration], [limits] or [notifications]"
        )
    if not document or "plans" in document:
        tables = document.get("plans")
        if not isinstance(tables, dict) or not tables:
            raise PlanFileError(f"{path} defines no plans; expected [plans.<id>] tables")
    return Catalog(
        plans=[_plan(plan_id, fields) for plan_id, fields in _tables(document, "plans")],
        packages=[_package(pid, fields) for pid, fields in _tables(document, "packages")],
        services=_services(document.get("services", {})),
        registration=_registration(document["registration"])
        if "registration" in document
        else None,
        limits=_limits(document["limits"]) if "limits" in document else None,
        notifications=_notifications(document["notifications"])
        if "notifications" in document
        else None,
    )


def load_plans(pool: Pool, path: str | Path) -> Catalog:
    """Write every section of the file, all or none; plans, packs and services not in it stay."""
    catalog = read_plans(path)
    with connection(pool) as conn, conn.transaction():
        with conn.cursor() as cur:
            cur.executemany(queries["upsert_plan"], catalog.plans)
            cur.executemany(queries["upsert_package"], catalog.packages)
            cur.executemany(queries["upsert_service"], catalog.services)
            if catalog.registration is not None:
                cur.execute(queries["set_registration"], catalog.registration)
            if catalog.limits is not None:
                cur.execute(queries["set_limits"], catalog.limits)
            if catalog.notifications is not None:
                cur.execute(queries["set_notifications"], catalog.notifications)
    return catalog


def _tables(document: dict[str, Any], section: str) -> list[tuple[str, Any]]:
    """(id, fields) of each [section.<id>] table, each id checked."""
    tables = document.get(section, {})
    if not isinstance(tables, dict):
        raise PlanFileError(f"[{section}] must hold [{section}.<id>] tables")
    return [(_checked_id(section, key), fields) for key, fields in tables.items()]


def _checked_id(section: str, key: str) -> str:
    """An id the database can store and an operator can read: no control characters."""
    if not key.strip() or len(key) > MAX_TEXT_LENGTH:
        raise PlanFileError(
            f"{section}: ids must be 1 to {MAX_TEXT_LENGTH} characters, got {key!r}"
        )
    if any(unicodedata.category(ch) == "Cc" for ch in key):
        raise PlanFileError(f"{section}: id {key!r} must not contain control characters")
    return key


def _plan(plan_id: str, fields: Any) -> Row:
    """One plan's row, or a PlanFileError that names the plan and the field."""
    values = _fields(f"plan {plan_id!r}", fields, ("monthly_credits",), ("validity_days",))
    return {"plan_id": plan_id, **values}


def _package(package_id: str, fields: Any) -> Row:
    """One credit pack's row: credits, bonus (default 0) and validity_days (default: never)."""
    values = _fields(f"package {package_id!r}", fields, ("credits",), ("bonus", "validity_days"))
    if values["credits"] + (values["bonus"] or 0) > MAX_CREDITS:
        raise PlanFileError(
            f"package {package_id!r}: credits + bonus must be below {MAX_CREDITS + 1}"
        )
    return {"package_id": package_id, **values, "bonus": values["bonus"] or 0}


def _services(table: Any) -> list[Row]:
    """[services]: name = cost in credits per use."""
    if not isinstance(table, dict):
        raise PlanFileError("[services] must be a table of name = cost")
    rows = []
    for name, cost in table.items():
        _checked_id("services", name)
        if not _positive_int(cost):
            raise PlanFileError(
                f"service {name!r}: cost must be a whole number above 0, got {cost!r}"
            )
        rows.append({"service": name, "cost": cost})
    return rows


def _registration(fields: Any) -> Row:
    """[registration]: the sign-up bonus's credits and validity_days."""
    return _fields("[registration]", fields, ("credits",), ("validity_days",))


def _limits(fields: Any) -> Row:
    """[limits]: max_balance, the cap a pack may not take a balance above (absent: no cap)."""
    return _fields("[limits]", fields, (), ("max_balance",))


def _notifications(fields: Any) -> Row:
    """[notifications]: expiring_days (a batch's notice before it lapses) and low_balance."""
    values = _fields("[notifications]", fields, (), ("expiring_days", "low_balance"))
    if (values["expiring_days"] or 0) > MAX_VALIDITY_DAYS:
        raise PlanFileError(f"[notifications]: expiring_days must be at most {MAX_VALIDITY_DAYS}")
    return values


def _fields(what: str, fields: Any, required: tuple[str, ...], optional: tuple[str, ...]) -> Row:
    """Each field a whole number in range; a PlanFileError names the table and the field."""
    if not isinstance(fields, dict):
        raise PlanFileError(f"{what} must be a table of fields")
    unknown = set(fields) - {*required, *optional}
    if unknown:
        raise PlanFileError(f"{what}: unknown field(s) {sorted(unknown)}")
    for name in required:
        if name not in fields:
            raise PlanFileError(f"{what}: {name} is required")
    values: Row = {}
    for name in (*required, *optional):
        value = fields.get(name)
        if name in fields and not _in_range(name, value):
            raise PlanFileError(f"{what}: {name} must be {_range(name)}, got {value!r}")
        values[name] = value
    return values


def _in_range(name: str, value: object) -> bool:
    """bonus may be 0; validity_days at most MAX_VALIDITY_DAYS; the rest above 0."""
    if name == "bonus":
        return value == 0 and type(value) is int or _positive_int(value)
    if name == "validity_days":
        return _positive_int(value) and value <= MAX_VALIDITY_DAYS
    return _positive_int(value)


def _range(name: str) -> str:
    if name == "bonus":
        return "a whole number from 0"
    if name == "validity_days":
        return f"a whole number above 0 and at most {MAX_VALIDITY_DAYS}"
    return "a whole number above 0"


def _positive_int(value: object) -> TypeGuard[int]:
    # int4 columns: a larger number would fail in the database instead of here.
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_CREDITS
