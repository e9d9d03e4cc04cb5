"""The checks the style guide asks for, kept by CI: ruff lint and format, and mypy in
strict mode (pyproject's [tool.mypy]) on drivers/, gateway/ and edge/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    "cmd", [("ruff", "check", "."), ("ruff", "format", "--check", ".")], ids=["lint", "format"]
)
def test_ruff(cmd: tuple[str, ...]) -> None:
    done = run(str(BIN / cmd[0]), *cmd[1:])
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_strict(tmp_path: Path) -> None:
    done = run(
        str(BIN / "mypy"), "--cache-dir", str(tmp_path / "cache"), "drivers", "gateway", "edge"
    )
    assert done.returncode == 0, done.stdout + done.stderr
