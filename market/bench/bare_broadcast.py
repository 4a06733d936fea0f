"""The bare broadcast server: the raw limit of fan-out (``python -m market.bench.bare_broadcast``).

uvicorn + Starlette with the service's uvicorn settings and the same number of workers, and nothing
else: no authentication, no snapshot query, no bid transaction. A websocket at the service's path
gets a snapshot-sized first frame, then every event. A ``{"type": "bid", ...}`` message becomes one
event frame of the service's shape, shared between workers through ``pg_notify`` (as the service's
instances share theirs) and acknowledged; each worker then sends those same bytes to every socket
it holds, one after the other, from one task. Events reach the sockets in order.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

CHANNEL = "bench_bare"


def _encode(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def _snapshot(auction_id: int) -> str:
    now = datetime.now(UTC)
    return _encode(
        {
            "type": "snapshot",
            "auction_id": auction_id,
            "seq": 0,
            "status": "live",
            "current_price_fen": None,
            "leader_paddle": None,
            "ends_at": (now + timedelta(hours=1)).isoformat(),
            "starts_at": now.isoformat(),
            "bid_count": 0,
            "minimum_next_bid_fen": 1,
            "increment_fen": 1,
            "start_price_fen": 1,
            "server_time": now.isoformat(),
            "reason": None,
            "my_paddle": None,
            "my_deposit_status": None,
        }
    )


def create_app() -> Starlette:
    import asyncpg

    dsn = os.environ["BENCH_BARE_DSN"]
    sockets: dict[int, set[WebSocket]] = {}
    inbox: asyncio.Queue[str] = asyncio.Queue()
    state: dict[str, Any] = {}

    async def broadcast_forever() -> None:
        while True:
            payload = await inbox.get()
            message = json.loads(payload)
            frame: str = message["f"]  # encoded once by the publisher: the same bytes for every socket
            for ws in tuple(sockets.get(int(message["a"]), ())):
                try:
                    await ws.send_text(frame)
                except Exception:
                    sockets.get(int(message["a"]), set()).discard(ws)

    def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        inbox.put_nowait(payload)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        listener = await asyncpg.connect(dsn)
        await listener.add_listener(CHANNEL, on_notify)
        state["pool"] = await asyncpg.create_pool(dsn, min_size=1, max_size=8)
        task = asyncio.create_task(broadcast_forever())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            await state["pool"].close()
            await listener.close()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def endpoint(ws: WebSocket) -> None:
        auction_id = int(ws.path_params["auction_id"])
        await ws.accept()
        await ws.send_text(_snapshot(auction_id))
        group = sockets.setdefault(auction_id, set())
        group.add(ws)
        seq = 0
        try:
            while True:
                message = json.loads(await ws.receive_text())
                if message.get("type") != "bid":
                    continue
                seq += 1
                now = datetime.now(UTC)
                amount = int(message["amount_fen"])
                ends = (now + timedelta(hours=1)).isoformat()
                event = {
                    "type": "bid",
                    "at": now.isoformat(),
                    "paddle_no": "123456",
                    "amount_fen": amount,
                    "ends_at": ends,
                    "proxy": False,
                    "priority_rank": None,
                    "seq": seq,
                }
                payload = _encode({"a": auction_id, "f": _encode(event)})
                await state["pool"].execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
                ack = {
                    "type": "ack",
                    "request_id": message.get("request_id"),
                    "seq": seq,
                    "amount_fen": amount,
                    "price_fen": amount,
                    "leading": True,
                    "ends_at": ends,
                }
                await ws.send_text(_encode(ack))
        except WebSocketDisconnect:
            pass
        finally:
            group.discard(ws)

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            WebSocketRoute("/ws/auctions/{auction_id}", endpoint),
        ],
        lifespan=lifespan,
    )


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    uvicorn.run(
        "market.bench.bare_broadcast:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
        proxy_headers=False,
        timeout_graceful_shutdown=5,
        ws_max_size=64 * 1024,  # as `market serve`
    )


if __name__ == "__main__":
    main()
