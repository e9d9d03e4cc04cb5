"""Linking parked readings and replaying quarantined messages (CLI and ingester share it)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.ingest.pipeline import normalise, process, reading_from_parked
from gateway.registry.service import Registry
from gateway.store.base import ReadingStore, StoredReading


async def relink_parked(registry: Registry, store: ReadingStore) -> tuple[int, int]:
    """Write parked readings that now link to a patient; returns (linked, still parked)."""
    await registry.refresh(force=True)
    parked = await registry.parked()
    linked: list[StoredReading] = []
    for p in parked:
        patient = registry.link(p.serial, p.time)
        if patient is not None:
            linked.append(normalise(reading_from_parked(p), patient, p.hub_id, "relink"))
    if linked:
        await store.write(linked)
        await registry.unpark([r.key for r in linked])
    return len(linked), len(parked) - len(linked)


@dataclass(frozen=True, slots=True)
class ReplayResult:
    stored: int
    parked: int
    quarantined: int


async def replay_quarantined(
    registry: Registry, store: ReadingStore, qid: int
) -> ReplayResult | None:
    row = await registry.quarantine_get(qid)
    if row is None:
        return None
    await registry.refresh(force=True)
    out = process(
        row.topic, row.payload, link=registry.link, hub_of=registry.hub_of, hub_key=registry.hub_key
    )
    await store.write(out.stored)
    await registry.park(out.parked)
    await registry.quarantine(out.quarantined)
    await registry.mark_replayed(qid)
    return ReplayResult(len(out.stored), len(out.parked), len(out.quarantined))
