"""Signed notifications: HMAC-SHA256 over `"{timestamp}.{body}"`, as Stripe and MLflow sign webhooks.
MLflow 3 signs over `"{delivery_id}.{timestamp}.{body}"` in base64 (`X-MLflow-Signature: v1,<b64>`):
`verify` with `delivery_id` checks that scheme, for the MLflow webhook receiver.

A receiver recomputes the signature with the shared secret and refuses a body whose signature differs
or whose timestamp is too old (a replay). `verify` uses the standard library only: copy it as it is.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Pitstop-Signature"  # `v1,<hex>`: the scheme's version, then the HMAC-SHA256
TIMESTAMP_HEADER = "X-Pitstop-Timestamp"  # Unix seconds when the body was signed
SCHEME = "v1"
TOLERANCE = 300.0  # seconds either side of now that a timestamp may be


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The signature header's value.

    >>> sign(b"s3cret", 1767225600, b'{"id":"pitstop-event-1"}')
    'v1,cdf45db46126dc9cac5ae0889907f2cab9864a473589d4d834481d7d6e0dabd2'
    """
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"{SCHEME},{digest}"


def signature_headers(secret: bytes, timestamp: int, body: bytes) -> dict[str, str]:
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: sign(secret, timestamp, body)}


class InvalidSignature(ValueError):
    """The body was not signed with the secret, or too long ago."""


def verify(
    secret: str | bytes,
    body: bytes,
    timestamp: str,
    signature: str,
    *,
    now: float | None = None,
    tolerance: float = TOLERANCE,
    delivery_id: str | None = None,
) -> None:
    """Raise InvalidSignature unless `signature` (the X-Pitstop-Signature header) signs `body` (the raw
    request bytes, before any JSON parsing) at `timestamp` (X-Pitstop-Timestamp) with `secret`, and
    `timestamp` is within `tolerance` seconds of `now` (default: the wall clock).

    Several signatures, separated by spaces, are accepted when any one matches (a secret being rotated).
    With `delivery_id` (MLflow's X-MLflow-Delivery-Id) the signed text starts with it and a dot, and
    the digest is base64, as MLflow signs its webhooks.

    >>> body = b'{"id":"pitstop-event-1"}'
    >>> verify("s3cret", body, "1767225600", sign(b"s3cret", 1767225600, body), now=1767225700)
    >>> verify("other", body, "1767225600", sign(b"s3cret", 1767225600, body), now=1767225700)
    Traceback (most recent call last):
    pitstop.notify.signing.InvalidSignature: no signature matches the body
    """
    key = secret.encode() if isinstance(secret, str) else secret
    try:
        signed_at = int(timestamp)
    except ValueError:
        raise InvalidSignature(f"the timestamp is not a whole number: {timestamp!r}") from None
    if abs((time.time() if now is None else now) - signed_at) > tolerance:
        raise InvalidSignature(f"the timestamp {signed_at} is more than {tolerance:g}s from now")
    signed = f"{signed_at}.".encode() + body
    if delivery_id is None:
        expected = hmac.new(key, signed, hashlib.sha256).hexdigest()
    else:
        raw = hmac.new(key, f"{delivery_id}.".encode() + signed, hashlib.sha256).digest()
        expected = base64.b64encode(raw).decode()
    for candidate in signature.split():
        scheme, _, digest = candidate.partition(",")
        if scheme == SCHEME and hmac.compare_digest(digest, expected):
            return
    raise InvalidSignature("no signature matches the body")
