"""The three packages import on their own; drivers/ pulls in no MQTT or database code;
the CLI lists only working commands and turns bad settings into one line and exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

FORBIDDEN_IN_DRIVERS = (
    "paho",
    "aiomqtt",
    "amqtt",
    "sqlite3",
    "aiosqlite",
    "sqlalchemy",
    "asyncpg",
    "influxdb_client",
    "httpx",
    "edge",
    "gateway",
)


def run_py(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout


def test_drivers_imports_no_mqtt_or_database_code() -> None:
    loaded = run_py(
        "import sys, drivers, drivers.devices, drivers.codec_registry, drivers.gls, "
        "drivers.cgms, drivers.ids, drivers.racp\n"
        "print('\\n'.join(sys.modules))"
    ).split()
    bad = sorted(m for m in loaded if m.split(".")[0] in FORBIDDEN_IN_DRIVERS)
    assert bad == []


@pytest.mark.parametrize("package", ["drivers", "edge", "gateway", "gateway.contract"])
def test_each_package_imports_on_its_own(package: str) -> None:
    run_py(f"import {package}")


def test_gateway_contract_is_light_enough_for_a_hub() -> None:
    loaded = run_py("import sys, gateway.contract\nprint('\\n'.join(sys.modules))").split()
    assert not {m.split(".")[0] for m in loaded} & {"sqlalchemy", "starlette", "influxdb_client"}


def diatabase(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args], capture_output=True, text=True, timeout=60
    )


def test_help_lists_the_commands() -> None:
    out = diatabase("--help")
    assert out.returncode == 0
    for command in ("demo", "edge", "ingest", "schema", "decode", "serve", "registry"):
        assert command in out.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["ingest"], "setting 'mqtt' is required"),
        (["ingest", "--mqtt", "http://broker"], "setting 'mqtt'"),
        (["ingest", "--mqtt", "mqtt://h:1", "--store", "redis://x"], "setting 'store'"),
        (["ingest", "--mqtt", "mqtt://h:99999"], "bad port"),
        (["edge", "run", "--hub-id", "bad id", "--mqtt", "mqtt://h"], "setting 'hub_id'"),
        (["decode", "sfloat", "zz"], "not hexadecimal"),
        (["decode", "glucose-measurement", "00"], "Glucose Measurement"),
        (["demo", "--speed", "-1"], "setting 'speed'"),
    ],
)
def test_bad_settings_are_one_line_and_exit_2(args: list[str], needle: str) -> None:
    out = diatabase(*args)
    assert out.returncode == 2
    assert needle in out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_toml_and_environment(tmp_path: pytest.TempPathFactory) -> None:
    cfg = tmp_path / "hub.toml"  # type: ignore[operator]
    cfg.write_text('hub_id = "hub-1"\nmqtt = "mqtt://127.0.0.1:1"\n[[devices]]\nkind = "cgm"\n')
    out = diatabase("edge", "run", "--config", str(cfg))
    assert out.returncode == 2 and "devices.0" in out.stderr  # a device needs an address or name
