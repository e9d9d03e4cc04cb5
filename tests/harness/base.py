"""Common machinery for servers that tests run as child processes.

Every server gets its own working directory (config, data, log), listens on a
port that was free on 127.0.0.1 when it was chosen, and is only reported ready
after a real client handshake succeeded.  ``stop()`` keeps the working directory
and the port so that ``start()`` brings the same server back with the same data;
``close()`` (or leaving the ``with`` block) also removes the directory.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Self

LOOPBACK = "127.0.0.1"

# Every server still running when the interpreter exits is killed, so that an
# interrupted test session does not leave brokers or databases behind.
_LIVE: set[ServerProcess] = set()
_LIVE_LOCK = threading.Lock()


def _kill_leftovers() -> None:
    with _LIVE_LOCK:
        servers = list(_LIVE)
    for server in servers:
        with contextlib.suppress(Exception):
            server.kill()


atexit.register(_kill_leftovers)


class HarnessError(RuntimeError):
    """A server could not be started, reached or stopped."""


class MissingBinaryError(HarnessError):
    """A server's program is not installed; says which Debian package brings it."""

    def __init__(self, program: str, package: str) -> None:
        self.program = program
        self.package = package
        super().__init__(
            f"{program!r} not found: install the Debian package {package!r} "
            f"(sudo apt-get install {package}, or run scripts/bootstrap.sh test)"
        )


class ServerStartError(HarnessError):
    """The server exited or did not become ready in time; carries its log."""


def free_port(host: str = LOOPBACK, exclude: Sequence[int] = ()) -> int:
    """A TCP port that nothing listens on at ``host`` right now.

    The kernel picks it from the ephemeral range by binding port 0, so the
    well-known ports of any system services (1883, 5432, 8086) never come out.
    """
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in exclude:
            return port
    raise HarnessError("could not find a free port")  # pragma: no cover


def find_program(name: str, package: str, extra_dirs: Sequence[str] = ()) -> str:
    """Absolute path of ``name`` from PATH, /usr/sbin, /usr/bin or ``extra_dirs``."""
    search = os.pathsep.join(
        [
            os.environ.get("PATH", ""),
            "/usr/local/sbin",
            "/usr/sbin",
            "/sbin",
            "/usr/bin",
            *extra_dirs,
        ]
    )
    found = shutil.which(name, path=search)
    if found is None:
        raise MissingBinaryError(name, package)
    return found


def wait_until(
    probe: Callable[[], bool],
    *,
    timeout: float,
    interval: float = 0.05,
    what: str = "condition",
    abort: Callable[[], str | None] | None = None,
) -> None:
    """Poll ``probe`` until it returns True, with a bounded deadline.

    ``abort`` is asked between polls; a non-None answer stops the wait at once
    with that message (used for "the process has exited").
    """
    deadline = time.monotonic() + timeout
    delay = min(interval, 0.01)
    while True:
        if probe():
            return
        if abort is not None and (why := abort()) is not None:
            raise ServerStartError(why)
        if time.monotonic() >= deadline:
            raise ServerStartError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(delay)  # back-off between polls, not a synchronisation sleep
        delay = min(delay * 2, interval)


