"""Time-series sinks. One interface, one module per kind; ``open_store`` picks by URL."""

from gateway.store.base import ReadingStore, StoredReading, StoreError, WriteResult, open_store

__all__ = ["ReadingStore", "StoreError", "StoredReading", "WriteResult", "open_store"]
