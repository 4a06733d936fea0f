"""The load of ``market bench``: client processes, each an asyncio loop (uvloop) of its own.

The runner starts ``python -m market.bench.worker`` processes and talks to each over its pipes, one
JSON object per line: the first line on stdin is the *spec* (which role, against what); the worker
answers ``{"event": "ready", ...}`` once its sockets are open, then obeys commands (``go``,
``report``, ``close``) and answers each with one line. Every loop is bounded in count and in time.

Roles:

- ``watch``: idle or live watchers over websockets (the sans-I/O ``websockets`` protocol under an
  asyncio ``Protocol``: no task per socket, so one process holds thousands). Each bid frame's
  receipt time is noted by auction and amount; ``report`` turns them into latencies against the
  send times the runner passes in.
- ``hot``: closed-loop bidders on one auction, each bidding the next valid amount as soon as its
  previous bid is answered (websocket to the service, or the raw SQL function over asyncpg).
  Bidders' sockets are as lean as the watchers' (``BidProtocol``): on a 2-core machine the load
  generator shares the CPU with the service, and every bid event reaches each bidder's socket.
- ``paced``: open-loop bids at a fixed rate per auction (fan-out and many auctions).
- ``search``: catalogue queries over HTTP (httpx) or the same SQL straight through asyncpg.
- ``settle``: ``listings.settlement.record_receipt`` on prepared disposals, one transaction each.

Times are ``time.monotonic()`` (CLOCK_MONOTONIC: one clock for every process of the machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import os
import sys
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TextIO, cast
from urllib.parse import urlsplit

RES = 10_000  # histogram buckets per second: 0.1 ms
REPLY_TIMEOUT = 15.0


# --------------------------------------------------------------------------- process plumbing


def raise_nofile_limit() -> int:
    """Raise the soft limit of open files to the hard limit (thousands of sockets); returns it."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if target > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def run(coro: Awaitable[None]) -> None:
    """Run ``coro`` on uvloop when available (it is, through uvicorn[standard])."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        asyncio.run(_wrap(coro))
        return
    uvloop.run(_wrap(coro))


async def _wrap(coro: Awaitable[None]) -> None:
    await coro


class Channel:
    """The worker's side of the pipes: JSON lines in on stdin, out on the original stdout."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.reader: asyncio.StreamReader | None = None

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 30)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        self.reader = reader

    async def read(self) -> dict[str, Any]:
        assert self.reader is not None
        line = await self.reader.readline()
        if not line:
            raise EOFError("the runner went away")
        message: dict[str, Any] = json.loads(line)
        return message

    def write(self, message: dict[str, Any]) -> None:
        self.out.write(json.dumps(message, separators=(",", ":")) + "\n")
        self.out.flush()


# --------------------------------------------------------------------------- latency histograms


class Hist:
    """Latencies in 0.1 ms buckets: exact enough for p50/p99 and cheap to merge across processes."""

    __slots__ = ("counts", "max", "n", "total")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.n = 0
        self.max = 0.0
        self.total = 0.0

    def add(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        bucket = int(seconds * RES)
        self.counts[bucket] = self.counts.get(bucket, 0) + 1
        self.n += 1
        self.total += seconds
        if seconds > self.max:
            self.max = seconds

    def merge(self, other: Hist) -> Hist:
        for bucket, count in other.counts.items():
            self.counts[bucket] = self.counts.get(bucket, 0) + count
        self.n += other.n
        self.total += other.total
        self.max = max(self.max, other.max)
        return self

    def quantile_ms(self, q: float) -> float | None:
        """The ``q`` quantile in milliseconds (the upper edge of its bucket); None when empty."""
        if not self.n:
            return None
        rank = max(1, math.ceil(q * self.n))
        seen = 0
        for bucket in sorted(self.counts):
            seen += self.counts[bucket]
            if seen >= rank:
                return round((bucket + 1) * 1000 / RES, 2)
        return round(self.max * 1000, 2)

    def max_ms(self) -> float | None:
        return round(self.max * 1000, 2) if self.n else None

    def mean_ms(self) -> float | None:
        return round(self.total * 1000 / self.n, 2) if self.n else None

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "max": self.max, "total": self.total, "b": sorted(self.counts.items())}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Hist:
        h = cls()
        h.counts = {int(b): int(c) for b, c in data["b"]}
        h.n, h.max, h.total = int(data["n"]), float(data["max"]), float(data["total"])
        return h


