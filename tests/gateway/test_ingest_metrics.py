"""The ingester's bulk-observed lag histogram reads exactly like prometheus-client's."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from gateway.ingest.metrics import LAG_BUCKETS, BulkHistogram, IngestMetrics


def _series(text: bytes, prefix: str) -> list[str]:
    return [ln for ln in text.decode().splitlines() if ln.startswith(prefix)]


def test_bulk_histogram_matches_prometheus_histogram() -> None:
    values = [0.0, 0.05, 0.0500001, 0.3, 1.0, 7.5, 59.0, 86400.0, 10 * 86400.0]
    ours, ref = CollectorRegistry(), CollectorRegistry()
    bulk = BulkHistogram("lag_seconds", "doc", LAG_BUCKETS, registry=ours)
    hist = Histogram("lag_seconds", "doc", buckets=LAG_BUCKETS, registry=ref)
    bulk.observe_many(values[:4])
    bulk.observe_many(values[4:])
    bulk.observe_many([])
    for v in values:
        hist.observe(v)
    wanted = [
        ln
        for ln in _series(generate_latest(ref), "lag_seconds_")
        if not ln.startswith("lag_seconds_created")
    ]
    assert _series(generate_latest(ours), "lag_seconds_") == wanted
    assert 'lag_seconds_bucket{le="+Inf"} 9.0' in wanted


def test_messages_received_and_in_flight_are_read_when_scraped() -> None:
    m = IngestMetrics()
    m.messages_received = 7
    m.unacked = lambda: 3
    text = generate_latest(m.registry).decode()
    assert "diatabase_messages_received_total 7.0" in text
    assert "diatabase_inflight_messages 3.0" in text
