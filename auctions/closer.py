"""The closer: every instance runs one; due auctions are claimed with ``FOR UPDATE SKIP LOCKED``.

Each auction closes in its own transaction, after a short grace past ``ends_at`` so that a
bid received before the end (its transaction already started) still lands. A restart, a
second instance or a retry changes nothing: closing is a locked, idempotent state change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from auctions import services, store
from listings import offers
from market.config import Settings
from market.db import run_in_transaction
from market.metrics import AUCTIONS_CLOSED, CLOSER_LAG

log = logging.getLogger(__name__)


async def close_one(engine: AsyncEngine, grace: timedelta, settings: Settings) -> services.CloseResult | None:
    """Claim one due auction nobody else holds and close it; None when nothing is due."""

    async def work(conn: object) -> services.CloseResult | None:
        from sqlalchemy.ext.asyncio import AsyncConnection

        assert isinstance(conn, AsyncConnection)
        locked = await store.lock_due(conn, grace)
        if locked is None:
            return None
        result = await services.close_auction(conn, locked.id, settings, locked=locked)
        if result.outcome in ("closed", "failed"):
            _observe(result)
        return result

    return await run_in_transaction(engine, work)


def _observe(result: services.CloseResult) -> None:
    AUCTIONS_CLOSED.labels(result.outcome).inc()
    if result.lag_seconds is not None:
        CLOSER_LAG.observe(result.lag_seconds)


async def run(engine: AsyncEngine, stop: asyncio.Event, settings: Settings, *, interval: float = 0.2) -> None:
    """Close due auctions until ``stop`` is set, with ``workers`` concurrent claimers."""

    async def worker() -> None:
        while not stop.is_set():
            try:
                result = await close_one(engine, grace, settings)
            except Exception:
                log.exception("closing an auction failed; will retry")
                result = None
            if result is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval)

    async def housekeeping() -> None:
        """Lapsed negotiation offers are recorded as expired (their listings go back on offer)."""
        while not stop.is_set():
            try:
                await run_in_transaction(engine, offers.expire_due_threads)
            except Exception:
                log.exception("expiring offers failed; will retry")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 5)

    grace = timedelta(milliseconds=settings.close_grace_ms)
    await asyncio.gather(housekeeping(), *(worker() for _ in range(settings.closer_workers)))
