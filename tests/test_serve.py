"""`commerce-context serve` as a real process (uvicorn with uvloop and httptools): JSON logs from
the first line, metrics, and a graceful stop on SIGTERM that lets an in-flight request finish and
hands a running job back to the queue untouched. commercetools is a server that never answers,
so the job is still running when the signal arrives."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from commerce_context.database import Database
from commerce_context.jobs import Queue

TOKEN = "metrics-token-" + "t" * 32
EVENTS_SECRET = "events-secret-" + "s" * 32


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def silent_upstream() -> AsyncIterator[str]:
    """Accepts connections, reads, never answers: a hung commercetools."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read(65536)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()


async def eventually(check: Callable[[], Any], *, within: float, what: str) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def serve_env(tmp_path: Path, port: int, upstream: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CC_")}
    env.update(
        CC_CT_PROJECT_KEY="serve-test",
        CC_CT_CLIENT_ID="client",
        CC_CT_CLIENT_SECRET="not-a-real-secret",
        CC_CT_API_URL=upstream,
        CC_CT_AUTH_URL=upstream,
        CC_CT_MAX_RETRIES="0",
        CC_CT_TIMEOUT="60",
        CC_STATE_PATH=str(tmp_path / "state.sqlite3"),
        CC_HOST="127.0.0.1",
        CC_PORT=str(port),
        CC_LOG_FORMAT="json",
        CC_METRICS_TOKEN=TOKEN,
        CC_EVENTS_SECRET=EVENTS_SECRET,
        CC_JOBS_POLL_INTERVAL="0.1",
        CC_SHUTDOWN_TIMEOUT="20",
        **extra,
    )
    return env


async def test_serve_logs_json_and_stops_gracefully(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    async with silent_upstream() as upstream:
        env = serve_env(tmp_path, port, upstream)
        with log.open("wb") as sink:
            process = subprocess.Popen(  # noqa: ASYNC220  (Popen returns at once)
                [sys.executable, "-m", "commerce_context", "serve"],
                env=env,
                cwd=tmp_path,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        try:
            await _exercise(process, port, tmp_path)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert lines, "the server wrote nothing"
    for line in lines:  # uvicorn's own lines too: one JSON object each
        assert {"time", "level", "logger", "message", "correlation_id"} <= set(line), line
    messages = [line["message"] for line in lines]
    assert any("Uvicorn running" in m for m in messages)
    assert any("Waiting for connections to close" in m or "Shutting down" in m for m in messages)
    assert any("handed back 1 job" in m for m in messages), messages
    access = [line for line in lines if line["logger"] == "commerce_context.access"]
    assert {"/healthz", "/metrics", "/commercetools/events"} <= {line["route"] for line in access}
    assert TOKEN not in log.read_text() and EVENTS_SECRET not in log.read_text()


async def _exercise(process: subprocess.Popen[bytes], port: int, tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:

        async def healthy() -> bool:
            assert process.poll() is None, "serve exited"
            try:
                return (await client.get("/healthz")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(healthy, within=30, what="serve to answer /healthz")
        response = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 200 and "cc_http_request_duration_seconds" in response.text
        assert response.headers.get("server") is None

    # A job that will hang on commercetools: running when the signal comes.
    db = Database.from_url(f"sqlite:///{tmp_path / 'state.sqlite3'}")
    await db.open()
    try:
        queue = Queue(db)
        job = await queue.enqueue(
            "zendesk.prefetch", {"emails": ["someone@example.org"]}, key="hang", destination="ct"
        )

        async def running() -> bool:
            found = await queue.get(job.id)
            return found is not None and found.state == "running"

        await eventually(running, within=20, what="the job to be claimed")

        # An in-flight request: headers and half the body sent, then SIGTERM, then the rest.
        body = json.dumps([]).encode() + b" " * 64
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = (
            "POST /commercetools/events HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/json\r\n"
            f"Authorization: Bearer {EVENTS_SECRET}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode() + body[:10])
        await writer.drain()
        await asyncio.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        # No new connections are accepted while it drains.
        with pytest.raises(OSError):
            _, late = await asyncio.open_connection("127.0.0.1", port)
            late.close()
        writer.write(body[10:])
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
        writer.close()
        status = int(status_line.split()[1])
        assert 200 <= status < 500, status_line  # answered by the app, not cut off

        exit_code = await asyncio.wait_for(asyncio.to_thread(process.wait), 45)
        # After its graceful shutdown uvicorn re-raises the signal it caught, so the process
        # ends as terminated by SIGTERM (status 143 in a shell): what supervisors expect.
        assert exit_code == -signal.SIGTERM
        handed_back = await queue.get(job.id)
        assert handed_back is not None
        assert handed_back.state == "queued" and handed_back.attempts == 0
        assert handed_back.lease_until is None
    finally:
        await db.close()


def test_metrics_port_and_several_processes_do_not_mix(tmp_path: Path) -> None:
    env = serve_env(tmp_path, free_port(), "http://127.0.0.1:9", CC_METRICS_PORT=str(free_port()))
    result = subprocess.run(
        [sys.executable, "-m", "commerce_context", "serve", "--workers", "2"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "CC_METRICS_PORT cannot be shared" in result.stderr


async def test_several_server_processes_each_build_the_app(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    env = serve_env(tmp_path, port, "http://127.0.0.1:9", CC_WORKER_IN_PROCESS="false")
    with log.open("wb") as sink:
        process = subprocess.Popen(  # noqa: ASYNC220  (Popen returns at once)
            [sys.executable, "-m", "commerce_context", "serve", "--workers", "2"],
            env=env,
            cwd=tmp_path,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:

        async def both_started() -> bool:
            assert process.poll() is None, log.read_text()
            return log.read_text().count("Application startup complete") == 2

        await eventually(both_started, within=60, what="two server processes")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            for _ in range(4):
                assert (await client.get("/healthz")).status_code == 200
        process.send_signal(signal.SIGTERM)
        exit_code = await asyncio.wait_for(asyncio.to_thread(process.wait), 45)
        assert exit_code in (0, -signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    started = [line for line in lines if "Started server process" in line["message"]]
    assert len(started) == 2  # one app per process, each built from the environment
    assert sum("Application shutdown complete" in line["message"] for line in lines) == 2
