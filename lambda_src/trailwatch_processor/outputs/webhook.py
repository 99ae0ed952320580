"""Signed webhook delivery: the alert's JSON body, with an HMAC-SHA256 signature header.

The header is ``X-Trailwatch-Signature: t=<unix seconds>,v1=<hex>`` where ``hex`` is
HMAC-SHA256(key, ``<t>.<raw body bytes>``), as Stripe signs its webhooks. The timestamp is signed with the
body so a captured request cannot be replayed later: the receiver rejects a ``t`` too far from its clock.

Verification recipe (receiver side; ``verify_signature`` below is exactly this)::

    parts = dict(part.split("=", 1) for part in header.split(","))
    mac = hmac.new(key.encode(), parts["t"].encode() + b"." + raw_body, hashlib.sha256).hexdigest()
    ok = hmac.compare_digest(mac, parts["v1"]) and abs(time.time() - int(parts["t"])) <= 300

Use the raw request bytes, never a re-serialised JSON.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

SIGNATURE_HEADER = "X-Trailwatch-Signature"
# The SQS message ID of the alert's copy for this output: the same on every retry, so a receiver that
# answered too late (and gets the alert again) can drop the duplicate.
DELIVERY_HEADER = "X-Trailwatch-Delivery"
DEFAULT_TOLERANCE_SECONDS = 300


def new_signing_key() -> str:
    """A fresh signing key: 32 random bytes, hex (what ``trailwatch deploy --webhook-url`` stores)."""
    return secrets.token_hex(32)


def signature(key: str, body: bytes, timestamp: int) -> str:
    """The header value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(key.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def signed_headers(
    key: str, body: bytes, now: float | None = None, delivery_id: str | None = None
) -> dict[str, str]:
    timestamp = int(time.time() if now is None else now)
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature(key, body, timestamp)}
    if delivery_id:
        headers[DELIVERY_HEADER] = delivery_id
    return headers


def verify_signature(
    key: str,
    body: bytes,
    header: str,
    *,
    now: float | None = None,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """True when ``header`` signs ``body`` with ``key`` and its timestamp is within ``tolerance`` seconds."""
    try:
        parts = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = signature(key, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, given)
