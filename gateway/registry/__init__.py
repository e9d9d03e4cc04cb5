"""Patient registry: pseudonymous patients, hubs, devices, time-bounded assignments, audit,
plus the ingester's durable side tables (quarantine, parked readings)."""

from gateway.registry.models import Base
from gateway.registry.service import (
    Assignment,
    AssignmentOverlapError,
    Registry,
    RegistryError,
    UnknownEntityError,
)

__all__ = [
    "Assignment",
    "AssignmentOverlapError",
    "Base",
    "Registry",
    "RegistryError",
    "UnknownEntityError",
]
