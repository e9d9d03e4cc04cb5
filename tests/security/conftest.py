"""Fixtures: a CA made by gateway.pki and Mosquitto running the shipped configuration."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import HarnessError, MissingBinaryError
from tests.security.broker import Pki, ShippedMosquitto, make_pki


@pytest.fixture
def certs(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
def make_broker(certs: Pki) -> Iterator[Callable[..., ShippedMosquitto]]:
    made: list[ShippedMosquitto] = []

    def make(**kwargs: Any) -> ShippedMosquitto:
        try:
            server = ShippedMosquitto(certs, **kwargs)
        except MissingBinaryError as exc:
            pytest.fail(str(exc), pytrace=False)
        made.append(server)
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
