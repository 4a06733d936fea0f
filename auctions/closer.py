"""The closer: every instance runs one; due auctions are claimed with ``FOR UPDATE SKIP LOCKED``.

Each auction closes in its own transaction, after a short grace past ``ends_at`` so that a
bid received before the end (its transaction already started) still lands. A restart, a
second instance or a retry changes nothing: closing is a locked, idempotent state change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from auctions import services
from auctions.tables import auctions
from market.db import run_in_transaction
from market.metrics import AUCTIONS_CLOSED, CLOSER_LAG

log = logging.getLogger(__name__)


async def close_one(engine: AsyncEngine, grace: timedelta) -> services.CloseResult | None:
    """Claim one due auction nobody else holds and close it; None when nothing is due."""

    async def work(conn: object) -> services.CloseResult | None:
        from sqlalchemy.ext.asyncio import AsyncConnection

        assert isinstance(conn, AsyncConnection)
        ids = await services.due_auction_ids(conn, grace, 1)
        if not ids:
            return None
        ends_at, now = (
            await conn.execute(select(auctions.c.ends_at, func.now()).where(auctions.c.id == ids[0]))
        ).one()
        result = await services.close_auction(conn, ids[0])
        if result.outcome in ("closed", "failed"):
            _observe(result, ends_at, now)
        return result

    return await run_in_transaction(engine, work)


def _observe(result: services.CloseResult, ends_at: datetime, now: datetime) -> None:
    AUCTIONS_CLOSED.labels(result.outcome).inc()
    CLOSER_LAG.observe(max(0.0, (now - ends_at).total_seconds()))


async def run(
    engine: AsyncEngine, stop: asyncio.Event, *, grace: timedelta, interval: float = 0.2, workers: int = 4
) -> None:
    """Close due auctions until ``stop`` is set, with ``workers`` concurrent claimers."""

    async def worker() -> None:
        while not stop.is_set():
            try:
                result = await close_one(engine, grace)
            except Exception:
                log.exception("closing an auction failed; will retry")
                result = None
            if result is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval)

    await asyncio.gather(*(worker() for _ in range(workers)))
