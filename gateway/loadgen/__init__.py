"""Load generator: simulated hubs publishing contract v1 batches at a set rate, read back
from the store for end-to-end latency (``diatabase loadgen``)."""

from gateway.loadgen.run import LoadgenConfig, LoadgenError, LoadReport, run_loadgen

__all__ = ["LoadReport", "LoadgenConfig", "LoadgenError", "run_loadgen"]
