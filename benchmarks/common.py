"""Shared plumbing: sockets, server processes, the load generator process, machine facts."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from importlib.metadata import version
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

if TYPE_CHECKING:  # the floor's process imports this module but none of the product
    from commerce_context.demo import DemoZendesk
    from commerce_context.settings import Settings

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HOST = "127.0.0.1"
START_TIMEOUT = 60.0
LOAD_TIMEOUT = 120.0


def tcp_socket(host: str = HOST) -> socket.socket:
    """A listening socket on a free loopback port, created with proto=IPPROTO_TCP.

    asyncio disables Nagle (TCP_NODELAY) only on sockets whose `proto` is IPPROTO_TCP, and
    accepted sockets inherit the listener's. A socket made with the default proto=0 (as
    `commerce_context.emulator.harness.serve` does) keeps Nagle on, and uvicorn's separate
    header and body writes then wait for the peer's delayed ACK: ~40 ms per keep-alive request.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn in this event loop; yields its URL."""
    sock = tcp_socket()
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield f"http://{HOST}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
        sock.close()


_TMP: list[str] = []


def tmp_dir() -> str:
    """One temporary directory per orchestrator run (removed by `cleanup`)."""
    if not _TMP:
        _TMP.append(tempfile.mkdtemp(prefix="commerce-context-bench-"))
    return _TMP[0]


def cleanup() -> None:
    for path in _TMP:
        shutil.rmtree(path, ignore_errors=True)
    _TMP.clear()


def write_json(value: object) -> str:
    """A temporary JSON file for a child process (configuration, request spec)."""
    with tempfile.NamedTemporaryFile(
        "w", suffix=".json", prefix="bench-", dir=tmp_dir(), delete=False, encoding="utf-8"
    ) as handle:
        json.dump(value, handle)
    return handle.name


@dataclass
class ServerProcess:
    """A server under test in its own process (benchmarks/server.py)."""

    process: asyncio.subprocess.Process
    port: int

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        return process_cpu(self.pid)

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


@contextlib.asynccontextmanager
async def server_process(config: dict[str, Any]) -> AsyncIterator[ServerProcess]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "server.py"),
        write_json(config),
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    server: ServerProcess | None = None
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)
        if not line:
            raise RuntimeError(f"the {config['kind']} server did not start")
        server = ServerProcess(process, int(json.loads(line)["port"]))
        yield server
    finally:
        if server is not None:
            await server.stop()
        elif process.returncode is None:
            process.kill()
            await process.wait()


async def run_load(mode: str, spec: dict[str, Any], *args: str) -> dict[str, Any]:
    """Run benchmarks/load.py in its own process; returns its JSON answer."""
    return await child_json(
        HERE / "load.py", mode, write_json(spec), *args, limit=LOAD_TIMEOUT, cwd=ROOT,
        what=f"load generator ({mode})",
    )  # fmt: skip


async def child_json(
    script: Path, *args: str, limit: float, cwd: Path | None = None, what: str | None = None
) -> dict[str, Any]:
    """Runs a benchmark script in a process of its own; returns the JSON it prints.

    Past `limit` seconds the child is killed and TimeoutError raised; a non-zero exit raises
    RuntimeError naming `what` (the script by default)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(script), *args, stdout=asyncio.subprocess.PIPE, cwd=cwd
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), limit)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        raise RuntimeError(f"{what or script.name} failed (exit {process.returncode})")
    result: dict[str, Any] = json.loads(out)
    return result


async def in_child(script: str, quick: bool, limit: float) -> dict[str, Any]:
    """Runs a `--json [--quick]` benchmark module in its own process (as `make bench` does)."""
    flags = ["--json", "--quick"] if quick else ["--json"]
    return await child_json(Path(script), *flags, limit=limit)


def bench_main(
    description: str,
    run: Callable[[bool], Coroutine[Any, Any, dict[str, Any]]],
    render: Callable[[dict[str, Any]], list[str]],
) -> None:
    """The command line of a `--json [--quick]` benchmark module."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small numbers (a smoke run)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    results = asyncio.run(run(args.quick))
    print(json.dumps(results) if args.json else "\n".join(render(results)))


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of all cores so far (/proc/stat): busy share = delta busy / total."""
    with open("/proc/stat", encoding="ascii") as file:
        values = [int(v) for v in file.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return float(sum(values) - idle), float(sum(values))


class Meter:
    """CPU use of one server process and of the whole machine over an interval."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.cpu = process_cpu(pid)
        self.busy, self.total = machine_cpu()
        self.started = time.perf_counter()

    def read(self) -> dict[str, float]:
        busy, total = machine_cpu()
        return {
            "server_cpu": (process_cpu(self.pid) - self.cpu) / (time.perf_counter() - self.started),
            # in cores: 2.0 = both cores of this machine busy
            "machine_cpu": (busy - self.busy) / (total - self.total) * (os.cpu_count() or 1),
        }


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as file:
        fields = file.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def rss_bytes(pid: int | None = None) -> int:
    """Current resident set size (not the peak)."""
    with open(f"/proc/{pid or 'self'}/statm", encoding="ascii") as file:
        pages = int(file.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def machine_facts() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as file:
        for line in file:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with contextlib.suppress(OSError), open("/proc/meminfo", encoding="utf-8") as file:
        kilobytes = int(file.readline().split()[1])
        memory = f"{kilobytes / 1024 / 1024:.1f} GiB"
    node = "unknown"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        node = subprocess.run(
            ["node", "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    # What uvicorn's "auto" picks: httptools and uvloop when installed, else h11 and asyncio.
    http_impl = "httptools" if find_spec("httptools") else "h11"
    loop = "uvloop" if find_spec("uvloop") else "asyncio"
    return {
        "cores": f"{os.cpu_count()} ({len(os.sched_getaffinity(0))} usable)",
        "cpu": cpu,
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "server": f"uvicorn {version('uvicorn')} ({http_impl}, {loop} loop), "
        f"starlette {version('starlette')}",
        "libraries": ", ".join(
            f"{name} {version(name)}"
            for name in ("httpx", "pyjwt", "cryptography", "jinja2", "pydantic", "redis")
        ),
        "node": node,
    }


def git_revision() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}{' + uncommitted changes' if dirty else ''}"


# -- settings for child processes -----------------------------------------------------------------


def zendesk_spec(zendesk: DemoZendesk) -> dict[str, Any]:
    pem = zendesk.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return {"private_pem": pem.decode(), "session_secret": zendesk.session_secret}


def zendesk_from(spec: dict[str, Any]) -> DemoZendesk:
    from commerce_context.demo import DemoZendesk

    key = serialization.load_pem_private_key(spec["private_pem"].encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return DemoZendesk(key, session_secret=spec["session_secret"])


@dataclass(frozen=True)
class Upstream:
    """What `demo_settings` reads of a `Harness`: the API host (our bridge) and project."""

    api_url: str
    project_key: str

    @property
    def auth_url(self) -> str:
        return self.api_url


def settings_from(spec: dict[str, Any]) -> Settings:
    """The demo's settings (`demo_settings`) against the benchmark's bridge, plus overrides."""
    from commerce_context.emulator.harness import demo_settings

    upstream = Upstream(spec["api_url"], spec["project_key"])
    return demo_settings(
        upstream,  # type: ignore[arg-type]
        zendesk_from(spec["zendesk"]),
        **spec.get("overrides", {}),
    )
