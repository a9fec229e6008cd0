"""Artifact signatures made with a key the store does not hold: HMAC-SHA256 or Ed25519.

A signature covers what decides the code a version runs: its model, number, sha256, format and type
allow-list. Whoever can write the store and the artifact files can change any of them, but not sign
the change, so a gateway, controller or CLI that has a verify key refuses it.

Keys come from the environment: `PITSTOP_SIGNING_KEY_FILE` (or `PITSTOP_SIGNING_KEY`) signs at
register, train, convert and `pitstop models sign`; `PITSTOP_VERIFY_KEY_FILE` (or
`PITSTOP_VERIFY_KEY`) makes every load refuse a version without a valid signature. A key is an
Ed25519 key in PEM (private to sign, public to verify) or an HMAC secret of at least 32 bytes (the
same secret on both sides). Keys are never stored, logged or put in an error message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pitstop.errors import ConfigError, PitstopError

if TYPE_CHECKING:  # cryptography loads only for an Ed25519 key: opening a store needs no key
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SIGNING_KEY = "PITSTOP_SIGNING_KEY"
VERIFY_KEY = "PITSTOP_VERIFY_KEY"
HMAC_SCHEME = "hmac-sha256"
ED25519_SCHEME = "ed25519"
MIN_SECRET_BYTES = 32
_DOMAIN = b"pitstop artifact signature v1\n"


class SignatureError(PitstopError):
    """A version's signature is missing, made with another key, or does not match what it covers."""

    def __init__(self, who: str, problem: str) -> None:
        self.who, self.problem = who, problem
        super().__init__(f"{who} refused: {problem}")


def payload(model: str, version: int, sha256: str, fmt: str, trusted_types: list[str] | None) -> bytes:
    """The bytes a signature covers: one canonical JSON document (behind a domain prefix)."""
    document = {
        "model": model,
        "version": version,
        "sha256": sha256,
        "format": fmt,
        "trusted_types": None if trusted_types is None else sorted(trusted_types),
    }
    return _DOMAIN + json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


class Signer(Protocol):
    scheme: str
    key_id: str

    def sign(self, message: bytes) -> str: ...


class Verifier(Protocol):
    scheme: str
    key_id: str

    def verify(self, message: bytes, value: str) -> bool: ...


class HmacKey:
    """A shared secret: signs and verifies."""

    scheme = HMAC_SCHEME

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        # names the key without revealing it (a MAC of a constant, not a hash of the secret)
        self.key_id = hmac.new(secret, b"pitstop key id", hashlib.sha256).hexdigest()[:16]

    def sign(self, message: bytes) -> str:
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def verify(self, message: bytes, value: str) -> bool:
        return hmac.compare_digest(self.sign(message), value)

    def __repr__(self) -> str:
        return f"HmacKey(key_id={self.key_id!r})"


def _ed25519_key_id(public: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return hashlib.sha256(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()[:16]


class Ed25519Signer:
    scheme = ED25519_SCHEME

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.key_id = _ed25519_key_id(key.public_key())

    def sign(self, message: bytes) -> str:
        return base64.b64encode(self._key.sign(message)).decode()

    def __repr__(self) -> str:
        return f"Ed25519Signer(key_id={self.key_id!r})"


class Ed25519Verifier:
    scheme = ED25519_SCHEME

    def __init__(self, key: Ed25519PublicKey) -> None:
        self._key = key
        self.key_id = _ed25519_key_id(key)

    def verify(self, message: bytes, value: str) -> bool:
        from cryptography.exceptions import InvalidSignature

        try:
            self._key.verify(base64.b64decode(value, validate=True), message)
        except (InvalidSignature, ValueError):
            return False
        return True

    def __repr__(self) -> str:
        return f"Ed25519Verifier(key_id={self.key_id!r})"


def sign(signer: Signer, message: bytes) -> dict[str, Any]:
    """The signature as stored on the version."""
    return {"scheme": signer.scheme, "key_id": signer.key_id, "value": signer.sign(message)}


def check(verifier: Verifier, message: bytes, signature: dict[str, Any] | None, who: str) -> None:
    """Raise SignatureError unless `signature` is `verifier`'s valid signature of `message`."""
    if not signature:
        raise SignatureError(
            who, "it is not signed, and a verify key is configured; sign it with `pitstop models sign`"
        )
    scheme, key_id = signature.get("scheme"), signature.get("key_id")
    if scheme != verifier.scheme or key_id != verifier.key_id:
        raise SignatureError(
            who,
            f"it is signed with {scheme} key {key_id}, and the verify key is {verifier.scheme} key "
            f"{verifier.key_id}; sign it again with the matching signing key",
        )
    if not verifier.verify(message, str(signature.get("value", ""))):
        raise SignatureError(
            who,
            "its signature does not match its sha256, format and type allow-list: the store or the "
            "signature was changed",
        )


@dataclass(frozen=True)
class Keys:
    """The signing and verify keys in force (either may be absent)."""

    signer: Signer | None = None
    verifier: Verifier | None = None

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> Keys:
        env = os.environ if env is None else env
        signing = _material(env, SIGNING_KEY)
        verify = _material(env, VERIFY_KEY)
        return cls(
            signer=None if signing is None else signer_from(*signing),
            verifier=None if verify is None else verifier_from(*verify),
        )


def _material(env: Mapping[str, str], name: str) -> tuple[bytes, str] | None:
    """The key bytes from `NAME` or the file `NAME_FILE`, with the variable's name (for errors)."""
    value, file_name = env.get(name), env.get(f"{name}_FILE")
    if value and file_name:
        raise ConfigError(f"{name} and {name}_FILE are both set: set one")
    if value:
        return value.encode(), name
    if not file_name:
        return None
    try:
        return Path(file_name).expanduser().read_bytes(), f"{name}_FILE"
    except OSError as error:
        raise ConfigError(f"{name}_FILE: cannot read {file_name}: {error.strerror}") from None


def _secret(material: bytes, source: str) -> HmacKey:
    secret = material.strip()
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"{source}: an HMAC secret needs at least {MIN_SECRET_BYTES} bytes (this one has "
            f"{len(secret)}); make one with `python -c 'import secrets; print(secrets.token_hex(32))'`"
        )
    return HmacKey(secret)


def signer_from(material: bytes, source: str) -> Signer:
    """An Ed25519 private key (PEM) or an HMAC secret; ConfigError naming `source` otherwise."""
    if b"-----BEGIN" not in material:
        return _secret(material, source)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(material, password=None)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"{source}: not an unencrypted PEM private key ({type(error).__name__})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{source}: a {type(key).__name__}; pitstop signs with Ed25519 keys only")
    return Ed25519Signer(key)


def verifier_from(material: bytes, source: str) -> Verifier:
    """An Ed25519 public key (PEM) or an HMAC secret; ConfigError naming `source` otherwise."""
    if b"-----BEGIN" not in material:
        return _secret(material, source)
    if b"PRIVATE KEY" in material:
        raise ConfigError(f"{source}: holds a private key; give verifiers the public key only")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(material)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"{source}: not a PEM public key ({type(error).__name__})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{source}: a {type(key).__name__}; pitstop verifies Ed25519 keys only")
    return Ed25519Verifier(key)
