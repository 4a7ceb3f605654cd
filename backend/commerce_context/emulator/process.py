"""Run the commercetools emulator (``@labdigital/commercetools-mock``) as a child process.

``server.mjs`` next to this module listens on a free loopback port and prints one JSON line
(``{"port": N}``) once it is ready. :class:`EmulatorProcess` starts it, waits for that
line and exposes the base URL. The same URL serves both the API and ``/oauth/token``.
It is meant for tests and the local demo. Nothing here talks to the real commercetools.

Usage::

    with EmulatorProcess("demo-project") as emulator:
        httpx.get(f"{emulator.url}/demo-project", ...)
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Final, Self

__all__ = [
    "DEFAULT_PROJECT_KEY",
    "EMULATOR_DIR",
    "EmulatorError",
    "EmulatorProcess",
    "find_mock_package",
]

EMULATOR_DIR: Final = Path(__file__).resolve().parent
DEFAULT_PROJECT_KEY: Final = os.environ.get("CT_PROJECT", "demo-project")
MOCK_PACKAGE: Final = Path("node_modules") / "@labdigital" / "commercetools-mock"

_INSTALL_HINT: Final = "Run `make install` (it runs `npm ci` at the repository root) and retry."


class EmulatorError(RuntimeError):
    """The emulator could not be started (missing Node or npm packages, crash, timeout)."""


def find_mock_package(start: Path = EMULATOR_DIR) -> Path | None:
    """Return the installed mock package directory, searching upward from ``start``.

    This mirrors how Node resolves the bare ``import`` in server.mjs: it walks up the
    directory tree looking for ``node_modules``. So the package is found when it is
    installed at the repository root.
    """
    for directory in (start, *start.parents):
        candidate = directory / MOCK_PACKAGE
        if (candidate / "package.json").is_file():
            return candidate
    return None


class EmulatorProcess:
    """One running emulator. Call :meth:`start` (or use ``with``), then read :attr:`url`."""

    def __init__(
        self,
        project_key: str = DEFAULT_PROJECT_KEY,
        *,
        emulator_dir: Path = EMULATOR_DIR,
        node: str = "node",
        startup_timeout: float = 30.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self.project_key = project_key
        self.emulator_dir = emulator_dir
        self.node = node
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._proc: subprocess.Popen[str] | None = None
        self._port: int | None = None
        # stderr goes to a file rather than a pipe: nobody reads it while the server runs,
        # and a full pipe would block node. We read it only to explain a failed start.
        self._stderr: IO[bytes] | None = None
        self._reader: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """Start node and block until the emulator reports its port."""
        if self._proc is not None:
            raise EmulatorError("emulator already started")
        node_path = shutil.which(self.node)
        if node_path is None:
            raise EmulatorError(
                f"Node.js executable {self.node!r} not found on PATH. {_INSTALL_HINT}"
            )
        script = self.emulator_dir / "server.mjs"
        if not script.is_file():
            raise EmulatorError(f"emulator launcher {script} is missing")
        if find_mock_package(self.emulator_dir) is None:
            raise EmulatorError(
                f"npm package @labdigital/commercetools-mock not found in any node_modules above "
                f"{self.emulator_dir}. {_INSTALL_HINT}"
            )

        env = {**os.environ, "PORT": "0", "CT_PROJECT": self.project_key, "EXIT_WITH_PARENT": "1"}
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [node_path, script.name],
            cwd=self.emulator_dir,
            env=env,
            # node exits when this pipe closes, so a killed parent leaves no orphan behind.
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        try:
            self._port = self._wait_for_port(self._proc)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM the emulator, wait up to ``stop_timeout`` seconds, then SIGKILL it.

        Safe to call more than once.
        """
        proc, self._proc, self._port = self._proc, None, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=self.stop_timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            # Let the reader thread see EOF before closing the pipe under it.
            if self._reader is not None:
                self._reader.join(timeout=1.0)
                self._reader = None
            if proc.stdout is not None:
                proc.stdout.close()
            if proc.stdin is not None:
                proc.stdin.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- accessors -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def port(self) -> int:
        if self._port is None:
            raise EmulatorError("emulator is not running; call start() first")
        return self._port

    @property
    def url(self) -> str:
        """Base URL for both the API (``{url}/{projectKey}/…``) and auth (``{url}/oauth/token``)."""
        return f"http://127.0.0.1:{self.port}"

    # -- internals -------------------------------------------------------------------------

    def _wait_for_port(self, proc: subprocess.Popen[str]) -> int:
        assert proc.stdout is not None
        lines: queue.Queue[str | None] = queue.Queue()
        # A daemon thread keeps reading stdout for the whole life of the process. A plain
        # readline() could block past the timeout, and a stdout pipe nobody reads would
        # eventually block node if it ever logged more than the pipe buffer holds.
        self._reader = threading.Thread(
            target=_pump_lines, args=(proc.stdout, lines), name="ct-emulator-stdout", daemon=True
        )
        self._reader.start()
        deadline = time.monotonic() + self.startup_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise EmulatorError(
                    f"emulator did not report its port within {self.startup_timeout:g} s"
                    f"{self._stderr_tail()}"
                )
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                proc.wait(timeout=self.stop_timeout)
                raise EmulatorError(
                    f"emulator exited with code {proc.returncode} before listening"
                    f"{self._stderr_tail()}"
                )
            port = _parse_port(line)
            if port is not None:
                return port

    def _stderr_tail(self, limit: int = 2000) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace").strip()
        if not text:
            return ""
        if "ERR_MODULE_NOT_FOUND" in text or "Cannot find package" in text:
            text += f"\n{_INSTALL_HINT}"
        return f":\n{text[-limit:]}"


def _pump_lines(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    try:
        for line in stream:
            lines.put(line)
    except (OSError, ValueError):
        pass  # the pipe was closed by stop()
    finally:
        lines.put(None)


def _parse_port(line: str) -> int | None:
    try:
        data = json.loads(line)
    except ValueError:
        return None  # not the port line; ignore stray output
    if isinstance(data, dict):
        port = data.get("port")
        if isinstance(port, int) and not isinstance(port, bool) and port > 0:
            return port
    return None
