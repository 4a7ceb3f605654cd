"""A real worker process for the fault tests: `commerce-context worker` with one test handler.

`apply` writes its effect to the `effects` table and records the ledger entry in the same
transaction, then holds the job for `hold` seconds (the tests kill or disturb the process
then). A re-run finds the ledger entry and changes nothing: `effects` shows each application.
"""

from __future__ import annotations

import asyncio
from typing import Any

from commerce_context.database import Database
from commerce_context.operations import run_worker
from commerce_context.settings import load_settings
from commerce_context.worker import JobContext


async def apply(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    if await ctx.ledger.done(ctx.job.key) is not None:
        return {"applied": False}
    async with ctx.queue.db.transaction() as tx:
        await tx.execute(
            "INSERT INTO effects (key, attempt) VALUES (?, ?)", (ctx.job.key, ctx.job.attempts)
        )
        await ctx.ledger.record(ctx.job.key, {"applied": True}, tx=tx)
    await asyncio.sleep(float(payload.get("hold", 0)))
    return {"applied": True}


async def prepare(db: Database) -> None:
    await db.execute("CREATE TABLE IF NOT EXISTS effects (key TEXT NOT NULL, attempt INTEGER)")


def main() -> int:
    return asyncio.run(run_worker(load_settings(), {"apply": apply}))


if __name__ == "__main__":
    raise SystemExit(main())
