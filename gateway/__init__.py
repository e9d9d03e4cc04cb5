"""Diatabase gateway: wire contract, ingester, registry, sinks, web views and CLI.

Kept import-light: a hub imports ``gateway.contract`` without the server dependencies.
"""

__version__ = "0.1.0"
