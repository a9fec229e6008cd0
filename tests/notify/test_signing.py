"""The signature a receiver checks: HMAC-SHA256 over `"{timestamp}.{body}"`."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from pitstop.notify.signing import InvalidSignature, sign, signature_headers, verify

BODY = b'{"id":"pitstop-event-7","type":"io.pitstop.rollout.promoted"}'
AT = 1_772_323_200


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body_in_hex() -> None:
    expected = hmac.new(b"k", f"{AT}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert signature_headers(b"k", AT, BODY) == {
        "X-Pitstop-Timestamp": str(AT),
        "X-Pitstop-Signature": f"v1,{expected}",
    }


def test_a_valid_signature_verifies() -> None:
    verify("k", BODY, str(AT), sign(b"k", AT, BODY), now=AT + 299)


@pytest.mark.parametrize(
    ("secret", "body", "timestamp", "now", "message"),
    [
        ("other", BODY, str(AT), AT, "no signature matches"),
        ("k", BODY + b" ", str(AT), AT, "no signature matches"),
        ("k", BODY, str(AT + 1), AT, "no signature matches"),  # the timestamp is signed too
        ("k", BODY, str(AT), AT + 301, "more than 300s from now"),  # a replay
        ("k", BODY, "soon", AT, "not a whole number"),
    ],
)
def test_anything_else_is_refused(secret: str, body: bytes, timestamp: str, now: int, message: str) -> None:
    with pytest.raises(InvalidSignature, match=message):
        verify(secret, body, timestamp, sign(b"k", AT, BODY), now=now)


def test_any_of_several_signatures_may_match_while_a_secret_is_rotated() -> None:
    both = f"{sign(b'old', AT, BODY)} {sign(b'new', AT, BODY)}"
    verify("new", BODY, str(AT), both, now=AT)
    verify("old", BODY, str(AT), both, now=AT)
