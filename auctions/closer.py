"""The closer: every instance runs one; due auctions are claimed with ``FOR UPDATE SKIP LOCKED``.

Each auction closes in its own transaction, after a short grace past ``ends_at`` so that a
bid received before the end (its transaction already started) still lands. A restart, a
second instance or a retry changes nothing: closing is a locked, idempotent state change.

An auction whose close fails for a reason of its own (not the database going away) is left for
a while — 5 s, doubling up to 5 min — so that the auctions due after it still close; it is
logged each time and retried until it closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Collection
from datetime import timedelta

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from auctions import services, store
from listings import offers
from market.config import Settings
from market.db import retryable, run_in_transaction
from market.metrics import AUCTIONS_CLOSED, CLOSER_LAG

log = logging.getLogger(__name__)

QUARANTINE_FIRST = 5.0  # seconds before an auction whose close failed is tried again; doubling
QUARANTINE_MAX = 300.0


class CloseFailed(Exception):
    """Closing one auction failed in a way a retry in the same moment would not fix."""

    def __init__(self, auction_id: int) -> None:
        super().__init__(f"closing auction {auction_id} failed")
        self.auction_id = auction_id


async def close_one(
    engine: AsyncEngine, grace: timedelta, settings: Settings, avoid: Collection[int] = ()
) -> services.CloseResult | None:
    """Claim one due auction nobody else holds (and not in ``avoid``) and close it; None when
    nothing is due.

    Raises:
        CloseFailed: the claimed auction could not be closed (the transaction was rolled back).
    """
    claimed: list[int] = []

    async def work(conn: object) -> services.CloseResult | None:
        from sqlalchemy.ext.asyncio import AsyncConnection

        assert isinstance(conn, AsyncConnection)
        claimed.clear()
        locked = await store.lock_due(conn, grace, avoid)
        if locked is None:
            return None
        claimed.append(locked.id)
        result = await services.close_auction(conn, locked.id, settings, locked=locked)
        if result.outcome in ("closed", "failed"):
            _observe(result)
        return result

    try:
        return await run_in_transaction(engine, work)
    except Exception as exc:
        transient = isinstance(exc, DBAPIError) and retryable(exc)  # the database going away
        if claimed and not transient:  # this auction's own failure
            raise CloseFailed(claimed[0]) from exc
        raise


def _observe(result: services.CloseResult) -> None:
    AUCTIONS_CLOSED.labels(result.outcome).inc()
    if result.lag_seconds is not None:
        CLOSER_LAG.observe(result.lag_seconds)


async def run(engine: AsyncEngine, stop: asyncio.Event, settings: Settings, *, interval: float = 0.2) -> None:
    """Close due auctions until ``stop`` is set, with ``workers`` concurrent claimers."""

    quarantine: dict[int, tuple[float, float]] = {}  # auction -> (retry after, backoff)

    async def worker() -> None:
        while not stop.is_set():
            now = time.monotonic()
            avoid = [a for a, (until, _) in quarantine.items() if until > now]
            try:
                result = await close_one(engine, grace, settings, avoid)
            except CloseFailed as exc:
                # one auction that cannot be closed must not hold up the others due after it
                previous = quarantine.get(exc.auction_id, (0.0, QUARANTINE_FIRST / 2))[1]
                backoff = min(QUARANTINE_MAX, previous * 2)
                quarantine[exc.auction_id] = (time.monotonic() + backoff, backoff)
                log.exception("closing auction %s failed; retrying it in %.0f s", exc.auction_id, backoff)
                continue
            except Exception:
                log.exception("closing an auction failed; will retry")
                result = None
            if result is not None:
                quarantine.pop(result.auction_id, None)
            else:
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
