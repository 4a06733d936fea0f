"""Pure ASGI middleware: security headers and request metrics (websocket-safe, no buffering)."""

from __future__ import annotations

import time

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from market.metrics import HTTP_LATENCY, HTTP_REQUESTS

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; font-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
    "cross-origin-opener-policy": "same-origin",
}


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in HEADERS.items():
                    headers.setdefault(key, value)
                if https:
                    headers.setdefault("strict-transport-security", "max-age=31536000; includeSubDomains")
                if scope["path"].startswith("/api/") or scope["path"] in ("/login", "/logout"):
                    headers.setdefault("cache-control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


class Metrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def record_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", None) or (
                "static" if scope["path"].startswith("/static") else "other"
            )
            HTTP_REQUESTS.labels(scope["method"], name, str(status[0])).inc()
            HTTP_LATENCY.labels(scope["method"], name).observe(time.perf_counter() - start)


WS_PROTOCOL = "market.ws_protocol"


class WsProtocol:
    """Put uvicorn's sans-I/O websocket protocol object in the scope of a websocket connection,
    so the hub can write event frames straight to its transport (``web.ws._direct_writer``).

    Found only when ``send`` is that protocol's own bound method (no wrapper in between);
    otherwise, and under any other server, events go through the ASGI ``send`` as usual."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            proto = getattr(send, "__self__", None)
            if type(proto).__name__ == "WebSocketsSansIOProtocol":
                scope[WS_PROTOCOL] = proto
        await self.app(scope, receive, send)
