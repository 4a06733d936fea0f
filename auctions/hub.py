"""The live hub: fan-out of auction events to this instance's websocket watchers.

The hub holds no truth. Committed ``auction_events`` rows are the truth; ``pg_notify`` tells
every instance, whose hub LISTENs on one dedicated connection and pushes each event, encoded
once, into bounded per-watcher queues. A watcher whose queue is full is dropped (it reconnects
with ``since``) and never slows anyone else. If the LISTEN connection is lost, the hub
reconnects and reads from the table every event it may have missed, so nothing is lost;
watchers drop duplicates by ``seq`` and fill gaps from the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from auctions import store
from market.metrics import NOTIFY_LAG, WS_DROPPED

log = logging.getLogger(__name__)
QUEUE_LIMIT = 2000


class Watcher:
    """One websocket's subscription: a bounded queue of encoded frames, in ``seq`` order.

    Once the socket has caught up (snapshot, replay and queue sent), its handler may hand the
    watcher a ``writer``: the hub then writes each event's websocket frame — built once for all
    watchers — straight to the socket's transport, with no task wakeup per watcher. A writer that
    cannot take a frame (socket closing, or more than its buffer limit unsent: a slow consumer)
    drops the watcher, and the socket is closed with "reconnect with since".
    """

    def __init__(self, auction_id: int, limit: int = QUEUE_LIMIT) -> None:
        self.auction_id = auction_id
        self.queue: asyncio.Queue[tuple[int, str] | None] = asyncio.Queue(limit)
        self.dropped = False
        self.writer: Callable[[bytes], bool] | None = None
        self.sent_seq = 0  # with a writer: the last seq on the wire (the snapshot's, at first)

    def offer(self, seq: int, frame: str, wire: Callable[[], bytes] | None = None) -> None:
        if self.dropped:
            return
        if self.writer is not None and wire is not None:
            if seq <= self.sent_seq:
                return  # covered by the snapshot or the replay
            if self.writer(wire()):
                self.sent_seq = seq
                return
            self._drop()
            return
        try:
            self.queue.put_nowait((seq, frame))
        except asyncio.QueueFull:
            self._drop()

    def _drop(self) -> None:
        self.dropped = True
        self.writer = None
        WS_DROPPED.inc()
        with contextlib.suppress(asyncio.QueueFull):
            if self.queue.full():
                self.queue.get_nowait()
            self.queue.put_nowait(None)  # wake the sender so it can close the socket


def text_frame(payload: bytes) -> bytes:
    """An unmasked, uncompressed, final websocket text frame (RFC 6455 5.2) — what a server sends."""
    n = len(payload)
    if n < 126:
        header = bytes((0x81, n))
    elif n < 1 << 16:
        header = bytes((0x81, 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + n.to_bytes(8, "big")
    return header + payload


def encode(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


class Hub:
    def __init__(self, engine: AsyncEngine, dsn: str) -> None:
        self.engine = engine
        self.dsn = dsn
        self.watchers: dict[int, set[Watcher]] = {}
        self.last_seq: dict[int, int] = {}
        self.inbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._conn: asyncpg.Connection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._connected = asyncio.Event()
        self.reconnects = 0

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen_forever()),
            asyncio.create_task(self._dispatch_forever()),
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), 10)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._conn is not None and not self._conn.is_closed():
            with contextlib.suppress(Exception):
                await self._conn.close()

    async def _listen_forever(self) -> None:
        delay = 0.1
        while True:
            try:
                conn = await asyncpg.connect(self.dsn, server_settings={"application_name": "market-hub"})
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, ev=lost: ev.set())
                await conn.add_listener(store.CHANNEL, self._on_notify)
                self._conn = conn
                if self._connected.is_set():  # a reconnect: fetch what we may have missed
                    self.reconnects += 1
                    self.inbox.put_nowait({"catch_up": True})
                self._connected.set()
                delay = 0.1
                await self._hold(conn, lost)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("hub LISTEN connection lost: %s; reconnecting", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _hold(self, conn: asyncpg.Connection, lost: asyncio.Event) -> None:
        """Keep the LISTEN connection; probe it so a silently dead socket is noticed."""
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), 5)
            if not lost.is_set():
                try:
                    await asyncio.wait_for(conn.execute("SELECT 1"), 5)
                except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    break
        with contextlib.suppress(Exception):
            await conn.close()

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            return
        message["received"] = time.monotonic()
        self.inbox.put_nowait(message)

    # ----------------------------------------------------------------- dispatch (one task: keeps order)

    async def _dispatch_forever(self) -> None:
        while True:
            message = await self.inbox.get()
            if message is None:
                return
            try:
                await self._dispatch(message)
            except Exception:
                log.exception("hub dispatch failed")

    async def _dispatch(self, message: dict[str, Any]) -> None:
        if message.get("catch_up"):
            for auction_id in list(self.watchers):
                await self._fill(auction_id, None)
            return
        auction_id = int(message["a"])
        if auction_id not in self.watchers:
            self.last_seq[auction_id] = max(self.last_seq.get(auction_id, 0), _last(message))
            return
        events = message.get("e")
        if events is None:
            await self._fill(auction_id, int(message["to"]))
            return
        first = events[0]["seq"]
        if first > self.last_seq.get(auction_id, first - 1) + 1:
            await self._fill(auction_id, first - 1)  # a gap: read it from the table first
        for event in events:
            self._deliver(auction_id, event)
        if "received" in message:
            NOTIFY_LAG.observe(max(0.0, time.monotonic() - message["received"]))

    async def _fill(self, auction_id: int, upto: int | None) -> None:
        after = self.last_seq.get(auction_id, 0)
        async with self.engine.connect() as conn:
            events = await store.events_after(conn, auction_id, after, upto)
        for event in events:
            self._deliver(auction_id, event)

    def _deliver(self, auction_id: int, event: dict[str, Any]) -> None:
        seq = int(event["seq"])
        if seq <= self.last_seq.get(auction_id, 0):
            return
        self.last_seq[auction_id] = seq
        frame = encode(event)  # encoded once, the same string for every watcher
        wire: list[bytes] = []

        def framed() -> bytes:  # and framed once, for every watcher written to directly
            if not wire:
                wire.append(text_frame(frame.encode()))
            return wire[0]

        for watcher in tuple(self.watchers.get(auction_id, ())):
            watcher.offer(seq, frame, framed)

    # ----------------------------------------------------------------- watchers

    def subscribe(self, auction_id: int) -> Watcher:
        """Start buffering live events for a new watcher (before it reads its snapshot)."""
        watcher = Watcher(auction_id)
        self.watchers.setdefault(auction_id, set()).add(watcher)
        return watcher

    def note_seq(self, auction_id: int, seq: int) -> None:
        """A watcher's snapshot was read at ``seq``: if the hub has not yet heard of this auction,
        events up to ``seq`` are served from the table and need not be fetched again."""
        self.last_seq.setdefault(auction_id, seq)

    def unsubscribe(self, watcher: Watcher) -> None:
        group = self.watchers.get(watcher.auction_id)
        if group is not None:
            group.discard(watcher)
            if not group:
                del self.watchers[watcher.auction_id]

    def watcher_count(self) -> int:
        return sum(len(g) for g in self.watchers.values())

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()


def _last(message: dict[str, Any]) -> int:
    events = message.get("e")
    if events:
        return int(events[-1]["seq"])
    return int(message.get("to", 0))


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    """The plain libpq URL for asyncpg from a ``postgresql+asyncpg://`` URL."""
    return sqlalchemy_url.replace("postgresql+asyncpg://", "postgresql://", 1)


Factory = Callable[[], Hub]
