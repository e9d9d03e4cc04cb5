"""VictoriaMetrics single-node (Debian package ``victoria-metrics``) for tests."""

from __future__ import annotations

from typing import Any

import httpx

from .base import ServerProcess, find_program, free_port, wait_until


class VictoriaMetricsServer(ServerProcess):
    """``victoria-metrics`` on a free loopback port, data in the working directory.

    Optional: the constructor raises ``MissingBinaryError`` when the package is not
    installed, which the ``victoria_metrics`` fixture turns into a skip.
    """

    name = "victoria-metrics"
    package = "victoria-metrics"

    def __init__(self, *, port: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.binary = find_program("victoria-metrics", self.package)
        self.port = port or free_port()
        self.datadir = self.workdir / "data"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    http_url = url

    def _prepare(self) -> None:
        self.datadir.mkdir(exist_ok=True)

    def _command(self) -> list[str]:
        return [
            self.binary,
            f"-httpListenAddr={self.host}:{self.port}",
            f"-storageDataPath={self.datadir}",
            "-retentionPeriod=100y",
            "-loggerLevel=WARN",
            # answer queries with samples up to now, not up to now-30s
            "-search.latencyOffset=0s",
            # tests query right after writing: no cached (empty) answers
            "-search.disableCache",
        ]

    def _ready(self) -> bool:
        return httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200

    def query(self, promql: str, **params: str) -> dict[str, Any]:
        """GET /api/v1/query; returns the decoded JSON body."""
        response = httpx.get(
            f"{self.url}/api/v1/query", params={"query": promql, **params}, timeout=30.0
        )
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def wait_for_series(self, promql: str, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Poll an instant query until it returns series (ingestion is buffered ~1 s)."""
        found: list[dict[str, Any]] = []

        def probe() -> bool:
            self.flush()
            found[:] = self.query(promql)["data"]["result"]
            return bool(found)

        wait_until(probe, timeout=timeout, interval=0.1, what=f"series for {promql!r}")
        return found

    def flush(self) -> None:
        """Make recently ingested samples searchable (/internal/force_flush)."""
        httpx.get(f"{self.url}/internal/force_flush", timeout=30.0).raise_for_status()
