"""Instance presence: each instance reports its websocket watchers every 2 s (``instance_presence``).

The hub of one instance only knows its own watchers; the monitor sums the rows of every instance
seen within the last 10 s (a crashed instance simply stops counting). The same task reconciles the
ledger every 60 s and publishes the number of problems found as a gauge, and removes its row when
the instance stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import delete, func, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from auctions.monitor_tables import instance_presence
from market import ledger_store
from market.db import transaction
from market.metrics import LEDGER_PROBLEMS

log = logging.getLogger(__name__)

REFRESH_SECONDS = 2.0
RECONCILE_SECONDS = 60.0
FORGET_AFTER = "1 day"  # rows of instances gone this long are deleted


class Watched(Protocol):
    """What presence needs of the hub: its watchers per auction."""

    watchers: dict[int, Any]

    def watcher_count(self) -> int: ...


def new_instance_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def per_auction(hub: Watched) -> dict[str, int]:
    return {str(auction_id): len(group) for auction_id, group in list(hub.watchers.items()) if group}


async def beat(engine: AsyncEngine, hub: Watched, instance_id: str, started_at: datetime) -> None:
    """Upsert this instance's row with its current watchers."""
    values = {
        "instance_id": instance_id,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "watchers": hub.watcher_count(),
        "per_auction": per_auction(hub),
        "started_at": started_at,
        "seen_at": func.now(),
    }
    stmt = pg_insert(instance_presence).values(values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["instance_id"],
        set_={
            "watchers": stmt.excluded.watchers,
            "per_auction": stmt.excluded.per_auction,
            "seen_at": func.now(),
        },
    )
    async with transaction(engine) as conn:
        await conn.execute(stmt)


async def reconcile(engine: AsyncEngine) -> int:
    """Check every ledger invariant; set and return the number of problems."""
    async with engine.connect() as conn:
        problems = await ledger_store.reconcile(conn)
    LEDGER_PROBLEMS.set(len(problems))
    for problem in problems[:20]:
        log.error("ledger problem: %s", problem)
    return len(problems)


async def run(
    engine: AsyncEngine,
    hub: Watched,
    stop: asyncio.Event,
    *,
    refresh: float = REFRESH_SECONDS,
    reconcile_every: float = RECONCILE_SECONDS,
) -> None:
    """Report presence every ``refresh`` seconds and reconcile every ``reconcile_every`` until ``stop``."""
    instance_id = new_instance_id()
    async with engine.connect() as conn:
        started_at: datetime = (await conn.execute(text("SELECT now()"))).scalar_one()
    next_reconcile = time.monotonic() + min(5.0, reconcile_every)  # soon after start, then every minute
    try:
        while not stop.is_set():
            try:
                await beat(engine, hub, instance_id, started_at)
                if time.monotonic() >= next_reconcile:
                    next_reconcile = time.monotonic() + reconcile_every
                    await reconcile(engine)
                    await _forget_gone(engine)
            except Exception:
                log.exception("presence or reconcile failed; will retry")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), refresh)
    finally:
        with contextlib.suppress(Exception):
            async with transaction(engine) as conn:
                await conn.execute(
                    delete(instance_presence).where(instance_presence.c.instance_id == instance_id)
                )


async def _forget_gone(engine: AsyncEngine) -> None:
    async with transaction(engine) as conn:
        await conn.execute(
            delete(instance_presence).where(
                instance_presence.c.seen_at < func.now() - text(f"interval '{FORGET_AFTER}'")
            )
        )
