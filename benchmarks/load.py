"""A small HTTP/1.1 load generator: asyncio streams, keep-alive, no HTTP library.

Run as its own process (`python benchmarks/load.py MODE SPEC_JSON ...`) so it never shares a CPU
with the server under test; it prints one JSON object. Three modes:

* ``closed``: a fixed number of connections, each sending its next request as soon as the last
  answer arrived, for a fixed duration (after a warm-up that is not recorded): max throughput.
* ``open``: requests start on a fixed schedule (a constant rate) whatever the answers do, and
  latency is measured from the *scheduled* start, so a slow server cannot hide its queue
  (no coordinated omission). Bounded by count and time.
* ``burst``: N connections are opened first, then all N requests are written before any answer
  is read: N requests in flight at once.

Why not httpx here: an httpx request costs the client more CPU than the endpoints under test
cost the server, so with two cores the generator, not the server, would be measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass
from typing import Any

CONNECT_TIMEOUT = 5.0
REQUEST_TIMEOUT = 10.0


@dataclass
class Spec:
    """The request(s) to replay: where they go and their exact bytes.

    With several bodies ("bodies" in the JSON), requests take them in turn.
    """

    host: str
    port: int
    raws: tuple[bytes, ...]
    sent: int = 0

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Spec:
        bodies = value.get("bodies") or [value.get("body", "")]
        head = [f"{value.get('method', 'POST')} {value['path']} HTTP/1.1"]
        head.append(f"Host: {value['host']}:{value['port']}")
        head += [f"{k}: {v}" for k, v in value.get("headers", {}).items()]
        raws = []
        for body in bodies:
            lines = [*head, f"Content-Length: {len(body.encode())}"]
            raws.append(("\r\n".join(lines) + "\r\n\r\n").encode() + body.encode())
        return cls(value["host"], int(value["port"]), tuple(raws))

    def next(self) -> bytes:
        raw = self.raws[self.sent % len(self.raws)]
        self.sent += 1
        return raw

    @property
    def wrapped(self) -> bool:
        """True when some bodies were sent more than once."""
        return len(self.raws) > 1 and self.sent > len(self.raws)


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, spec: Spec) -> Connection:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(spec.host, spec.port), CONNECT_TIMEOUT
        )
        return cls(reader, writer)

    def send(self, raw: bytes) -> None:
        self.writer.write(raw)

    async def answer(self) -> tuple[int, bytes]:
        """Status and body of the next response (Content-Length framed)."""
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
            elif name.strip().lower() == b"transfer-encoding":
                raise RuntimeError("chunked responses are not supported by this generator")
        return status, await self.reader.readexactly(length)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        self.send(raw)
        return await asyncio.wait_for(self.answer(), REQUEST_TIMEOUT)

    def close(self) -> None:
        self.writer.close()


def percentiles(samples: list[float]) -> dict[str, float | None]:
    """p50 / p90 / p99 / max of `samples` (seconds) in milliseconds (nearest rank)."""
    if not samples:
        return {"p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(samples)

    def rank(p: float) -> float:
        index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
        return ordered[index] * 1000

    return {
        "p50_ms": rank(50),
        "p90_ms": rank(90),
        "p99_ms": rank(99),
        "max_ms": ordered[-1] * 1000,
    }


async def closed(spec: Spec, concurrency: int, duration: float, warmup: float) -> dict[str, Any]:
    connections = [await Connection.open(spec) for _ in range(concurrency)]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    start = time.perf_counter()
    record_from = start + warmup
    stop = record_from + duration
    cpu0: float | None = None

    async def worker(connection: Connection) -> None:
        nonlocal cpu0
        while True:
            sent = time.perf_counter()
            if sent >= stop:
                return
            status, _ = await connection.request(spec.next())
            done = time.perf_counter()
            if sent >= record_from:
                if cpu0 is None:
                    cpu0 = time.process_time()
                latencies.append(done - sent)
                statuses[status] = statuses.get(status, 0) + 1

    await asyncio.gather(*(worker(c) for c in connections))
    elapsed = time.perf_counter() - record_from
    cpu = time.process_time() - (cpu0 or 0.0)
    for connection in connections:
        connection.close()
    return {
        "mode": "closed",
        "bodies": len(spec.raws),
        "bodies_reused": spec.wrapped,
        "concurrency": concurrency,
        "requests": len(latencies),
        "seconds": elapsed,
        "rps": len(latencies) / elapsed,
        "statuses": statuses,
        "client_cpu": cpu / elapsed,
        **percentiles(latencies),
    }


async def open_loop(spec: Spec, rate: float, duration: float, pool: int) -> dict[str, Any]:
    """Constant-rate arrivals; latency from each request's scheduled start."""
    total = max(1, int(rate * duration))
    free: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(pool):
        free.put_nowait(await Connection.open(spec))
    latencies: list[float] = []
    service: list[float] = []  # from the moment the request was written
    statuses: dict[int, int] = {}
    lag: list[float] = []
    tasks: set[asyncio.Task[None]] = set()

    async def one(scheduled: float) -> None:
        connection = await free.get()
        sent = time.perf_counter()
        try:
            status, _ = await connection.request(spec.next())
        finally:
            free.put_nowait(connection)
        done = time.perf_counter()
        latencies.append(done - scheduled)
        service.append(done - sent)
        statuses[status] = statuses.get(status, 0) + 1

    cpu0 = time.process_time()
    start = time.perf_counter() + 0.05
    deadline = start + duration + REQUEST_TIMEOUT
    for index in range(total):
        scheduled = start + index / rate
        now = time.perf_counter()
        if scheduled > now:
            await asyncio.sleep(scheduled - now)
        lag.append(max(0.0, time.perf_counter() - scheduled))
        task = asyncio.create_task(one(scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=max(0.1, deadline - time.perf_counter()))
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    while not free.empty():
        free.get_nowait().close()
    scheduled_stats = percentiles(latencies)
    return {
        "mode": "open",
        "bodies": len(spec.raws),
        "bodies_reused": spec.wrapped,
        "rate": rate,
        "requests": len(latencies),
        "planned": total,
        "seconds": elapsed,
        "rps": len(latencies) / elapsed,
        "statuses": statuses,
        "client_cpu": cpu / elapsed,
        "dispatch_lag_p99_ms": percentiles(lag)["p99_ms"],
        **scheduled_stats,
        "service_p50_ms": percentiles(service)["p50_ms"],
        "service_p99_ms": percentiles(service)["p99_ms"],
    }


async def burst(specs: list[Spec], count: int, expect: str | None) -> dict[str, Any]:
    """`count` requests spread round-robin over `specs` (replicas), all in flight at once.

    With `expect`, counts the answers whose body contains it (are they all complete?).
    """
    targets = [specs[i % len(specs)] for i in range(count)]
    connections = await asyncio.gather(*(Connection.open(s) for s in targets))
    started = time.perf_counter()
    for connection, spec in zip(connections, targets, strict=True):
        connection.send(spec.next())
    await asyncio.gather(*(c.writer.drain() for c in connections))
    all_written = time.perf_counter()
    answered: list[float] = []

    complete = 0

    async def read(connection: Connection) -> tuple[int, float]:
        nonlocal complete
        status, body = await asyncio.wait_for(connection.answer(), REQUEST_TIMEOUT)
        done = time.perf_counter()
        answered.append(done)
        complete += expect is not None and expect.encode() in body
        return status, done - started

    results = await asyncio.gather(*(read(c) for c in connections))
    for connection in connections:
        connection.close()
    statuses: dict[int, int] = {}
    for status, _ in results:
        statuses[status] = statuses.get(status, 0) + 1
    return {
        "mode": "burst",
        "requests": count,
        "servers": len(specs),
        "statuses": statuses,
        "written_in_ms": (all_written - started) * 1000,
        "first_answer_ms": (min(answered) - started) * 1000,
        "all_written_before_first_answer": all_written <= min(answered),
        "expected": expect,
        "with_expected": complete if expect is not None else None,
        **percentiles([elapsed for _, elapsed in results]),
    }


def main(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["closed", "open", "burst"])
    parser.add_argument("spec", help="JSON file: host, port, method, path, headers, body")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--pool", type=int, default=64)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--port", type=int, action="append", help="override spec port(s)")
    parser.add_argument("--expect", help="burst: count the answers containing this text")
    args = parser.parse_args(argv)
    with open(args.spec, encoding="utf-8") as file:
        raw_spec = json.load(file)
    specs = [Spec.from_json({**raw_spec, "port": p}) for p in args.port or [raw_spec["port"]]]
    if args.mode == "closed":
        return asyncio.run(closed(specs[0], args.concurrency, args.duration, args.warmup))
    if args.mode == "open":
        return asyncio.run(open_loop(specs[0], args.rate, args.duration, args.pool))
    return asyncio.run(burst(specs, args.count, args.expect))


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
