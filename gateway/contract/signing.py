"""Signed batches: each hub holds an Ed25519 key; the gateway verifies with the public
key registered for that hub.

Layout: the hub serialises the envelope, then appends one last member
``,"signature":{"alg":"ed25519","key_id":"…","value":"…"}`` before the closing brace.
The signature covers the envelope bytes without that member (the prefix plus ``}``), so
the verifier checks exactly the bytes the hub produced; no JSON canonicalisation is
needed and any change in transit, one digit of one value, fails verification.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

MARKER = b',"signature":{"alg":"ed25519","key_id":"'


def key_id(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


def public_b64(key: Ed25519PublicKey) -> str:
    return base64.b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


@dataclass(frozen=True, slots=True)
class Signer:
    key: Ed25519PrivateKey

    @property
    def public_key_b64(self) -> str:
        return public_b64(self.key.public_key())

    @property
    def key_id(self) -> str:
        return key_id(self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    def sign(self, envelope: bytes) -> bytes:
        """``envelope`` is a complete JSON object; returns it with the signature member."""
        if not envelope.endswith(b"}"):
            raise ValueError("envelope must be a JSON object")
        value = base64.b64encode(self.key.sign(envelope)).decode()
        member = f'{MARKER.decode()}{self.key_id}","value":"{value}"}}'
        return envelope[:-1] + member.encode() + b"}"

    @classmethod
    def load_or_create(cls, path: Path) -> Signer:
        """The hub's key file (PEM, 0600), created at first start."""
        if path.exists():
            key = load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(key, Ed25519PrivateKey):
                raise ValueError(f"{path} is not an Ed25519 private key")
            return cls(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        return cls(key)


@dataclass(frozen=True, slots=True)
class Verdict:
    signed: bool
    valid: bool
    key_id: str | None
    reason: str = ""


_UNSIGNED = Verdict(signed=False, valid=False, key_id=None, reason="no signature")


def verify(payload: bytes, public_key_b64: str | None) -> Verdict:
    """Check a payload's signature against a hub's registered public key."""
    at = payload.rfind(MARKER)
    if at < 0:
        return _UNSIGNED  # the common case: one shared (immutable) verdict
    tail = payload[at + len(MARKER) :]
    try:
        kid, rest = tail.split(b'","value":"', 1)
        value, end = rest.split(b'"', 1)
        if end.strip() != b"}}":
            return Verdict(True, False, None, "signature is not the last member")
        signature = base64.b64decode(value, validate=True)
        signed_bytes = payload[:at] + b"}"
    except ValueError:
        return Verdict(True, False, None, "malformed signature member")
    kid_text = kid.decode("ascii", "replace")
    if not public_key_b64:
        return Verdict(True, False, kid_text, "no public key registered for this hub")
    try:
        raw = base64.b64decode(public_key_b64, validate=True)
        public = Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        return Verdict(True, False, kid_text, "registered public key is not Ed25519")
    if key_id(raw) != kid_text:
        return Verdict(True, False, kid_text, "signed with a key that is not the hub's")
    try:
        public.verify(signature, signed_bytes)
    except InvalidSignature:
        return Verdict(True, False, kid_text, "signature does not match the payload")
    return Verdict(True, True, kid_text)
