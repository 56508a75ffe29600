"""Console operators: who may sign in, with which role, and the check of their password."""

import functools
import hashlib
import hmac
import logging
import re
from dataclasses import dataclass
from typing import Any

from werkzeug.security import check_password_hash, generate_password_hash

from credits.db import Pool, connection, one, queries

logger = logging.getLogger("credits")

# viewer: sees every page; operator: may also grant, reverse and void.
ROLES = ("viewer", "operator")
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024  # a longer one only costs the hash time
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")  # as operators_name_check
# werkzeug's scrypt (N=32768, r=8, p=1) with a 16-character salt: memory-hard, in hashlib.
HASH_METHOD = "scrypt"
# Failed sign-ins a name, or an address, may have within the window before it is refused.
MAX_FAILURES = 5
FAILURE_WINDOW_SECONDS = 60


class OperatorError(ValueError):
    """A bad name, role or password; nothing was written."""


class OperatorExists(Exception):
    """An operator already has this name."""


class UnknownOperator(Exception):
    """No operator has this name."""


class TooManyFailures(Exception):
    """The name or the address failed to sign in too often lately; the password was not read."""


@dataclass(frozen=True)
class Operator:
    """A signed-in operator: name, role, and the stamp of their password hash."""

    name: str
    role: str
    stamp: str

    @property
    def can_act(self) -> bool:
        """True when the role may grant, reverse and void."""
        return self.role == "operator"


def check_name(name: str) -> str:
    """The name, when it is one an operator may have."""
    if not NAME.fullmatch(name):
        raise OperatorError(
            "the name must be 1 to 64 letters, digits, '.', '_', '@' or '-', "
            f"starting with a letter or digit, got {name!r}"
        )
    return name


def add(pool: Pool, name: str, role: str, password: str) -> dict[str, Any]:
    """Add an operator, storing only a hash of the password."""
    check_name(name)
    if role not in ROLES:
        raise OperatorError(f"the role must be one of {', '.join(ROLES)}, got {role!r}")
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise OperatorError(
            f"the password must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters long"
        )
    params = {"name": name, "role": role, "password_hash": _hash(password)}
    with connection(pool) as conn:
        row = conn.execute(queries["add_operator"], params).fetchone()
    if row is None:
        raise OperatorExists(
            f"an operator named {name!r} exists already; remove them first to change "
            "the role or password"
        )
    return dict(row)


def remove(pool: Pool, name: str) -> None:
    """Remove an operator; their sessions end at their next request."""
    with connection(pool) as conn:
        if conn.execute(queries["remove_operator"], {"name": name}).fetchone() is None:
            raise UnknownOperator(f"no operator is named {name!r}")


def list_all(pool: Pool) -> list[dict[str, Any]]:
    """Every operator's name, role and creation time, by name."""
    with connection(pool) as conn:
        return [dict(row) for row in conn.execute(queries["list_operators"]).fetchall()]


def find(pool: Pool, name: str) -> Operator | None:
    """The operator so named, or None."""
    with connection(pool) as conn:
        row = conn.execute(queries["find_operator"], {"name": name}).fetchone()
    return None if row is None else Operator(row["name"], row["role"], stamp(row["password_hash"]))


def sign_in(pool: Pool, name: str, password: str, address: str) -> Operator | None:
    """The operator whose name and password these are, or None; the failures are counted.

    A name or an address with MAX_FAILURES failures in the window is refused before its
    password is checked (TooManyFailures). An unknown name costs a hash check too, so the time
    taken does not tell which names exist. The password is never logged.
    """
    params = {"name": name, "address": address, "seconds": FAILURE_WINDOW_SECONDS}
    with connection(pool) as conn:
        failures = one(conn.execute(queries["count_sign_in_failures"], params))
        if max(failures["by_name"], failures["by_address"]) >= MAX_FAILURES:
            logger.warning(
                "console sign-in refused for %r from %s: too many failures", name, address
            )
            raise TooManyFailures(name)
        row = conn.execute(queries["find_operator"], {"name": name}).fetchone()
        matched = check_password_hash(row["password_hash"] if row else _unknown_hash(), password)
        if row is not None and matched:
            return Operator(row["name"], row["role"], stamp(row["password_hash"]))
        conn.execute(queries["record_sign_in_failure"], params)
    logger.warning("console sign-in failed for %r from %s", name, address)
    return None


def stamp(password_hash: str) -> str:
    """A short digest of the password hash, kept in the session: a new password ends it."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def same_stamp(a: str, b: str) -> bool:
    """Whether two stamps are equal, compared in constant time."""
    return hmac.compare_digest(a, b)


def _hash(password: str) -> str:
    """The salted scrypt hash of a password."""
    return generate_password_hash(password, method=HASH_METHOD)


@functools.cache
def _unknown_hash() -> str:
    """A hash no password matches in practice, checked for unknown names."""
    return _hash(hashlib.sha256(b"no operator").hexdigest())
