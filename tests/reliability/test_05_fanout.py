"""5. Fan-out completeness: 200 watchers spread over two instances, 1,000 bids — every watcher got
every event in order; the LISTEN connections (``application_name = 'market-hub'``) are killed with
``pg_terminate_backend`` twice mid-stream — 0 events lost after the hubs resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy.ext.asyncio import AsyncEngine

from market.parties import Role
from tests.e2e.conftest import Server
from tests.reliability import helpers as h
from tests.support.live import ws_url

pytestmark = pytest.mark.reliability
WATCHERS, USERS, BIDS, BIDDERS = 200, 40, 1000, 4
KILL_AT = (BIDS // 3, 2 * BIDS // 3)


class Counter:
    """A watcher that keeps only what it needs: the seqs it got, in arrival order."""

    def __init__(self, base_url: str, auction_id: int, token: str) -> None:
        self.url = ws_url(base_url, auction_id)
        self.headers = {"Authorization": f"Bearer {token}"}
        self.seqs: list[int] = []
        self.connected = asyncio.Event()
        self.closed: Any = None
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async with websockets.connect(self.url, additional_headers=self.headers, max_size=2**20) as ws:
                self.connected.set()
                async for raw in ws:
                    frame = json.loads(raw)
                    if frame.get("type") != "snapshot" and "seq" in frame:
                        self.seqs.append(frame["seq"])
        except websockets.ConnectionClosed as exc:
            self.closed = exc
        finally:
            self.connected.set()

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task


async def kill_hubs(engine: AsyncEngine) -> int:
    killed = await h.rows(
        engine,
        "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity "
        "WHERE application_name = 'market-hub' AND datname = current_database()",
    )
    return sum(1 for r in killed if r.ok)


async def test_every_watcher_gets_every_event_through_listen_loss(
    pair: list[Server], clients: list[httpx.AsyncClient], engine: AsyncEngine
) -> None:
    bank = await h.who(engine, Role.BANK)
    bidders = await h.many(engine, Role.BUYER, BIDDERS)
    viewers = await h.many(engine, Role.BUYER, USERS)
    a = await h.auction(clients[0], bank, bidders, seconds=900)
    watchers = [Counter(pair[i % 2].url, a.id, viewers[i % USERS].token) for i in range(WATCHERS)]
    await asyncio.wait_for(asyncio.gather(*(w.connected.wait() for w in watchers)), 60)
    assert all(w.closed is None for w in watchers), "a watcher was refused"
    hubs_before = await h.scalar(
        engine,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'market-hub' "
        "AND datname = current_database()",
    )
    killed = []
    started = time.monotonic()
    for i in range(BIDS):
        if i in KILL_AT:
            killed.append(await kill_hubs(engine))
        r = await clients[i % 2].post(
            f"/api/v1/auctions/{a.id}/bids",
            headers=bidders[i % BIDDERS].headers,
            json={"amount_fen": h.START + i * h.INCREMENT},
        )
        assert r.status_code == 201, r.text
        if time.monotonic() - started > 120:
            pytest.fail(f"only {i} bids in 120 s")
    bidding = time.monotonic() - started
    expected = list(range(1, BIDS + 1))

    async def everyone_has_all() -> bool:
        return all(len(w.seqs) >= BIDS for w in watchers)

    complete = await h.wait_until(everyone_has_all, 60, interval=0.2)
    drained = time.monotonic() - started
    hubs_after = await h.scalar(
        engine,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'market-hub' "
        "AND datname = current_database()",
    )
    await asyncio.sleep(0.3)  # anything more would be a duplicate
    for w in watchers:
        await w.stop()
    wrong = [i for i, w in enumerate(watchers) if w.seqs != expected]
    lost = sum(len(set(expected) - set(w.seqs)) for w in watchers)
    dupes = sum(len(w.seqs) - len(set(w.seqs)) for w in watchers)
    after_kill = [sum(1 for s in w.seqs if s > KILL_AT[0]) for w in watchers]
    print(
        f"\n[fanout] {WATCHERS} watchers ({USERS} users) over 2 instances, {BIDS} bids in {bidding:.1f}s, "
        f"{WATCHERS * BIDS} frames expected; LISTEN connections killed mid-stream at bids {KILL_AT}: "
        f"{killed} (hubs before {hubs_before}, after {hubs_after}); all delivered {drained:.1f}s after the "
        f"first bid; events lost {lost}, duplicated {dupes}, watchers out of order or incomplete "
        f"{len(wrong)}; "
        f"events after the first kill per watcher min {min(after_kill)}"
    )
    assert all(k >= 2 for k in killed), "both instances' hubs were killed each time"
    assert complete and not wrong, f"watcher {wrong[:1]} got {watchers[wrong[0]].seqs[:20] if wrong else ''}"
    assert lost == 0 and dupes == 0
