"""Load one settings object from a TOML file, ``DIATABASE_*`` variables and flags.

Precedence, highest first: command-line flags, environment, the ``--config`` file.
An invalid or missing setting ends the command with one line naming it, exit code 2.
"""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path
from typing import Any, TypeVar

import typer
from pydantic import ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsError,
    TomlConfigSettingsSource,
)
from rich.console import Console

S = TypeVar("S", bound=BaseSettings)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def run_async(coro: Any) -> Any:
    """Run a command's coroutine on uvloop when installed; Ctrl-C cancels it cleanly."""
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        return runner.run(coro)


def fail(message: str, code: int = 2) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def _describe(err: ValidationError) -> str:
    first = err.errors()[0]
    name = ".".join(str(p) for p in first["loc"]) or "<settings>"
    if first["type"] == "missing":
        return f"setting '{name}' is required (flag --{name.replace('_', '-')}, DIATABASE_{name.upper()}, or the config file)"
    msg = first["msg"].removeprefix("Value error, ")
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"setting '{name}': {msg}{more}"


def load_settings(cls: type[S], config: Path | None, **flags: Any) -> S:
    if config is not None:
        if not config.is_file():
            raise fail(f"config file {config} does not exist")
        try:
            with config.open("rb") as f:
                tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise fail(f"config file {config} is not valid TOML: {e}") from None

    class _Loaded(cls):  # type: ignore[valid-type,misc]
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, env_settings)
            if config is not None:
                sources += (TomlConfigSettingsSource(settings_cls, toml_file=config),)
            return sources

    _Loaded.__name__ = cls.__name__
    given = {k: v for k, v in flags.items() if v is not None}
    try:
        return _Loaded(**given)
    except ValidationError as e:
        raise fail(_describe(e)) from None
    except SettingsError as e:
        raise fail(str(e)) from None
