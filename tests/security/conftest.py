"""Fixtures: a CA made by gateway.pki and Mosquitto running the shipped configuration."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import HarnessError, MissingBinaryError
from tests.security.broker import Pki, ShippedMosquitto, make_pki

_BROKERS = pytest.StashKey[list[ShippedMosquitto]]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On failure, append the log of every broker the test started (even via the factory)."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for server in item.stash.get(_BROKERS, []):
            if server not in getattr(item, "funcargs", {}).values():
                report.sections.append((f"broker log ({server.log_path})", server.log_tail(80)))


@pytest.fixture
def certs(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
def make_broker(
    certs: Pki, request: pytest.FixtureRequest
) -> Iterator[Callable[..., ShippedMosquitto]]:
    """``make_broker(config_text=...)``: Mosquitto on the shipped config (or a variant)."""
    made: list[ShippedMosquitto] = []

    def make(**kwargs: Any) -> ShippedMosquitto:
        try:
            server = ShippedMosquitto(certs, **kwargs)
        except MissingBinaryError as exc:
            pytest.fail(str(exc), pytrace=False)
        made.append(server)
        request.node.stash.setdefault(_BROKERS, []).append(server)
        try:
            server.start()
        except HarnessError as exc:
            pytest.fail(str(exc), pytrace=False)
        return server

    yield make
    for server in made:
        server.close()


@pytest.fixture
def broker(make_broker: Callable[..., ShippedMosquitto]) -> ShippedMosquitto:
    """Mosquitto with deploy/mosquitto/mosquitto.conf and acl, on a free loopback port."""
    return make_broker()
