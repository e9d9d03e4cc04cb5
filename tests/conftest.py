"""Shared fixtures: real servers started by tests/harness as child processes.

Servers never reuse a system service: each gets a free port on 127.0.0.1 and
its own config and data directory.  A missing server program fails the test
with the Debian package to install; deselect such tests with markers instead
(``-m "not mosquitto and not influxdb and not postgres and not browser"``).
Tests that use a server fixture get its marker automatically.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Tests and benchmarks import the harness as ``tests.harness`` (from the repo
# root); make that work however pytest was started, so there is one copy of it.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.harness import (  # noqa: E402
    HarnessError,
    InfluxDB1Server,
    MissingBinaryError,
    MosquittoServer,
    PostgresServer,
    ServerProcess,
    VictoriaMetricsServer,
)
from tests.harness.postgres import postgres_bindir  # noqa: E402

# fixture name -> marker added to every test that uses it
FIXTURE_MARKERS = {
    "mosquitto": "mosquitto",
    "make_mosquitto": "mosquitto",
    "influxdb": "influxdb",
    "influx_db": "influxdb",
    "make_influxdb": "influxdb",
    "postgres": "postgres",
    "pg_url": "postgres",
    "make_postgres": "postgres",
    "chromium_path": "browser",
}

_SERVERS_KEY = pytest.StashKey[list[ServerProcess]]()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # tryfirst: the markers must exist before "-m" deselects
    for item in items:
        present = {mark.name for mark in item.iter_markers()}
        for fixture in getattr(item, "fixturenames", ()):
            marker = FIXTURE_MARKERS.get(fixture)
            if marker and marker not in present:
                item.add_marker(marker)
                present.add(marker)


def pytest_report_header(config: pytest.Config) -> list[str]:
    found = []
    for program in ("mosquitto", "influxd", "chromium", "victoria-metrics"):
        path = shutil.which(program, path=os.environ.get("PATH", "") + ":/usr/sbin")
        found.append(f"{program}={path or 'MISSING'}")
    try:
        found.append(f"postgres={postgres_bindir() / 'postgres'}")
    except MissingBinaryError:
        found.append("postgres=MISSING")
    return ["harness servers: " + ", ".join(found)]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On failure, append the logs of every server the test used to the report."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    servers: list[ServerProcess] = list(item.stash.get(_SERVERS_KEY, []))
    for value in getattr(item, "funcargs", {}).values():
        if isinstance(value, ServerProcess) and value not in servers:
            servers.append(value)
    for server in servers:
        report.sections.append((f"{server.name} log ({server.log_path})", server.log_tail(80)))


def _attach(request: pytest.FixtureRequest, server: ServerProcess) -> None:
    node = request.node
    if isinstance(node, pytest.Item):
        node.stash.setdefault(_SERVERS_KEY, []).append(server)


def _build(factory: Callable[..., ServerProcess], **kwargs: Any) -> ServerProcess:
    """Create and start a server; a missing program or a failed start fails the test."""
    try:
        server = factory(**kwargs)
    except MissingBinaryError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        server.start()
    except HarnessError as exc:
        server.close()
        pytest.fail(str(exc), pytrace=False)
    return server


def _restart_if_down(server: ServerProcess) -> None:
    """A test may have stopped or killed a shared server; bring it back."""
    if not server.running:
        try:
            server.start()
        except HarnessError as exc:
            pytest.fail(str(exc), pytrace=False)


# -- Mosquitto -----------------------------------------------------------------


@pytest.fixture
def mosquitto(request: pytest.FixtureRequest) -> Iterator[MosquittoServer]:
    """A fresh Mosquitto per test: ``.url`` (mqtt://127.0.0.1:PORT), ``.host``, ``.port``."""
    server = _build(MosquittoServer)
    assert isinstance(server, MosquittoServer)
    _attach(request, server)
    yield server
    server.close()


@pytest.fixture
def make_mosquitto(request: pytest.FixtureRequest) -> Iterator[Callable[..., MosquittoServer]]:
    """Factory for brokers with their own config: ``make_mosquitto(extra_config=[...])``.

    Keyword arguments go to ``MosquittoServer``; ``start=False`` returns it unstarted
    (to put certificates into ``.workdir`` first).  All are closed after the test.
    """
    made: list[MosquittoServer] = []

    def make(*, start: bool = True, **kwargs: Any) -> MosquittoServer:
        if start:
            server = _build(MosquittoServer, **kwargs)
        else:
            try:
                server = MosquittoServer(**kwargs)
            except MissingBinaryError as exc:
                pytest.fail(str(exc), pytrace=False)
        assert isinstance(server, MosquittoServer)
        made.append(server)
        _attach(request, server)
        return server

    yield make
    for server in made:
        server.close()


# -- InfluxDB 1.x ----------------------------------------------------------------


@pytest.fixture(scope="session")
def influxdb() -> Iterator[InfluxDB1Server]:
    """One InfluxDB for the session; use ``influx_db`` for a database of your own."""
    server = _build(InfluxDB1Server)
    assert isinstance(server, InfluxDB1Server)
    yield server
    server.close()


@pytest.fixture
def influx_db(request: pytest.FixtureRequest, influxdb: InfluxDB1Server) -> Iterator[str]:
    """``influxdb://127.0.0.1:PORT/t_<hex>``: a database created for this test only."""
    _restart_if_down(influxdb)
    _attach(request, influxdb)
    name = influxdb.new_database()
    yield influxdb.url_for(name)
    if influxdb.running:
        with contextlib.suppress(HarnessError):
            influxdb.drop_database(name)


@pytest.fixture
def make_influxdb(request: pytest.FixtureRequest) -> Iterator[Callable[..., InfluxDB1Server]]:
    """Factory for a private InfluxDB (for tests that stop or kill it)."""
    made: list[InfluxDB1Server] = []

    def make(**kwargs: Any) -> InfluxDB1Server:
        server = _build(InfluxDB1Server, **kwargs)
        assert isinstance(server, InfluxDB1Server)
        made.append(server)
        _attach(request, server)
        return server

    yield make
    for server in made:
        server.close()


# -- PostgreSQL ------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the session; use ``pg_url`` for a database of your own."""
    server = _build(PostgresServer)
    assert isinstance(server, PostgresServer)
    yield server
    server.close()


@pytest.fixture
def pg_url(request: pytest.FixtureRequest, postgres: PostgresServer) -> str:
    """``postgresql://USER@127.0.0.1:PORT/t_<hex>``: a database created for this test only."""
    _restart_if_down(postgres)
    _attach(request, postgres)
    return postgres.url_for(postgres.new_database())


@pytest.fixture
def make_postgres(request: pytest.FixtureRequest) -> Iterator[Callable[..., PostgresServer]]:
    """Factory for a private PostgreSQL (for tests that stop or kill it)."""
    made: list[PostgresServer] = []

    def make(**kwargs: Any) -> PostgresServer:
        server = _build(PostgresServer, **kwargs)
        assert isinstance(server, PostgresServer)
        made.append(server)
        _attach(request, server)
        return server

    yield make
    for server in made:
        server.close()


# -- optional servers and the browser ---------------------------------------------


@pytest.fixture
def victoria_metrics(request: pytest.FixtureRequest) -> Iterator[VictoriaMetricsServer]:
    """VictoriaMetrics if the Debian package is installed; skips otherwise."""
    try:
        server = VictoriaMetricsServer()
    except MissingBinaryError as exc:
        pytest.skip(str(exc))
    try:
        server.start()
    except HarnessError as exc:
        server.close()
        pytest.fail(str(exc), pytrace=False)
    _attach(request, server)
    yield server
    server.close()


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's Chromium, for Playwright's ``executable_path`` (no browser download)."""
    for candidate in ("/usr/bin/chromium", shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(
        "chromium not found: install the Debian package 'chromium' "
        "(sudo apt-get install chromium, or run scripts/bootstrap.sh test)",
        pytrace=False,
    )
