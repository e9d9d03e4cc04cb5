"""``diatabase demo``: the whole path on embedded defaults, in one process.

A composition root like the CLI: it wires virtual devices (drivers), the hub agent (edge),
an in-process broker and the ingester (gateway) together. Nothing else in ``gateway``
imports ``edge``.
"""
