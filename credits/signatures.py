"""QStash's signed requests: an alternative to the bearer secret when its keys are set."""

import logging

from qstash import Receiver
from qstash.errors import SignatureError

logger = logging.getLogger("credits")

# Seconds of clock difference between QStash and this server tolerated on nbf and exp.
CLOCK_TOLERANCE = 5


def signed_by_qstash(settings, signature, body):
    """True when `signature` (the Upstash-Signature header) is QStash's, over this body.

    Verified by the qstash package's Receiver with the current key, then the next one (QStash
    rotates them). The signed URL is not compared: behind a proxy or another domain the URL
    this service sees is not the one QStash called, and every job may safely run again.
    """
    if not settings.qstash_enabled or not signature:
        return False
    receiver = Receiver(
        current_signing_key=settings.qstash_current_signing_key,
        next_signing_key=settings.qstash_next_signing_key,
    )
    try:
        receiver.verify(signature=signature, body=body, clock_tolerance=CLOCK_TOLERANCE)
    except (SignatureError, KeyError) as exc:  # KeyError: a token without a body claim
        logger.warning("Refused a request with an invalid Upstash-Signature: %s", exc)
        return False
    return True
