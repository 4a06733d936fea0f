"""WebSocket ``/ws/auctions/{id}?since=N``: snapshot, replay from the table, then live events.

Authentication happens before the handshake is accepted (bearer token in the
``Authorization`` header or ``?token=``, or the session cookie with an allowed ``Origin``);
a refused handshake never becomes a socket. Two tasks per socket (websockets' consumer /
producer pattern): one reads client messages (bids, pings) and runs each bid in its own
transaction; one drains the watcher's bounded queue. When either ends, the other is
cancelled. Messages are rate-limited and frames are size-capped (uvicorn ``ws_max_size``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.protocol import State

from auctions import bidqueue, events as ev, hub as hubmod, services, store
from market import identity
from market.db import run_autocommit, transaction
from market.errors import MarketError
from market.metrics import BID_LATENCY, BIDS, WS_CONNECTIONS
from market.parties import Actor
from web import auth
from web.api import canonical_order
from web.middleware import WS_PROTOCOL

UNSUPPORTED_DATA = 1003
POLICY_VIOLATION = 1008
TRY_AGAIN = 1013
SLOW_CONSUMER = 4008
MAX_REQUEST_ID = 100


class TokenBucket:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst, self.tokens, self.at = rate, burst, burst, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


async def _authenticate(ws: WebSocket) -> Actor | None:
    token = auth.bearer_token(ws) or ws.query_params.get("token")
    async with transaction(ws.app.state.engine) as conn:
        if token:
            return await identity.resolve_token(conn, token, kind="bearer")
        cookie = ws.cookies.get(auth.SESSION_COOKIE)
        if not cookie:
            return None
        origin = ws.headers.get("origin")
        if not origin or not auth.same_origin(ws, origin):
            return None  # a cookie from a foreign page: cross-site websocket hijacking
        return await identity.resolve_token(conn, cookie, kind="cookie")


def _parse_since(ws: WebSocket) -> int | None:
    raw = ws.query_params.get("since")
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise ValueError("since must be a non-negative integer")
    return int(raw)


async def auction_socket(ws: WebSocket) -> None:
    raw_id = str(ws.path_params.get("auction_id", ""))
    try:
        since = _parse_since(ws)
    except ValueError:
        await ws.close(code=POLICY_VIOLATION)
        return
    if not (raw_id.isascii() and raw_id.isdigit()) or len(raw_id) > 18:
        await ws.close(code=POLICY_VIOLATION)
        return
    actor = await _authenticate(ws)
    if actor is None:
        await ws.close(code=POLICY_VIOLATION)  # before accept: the client gets HTTP 403
        return
    registry = ws.app.state.ws_registry
    if not registry.admit(actor.user_id):
        await ws.close(code=TRY_AGAIN)
        return
    try:
        await _serve(ws, actor, int(raw_id), since)
    finally:
        registry.leave(actor.user_id)


async def _serve(ws: WebSocket, actor: Actor, auction_id: int, since: int | None) -> None:
    hub: hubmod.Hub = ws.app.state.hub
    watcher = hub.subscribe(auction_id)
    try:
        async with ws.app.state.engine.connect() as conn:
            snapshot = await _snapshot(conn, actor, auction_id)
            if snapshot is None:
                await ws.close(code=POLICY_VIOLATION)
                return
            replay = (
                await store.events_after(conn, auction_id, since, snapshot["seq"])
                if since is not None
                else []
            )
        hub.note_seq(auction_id, snapshot["seq"])
        await ws.accept()
        WS_CONNECTIONS.inc()
        try:
            await _run(ws, actor, auction_id, watcher, snapshot, replay)
        finally:
            WS_CONNECTIONS.dec()
    finally:
        hub.unsubscribe(watcher)


async def _snapshot(conn: AsyncConnection, actor: Actor, auction_id: int) -> dict[str, Any] | None:
    try:
        v = await services.view(conn, actor, auction_id)
    except store.AuctionNotFound:
        return None
    s = v.state
    return {
        "type": "snapshot",
        "auction_id": auction_id,
        "seq": s.seq,
        "status": v.status,
        "current_price_fen": s.current_price_fen,
        "leader_paddle": s.leader.paddle_no if s.leader else None,
        "ends_at": ev.rfc3339(s.ends_at),
        "starts_at": ev.rfc3339(s.starts_at),
        "bid_count": s.bid_count,
        "minimum_next_bid_fen": v.minimum_next_bid_fen,
        "increment_fen": v.terms.increment_fen,
        "start_price_fen": v.terms.start_price_fen,
        "server_time": ev.rfc3339(v.now),
        "reason": s.reason,
        "my_paddle": v.mine.paddle_no if v.mine is not None else None,
        "my_deposit_status": v.mine.deposit_status if v.mine is not None else None,
    }


async def _run(
    ws: WebSocket,
    actor: Actor,
    auction_id: int,
    watcher: hubmod.Watcher,
    snapshot: dict[str, Any],
    replay: list[dict[str, Any]],
) -> None:
    await ws.send_text(hubmod.encode(snapshot))
    for event in replay:
        await ws.send_text(hubmod.encode(event))
    last = [snapshot["seq"]]  # live frames at or below this were covered by the snapshot and replay
    sender = asyncio.create_task(_send_live(ws, watcher, last))
    receiver = asyncio.create_task(_receive(ws, actor, auction_id))
    done, pending = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    for task in done:
        with contextlib.suppress(Exception):
            task.result()


async def _send_live(ws: WebSocket, watcher: hubmod.Watcher, last: list[int]) -> None:
    writer = _direct_writer(ws)
    while True:
        if writer is not None and watcher.queue.empty() and not watcher.dropped:
            watcher.sent_seq, watcher.writer = last[0], writer  # caught up: the hub writes from now on
        item = await watcher.queue.get()
        if item is None or watcher.dropped:
            with contextlib.suppress(Exception):
                await ws.close(code=SLOW_CONSUMER, reason="too slow; reconnect with since")
            return
        seq, frame = item
        if seq <= last[0]:
            continue  # already sent from the snapshot or the replay
        await ws.send_text(frame)
        last[0] = seq


DIRECT_BUFFER_LIMIT = 1 << 20  # unsent bytes on one socket before it counts as a slow consumer


def _direct_writer(ws: WebSocket) -> Callable[[bytes], bool] | None:
    """A function writing whole frames to this socket's transport, when the server is uvicorn's
    sans-I/O websocket protocol (``web.middleware.WsProtocol`` found it); None otherwise.

    Frames are written whole and in one call each, as uvicorn writes its own, so they never
    interleave with an ack; nothing is written once a close was sent or the peer is gone."""
    proto = ws.scope.get(WS_PROTOCOL)
    transport, conn = getattr(proto, "transport", None), getattr(proto, "conn", None)
    if proto is None or transport is None or conn is None:
        return None

    def write(data: bytes) -> bool:
        if proto.close_sent or conn.state is not State.OPEN or transport.is_closing():
            return False
        if transport.get_write_buffer_size() > DIRECT_BUFFER_LIMIT:
            return False
        transport.write(data)
        return True

    return write


async def _receive(ws: WebSocket, actor: Actor, auction_id: int) -> None:
    settings = ws.app.state.settings
    bucket = TokenBucket(settings.ws_rate_per_second, settings.ws_rate_per_second * 2)
    strikes = 0
    try:
        while True:
            raw = await _receive_text(ws)
            if not bucket.take():
                strikes += 1
                if strikes > 50:
                    await ws.close(code=POLICY_VIOLATION, reason="too many messages")
                    return
                await ws.send_text(
                    _error(_request_id_of(raw), "rate_limited", "Too many messages; slow down")
                )
                continue
            if raw is None:  # RFC 6455 1003: a type of data this endpoint does not accept
                await ws.close(code=UNSUPPORTED_DATA, reason="messages are JSON text frames, not binary")
                return
            await ws.send_text(await _handle(ws, actor, auction_id, raw))
    except WebSocketDisconnect:
        return


async def _receive_text(ws: WebSocket) -> str | None:
    """The next text frame; None for a binary one."""
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    text_: str | None = message.get("text")
    return text_


def _request_id_of(raw: str | None) -> str | None:
    """The ``request_id`` of a refused message, so the client can tell which bid was not taken."""
    if raw is None:
        return None
    try:
        message = json.loads(raw)
    except ValueError:
        return None
    request_id = message.get("request_id") if isinstance(message, dict) else None
    return request_id if isinstance(request_id, str) and 0 < len(request_id) <= MAX_REQUEST_ID else None


def _error(request_id: Any, code: str, detail: str, **data: Any) -> str:
    return hubmod.encode({"type": "error", "request_id": request_id, "code": code, "detail": detail, **data})


async def _handle(ws: WebSocket, actor: Actor, auction_id: int, raw: str) -> str:
    try:
        message = json.loads(raw)
    except ValueError:
        return _error(None, "invalid_json", "Messages are JSON objects")
    if not isinstance(message, dict):
        return _error(None, "invalid_message", "Messages are JSON objects")
    kind = message.get("type")
    if kind == "ping":  # the database clock: the same clock as bid times and ends_at
        async with ws.app.state.engine.connect() as conn:
            now = (await conn.execute(text("SELECT clock_timestamp()"))).scalar_one()
        return hubmod.encode({"type": "pong", "server_time": ev.rfc3339(now)})
    if kind != "bid":
        return _error(message.get("request_id"), "unknown_type", 'Send {"type": "bid", ...} or ping')
    return await _bid(ws, actor, auction_id, message)


def _valid_amount(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= 9_000_000_000_000_000


async def _bid(ws: WebSocket, actor: Actor, auction_id: int, message: dict[str, Any]) -> str:
    request_id = message.get("request_id")
    if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_REQUEST_ID:
        return _error(None, "request_id_required", "Each bid needs a request_id string (1-100 characters)")
    amount, max_fen = message.get("amount_fen"), message.get("max_fen")
    if not _valid_amount(amount) or (max_fen is not None and not _valid_amount(max_fen)):
        return _error(request_id, "not_integer_fen", "amount_fen and max_fen are positive integers in fen")
    started = time.perf_counter()
    scope, key = f"wsbid:{actor.org_id}", f"{auction_id}:{request_id}"
    digest = hashlib.sha256(json.dumps([auction_id, amount, max_fen]).encode()).hexdigest()
    assert isinstance(amount, int)  # _valid_amount
    bid = services.QueuedBid(actor, amount, max_fen, (scope, key, digest))
    try:
        # decided with the other bids queued on this auction in this process: one read, one write
        ack = canonical_order(await ws.app.state.bid_queues.submit(auction_id, bid))
    except MarketError as exc:
        BIDS.labels("rejected", exc.code).inc()
        return _error(request_id, exc.code, exc.detail, **_jsonable(exc.data))
    BID_LATENCY.labels("ws").observe(time.perf_counter() - started)
    BIDS.labels("accepted", "").inc()
    return hubmod.encode({"type": "ack", "request_id": request_id, **ack})


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(data, default=str))
    return out


def bid_queues(engine: AsyncEngine) -> bidqueue.BidQueues:
    """The process's websocket bid queues, deciding each queueful in autocommit (two round trips)."""

    async def decide(auction_id: int, bids: Sequence[services.QueuedBid]) -> list[bidqueue.Answer]:
        return await run_autocommit(engine, lambda conn: services.decide_bids(conn, auction_id, bids))

    return bidqueue.BidQueues(decide)


class Registry:
    """Open sockets per user in this instance (a cap against one user opening hundreds)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: dict[int, int] = {}

    def admit(self, user_id: int) -> bool:
        if self.open.get(user_id, 0) >= self.limit:
            return False
        self.open[user_id] = self.open.get(user_id, 0) + 1
        return True

    def leave(self, user_id: int) -> None:
        self.open[user_id] -= 1
        if self.open[user_id] <= 0:
            del self.open[user_id]
