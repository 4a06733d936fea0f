"""8. WebSocket handshake and abuse.

Refused before accept (the handshake answers HTTP 403, no socket is ever opened): no credentials,
a garbage token, a foreign ``Origin`` with a valid session cookie, an expired session cookie, an
expired or revoked bearer token. Then, on one instance: a 1 MiB frame, 100 messages a second,
20 sockets for one user, 10,000 garbage frames — each closed or throttled — while 10 ordinary
watchers follow a stream of bids on the same instance: they get every event in order, and the
server's memory (RSS) grows by a bounded amount.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time
from typing import Any

import httpx
import psutil
import pytest
import websockets
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from market import identity
from market.db import transaction
from market.parties import Role
from tests.e2e.conftest import Server
from tests.reliability import helpers as h
from tests.reliability.test_05_fanout import Counter
from tests.support.live import ws_url

pytestmark = pytest.mark.reliability
RSS_BOUND = 64 * 2**20


async def handshake(url: str, headers: dict[str, str]) -> int:
    """The HTTP status of the handshake: 101 when a socket opened, else the refusal."""
    try:
        async with websockets.connect(url, additional_headers=headers, open_timeout=10):
            return 101
    except websockets.InvalidStatus as exc:
        return int(exc.response.status_code)


async def expire(engine: AsyncEngine, token: str, how: str = "expire") -> None:
    change = "expires_at = now() - interval '1 second'" if how == "expire" else "revoked_at = now()"
    async with transaction(engine) as conn:
        await conn.execute(
            text(f"UPDATE sessions SET {change} WHERE token_hash = :t"), {"t": identity.token_digest(token)}
        )


async def test_refused_before_accept(
    pair: list[Server], clients: list[httpx.AsyncClient], engine: AsyncEngine
) -> None:
    bank = await h.who(engine, Role.BANK)
    a = await h.auction(clients[0], bank, [], seconds=600)
    base = pair[0].url
    url = ws_url(base, a.id)
    buyer = await h.who(engine, Role.BUYER)
    own = {"Origin": base}
    cookie = {"Cookie": f"market_session={buyer.cookie}"}
    expired_cookie = await h.token_for(engine, buyer.user_id, "cookie")
    expired_bearer = await h.token_for(engine, buyer.user_id, "bearer")
    revoked_bearer = await h.token_for(engine, buyer.user_id, "bearer")
    await expire(engine, expired_cookie)
    await expire(engine, expired_bearer)
    await expire(engine, revoked_bearer, "revoke")
    cases = {
        "no credentials": (url, {}),
        "no credentials, own origin": (url, own),
        "garbage bearer token": (url, {"Authorization": "Bearer not-a-token"}),
        "foreign Origin + valid cookie": (url, {**cookie, "Origin": "https://evil.example"}),
        "Origin null + valid cookie": (url, {**cookie, "Origin": "null"}),
        "valid cookie, no Origin": (url, cookie),
        "expired session cookie": (url, {"Cookie": f"market_session={expired_cookie}", **own}),
        "expired bearer token": (url, {"Authorization": f"Bearer {expired_bearer}"}),
        "expired token in ?token=": (url + f"?token={expired_bearer}", {}),
        "revoked bearer token": (url, {"Authorization": f"Bearer {revoked_bearer}"}),
        "bearer token of a session cookie": (url, {"Authorization": f"Bearer {buyer.cookie}"}),
    }
    got = {name: await handshake(u, hd) for name, (u, hd) in cases.items()}
    control = {
        "valid cookie + own Origin": await handshake(url, {**cookie, **own}),
        "valid bearer token": await handshake(url, buyer.headers),
    }
    refused = sum(1 for s in got.values() if s == 403)
    print(
        f"\n[ws-handshake] {refused}/{len(got)} bad handshakes refused with HTTP 403 before accept "
        f"({', '.join(f'{k}: {v}' for k, v in got.items())}); controls opened: {control}"
    )
    assert all(s == 403 for s in got.values()), got
    assert set(control.values()) == {101}, control


def rss(server: Server) -> int:
    return int(psutil.Process(server.process.pid).memory_info().rss)


async def closed_code(ws: Any, timeout: float = 10) -> int | None:
    """Read until the server closes the socket; its close code (None if it stayed open)."""
    try:
        async with asyncio.timeout(timeout):
            async for _ in ws:
                pass
    except TimeoutError:
        return None
    except websockets.ConnectionClosed:
        pass
    rcvd = getattr(ws, "close_rcvd", None) or getattr(ws, "close_sent", None)
    return rcvd.code if rcvd is not None else ws.close_code


async def test_abuse_is_closed_or_throttled_and_others_are_unaffected(
    pair: list[Server], clients: list[httpx.AsyncClient], engine: AsyncEngine
) -> None:
    server = pair[0]
    bank = await h.who(engine, Role.BANK)
    bidders = await h.many(engine, Role.BUYER, 2)
    abuser = await h.who(engine, Role.BUYER)
    viewers = await h.many(engine, Role.BUYER, 10)
    a = await h.auction(clients[0], bank, [*bidders, abuser], seconds=900)
    url = ws_url(server.url, a.id)
    watchers = [Counter(server.url, a.id, v.token) for v in viewers]
    await asyncio.wait_for(asyncio.gather(*(w.connected.wait() for w in watchers)), 30)
    rss_before = rss(server)
    latencies: list[float] = []
    stop = asyncio.Event()

    async def bid_stream() -> int:
        i = 0
        while not stop.is_set() and i < 400:
            t = time.monotonic()
            r = await clients[0].post(
                f"/api/v1/auctions/{a.id}/bids",
                headers=bidders[i % 2].headers,
                json={"amount_fen": h.START + i * h.INCREMENT},
            )
            assert r.status_code == 201, r.text
            latencies.append(time.monotonic() - t)
            i += 1
            await asyncio.sleep(0.05)
        return i

    stream = asyncio.create_task(bid_stream())
    results: dict[str, Any] = {}

    # a 1 MiB frame: bigger than uvicorn's ws_max_size (64 KiB) -> closed with 1009
    async with websockets.connect(url, additional_headers=abuser.headers, max_size=2**21) as ws:
        await ws.recv()
        with contextlib.suppress(websockets.ConnectionClosed):
            await ws.send("x" * 2**20)
        results["1MiB frame: close code"] = await closed_code(ws)

    # 100 messages a second for 3 seconds: rate-limited answers, then closed (1008)
    async with websockets.connect(url, additional_headers=abuser.headers) as ws:
        await ws.recv()
        replies: list[str] = []

        async def read() -> None:
            with contextlib.suppress(websockets.ConnectionClosed):
                async for raw in ws:
                    replies.append(json.loads(raw).get("code") or json.loads(raw).get("type"))

        reader = asyncio.create_task(read())
        sent = 0
        with contextlib.suppress(websockets.ConnectionClosed):
            for _ in range(300):
                await ws.send(json.dumps({"type": "ping"}))
                sent += 1
                await asyncio.sleep(0.01)
        code = await closed_code(ws, 5)
        reader.cancel()
        results["100 msg/s"] = {
            "sent": sent,
            "pong": replies.count("pong"),
            "rate_limited": replies.count("rate_limited"),
            "close code": code,
        }

    # 20 sockets for one user on one instance: the per-user cap admits 10
    opened, statuses = [], []
    for _ in range(20):
        try:
            opened.append(await websockets.connect(url, additional_headers=abuser.headers, open_timeout=10))
            statuses.append(101)
        except websockets.InvalidStatus as exc:
            statuses.append(exc.response.status_code)
    for ws in opened:
        await ws.close()
    results["20 sockets"] = {s: statuses.count(s) for s in sorted(set(statuses))}

    # 10,000 garbage frames (text and binary) as fast as possible: closed long before the end
    async with websockets.connect(url, additional_headers=abuser.headers) as ws:
        await ws.recv()
        sent = 0
        rng = random.Random(8)
        with contextlib.suppress(websockets.ConnectionClosed):
            for n in range(10_000):
                frame: str | bytes = (
                    rng.randbytes(rng.randint(1, 512))
                    if n % 2
                    else "".join(chr(rng.randint(32, 0x2FFF)) for _ in range(rng.randint(1, 64)))
                )
                await ws.send(frame)
                sent += 1
                if sent % 50 == 0:  # let the client read: a close frame ends the flood as soon as it arrives
                    await asyncio.sleep(0)
        results["10,000 garbage frames"] = {"sent before close": sent, "close code": await closed_code(ws)}

    await asyncio.sleep(1.0)
    stop.set()
    bids = await stream
    rss_after = rss(server)
    last = bids + 0
    await h.wait_until(lambda: _all_have(watchers, last), 30)
    for w in watchers:
        await w.stop()
    complete = [w.seqs == list(range(1, last + 1)) for w in watchers]
    growth = rss_after - rss_before
    print(
        f"\n[ws-abuse] {json.dumps(results)}; meanwhile {bids} bids: latency p50 "
        f"{h.percentile(latencies, 50) * 1000:.0f}ms p99 {h.percentile(latencies, 99) * 1000:.0f}ms; "
        f"{sum(complete)}/{len(watchers)} other watchers got every event in order; server RSS "
        f"{rss_before / 2**20:.0f} -> {rss_after / 2**20:.0f} MiB (growth {growth / 2**20:.1f} MiB, "
        f"bound {RSS_BOUND / 2**20:.0f}) [pid {server.process.pid}, test pid {os.getpid()}]"
    )
    assert results["1MiB frame: close code"] == 1009
    assert results["100 msg/s"]["rate_limited"] > 0 and results["100 msg/s"]["close code"] == 1008
    assert results["20 sockets"] == {101: 10, 403: 10}
    assert results["10,000 garbage frames"]["close code"] is not None
    assert results["10,000 garbage frames"]["sent before close"] < 10_000
    assert all(complete), "an ordinary watcher missed events during the abuse"
    assert growth < RSS_BOUND


async def _all_have(watchers: list[Counter], last: int) -> bool:
    return all(len(w.seqs) >= last for w in watchers)
