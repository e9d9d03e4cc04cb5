"""Nightscout uploaders in the registry (SQLite and PostgreSQL) and their CLI."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from gateway.cli.admin import registry_app
from gateway.contract.urls import StoreUrl
from gateway.registry.models import AuditRow, Uploader
from gateway.registry.service import Registry, RegistryError
from gateway.registry.uploaders import api_secret_header, secret_digest


@pytest.fixture(params=["sqlite", "postgres"])
async def registry(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Registry]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/registry.db"
    else:
        url = request.getfixturevalue("pg_url")
    reg = Registry(StoreUrl.parse(url), actor="test")
    await reg.open()
    yield reg
    await reg.close()


async def test_an_uploader_gets_a_hub_a_device_and_a_secret_stored_hashed(
    registry: Registry,
) -> None:
    secret = await registry.add_uploader("phone", hub_id="ns-phone", serial="NS-1", model="x")
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", secret)
    header = api_secret_header(secret)
    # the ingester's checks pass: the device is registered to the uploader's hub, unsigned
    assert registry.hub_of("NS-1") == "ns-phone"
    assert registry.hub_key("ns-phone") == (None, False)
    (row,) = await registry.list_uploaders()
    assert (row.name, row.hub_id, row.serial, row.revoked_at) == ("phone", "ns-phone", "NS-1", None)
    assert row.secret_hash == secret_digest(header) != header
    found = await registry.uploader_for_secret(header)
    assert found is not None and found.name == "phone"
    for wrong in (None, "", secret, header[:-2], api_secret_header(secret + "!"), "z" * 40):
        assert await registry.uploader_for_secret(wrong) is None

    assert await registry.revoke_uploader("phone")
    assert not await registry.revoke_uploader("phone")
    assert await registry.uploader_for_secret(header) is None

    async with registry.session() as s:
        audit = list((await s.scalars(select(AuditRow).order_by(AuditRow.id))).all())
    assert [a.action for a in audit] == ["hub.add", "device.add", "uploader.add", "uploader.revoke"]
    assert {a.actor for a in audit} == {"test"}
    assert all(secret not in str(a.detail) and header not in str(a.detail) for a in audit)


async def test_refusals(registry: Registry) -> None:
    await registry.add_hub("signed", public_key="AAAA", require_signature=True)
    await registry.add_hub("hub-1")
    await registry.add_device("CGM1", "cgm", hub_id="hub-1")
    await registry.add_uploader("phone", hub_id="ns-phone", serial="NS-1")
    cases = [
        (dict(name="phone", hub_id="ns-2", serial="NS-2"), "already exists"),
        (dict(name="p2", hub_id="signed", serial="NS-2"), "requires signed batches"),
        (dict(name="p2", hub_id="ns-2", serial="CGM1"), "belongs to hub hub-1"),
        (dict(name="p2", hub_id="bad hub/id", serial="NS-2"), "not a contract v1 hub id"),
        (dict(name="p2", hub_id="ns-2", serial="S" * 65), "1 to 64"),
    ]
    for kw, message in cases:
        name = kw.pop("name")
        with pytest.raises(RegistryError, match=message):
            await registry.add_uploader(name, **kw)
    # nothing half-made by a refusal
    assert [u.name for u in await registry.list_uploaders()] == ["phone"]
    # an existing device on the same hub is reused
    await registry.add_uploader("p3", hub_id="hub-1", serial="CGM1")
    async with registry.session() as s:
        assert await s.get(Uploader, "p3") is not None


def test_cli_add_prints_the_secret_once_list_and_revoke(tmp_path: Path) -> None:
    reg = ["--registry", f"sqlite:///{tmp_path}/registry.db"]
    runner = CliRunner()
    assert runner.invoke(registry_app, ["patient", "add", "P-1", *reg]).exit_code == 0
    out = runner.invoke(
        registry_app,
        [
            "uploader",
            "add",
            "phone",
            "--hub",
            "ns-phone",
            "--serial",
            "NS-1",
            "--patient",
            "P-1",
            "--from",
            "2026-01-01T00:00:00Z",
            *reg,
        ],
    )
    assert out.exit_code == 0, out.output
    secret = out.output.strip().splitlines()[-1]
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", secret)
    listed = runner.invoke(registry_app, ["uploader", "list", *reg])
    assert "phone" in listed.output and "P-1" in listed.output and secret not in listed.output
    again = runner.invoke(
        registry_app,
        ["uploader", "add", "p2", "--hub", "n2", "--serial", "N2", "--patient", "NOPE", *reg],
    )
    assert again.exit_code == 2 and "unknown patient" in again.output
    assert runner.invoke(registry_app, ["uploader", "revoke", "phone", *reg]).exit_code == 0
    assert runner.invoke(registry_app, ["uploader", "revoke", "phone", *reg]).exit_code == 1
