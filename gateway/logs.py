"""Structured logs: logfmt lines (``ts=… level=… logger=… msg=…``) on stderr or a file."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from pathlib import Path


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        msg = record.getMessage().replace('"', '\\"')
        line = f'ts={ts} level={record.levelname.lower()} logger={record.name} msg="{msg}"'
        if record.exc_info:
            exc = self.formatException(record.exc_info).replace("\n", "\\n").replace('"', '\\"')
            line += f' exc="{exc}"'
        return line


def setup_logging(level: str = "INFO", file: Path | None = None) -> logging.Handler:
    handler: logging.Handler
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(file)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    for old in root.handlers:
        old.close()  # a replaced file handler must not leak its file
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Chatty third parties stay at warning unless asked.
    for name in ("amqtt", "transitions", "bumble", "aiosqlite", "uvicorn.access", "sqlalchemy"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
    return handler
