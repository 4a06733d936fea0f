"""WebSocket ``/ws/monitor``: the operator monitor, pushed live.

Operators only, authenticated before the handshake is accepted exactly like ``/ws/auctions``
(``web.ws._authenticate``: bearer token, ``?token=``, or the session cookie with an allowed
``Origin``); anyone else gets HTTP 403 and never a socket.

Push policy: one ``MonitorFeed`` per process computes the snapshot (``auctions.monitor``) once and
sends the same encoded frame to every monitor socket of the process. It recomputes **on NOTIFY**
(its own LISTEN on the auction events channel: a bid, an extension, a suspension … anywhere, on any
instance) and **every second** otherwise (the time-based figures: bids in the last minute, watchers,
closer lag). NOTIFYs arriving together are coalesced into one snapshot, at most one every 250 ms,
so a bid storm costs a few queries per second per instance, not one per bid. The suspects figure
(every involved bidder's history across auctions) is refreshed every 10 s only. The time from the
NOTIFY's arrival to the frame written is ``market_broadcast_lag_seconds{channel="monitor"}``.

Each socket keeps only the newest frame (a queue of one): a slow browser skips stale snapshots and
never holds anyone else up. Client messages: ``{"type": "ping"}`` → ``{"type": "pong"}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.websockets import WebSocket, WebSocketDisconnect

from auctions import monitor, store
from auctions.hub import asyncpg_dsn, encode
from market.metrics import BROADCAST_LAG, MONITOR_SNAPSHOT, WS_CONNECTIONS
from market.parties import Role
from web.ws import POLICY_VIOLATION, TRY_AGAIN, _authenticate

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0
MIN_INTERVAL_SECONDS = 0.25
LISTEN_RETRY_SECONDS = 5.0
SUSPECTS_SECONDS = 10.0


class Subscriber:
    """One socket's mailbox: only the newest frame (with the NOTIFY arrival time that caused it)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[str, float | None]] = asyncio.Queue(1)

    def offer(self, frame: str, notified_at: float | None) -> None:
        with contextlib.suppress(asyncio.QueueEmpty):
            self.queue.get_nowait()  # drop a stale frame nobody sent yet
        self.queue.put_nowait((frame, notified_at))


async def compute(engine: AsyncEngine, options: monitor.Options | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    async with engine.connect() as conn:
        snapshot = await monitor.snapshot(conn, options)
    MONITOR_SNAPSHOT.observe(time.perf_counter() - started)
    return {"type": "monitor", **snapshot}


class SuspectCache:
    """The suspects figure, recomputed at most every ``SUSPECTS_SECONDS`` (it reads every involved
    bidder's history across auctions; the other figures are cheap enough for every push)."""

    def __init__(self) -> None:
        self.value: list[dict[str, Any]] = []
        self.at = float("-inf")

    async def get(self, engine: AsyncEngine) -> list[dict[str, Any]]:
        if time.monotonic() - self.at >= SUSPECTS_SECONDS:
            async with engine.connect() as conn:
                self.value = await monitor.suspects(conn, None)
            self.at = time.monotonic()
        return self.value


async def compute_live(engine: AsyncEngine, cache: SuspectCache) -> dict[str, Any]:
    """A snapshot for the live feed: every figure fresh but the suspects (from ``cache``)."""
    snapshot = await compute(engine, monitor.Options(suspects=False))
    snapshot["suspects"] = await cache.get(engine)
    return snapshot


class MonitorFeed:
    """Computes and fans out monitor snapshots while at least one socket of this process listens."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.subscribers: set[Subscriber] = set()
        self._wake = asyncio.Event()
        self._notified_at: float | None = None  # first NOTIFY not yet covered by a snapshot
        self._task: asyncio.Task[None] | None = None
        self._listen: asyncpg.Connection | None = None
        self.suspects = SuspectCache()

    def subscribe(self) -> Subscriber:
        sub = Subscriber()
        self.subscribers.add(sub)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)
        if not self.subscribers and self._task is not None:
            self._task.cancel()
            self._task = None

    def _on_notify(self, *_args: Any) -> None:
        if self._notified_at is None:
            self._notified_at = time.monotonic()
        self._wake.set()

    async def _connect(self) -> None:
        if self._listen is not None and not self._listen.is_closed():
            return
        dsn = asyncpg_dsn(self.engine.url.render_as_string(hide_password=False))
        try:
            conn = await asyncpg.connect(dsn, server_settings={"application_name": "market-monitor"})
            await conn.add_listener(store.CHANNEL, self._on_notify)
            self._listen = conn
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("monitor LISTEN failed (%s); pushing every second only", exc)

    async def _run(self) -> None:
        last_listen_try = 0.0
        try:
            while self.subscribers:
                if (self._listen is None or self._listen.is_closed()) and (
                    time.monotonic() - last_listen_try >= LISTEN_RETRY_SECONDS
                ):
                    last_listen_try = time.monotonic()
                    await self._connect()
                started = time.monotonic()
                self._wake.clear()
                notified_at, self._notified_at = self._notified_at, None
                try:
                    frame = encode(await compute_live(self.engine, self.suspects))
                except Exception:
                    log.exception("monitor snapshot failed; will retry")
                else:
                    for sub in tuple(self.subscribers):
                        sub.offer(frame, notified_at)
                await asyncio.sleep(max(0.0, MIN_INTERVAL_SECONDS - (time.monotonic() - started)))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), max(0.0, TICK_SECONDS - MIN_INTERVAL_SECONDS))
        finally:
            if self._listen is not None:
                with contextlib.suppress(Exception):
                    await self._listen.close()
                self._listen = None


def feed_of(ws: WebSocket) -> MonitorFeed:
    state = ws.app.state
    feed: MonitorFeed | None = getattr(state, "monitor_feed", None)
    if feed is None:
        feed = MonitorFeed(state.engine)
        state.monitor_feed = feed
    return feed


async def monitor_socket(ws: WebSocket) -> None:
    actor = await _authenticate(ws)
    if actor is None or actor.role is not Role.OPERATOR:
        await ws.close(code=POLICY_VIOLATION)  # before accept: the client gets HTTP 403
        return
    registry = ws.app.state.ws_registry
    if not registry.admit(actor.user_id):
        await ws.close(code=TRY_AGAIN)
        return
    feed = feed_of(ws)
    sub = feed.subscribe()
    try:
        first = encode(await compute_live(ws.app.state.engine, feed.suspects))
        await ws.accept()
        WS_CONNECTIONS.inc()
        try:
            await ws.send_text(first)
            await _pump(ws, sub)
        finally:
            WS_CONNECTIONS.dec()
    finally:
        feed.unsubscribe(sub)
        registry.leave(actor.user_id)


async def _pump(ws: WebSocket, sub: Subscriber) -> None:
    sender = asyncio.create_task(_send(ws, sub))
    receiver = asyncio.create_task(_receive(ws))
    _done, pending = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def _send(ws: WebSocket, sub: Subscriber) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            frame, notified_at = await sub.queue.get()
            await ws.send_text(frame)
            if notified_at is not None:
                BROADCAST_LAG.labels("monitor").observe(time.monotonic() - notified_at)


async def _receive(ws: WebSocket) -> None:
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            raw = await ws.receive_text()
            try:
                message = json.loads(raw)
            except ValueError:
                continue
            if isinstance(message, dict) and message.get("type") == "ping":
                await ws.send_text(encode({"type": "pong"}))
