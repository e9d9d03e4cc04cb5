"""Prometheus metrics of the ingester (prometheus-client), one registry per ingester."""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

LAG_BUCKETS = (
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
    900,
    3600,
    6 * 3600,
    86400,
    7 * 86400,
)


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # Counted per message on the hot path as a plain int, read when scraped (a
        # prometheus Counter takes a lock per increment).
        self.messages_received = 0
        r.register(_Received(self))
        # Wall-clock time of this process's first message: the start of a drain when the
        # broker holds a backlog (a scrape of the counter lags while the loop is busy).
        self.first_message = Gauge(
            "diatabase_first_message_time_seconds",
            "Unix time this process received its first MQTT message (0: none yet)",
            registry=r,
        )
        # Ops: a stale value means nothing reaches the store; benchmarks: the end of a drain.
        self.last_write = Gauge(
            "diatabase_last_write_time_seconds",
            "Unix time of this process's last successful store write (0: none yet)",
            registry=r,
        )
        self.readings = Counter(
            "diatabase_readings_received", "readings in valid envelopes", registry=r
        )
        self.stored = Counter(
            "diatabase_readings_stored", "readings written to the store", registry=r
        )
        self.duplicates = Counter(
            "diatabase_readings_duplicate", "readings already stored (same key)", registry=r
        )
        self.quarantined = Counter(
            "diatabase_quarantined", "messages or readings quarantined", ["reason"], registry=r
        )
        self.parked = Counter("diatabase_readings_parked", "readings without a patient", registry=r)
        self.relinked = Counter("diatabase_readings_relinked", "parked readings linked", registry=r)
        self.store_errors = Counter("diatabase_store_errors", "failed write attempts", registry=r)
        self.write_seconds = Histogram(
            "diatabase_write_seconds", "durable write time per batch", registry=r
        )
        self.batch_messages = Histogram(
            "diatabase_batch_messages",
            "messages per batch",
            buckets=(1, 10, 50, 100, 500, 1000, 2000, 5000, 10000),
            registry=r,
        )
        self.in_flight = Gauge("diatabase_inflight_messages", "received, not yet acked", registry=r)
        self.in_flight.set_function(lambda: self.unacked())
        self.lag = BulkHistogram(
            "diatabase_lag_seconds", "reading time to stored time", LAG_BUCKETS, registry=r
        )
        self.unacked: Callable[[], float] = lambda: 0.0
        self.connected = Gauge(
            "diatabase_mqtt_connected", "1 when connected to the broker", registry=r
        )


class _Received(Collector):
    def __init__(self, metrics: IngestMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "diatabase_messages_received",
            "MQTT messages received",
            value=self.metrics.messages_received,
        )


class BulkHistogram(Collector):
    """A histogram observed a batch at a time: one lock per batch instead of one per
    value (a histogram of every reading's lag was a measurable share of ingest time).
    Exposed like a prometheus-client Histogram of the same buckets."""

    def __init__(
        self, name: str, documentation: str, buckets: Iterable[float], registry: CollectorRegistry
    ) -> None:
        self.name = name
        self.documentation = documentation
        self._bounds = [*sorted(buckets), float("inf")]
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0
        self._lock = threading.Lock()  # scrapes come from the metrics server's thread
        registry.register(self)

    def observe_many(self, values: Iterable[float]) -> None:
        bounds = self._bounds
        counts = [0] * len(bounds)
        total = 0.0
        for v in values:
            counts[bisect_left(bounds, v)] += 1
            total += v
        with self._lock:
            self._counts = [a + b for a, b in zip(self._counts, counts, strict=True)]
            self._sum += total

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, acc = [], 0
        for bound, n in zip(self._bounds, counts, strict=True):
            acc += n
            cumulative.append((floatToGoString(bound), acc))  # type: ignore[no-untyped-call]
        yield HistogramMetricFamily(
            self.name, self.documentation, buckets=cumulative, sum_value=total
        )
