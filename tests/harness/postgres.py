"""PostgreSQL for tests: initdb into a temp dir, ``postgres`` on a free loopback port."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

from .base import (
    HarnessError,
    MissingBinaryError,
    ServerProcess,
    find_program,
    free_port,
    unprivileged_user,
)

PACKAGE = "postgresql"


def postgres_bindir() -> Path:
    """Newest /usr/lib/postgresql/*/bin with initdb and postgres (or from PATH)."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda d: int(Path(d).parent.name) if Path(d).parent.name.isdigit() else 0,
        reverse=True,
    )
    for directory in candidates:
        if os.access(os.path.join(directory, "postgres"), os.X_OK) and os.access(
            os.path.join(directory, "initdb"), os.X_OK
        ):
            return Path(directory)
    on_path = shutil.which("initdb")
    if on_path and shutil.which("postgres"):
        return Path(on_path).parent
    raise MissingBinaryError("postgres", PACKAGE)


class PostgresServer(ServerProcess):
    """PostgreSQL with its own cluster, listening on 127.0.0.1 only, trust auth.

    As root, initdb and postgres run as the ``postgres`` system user (or
    ``nobody``) through ``setpriv``; the working directory then belongs to it.
    ``url`` is ``postgresql://USER@127.0.0.1:PORT/postgres``.
    """

    name = "postgres"
    package = PACKAGE
    # SIGTERM is a "smart" shutdown that waits for clients to leave; SIGINT is fast
    stop_signal = signal.SIGINT

    def __init__(self, *, port: int | None = None, **kwargs: Any) -> None:
        self.run_as = unprivileged_user()
        if kwargs.get("workdir") is None and self.run_as is not None:
            # a private dir the server user can reach (pytest's tmp dirs are 0700 root)
            kwargs["workdir"] = tempfile.mkdtemp(prefix="diatabase-postgres-")
            own = True
        else:
            own = kwargs.get("workdir") is None
        super().__init__(**kwargs)
        self._own_workdir = own
        self.bindir = postgres_bindir()
        self.port = port or free_port()
        self.datadir = self.workdir / "data"
        self.socket_dir = self.workdir / "socket"
        self.user = self.run_as[0] if self.run_as else _current_user()
        if self.run_as is not None:
            os.chown(self.workdir, self.run_as[1], self.run_as[2])
            os.chmod(self.workdir, 0o700)

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def _as_user(self, argv: list[str]) -> list[str]:
        if self.run_as is None:
            return argv
        _name, uid, gid = self.run_as
        setpriv = find_program("setpriv", "util-linux")
        # setpriv execs (no extra process in between), so signals reach postgres
        return [setpriv, f"--reuid={uid}", f"--regid={gid}", "--init-groups", "--", *argv]

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        if self.run_as is not None:
            env["HOME"] = str(self.workdir)
        return env

    def _prepare(self) -> None:
        for directory in (self.socket_dir,):
            directory.mkdir(exist_ok=True)
            if self.run_as is not None:
                os.chown(directory, self.run_as[1], self.run_as[2])
        if (self.datadir / "PG_VERSION").exists():
            return
        command = self._as_user(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.datadir),
                "-U",
                self.user,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )
        with open(self.log_path, "ab") as log:
            log.write(f"--- harness: {' '.join(command)}\n".encode())
            log.flush()
            result = subprocess.run(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=self._env(),
                stdin=subprocess.DEVNULL,
                check=False,
                timeout=120,
            )
        if result.returncode != 0:
            raise HarnessError(f"initdb failed (exit {result.returncode})\n{self.describe_log()}")

    def _command(self) -> list[str]:
        settings = {
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            # a process crash loses nothing with fsync off (the page cache keeps
            # the WAL); only a machine crash would, which tests never simulate
            "fsync": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            "shared_buffers": "32MB",
            "logging_collector": "off",
            "log_min_messages": "warning",
            "log_connections": "off",
        }
        argv = [str(self.bindir / "postgres"), "-D", str(self.datadir)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        return self._as_user(argv)

    def _ready(self) -> bool:
        with PgWire(self.host, self.port, self.user, "postgres", timeout=2.0):
            return True

    # -- helpers -------------------------------------------------------------
    def execute(self, sql: str, *, database: str = "postgres") -> list[tuple[str | None, ...]]:
        """Run SQL with the simple query protocol; rows as text tuples."""
        with PgWire(self.host, self.port, self.user, database) as conn:
            return conn.simple_query(sql)

    def create_database(self, name: str) -> str:
        self.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def new_database(self, prefix: str = "t") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:16]}"
        self.create_database(name)
        return name


def _current_user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


class PgWire:
    """Just enough of the PostgreSQL v3 protocol for readiness and setup SQL."""

    def __init__(self, host: str, port: int, user: str, database: str, timeout: float = 10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        params = b"user\x00" + user.encode() + b"\x00database\x00" + database.encode() + b"\x00\x00"
        try:
            self.sock.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
            self._until_ready()
        except BaseException:
            self.sock.close()
            raise

    def __enter__(self) -> PgWire:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(b"X\x00\x00\x00\x04")
        self.sock.close()

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise HarnessError("PostgreSQL closed the connection")
            data += chunk
        return data

    def _message(self) -> tuple[bytes, bytes]:
        kind = self._read(1)
        (length,) = struct.unpack("!i", self._read(4))
        return kind, self._read(length - 4)

    @staticmethod
    def _error_text(body: bytes) -> str:
        fields = {}
        for part in body.split(b"\x00"):
            if part:
                fields[part[:1]] = part[1:].decode(errors="replace")
        return f"{fields.get(b'S', 'ERROR')} {fields.get(b'C', '')}: {fields.get(b'M', '')}"

    def _until_ready(self) -> None:
        error = None
        while True:
            kind, body = self._message()
            if kind == b"R":
                (code,) = struct.unpack("!i", body[:4])
                if code != 0:
                    raise HarnessError(f"PostgreSQL wants authentication method {code}")
            elif kind == b"E":
                error = self._error_text(body)
                if not hasattr(self, "_startup_done"):
                    raise HarnessError(error)
            elif kind == b"Z":
                self._startup_done = True
                if error:
                    raise HarnessError(error)
                return

    def simple_query(self, sql: str) -> list[tuple[str | None, ...]]:
        payload = sql.encode() + b"\x00"
        self.sock.sendall(b"Q" + struct.pack("!i", 4 + len(payload)) + payload)
        rows: list[tuple[str | None, ...]] = []
        error = None
        while True:
            kind, body = self._message()
            if kind == b"D":
                (count,) = struct.unpack("!h", body[:2])
                pos, row = 2, []
                for _ in range(count):
                    (size,) = struct.unpack("!i", body[pos : pos + 4])
                    pos += 4
                    if size < 0:
                        row.append(None)
                    else:
                        row.append(body[pos : pos + size].decode())
                        pos += size
                rows.append(tuple(row))
            elif kind == b"E":
                error = self._error_text(body)
            elif kind == b"Z":
                if error:
                    raise HarnessError(f"{sql!r}: {error}")
                return rows
