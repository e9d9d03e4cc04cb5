"""deploy/systemd/diatabase-edge.service: systemd accepts every line of it, and it keeps
the agent running (restart forever, watchdog, notify) under a hardened sandbox."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "diatabase-edge.service"


def unit() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNIT, encoding="utf-8")
    return parser


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_accepts_every_line(tmp_path: Path) -> None:
    # verify checks that ExecStart exists: point it at this checkout's entry point.
    text = UNIT.read_text(encoding="utf-8").replace(
        "/opt/diatabase/.venv/bin/diatabase", str(Path(sys.executable).parent / "diatabase")
    )
    copy = tmp_path / UNIT.name
    copy.write_text(text, encoding="utf-8")
    done = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "Unknown" not in done.stderr and "ignoring" not in done.stderr, done.stderr


def test_restart_forever_watchdog_and_hardening() -> None:
    u = unit()
    service = u["Service"]
    assert u["Unit"]["StartLimitIntervalSec"] == "0"  # never give up restarting
    assert service["Restart"] == "always"
    assert service["Type"] == "notify" and int(service["WatchdogSec"]) > 0
    for hardening in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "RestrictSUIDSGID"):
        assert service[hardening] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["CapabilityBoundingSet"] == ""
    assert "/var/lib/diatabase" in service["ReadWritePaths"]


def test_exec_start_is_a_real_command() -> None:
    argv = shlex.split(unit()["Service"]["ExecStart"])
    assert argv[0].endswith("/diatabase")
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", *argv[1:-2], "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "--config" in done.stdout, done.stdout + done.stderr
