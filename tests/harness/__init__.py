"""Real servers for tests and benchmarks, started as child processes.

from tests.harness import MosquittoServer      # from the repo root
with MosquittoServer() as broker:
    ...broker.url, broker.stop(), broker.start(), broker.kill()...
"""

from .base import (
    LOOPBACK,
    HarnessError,
    MissingBinaryError,
    ServerProcess,
    ServerStartError,
    free_port,
    wait_until,
)
from .influxdb import InfluxDB1Server
from .mosquitto import DEFAULT_QUEUE_LIMITS, QUEUE_LIMITS, MosquittoServer
from .postgres import PostgresServer
from .victoriametrics import VictoriaMetricsServer

__all__ = [
    "DEFAULT_QUEUE_LIMITS",
    "LOOPBACK",
    "QUEUE_LIMITS",
    "HarnessError",
    "InfluxDB1Server",
    "MissingBinaryError",
    "MosquittoServer",
    "PostgresServer",
    "ServerProcess",
    "ServerStartError",
    "VictoriaMetricsServer",
    "free_port",
    "wait_until",
]
