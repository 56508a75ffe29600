"""QStash's signed requests: an alternative to the bearer secret when its keys are set."""

import base64
import hashlib
import hmac
import logging
from collections.abc import Mapping
from typing import Any

import jwt

from credits.config import Settings

logger = logging.getLogger("credits")

# Seconds of clock difference between QStash and this server tolerated on nbf and exp.
CLOCK_TOLERANCE = 5


def verified_claims(settings: Settings, signature: str, url: str) -> dict[str, Any] | None:
    """The claims of `signature` (the Upstash-Signature header) when QStash made it for `url`.

    A JWT (HS256) signed with the current key or the next one (QStash rotates them), issued
    by Upstash, within its time (exp, nbf), whose subject is exactly `url`: the address
    QStash called, query string included, so a message signed for another URL cannot run a
    job. None (and a log line saying why) otherwise. The body is checked by body_matches.
    """
    keys = (settings.qstash_current_signing_key, settings.qstash_next_signing_key)
    reason: Exception | str | None = None
    for key in keys:
        try:
            claims = jwt.decode(
                signature,
                key,
                algorithms=["HS256"],
                issuer="Upstash",
                leeway=CLOCK_TOLERANCE,
                options={"require": ["iss", "sub", "exp", "nbf", "body"]},
            )
        except jwt.InvalidSignatureError as exc:
            reason = exc  # perhaps the other key's
            continue
        except jwt.InvalidTokenError as exc:
            reason = exc
            break
        if claims["sub"] != url:
            # Names the route the token was for, not its query string (it may carry anything).
            reason = f"signed for another URL ({str(claims['sub']).split('?')[0]})"
            break
        return claims
    logger.warning("Refused a request with an invalid Upstash-Signature: %s", reason)
    return None


def body_matches(claims: Mapping[str, Any], body: bytes) -> bool:
    """True when the body's SHA-256 is the one the verified token signed."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b"=")
    signed = str(claims["body"]).rstrip("=").encode()
    if hmac.compare_digest(digest, signed):
        return True
    logger.warning("Refused a request with an invalid Upstash-Signature: body changed")
    return False