def _rejected(counts: dict[str, int], code: str) -> None:
    counts[code] = counts.get(code, 0) + 1


# --------------------------------------------------------------------------- watchers (sans-I/O)


def _amount(frame: bytes) -> int | None:
    """The ``amount_fen`` of a bid event frame, without decoding the JSON; None for other frames."""
    if b'"type":"bid"' not in frame:
        return None
    i = frame.find(b'"amount_fen":')
    if i < 0:
        return None
    j = k = i + 13
    while k < len(frame) and 48 <= frame[k] <= 57:
        k += 1
    return int(frame[j:k]) if k > j else None


class Book:
    """Receipt times of bid frames by (auction, amount), for every watcher of this process."""

    def __init__(self) -> None:
        self.seen: dict[tuple[int, int], list[float]] = {}
        self.closed_codes: dict[str, int] = {}

    def add(self, auction_id: int, amount: int, at: float) -> None:
        key = (auction_id, amount)
        times = self.seen.get(key)
        if times is None:
            self.seen[key] = [at]
        else:
            times.append(at)


class WatchProtocol(asyncio.Protocol):
    """One websocket watcher under an asyncio ``Protocol`` (no task per socket).

    The opening handshake (request, ``Sec-WebSocket-Accept`` check) and every frame the watcher
    sends (pong, close; masked) go through ``websockets``' sans-I/O ``ClientProtocol``. Frames from
    the server are read by a lean reader of RFC 6455 server frames (never masked, never fragmented
    by uvicorn): a load generator that parses at a few µs per frame leaves the CPU to the server.
    """

    def __init__(self, uri: str, token: str | None, auction_id: int, book: Book) -> None:
        from websockets.client import ClientProtocol
        from websockets.uri import parse_uri

        self.ws = ClientProtocol(parse_uri(uri), max_size=1 << 20)
        self.token = token
        self.auction_id = auction_id
        self.book = book
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.lost = False
        self.upgraded = False
        self.head = bytearray()
        self.buf = bytearray()
        self.close_code: int | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        try:
            request = self.ws.connect()
            if self.token:
                request.headers["Authorization"] = f"Bearer {self.token}"
            self.ws.send_request(request)
            self._flush()
        except Exception as exc:
            self._fail(exc)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        if not self.upgraded:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            self.ws.receive_data(bytes(self.head[: end + 4]))
            self.ws.events_received()
            if self.ws.handshake_exc is not None:
                self._fail(ConnectionError(f"handshake refused: {self.ws.handshake_exc}"))
                return
            self.upgraded = True
            data = bytes(self.head[end + 4 :])
            self.head.clear()
        if data:
            self._read(data, now)

    def _read(self, data: bytes, now: float) -> None:
        buf = self.buf
        buf += data
        i, n = 0, len(buf)
        while n - i >= 2:
            opcode, size, h = buf[i] & 0x0F, buf[i + 1] & 0x7F, 2
            if size == 126:
                if n - i < 4:
                    break
                size, h = int.from_bytes(buf[i + 2 : i + 4], "big"), 4
            elif size == 127:
                if n - i < 10:
                    break
                size, h = int.from_bytes(buf[i + 2 : i + 10], "big"), 10
            if n - i < h + size:
                break
            payload = bytes(buf[i + h : i + h + size])
            i += h + size
            if opcode == 0x1:
                self._text(payload, now)
            elif opcode == 0x9:
                self._send(partial(self.ws.send_pong, payload))
            elif opcode == 0x8:
                self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                self._send(self.ws.send_close)
                if self.transport is not None:
                    self.transport.close()
        del buf[:i]

    def _text(self, data: bytes, now: float) -> None:
        if not self.opened.done():
            self.opened.set_result(None)  # the first frame is the snapshot
            return
        amount = _amount(data)
        if amount is not None:
            self.book.add(self.auction_id, amount, now)

    def _send(self, make: Callable[[], object]) -> None:
        with contextlib.suppress(Exception):
            make()
            self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"closed before the snapshot: {exc}"))
            return
        code = str(self.close_code) if self.close_code is not None else "abnormal"
        self.book.closed_codes[code] = self.book.closed_codes.get(code, 0) + 1

    def _fail(self, exc: Exception) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()

    def _flush(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        for chunk in self.ws.data_to_send():
            if chunk:
                self.transport.write(chunk)

    def close(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self._send(partial(self.ws.send_close, 1000))
        self.transport.close()


async def open_watchers(
    base_url: str,
    targets: list[tuple[int, str | None]],
    path: str,
    book: Book,
    *,
    parallel: int = 64,
    timeout: float = 60.0,
) -> tuple[list[WatchProtocol], dict[str, int]]:
    """Open one watcher per (auction, token), ``parallel`` handshakes at a time, within ``timeout``."""
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(parallel)
    deadline = time.monotonic() + timeout
    opened: list[WatchProtocol] = []
    errors: dict[str, int] = {}

    async def one(auction_id: int, token: str | None) -> None:
        async with gate:
            left = deadline - time.monotonic()
            if left <= 0:
                _rejected(errors, "connect_timeout")
                return
            uri = f"ws://{host}:{port}{path.format(auction_id=auction_id)}"
            try:
                _, proto = await asyncio.wait_for(
                    loop.create_connection(lambda: WatchProtocol(uri, token, auction_id, book), host, port),
                    left,
                )
                await asyncio.wait_for(proto.opened, max(0.1, deadline - time.monotonic()))
            except (OSError, ConnectionError, TimeoutError) as exc:
                _rejected(errors, type(exc).__name__)
                return
            opened.append(proto)

    await asyncio.gather(*(one(a, t) for a, t in targets))
    return opened, errors


async def role_watch(spec: dict[str, Any], ch: Channel) -> None:
    book = Book()
    targets = [(int(a), t) for a, t in spec["targets"]]
    watchers, errors = await open_watchers(
        spec["url"],
        targets,
        spec.get("path", "/ws/auctions/{auction_id}"),
        book,
        parallel=int(spec.get("parallel", 64)),
        timeout=float(spec.get("timeout", 60)),
    )
    per_auction: dict[str, int] = {}
    for w in watchers:
        per_auction[str(w.auction_id)] = per_auction.get(str(w.auction_id), 0) + 1
    ch.write({"event": "ready", "connected": len(watchers), "errors": errors, "per_auction": per_auction})
    while True:
        cmd = await ch.read()
        if cmd["cmd"] == "reset":
            book.seen.clear()
            ch.write({"event": "reset"})
        elif cmd["cmd"] == "count":
            sends = cmd["sends"]
            got = sum(len(t) for (a, m), t in book.seen.items() if f"{a}:{m}" in sends)
            ch.write({"event": "count", "received": got})
        elif cmd["cmd"] == "report":
            ch.write({"event": "report", **_watch_report(book, cmd["sends"], watchers)})
            book.seen.clear()
        else:  # close
            for w in watchers:
                w.close()
            await asyncio.sleep(0.2)
            ch.write({"event": "closed"})
            return


def _watch_report(book: Book, sends: dict[str, float], watchers: list[WatchProtocol]) -> dict[str, Any]:
    hist = Hist()
    received = 0
    for (auction_id, amount), times in book.seen.items():
        sent = sends.get(f"{auction_id}:{amount}")
        if sent is None:
            continue
        for at in times:
            hist.add(at - sent)
        received += len(times)
    alive: dict[str, int] = {}
    for w in watchers:
        if not w.lost:
            alive[str(w.auction_id)] = alive.get(str(w.auction_id), 0) + 1
    return {"hist": hist.to_json(), "received": received, "closed": dict(book.closed_codes), "alive": alive}


# --------------------------------------------------------------------------- bidders


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class BidProtocol(WatchProtocol):
    """A bidder's socket, as lean as a watcher's: bids go out as masked text frames through the
    sans-I/O ``ClientProtocol``, acks and errors are matched to their bid by ``request_id``, and
    feed frames of bids (every socket also watches its auction) are passed to ``on_feed`` without
    decoding their JSON. The first frame is the snapshot."""

    def __init__(self, uri: str, token: str, on_feed: Callable[[int], None] | None) -> None:
        super().__init__(uri, token, 0, Book())
        self.on_feed = on_feed
        self.pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.snapshot: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        for future in (self.opened, self.snapshot):  # a failure is read through WsBidder.open
            future.add_done_callback(_retrieve)

    def _text(self, data: bytes, now: float) -> None:
        if not self.snapshot.done():
            self.snapshot.set_result(json.loads(data))
            self.opened.set_result(None)
            return
        if data.startswith(b'{"type":"bid"'):
            amount = _amount(data)
            if amount is not None and self.on_feed is not None:
                self.on_feed(amount)
            return
        if not (data.startswith(b'{"type":"ack"') or data.startswith(b'{"type":"error"')):
            return
        msg = json.loads(data)
        fut = self.pending.pop(str(msg.get("request_id")), None)
        if fut is not None and not fut.done():
            fut.set_result(msg)

    def send_bid(self, rid: str, amount: int) -> None:
        if self.lost or self.transport is None or self.transport.is_closing():
            raise ConnectionError("socket closed")
        frame = json.dumps({"type": "bid", "request_id": rid, "amount_fen": amount}).encode()
        self.ws.send_text(frame)
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError(f"socket closed: {exc}"))
        self.pending.clear()
        if not self.snapshot.done():
            self.snapshot.set_exception(ConnectionError(f"socket closed before the snapshot: {exc}"))


class WsBidder:
    """A bidder's websocket (``BidProtocol``): sends ``{"type": "bid", ...}`` and waits for the
    ack or error with its ``request_id``. Feed frames of bids are passed to ``on_feed``."""

    def __init__(self, url: str, token: str, on_feed: Callable[[int], None] | None = None) -> None:
        self.url, self.token, self.on_feed = url, token, on_feed
        self.proto: BidProtocol | None = None
        self.snapshot: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.ids = itertools.count(1)
        self.tag = os.urandom(4).hex()

    async def open(self, timeout: float = 30.0) -> None:
        parts = urlsplit(self.url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        loop = asyncio.get_running_loop()
        _, proto = await asyncio.wait_for(
            loop.create_connection(lambda: BidProtocol(self.url, self.token, self.on_feed), host, port),
            timeout,
        )
        self.proto = proto
        try:
            self.snapshot.set_result(await asyncio.wait_for(asyncio.shield(proto.snapshot), timeout))
        except BaseException as exc:
            proto.close()
            if not self.snapshot.done():
                self.snapshot.set_exception(ConnectionError(str(exc)))
            raise

    async def bid(self, amount: int, timeout: float = REPLY_TIMEOUT) -> dict[str, Any]:
        proto = self.proto
        if proto is None:
            raise ConnectionError("not open")
        rid = f"{self.tag}-{next(self.ids)}"
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        proto.pending[rid] = fut
        try:
            proto.send_bid(rid, amount)
            return await asyncio.wait_for(fut, timeout)
        finally:
            proto.pending.pop(rid, None)

    async def close(self) -> None:
        if self.proto is not None:
            self.proto.close()


RAW_BID = "SELECT accepted, next_fen, seq, code FROM bench_raw.bid($1, $2, $3, $4)"


class RawBidder:
    """The raw limit's bidder: one call of ``bench_raw.bid`` per bid, one round trip."""

    def __init__(self, conn: Any, auction_id: int, org_id: int) -> None:
        self.conn, self.auction_id, self.org_id = conn, auction_id, org_id
        self.ids = itertools.count(1)
        self.tag = os.urandom(4).hex()

    async def bid(self, amount: int, timeout: float = REPLY_TIMEOUT) -> dict[str, Any]:
        rid = f"{self.tag}-{next(self.ids)}"
        row = await asyncio.wait_for(
            self.conn.fetchrow(RAW_BID, self.auction_id, self.org_id, rid, amount), timeout
        )
        if row["accepted"]:
            return {"type": "ack", "price_fen": amount, "seq": row["seq"]}
        return {"type": "error", "code": row["code"], "minimum_fen": row["next_fen"]}


Bidder = WsBidder | RawBidder


def _ws_url(base: str, auction_id: int) -> str:
    return base.replace("http://", "ws://", 1) + f"/ws/auctions/{auction_id}"


class Stream:
    """One concurrent bidder of the hot auction: two paddles, so that it can always bid (the leader may
    not outbid himself); it bids from the paddle that is not leading, at the next valid amount it knows
    of (from its acks and refusals and from the live feed)."""

    def __init__(self, increment: int, start: int) -> None:
        self.increment = increment
        self.next = start
        self.paddles: list[Bidder] = []
        self.last_ok: int | None = None

    def feed(self, amount: int) -> None:
        if amount + self.increment > self.next:
            self.next = amount + self.increment

    async def run(self, deadline: float, max_bids: int, out: HotResult) -> None:
        for _ in range(max_bids):
            if time.monotonic() >= deadline:
                return
            i = 0 if self.last_ok is None else 1 - self.last_ok
            amount = self.next
            started = time.monotonic()
            try:
                msg = await self.paddles[i].bid(amount)
            except (TimeoutError, ConnectionError, OSError) as exc:
                _rejected(out.rejected, type(exc).__name__)
                out.replies += 1
                continue
            took = time.monotonic() - started
            out.replies += 1
            out.reply.add(took)
            if msg["type"] == "ack":
                out.accepted += 1
                out.ack.add(took)
                self.last_ok = i
                self.feed(int(msg.get("price_fen") or amount))
                continue
            code = str(msg.get("code"))
            _rejected(out.rejected, code)
            minimum = msg.get("minimum_fen")
            if isinstance(minimum, int) and minimum > self.next:
                self.next = minimum
            elif code not in ("bid_too_low", "self_outbid"):
                await asyncio.sleep(0.01)  # not a race: do not spin on a refusal


class HotResult:
    def __init__(self) -> None:
        self.accepted = 0
        self.replies = 0
        self.rejected: dict[str, int] = {}
        self.ack = Hist()
        self.reply = Hist()

    def to_json(self, elapsed: float) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "replies": self.replies,
            "rejected": self.rejected,
            "ack": self.ack.to_json(),
            "reply": self.reply.to_json(),
            "elapsed": elapsed,
        }


async def _raw_listener(dsn: str, on_amount: Callable[[int, int], None]) -> Any:
    """A LISTEN connection on the raw function's channel: the raw bidders' live feed."""
    import asyncpg

    conn = await asyncpg.connect(dsn)

    def on_notify(_c: Any, _pid: int, _channel: str, payload: str) -> None:
        message = json.loads(payload)
        for event in message.get("e", ()):
            if event.get("type") == "bid":
                on_amount(int(message["a"]), int(event["amount_fen"]))

    await conn.add_listener("bench_raw", on_notify)
    return conn


async def role_hot(spec: dict[str, Any], ch: Channel) -> None:
    import asyncpg

    auction_id, increment = int(spec["auction_id"]), int(spec["increment"])
    streams = [Stream(increment, int(spec["start"])) for _ in spec["streams"]]
    conns: list[Any] = []
    listener: Any = None
    if spec["transport"] == "raw":
        conns = await asyncio.gather(*(asyncpg.connect(spec["dsn"]) for _ in streams))
        for stream, conn, pair in zip(streams, conns, spec["streams"], strict=True):
            stream.paddles = [RawBidder(conn, auction_id, int(org)) for org in pair]

        def on_amount(_a: int, amount: int) -> None:
            for s in streams:
                s.feed(amount)

        listener = await _raw_listener(spec["dsn"], on_amount)
    else:
        for stream, pair in zip(streams, spec["streams"], strict=True):
            stream.paddles = [WsBidder(_ws_url(spec["url"], auction_id), tok, stream.feed) for tok in pair]
        gate = asyncio.Semaphore(16)

        async def open_one(b: WsBidder) -> None:
            async with gate:
                await b.open()

        await asyncio.gather(*(open_one(b) for s in streams for b in s.paddles if isinstance(b, WsBidder)))
        for s in streams:
            for b in s.paddles:
                if isinstance(b, WsBidder):
                    minimum = (await b.snapshot).get("minimum_next_bid_fen")
                    s.next = max(s.next, int(minimum or 0))
    ch.write({"event": "ready", "streams": len(streams)})
    cmd = await ch.read()
    out = HotResult()
    started = time.monotonic()
    deadline = started + float(cmd["duration"])
    await asyncio.gather(*(s.run(deadline, int(cmd["max_bids"]), out) for s in streams))
    elapsed = time.monotonic() - started
    for s in streams:
        for b in s.paddles:
            if isinstance(b, WsBidder):
                await b.close()
    for conn in conns:
        await conn.close()
    if listener is not None:
        await listener.close()
    ch.write({"event": "report", **out.to_json(elapsed)})


# --------------------------------------------------------------------------- paced bids


class PacedAuction:
    def __init__(self, auction_id: int, start: int) -> None:
        self.id = auction_id
        self.next = start
        self.turn = 0
        self.paddles: list[Bidder] = []


async def role_paced(spec: dict[str, Any], ch: Channel) -> None:
    """Open-loop bids: ``rate`` per auction per second, alternating the auction's two paddles; the
    amounts step by one increment (only these paddles bid on these auctions)."""
    import asyncpg

    increment = int(spec["increment"])
    auctions = [PacedAuction(int(a["id"]), int(a["start"])) for a in spec["auctions"]]
    pool: Any = None
    if spec["transport"] == "raw":
        pool = await asyncpg.create_pool(spec["dsn"], min_size=int(spec["pool"]), max_size=int(spec["pool"]))
        for a, item in zip(auctions, spec["auctions"], strict=True):
            a.paddles = [RawBidder(pool, a.id, int(org)) for org in item["paddles"]]
    else:
        gate = asyncio.Semaphore(16)

        async def open_one(b: WsBidder) -> None:
            async with gate:
                await b.open()

        for a, item in zip(auctions, spec["auctions"], strict=True):
            a.paddles = [WsBidder(_ws_url(spec["url"], a.id), tok) for tok in item["paddles"]]
        await asyncio.gather(*(open_one(b) for a in auctions for b in a.paddles if isinstance(b, WsBidder)))
    ch.write({"event": "ready", "auctions": len(auctions)})
    while True:
        cmd = await ch.read()
        if cmd["cmd"] != "go":
            break
        ch.write({"event": "report", **await _paced_phase(auctions, cmd, increment)})
    for a in auctions:
        for b in a.paddles:
            if isinstance(b, WsBidder):
                await b.close()
    if pool is not None:
        await pool.close()
    ch.write({"event": "closed"})


async def _paced_phase(auctions: list[PacedAuction], cmd: dict[str, Any], increment: int) -> dict[str, Any]:
    """Bids at ``rate`` per auction for ``duration`` seconds: bid k of an auction is due at
    ``t0 + (k + i/n) / rate`` (auctions interleaved) and is sent when due *and* the auction's previous
    bid has been answered, as a bidder who waits for the ack would; a server slower than the rate gets
    fewer bids (``offered`` says how many), never out-of-order ones. Only the auction's own two paddles
    bid, alternately, so every amount is the next valid one."""
    rate, duration = float(cmd["rate"]), float(cmd["duration"])
    rounds = max(1, round(duration * rate))
    ack = Hist()
    rejected: dict[str, int] = {}
    accepted: dict[str, float] = {}
    offered = [0]
    t0 = max(float(cmd.get("t0") or 0), time.monotonic())
    stop_at = t0 + duration + 0.5 / rate  # the last due bid may start a little late, not much

    async def fire(a: PacedAuction) -> None:
        amount = a.next
        key = f"{a.id}:{amount}"
        sent = time.monotonic()
        offered[0] += 1
        try:
            msg = await a.paddles[a.turn].bid(amount)
        except (TimeoutError, ConnectionError, OSError) as exc:
            _rejected(rejected, type(exc).__name__)
            return
        if msg["type"] == "ack":
            ack.add(time.monotonic() - sent)
            accepted[key] = sent
            a.next = amount + increment
            a.turn ^= 1  # the other paddle bids next: the leader may not outbid himself
            return
        _rejected(rejected, str(msg.get("code")))
        minimum = msg.get("minimum_fen")
        if isinstance(minimum, int) and minimum > a.next:
            a.next = minimum

    async def run(i: int, a: PacedAuction) -> None:
        for k in range(rounds):
            delay = t0 + (k + i / len(auctions)) / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if time.monotonic() > stop_at:
                return
            await fire(a)

    await asyncio.gather(*(run(i, a) for i, a in enumerate(auctions)))
    return {
        "offered": offered[0],
        "accepted": len(accepted),
        "rejected": rejected,
        "ack": ack.to_json(),
        "sends": accepted,
        "sent_for": time.monotonic() - t0,
    }


# --------------------------------------------------------------------------- search


async def role_search(spec: dict[str, Any], ch: Channel) -> None:
    queries: list[dict[str, Any]] = spec["queries"]
    concurrency = int(spec["concurrency"])
    pool: Any = None
    client: Any = None
    if spec["transport"] == "raw":
        import asyncpg

        async def init(conn: Any) -> None:
            await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")

        pool = await asyncpg.create_pool(spec["dsn"], min_size=concurrency, max_size=concurrency, init=init)

        async def one(q: dict[str, Any]) -> int:
            rows = await pool.fetch(q["sql"], *q["args"])
            return len(rows)
    else:
        import httpx

        client = httpx.AsyncClient(
            base_url=spec["url"], timeout=30, limits=httpx.Limits(max_connections=concurrency)
        )

        async def one(q: dict[str, Any]) -> int:
            r = await client.get("/api/v1/listings", params=q["params"])
            r.raise_for_status()
            return len(r.json()["items"])

    for q in queries[: min(len(queries), concurrency)]:  # warm the connections
        await one(q)
    ch.write({"event": "ready"})
    cmd = await ch.read()
    hist, found = Hist(), 0
    errors: dict[str, int] = {}
    order = itertools.count(int(spec.get("offset", 0)))
    started = time.monotonic()
    deadline = started + float(cmd["duration"])
    budget = [int(cmd["max_queries"])]

    async def loop() -> None:
        nonlocal found
        while time.monotonic() < deadline and budget[0] > 0:
            budget[0] -= 1
            q = queries[next(order) % len(queries)]
            t = time.monotonic()
            try:
                found += await one(q)
            except Exception as exc:
                _rejected(errors, type(exc).__name__)
                continue
            hist.add(time.monotonic() - t)

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    elapsed = time.monotonic() - started
    if pool is not None:
        await pool.close()
    if client is not None:
        await client.aclose()
    ch.write(
        {"event": "report", "hist": hist.to_json(), "errors": errors, "found": found, "elapsed": elapsed}
    )


# --------------------------------------------------------------------------- settlement


async def role_settle(spec: dict[str, Any], ch: Channel) -> None:
    """``record_receipt`` on prepared disposals (the balance due), one transaction each."""
    from listings import settlement
    from market.config import Settings
    from market.db import create_engine, run_in_transaction
    from market.errors import MarketError
    from market.parties import Actor, Role

    concurrency = int(spec["concurrency"])
    engine = create_engine(spec["database_url"], pool_size=concurrency, max_overflow=0)
    settings = Settings(DATABASE_URL=spec["database_url"])
    op = spec["operator"]
    actor = Actor(int(op["user_id"]), int(op["org_id"]), Role.OPERATOR, str(op["email"]))
    work: list[list[Any]] = list(spec["tasks"])
    async with engine.connect() as conn:  # open the pool's connections before the clock starts
        await conn.exec_driver_sql("SELECT 1")
    ch.write({"event": "ready", "tasks": len(work)})
    cmd = await ch.read()
    hist, settled = Hist(), 0
    errors: dict[str, int] = {}
    started = time.monotonic()
    deadline = started + float(cmd["duration"])
    finished = started

    async def loop() -> None:
        nonlocal settled, finished
        while work and time.monotonic() < deadline:
            disposal_id, amount, reference = work.pop()
            t = time.monotonic()

            async def receipt(conn: Any, d: int = disposal_id, a: int = amount, r: str = reference) -> Any:
                return await settlement.record_receipt(conn, actor, d, a, r, "2026-01-01", settings)

            try:
                result = await run_in_transaction(engine, receipt)
            except MarketError as exc:
                _rejected(errors, exc.code)
                continue
            except Exception as exc:
                _rejected(errors, type(exc).__name__)
                continue
            finished = time.monotonic()
            hist.add(finished - t)
            if result.stage == "settled":
                settled += 1
            else:
                _rejected(errors, f"stage_{result.stage}")

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    await engine.dispose()
    ch.write(
        {
            "event": "report",
            "settled": settled,
            "errors": errors,
            "hist": hist.to_json(),
            "elapsed": max(finished - started, 1e-9),
        }
    )


# --------------------------------------------------------------------------- entry point

ROLES: dict[str, Callable[[dict[str, Any], Channel], Awaitable[None]]] = {
    "watch": role_watch,
    "hot": role_hot,
    "paced": role_paced,
    "search": role_search,
    "settle": role_settle,
}


def main() -> None:
    """``python -m market.bench.worker``: read the spec, play the role, answer on the pipe."""
    raise_nofile_limit()
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything printed by a library goes to stderr, not into the protocol
    sys.stdout = sys.stderr

    async def amain() -> None:
        ch = Channel(out)
        await ch.open()
        try:
            spec = await ch.read()
            await ROLES[spec["role"]](spec, ch)
        except EOFError:
            return
        except Exception as exc:
            ch.write({"event": "error", "detail": f"{type(exc).__name__}: {exc}"})
            raise

    run(amain())


# --------------------------------------------------------------------------- the runner's side


class WorkerProcess:
    """A client process seen from the runner: the spec goes in, JSON lines come out."""

    def __init__(self, name: str, process: asyncio.subprocess.Process, log: str) -> None:
        self.name, self.process, self.log = name, process, log

    @classmethod
    async def start(cls, name: str, spec: dict[str, Any], env: dict[str, str], log_dir: str) -> WorkerProcess:
        log = os.path.join(log_dir, f"worker-{name}-{os.getpid()}-{time.monotonic_ns()}.log")
        err = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "market.bench.worker",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                env=env,
                cwd=log_dir,
                limit=1 << 30,
            )
        finally:
            os.close(err)
        worker = cls(name, process, log)
        await worker.send(spec)
        return worker

    async def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(message, separators=(",", ":")) + "\n").encode())
        await self.process.stdin.drain()

    async def recv(self, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        except TimeoutError:
            raise RuntimeError(
                f"client {self.name} did not answer in {timeout:.0f} s{self._tail()}"
            ) from None
        if not line:
            await self.process.wait()
            raise RuntimeError(f"client {self.name} exited ({self.process.returncode}){self._tail()}")
        message: dict[str, Any] = json.loads(line)
        if message.get("event") == "error":
            raise RuntimeError(f"client {self.name}: {message.get('detail')}{self._tail()}")
        return message

    def _tail(self) -> str:
        try:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                text = f.read()[-2000:]
        except OSError:
            return ""
        return f":\n{text}" if text.strip() else ""

    async def stop(self) -> None:
        if self.process.returncode is not None:
            return
        if self.process.stdin is not None:
            with contextlib.suppress(Exception):
                self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()


async def start_all(
    specs: list[tuple[str, dict[str, Any]]], env: dict[str, str], log_dir: str, timeout: float
) -> tuple[list[WorkerProcess], list[dict[str, Any]]]:
    """Start client processes and wait until every one is ready; returns them and their ready lines."""
    workers = [await WorkerProcess.start(name, spec, env, log_dir) for name, spec in specs]
    try:
        ready = await asyncio.gather(*(w.recv(timeout) for w in workers))
    except BaseException:
        await stop_all(workers)
        raise
    return workers, list(ready)


async def ask_all(
    workers: list[WorkerProcess], message: dict[str, Any], timeout: float
) -> list[dict[str, Any]]:
    for w in workers:
        await w.send(message)
    return list(await asyncio.gather(*(w.recv(timeout) for w in workers)))


async def stop_all(workers: list[WorkerProcess]) -> None:
    await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)


def split(items: list[Any], parts: int) -> list[list[Any]]:
    """``items`` dealt round-robin into at most ``parts`` non-empty lists."""
    parts = max(1, min(parts, len(items)))
    return [items[i::parts] for i in range(parts)]
