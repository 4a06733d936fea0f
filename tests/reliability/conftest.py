"""Fixtures of the reliability suite: two real instances on one database, and the bid storm.

Every test here talks to real ``market serve`` processes on 127.0.0.1 (HTTP and websockets)
and prints the figure it measured (``[name] ...``). Every loop is bounded in count and time.
The bid storm is a session fixture: test 1 checks it, test 6 replays it.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy.ext.asyncio import AsyncEngine

from market.parties import Role
from tests.e2e.conftest import Server
from tests.reliability import helpers as h
from tests.support.live import Watcher, ws_url


@pytest.fixture(scope="session")
def pair(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Server]]:
    """Two instances of the service sharing the test database (closers and hubs in both)."""
    servers = h.start_servers(2, {"DATABASE_URL": database_url}, tmp_path_factory.mktemp("pair"))
    yield servers
    h.stop_servers(servers)


@pytest.fixture
async def clients(pair: list[Server]) -> AsyncIterator[list[httpx.AsyncClient]]:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
    async with (
        httpx.AsyncClient(base_url=pair[0].url, timeout=60, limits=limits) as a,
        httpx.AsyncClient(base_url=pair[1].url, timeout=60, limits=limits) as b,
    ):
        yield [a, b]


class WsBidder:
    """One websocket of one buyer, used to bid; acks and errors matched by ``request_id``."""

    def __init__(self, base_url: str, auction_id: int, token: str) -> None:
        self.url = ws_url(base_url, auction_id)
        self.headers = {"Authorization": f"Bearer {token}"}
        self.ws: Any = None
        self.pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.reader: asyncio.Task[None] | None = None

    async def open(self) -> WsBidder:
        self.ws = await websockets.connect(self.url, additional_headers=self.headers, max_size=2**20)
        self.reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                msg = json.loads(raw)
                fut = self.pending.pop(msg.get("request_id") or "", None)
                if fut is not None and not fut.done() and msg.get("type") in ("ack", "error"):
                    fut.set_result(msg)
        except websockets.ConnectionClosed:
            pass
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError("socket closed"))

    async def bid(self, request_id: str, amount_fen: int, timeout: float = 30.0) -> dict[str, Any]:
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = fut
        await self.ws.send(json.dumps({"type": "bid", "request_id": request_id, "amount_fen": amount_fen}))
        return await asyncio.wait_for(fut, timeout)

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
        if self.ws is not None:
            await self.ws.close()


@dataclass
class Storm:
    auction: h.Auction
    sent: int
    acks: list[dict[str, Any]]
    refusals: list[dict[str, Any]]  # {"amount_fen", "code", ...}
    elapsed: float
    watchers: list[Watcher] = field(default_factory=list)


async def run_storm(
    clients: list[httpx.AsyncClient], servers: list[Server], a: h.Auction, per_bidder: int, deadline: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """Every buyer of ``a`` bids ``per_bidder`` times at about the next valid amount, a third of
    them over websockets, alternating instances; returns (acks, refusals, sent)."""
    price = [h.START]
    acks: list[dict[str, Any]] = []
    refusals: list[dict[str, Any]] = []
    sockets: list[WsBidder] = []
    sent = [0]
    stop_at = time.monotonic() + deadline

    async def loop(send: Any) -> None:
        for _ in range(per_bidder):
            if time.monotonic() > stop_at:
                return
            amount = max(price[0], h.START) + h.INCREMENT * random.randint(0, 2)
            sent[0] += 1
            result = await send(amount)
            if result.get("ok"):
                acks.append(result)
                price[0] = max(price[0], result["amount_fen"] + h.INCREMENT)
            else:
                refusals.append({"amount_fen": amount, **result})
                if result.get("minimum_fen"):
                    price[0] = max(price[0], result["minimum_fen"])

    def http_sender(client: httpx.AsyncClient, buyer: h.Who) -> Any:
        async def send(amount: int) -> dict[str, Any]:
            r = await client.post(
                f"/api/v1/auctions/{a.id}/bids",
                headers={**buyer.headers, "Idempotency-Key": uuid.uuid4().hex},
                json={"amount_fen": amount},
            )
            body = r.json()
            return {"ok": True, "via": "http", **body} if r.status_code == 201 else {"ok": False, **body}

        return send

    def ws_sender(ws: WsBidder, tag: str) -> Any:
        counter = iter(range(10**9))

        async def send(amount: int) -> dict[str, Any]:
            msg = await ws.bid(f"{tag}-{next(counter)}", amount)
            return {"ok": True, "via": "ws", **msg} if msg["type"] == "ack" else {"ok": False, **msg}

        return send

    tasks = []
    for i, buyer in enumerate(a.buyers):
        if i % 3 == 0:
            ws = await WsBidder(servers[i % 2].url, a.id, buyer.token).open()
            sockets.append(ws)
            tasks.append(loop(ws_sender(ws, f"b{i}")))
        else:
            tasks.append(loop(http_sender(clients[i % 2], buyer)))
    try:
        await asyncio.gather(*tasks)
    finally:
        for ws in sockets:
            await ws.close()
    return acks, refusals, sent[0]


@pytest.fixture(scope="session")
async def storm(pair: list[Server], engine: AsyncEngine) -> AsyncIterator[Storm]:
    """1,000 bids from 50 bidders on one auction through both instances (HTTP and websockets)."""
    bidders, per_bidder = 50, 20
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
    async with (
        httpx.AsyncClient(base_url=pair[0].url, timeout=60, limits=limits) as c0,
        httpx.AsyncClient(base_url=pair[1].url, timeout=60, limits=limits) as c1,
    ):
        bank = await h.who(engine, Role.BANK)
        buyers = await h.many(engine, Role.BUYER, bidders)
        a = await h.auction(c0, bank, buyers, seconds=900)
        watchers = [Watcher(pair[i % 2].url, a.id, buyers[i].token).start() for i in range(10)]
        await asyncio.wait_for(asyncio.gather(*(w.connected.wait() for w in watchers)), 30)
        started = time.monotonic()
        acks, refusals, sent = await run_storm([c0, c1], pair, a, per_bidder, deadline=240)
        elapsed = time.monotonic() - started
        yield Storm(a, sent, acks, refusals, elapsed, watchers)
        for w in watchers:
            await w.stop()
