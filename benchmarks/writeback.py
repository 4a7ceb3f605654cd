"""Webhook-to-writeback latency (`make bench` runs this module as a child process; it also runs
alone: `.venv/bin/python benchmarks/writeback.py [--quick]` prints its section).

w1. The whole service (create_app with its in-process worker, SQLite job database) served over
    HTTP, the commercetools emulator behind a transport that adds 50 ms to every upstream
    request (`upstream.LatencyTransport`). Signed Zendesk trigger webhooks change the support
    status of seeded orders, one every 100 ms (below the 20/s commercetools limit, so this
    measures latency, not queueing). Latency: from just before the webhook is sent to the
    moment its writeback job is recorded done (the job's `updated_at`, the same clock). Each
    writeback is one GraphQL read and one update, so the floor is about 2 x 50 ms plus the
    token fetch once.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from commerce_context.app import create_app  # noqa: E402
from commerce_context.database import Database  # noqa: E402
from commerce_context.demo import DemoZendesk  # noqa: E402
from commerce_context.emulator.harness import (  # noqa: E402
    DEMO_ORDER_FIELD_ID,
    demo_settings,
    running,
)
from commerce_context.webhooks import expected_signature  # noqa: E402
from common import bench_main, serve  # noqa: E402
from common import in_child as run_child  # noqa: E402
from upstream import LatencyTransport  # noqa: E402

DELAY = 0.05
STATUS_FIELD = 360000002
VALUES = ("open", "pending", "solved")


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def latency(count: int, gap: float = 0.1) -> dict[str, Any]:
    zendesk = DemoZendesk.generate()
    with tempfile.TemporaryDirectory(prefix="cc-bench-writeback-") as tmp:
        database_url = f"sqlite:///{tmp}/jobs.sqlite3"
        async with running(f"bench-wb-{uuid.uuid4().hex[:6]}") as harness:
            settings = demo_settings(
                harness,
                zendesk,
                database_url=database_url,
                zendesk_order_field_id=DEMO_ORDER_FIELD_ID,
                jobs_poll_interval=1.0,
            )
            numbers = list(harness.demo.orders)
            transport = LatencyTransport(DELAY)
            async with (
                httpx.AsyncClient(transport=transport) as upstream,
                serve(create_app(settings, http=upstream)) as url,
                httpx.AsyncClient(base_url=url, timeout=30) as client,
            ):
                sent: dict[str, float] = {}
                for i in range(count):
                    number = numbers[i % len(numbers)]
                    value = VALUES[(i // len(numbers)) % len(VALUES)]
                    body = json.dumps(
                        {
                            "event": "ticket.updated",
                            "ticket": {
                                "id": str(1000 + i),
                                "requester_email": "",
                                "brand_id": "",
                                "fields": {
                                    str(DEMO_ORDER_FIELD_ID): number,
                                    str(STATUS_FIELD): value,
                                },
                            },
                        }
                    ).encode()
                    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                    secret = zendesk.webhook_secret
                    headers = {
                        "Content-Type": "application/json",
                        "X-Zendesk-Webhook-Invocation-Id": uuid.uuid4().hex,
                        "X-Zendesk-Webhook-Signature-Timestamp": stamp,
                        "X-Zendesk-Webhook-Signature": expected_signature(secret, stamp, body),
                    }
                    started = time.time()
                    response = await client.post("/zendesk/webhooks", content=body, headers=headers)
                    response.raise_for_status()
                    for job_id in response.json()["jobs"]:
                        sent[job_id] = started
                    await asyncio.sleep(gap)
                db = Database.from_url(database_url)
                await db.open()
                try:
                    deadline = time.monotonic() + 120
                    while True:
                        rows = await db.fetchall(
                            "SELECT id, state, updated_at, result FROM jobs WHERE kind = ?",
                            ("writeback",),
                        )
                        if all(r["state"] in ("done", "dead") for r in rows) and len(rows) == len(
                            sent
                        ):
                            break
                        if time.monotonic() > deadline:
                            raise RuntimeError("writebacks did not finish within 120 s")
                        await asyncio.sleep(0.2)
                finally:
                    await db.close()
    done = [r for r in rows if r["state"] == "done"]
    millis = [(float(r["updated_at"]) - sent[r["id"]]) * 1000 for r in done]
    outcomes: dict[str, int] = {}
    for r in done:
        outcome = json.loads(r["result"] or "{}").get("outcome", "?")
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return {
        "webhooks": count,
        "jobs": len(rows),
        "done": len(done),
        "dead": len(rows) - len(done),
        "outcomes": outcomes,
        "delay_ms": DELAY * 1000,
        "p50_ms": statistics.median(millis),
        "p99_ms": _percentile(millis, 0.99),
        "max_ms": max(millis),
    }


async def run(quick: bool) -> dict[str, Any]:
    log("w1. webhook-to-writeback latency")
    return {"latency": await latency(40 if quick else 200)}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def render(results: dict[str, Any]) -> list[str]:
    r = results["latency"]
    return [
        "## Webhook to writeback",
        "",
        "`benchmarks/writeback.py` (see its docstring): signed Zendesk webhooks into the whole "
        f"service, {r['delay_ms']:.0f} ms added to every commercetools request, one webhook "
        "every 100 ms; latency until the writeback job is recorded done.",
        "",
        "| webhooks | jobs done | dead | applied | unchanged | p50 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|---|---|",
        f"| {r['webhooks']} | {r['done']} | {r['dead']} | {r['outcomes'].get('applied', 0)} "
        f"| {r['outcomes'].get('unchanged', 0)} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} "
        f"| {r['max_ms']:.0f} |",
        "",
    ]


async def in_child(quick: bool, limit: float = 600) -> dict[str, Any]:
    """Runs this module in a process of its own (as `make bench` does); returns its results."""
    return await run_child(__file__, quick, limit)


def main() -> None:
    bench_main("Webhook-to-writeback latency", run, render)


if __name__ == "__main__":
    main()