def tcp_connectable(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def unprivileged_user() -> tuple[str, int, int] | None:
    """(name, uid, gid) to run servers that refuse root, or None when not root."""
    if os.geteuid() != 0:
        return None
    import pwd

    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return name, entry.pw_uid, entry.pw_gid
    raise HarnessError("running as root but neither user 'postgres' nor 'nobody' exists")


class ServerProcess:
    """Base class: one server program in its own process group and directory.

    Subclasses set ``name`` and implement ``_prepare`` (write config, once),
    ``_command`` and ``_ready``.
    """

    name = "server"
    #: signal for a graceful stop (PostgreSQL uses SIGINT: "fast shutdown")
    stop_signal = signal.SIGTERM
    host = LOOPBACK

    def __init__(
        self,
        *,
        workdir: str | os.PathLike[str] | None = None,
        startup_timeout: float = 60.0,
        stop_timeout: float = 20.0,
    ) -> None:
        self._own_workdir = workdir is None
        self.workdir = Path(
            workdir if workdir is not None else tempfile.mkdtemp(prefix=f"diatabase-{self.name}-")
        ).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / f"{self.name}.log"
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.starts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._prepared = False
        self._closed = False
        self._final_log = ""

    # -- to implement -----------------------------------------------------
    def _prepare(self) -> None:
        """Create config and data directories; runs before the first start."""

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        """True once a real client handshake with the server succeeded."""
        raise NotImplementedError

    def _after_ready(self) -> None:
        """Runs after every successful start (create default databases...)."""

    def _env(self) -> dict[str, str]:
        return dict(os.environ)

    def _preexec_user(self) -> tuple[str, int, int] | None:
        """Subclasses that must not run as root return the user to run as."""
        return None

    # -- lifecycle -----------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Self:
        if self._closed:
            raise HarnessError(f"{self.name}: start() after close()")
        if self.running:
            return self
        if not self._prepared:
            self._prepare()
            self._prepared = True
        self.starts += 1
        command = self._command()
        with open(self.log_path, "ab") as log:
            log.write(f"--- harness: start #{self.starts}: {' '.join(command)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=self._env(),
                start_new_session=True,  # own process group: kill() reaches children
            )
        with _LIVE_LOCK:
            _LIVE.add(self)
        try:
            wait_until(
                self._safe_ready,
                timeout=self.startup_timeout,
                interval=0.1,
                what=f"{self.name} to accept connections",
                abort=self._exited,
            )
            self._after_ready()
        except BaseException as exc:
            self.kill()
            if isinstance(exc, HarnessError):
                raise ServerStartError(
                    f"{self.name} failed to start: {exc}\n{self.describe_log()}"
                ) from exc
            raise
        return self

    def _safe_ready(self) -> bool:
        try:
            return self._ready()
        except Exception:  # connection refused, reset, HTTP client errors: not yet
            return False

    def _exited(self) -> str | None:
        if self._proc is not None and (code := self._proc.poll()) is not None:
            return f"{self.name} exited with code {code} before it was ready"
        return None

    def stop(self, timeout: float | None = None) -> int | None:
        """Graceful stop (stop_signal, then SIGKILL after ``timeout``); keeps data."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, self.stop_signal)
            try:
                proc.wait(timeout=self.stop_timeout if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                self._log_note(f"{self.name} ignored {self.stop_signal.name}; SIGKILL")
                self._killpg(proc)
                proc.wait()
        # children of the server (PostgreSQL backends) must be gone before a restart
        self._killpg(proc)
        self._proc = None
        return proc.returncode

    def kill(self) -> None:
        """kill -9 the server and its whole process group; keeps data."""
        proc = self._proc
        if proc is None:
            return
        self._killpg(proc)
        proc.wait()
        self._proc = None

    def restart(self) -> Self:
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop and delete the working directory (when the harness created it)."""
        if self._closed:
            return
        try:
            self.stop()
        finally:
            self._closed = True
            with _LIVE_LOCK:
                _LIVE.discard(self)
            if self._own_workdir:
                # keep the log for failure reports made after teardown
                self._final_log = self.log_text()
                shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()  # the error already carries the log
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _killpg(proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    # -- logs ----------------------------------------------------------------
    def _log_note(self, text: str) -> None:
        with contextlib.suppress(OSError), open(self.log_path, "a", encoding="utf-8") as log:
            log.write(f"--- harness: {text}\n")

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return self._final_log

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def describe_log(self, lines: int = 60) -> str:
        return f"--- last {lines} lines of {self.log_path} ---\n{self.log_tail(lines)}"

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"<{type(self).__name__} {getattr(self, 'url', '')} {state} {self.workdir}>"


@contextlib.contextmanager
def running(server: ServerProcess) -> Iterator[ServerProcess]:
    """``with running(MosquittoServer(...)) as m:`` for callers who prefer a function."""
    with server:
        yield server
