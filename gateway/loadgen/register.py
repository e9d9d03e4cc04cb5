"""Register simulated hubs, their CGMs and patients, and assign each CGM to its patient,
idempotently: a second run finds everything in place and changes nothing."""

from __future__ import annotations

from gateway.contract.urls import StoreUrl
from gateway.loadgen.synth import ASSIGNED_FROM, MODEL, SimHub
from gateway.registry.service import Registry


async def register(url: StoreUrl, hubs: list[SimHub], *, public_key: str | None) -> int:
    """Returns how many devices got a new assignment. With ``public_key`` the hubs are
    registered with it and require signatures (an existing hub is left as it is)."""
    added = 0
    async with Registry(url, actor="loadgen") as reg:
        assigned = {a.serial for a in await reg.assignments()}
        for hub in hubs:
            await reg.add_hub(
                hub.hub_id,
                public_key=public_key,
                require_signature=public_key is not None,
                exist_ok=True,
            )
            for dev in hub.devices:
                await reg.add_patient(dev.patient_id, exist_ok=True)
                await reg.add_device(
                    dev.serial, "cgm", hub_id=hub.hub_id, model=MODEL, exist_ok=True
                )
                if dev.serial not in assigned:
                    await reg.assign(dev.serial, dev.patient_id, ASSIGNED_FROM)
                    added += 1
    return added
