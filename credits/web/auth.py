"""Who may run a job: a caller with the bearer secret, or QStash with its signature.

Both checks refuse what they cannot read; neither reads more of a request than it needs.
"""

import hmac
from urllib.parse import quote

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from credits import signatures
from credits.config import Settings

# The largest request body read (QStash's, to check its signature); a longer one gets 413.
MAX_BODY_BYTES = 64 * 1024


def authorized(secrets: tuple[str, ...]) -> bool:
    """True when the Authorization header is exactly `Bearer <secret>` for an accepted secret.

    Each accepted header is compared in constant time, all of them every time, so the answer
    takes as long whichever secret matched, or none.
    """
    header = request.headers.get("Authorization", "")
    try:
        received = header.encode("latin-1")  # the bytes on the wire, as WSGI decoded them
    except UnicodeEncodeError:
        return False
    matches = [hmac.compare_digest(received, f"Bearer {secret}".encode()) for secret in secrets]
    return any(matches)


def signed_by_qstash(settings: Settings) -> bool:
    """True when QStash signed this very request: its URL (path and query), then its body.

    The token is checked first; the body of a request without a valid one is never read.
    """
    signature = request.headers.get("Upstash-Signature")
    # The settings refuse QStash's keys without CREDITS_PUBLIC_URL; either missing: no QStash.
    if not settings.qstash_enabled or settings.public_url is None or not signature:
        return False
    # The URL QStash called: the public URL, then the path and the query string as sent.
    query = request.query_string.decode("latin-1")
    url = settings.public_url + quote(request.path) + (f"?{query}" if query else "")
    claims = signatures.verified_claims(settings, signature, url)
    return claims is not None and signatures.body_matches(claims, _bounded_body())


def _bounded_body() -> bytes:
    """The request body, read only up to MAX_BODY_BYTES; a longer one gets 413.

    A body of declared length was checked before; a chunked one is cut off at the limit by
    werkzeug's stream, which raises 413 when read past it.
    """
    body = request.stream.read(MAX_BODY_BYTES)
    if request.stream.read(1):
        raise RequestEntityTooLarge()
    return body
