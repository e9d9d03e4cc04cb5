"""Nightscout uploaders: phone apps (xDrip+, AndroidAPS, Loop) allowed to post readings
through the web app's Nightscout API, each bound to one hub id and one device serial.

A Nightscout client authenticates with the header ``api-secret: sha1_hex(secret)``. The
registry never stores the secret nor that header value (whoever reads a leaked registry
could send the header as it is): it stores SHA-256 over the header value with a domain
prefix. The secret is 192 random bits, so a fast hash is enough: there is nothing to
guess, and a slow KDF would only make every upload slower. See docs/nightscout.md.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.registry.models import Device, Hub, Uploader

SECRET_BYTES = 24  # 192 bits; 32 URL-safe characters (Nightscout asks for at least 12)
_DIGEST_PREFIX = b"diatabase.nightscout-uploader.v1|"
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # contract v1 HubId


def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def api_secret_header(secret: str) -> str:
    """What a Nightscout client sends in ``api-secret``: SHA-1 hex of the secret."""
    return hashlib.sha1(secret.encode()).hexdigest()


def secret_digest(header_value: str) -> str:
    """The stored form of an ``api-secret`` header value (hex digits compared lowercase)."""
    return hashlib.sha256(_DIGEST_PREFIX + header_value.strip().lower().encode()).hexdigest()


def _is_sha1_hex(value: str) -> bool:
    v = value.strip()
    return len(v) == 40 and all(c in "0123456789abcdefABCDEF" for c in v)


class UploadersMixin:
    """Registry operations on uploaders (mixed into Registry)."""

    actor: str

    # provided by Registry
    def session(self) -> AsyncSession:
        raise NotImplementedError

    def _audit(self, s: AsyncSession, action: str, **detail: object) -> None:
        raise NotImplementedError

    async def refresh(self, *, force: bool = False) -> bool:
        raise NotImplementedError

    async def add_uploader(self, name: str, *, hub_id: str, serial: str, model: str = "") -> str:
        """Register an uploader and return its new secret (shown once, stored only hashed).

        The hub is created when missing (the web app publishes unsigned batches, so a hub
        that requires signatures is refused); the device is created as a CGM on that hub
        when missing, and must belong to that hub when it exists.
        """
        from gateway.registry.service import RegistryError

        if not _HUB_ID.fullmatch(hub_id):
            raise RegistryError(f"hub id {hub_id!r} is not a contract v1 hub id")
        if not 1 <= len(serial) <= 64 or not 1 <= len(name) <= 64:
            raise RegistryError("uploader name and serial must be 1 to 64 characters")
        secret = new_secret()
        now = datetime.now(UTC)
        async with self.session() as s, s.begin():
            if await s.get(Uploader, name) is not None:
                raise RegistryError(f"uploader {name!r} already exists")
            hub = await s.get(Hub, hub_id)
            if hub is None:
                s.add(Hub(id=hub_id, created_at=now, public_key=None, require_signature=False))
                self._audit(s, "hub.add", hub=hub_id, signed=False, for_uploader=name)
            elif hub.require_signature:
                raise RegistryError(
                    f"hub {hub_id} requires signed batches and the web app cannot sign for it; "
                    "give the uploader a hub of its own"
                )
            device = await s.get(Device, serial)
            if device is None:
                s.add(Device(serial=serial, kind="cgm", model=model, hub_id=hub_id, created_at=now))
                self._audit(s, "device.add", serial=serial, kind="cgm", hub=hub_id)
            elif device.hub_id != hub_id:
                raise RegistryError(
                    f"device {serial} belongs to hub {device.hub_id or '(none)'}, not {hub_id}"
                )
            s.add(
                Uploader(
                    name=name,
                    hub_id=hub_id,
                    serial=serial,
                    secret_hash=secret_digest(api_secret_header(secret)),
                    created_at=now,
                )
            )
            # never the secret or its hashes in the audit log
            self._audit(s, "uploader.add", uploader=name, hub=hub_id, serial=serial)
        await self.refresh(force=True)
        return secret

    async def revoke_uploader(self, name: str) -> bool:
        """Revoke an uploader's secret; False when it does not exist or is already revoked."""
        async with self.session() as s, s.begin():
            row = await s.get(Uploader, name)
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = datetime.now(UTC)
            self._audit(s, "uploader.revoke", uploader=name)
        await self.refresh(force=True)
        return True

    async def list_uploaders(self) -> list[Uploader]:
        async with self.session() as s:
            return list((await s.scalars(select(Uploader).order_by(Uploader.name))).all())

    async def uploader_for_secret(self, header_value: str | None) -> Uploader | None:
        """The active uploader whose secret hashes to this ``api-secret`` header value."""
        if not header_value or not _is_sha1_hex(header_value):
            return None
        digest = secret_digest(header_value)
        async with self.session() as s:
            row = await s.scalar(
                select(Uploader).where(
                    Uploader.secret_hash == digest, Uploader.revoked_at.is_(None)
                )
            )
        # The lookup is by a hash the caller cannot steer; compare in constant time anyway.
        if row is None or not hmac.compare_digest(row.secret_hash, digest):
            return None
        return row
