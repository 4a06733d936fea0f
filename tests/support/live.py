"""Clients for a running service: HTTP (httpx) and websocket watchers/bidders (websockets)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets
from sqlalchemy.ext.asyncio import AsyncEngine

from market import identity
from market.db import transaction
from market.parties import Role
from tests.support.factories import PASSWORD, Party, credit_code, email


async def party(engine: AsyncEngine, base_url: str, kind: Role, *, verified: bool = True) -> Party:
    addr = email(kind.value)
    async with transaction(engine) as conn:
        if kind is Role.OPERATOR:
            user = await identity.create_operator(conn, email=addr, password=PASSWORD)
        else:
            org = await identity.create_org(
                conn,
                None,
                name=f"{kind.value}-{addr[:10]}",
                kind=kind,
                credit_code=credit_code(),
                verified=verified,
            )
            user = await identity.create_user(conn, None, org_id=org.id, email=addr, password=PASSWORD)
    async with httpx.AsyncClient(base_url=base_url) as c:
        r = await c.post("/api/v1/session", json={"email": addr, "password": PASSWORD})
        assert r.status_code == 201, r.text
    return Party(user.org_id, user.id, addr, r.json()["token"])


def ws_url(base_url: str, auction_id: int, since: int | None = None) -> str:
    url = base_url.replace("http://", "ws://") + f"/ws/auctions/{auction_id}"
    return url + (f"?since={since}" if since is not None else "")


@dataclass
class Watcher:
    """A websocket watcher that records every frame it receives."""

    base_url: str
    auction_id: int
    token: str
    since: int | None = None
    frames: list[dict[str, Any]] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def start(self) -> Watcher:
        self.task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with websockets.connect(
            ws_url(self.base_url, self.auction_id, self.since), additional_headers=headers, max_size=2**20
        ) as ws:
            self.connected.set()
            async for raw in ws:
                self.frames.append(json.loads(raw))

    @property
    def events(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if "seq" in f and f.get("type") != "snapshot"]

    @property
    def snapshot(self) -> dict[str, Any]:
        return next(f for f in self.frames if f.get("type") == "snapshot")

    async def wait_for_seq(self, seq: int, timeout: float = 10.0) -> None:
        async def done() -> None:
            while not any(e["seq"] >= seq for e in self.events):
                await asyncio.sleep(0.02)

        await asyncio.wait_for(done(), timeout)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task


class WsBidder:
    """One websocket used to place bids and read their acks."""

    def __init__(self, base_url: str, auction_id: int, token: str) -> None:
        self.url = ws_url(base_url, auction_id)
        self.headers = {"Authorization": f"Bearer {token}"}
        self.ws: Any = None
        self.pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> WsBidder:
        self.ws = await websockets.connect(self.url, additional_headers=self.headers)
        self.reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        async for raw in self.ws:
            msg = json.loads(raw)
            if msg.get("type") in ("ack", "error") and msg.get("request_id") in self.pending:
                self.pending.pop(msg["request_id"]).set_result(msg)

    async def bid(self, request_id: str, amount_fen: int, timeout: float = 10.0) -> dict[str, Any]:
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = fut
        await self.ws.send(json.dumps({"type": "bid", "request_id": request_id, "amount_fen": amount_fen}))
        return await asyncio.wait_for(fut, timeout)

    async def __aexit__(self, *exc: object) -> None:
        if self.reader is not None:
            self.reader.cancel()
        await self.ws.close()
