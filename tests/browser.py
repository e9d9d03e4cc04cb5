"""Launching Debian's Chromium for Playwright (it cannot download browsers here)."""

from __future__ import annotations

# Without the background-networking flags Chromium keeps trying hosts this closed
# network refuses; --no-sandbox because tests may run as root.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
