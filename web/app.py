"""The Starlette application factory: routes, middleware, error mapping, lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from auctions import closer, presence
from auctions.hub import Hub, asyncpg_dsn
from market import migrate
from market.config import Settings
from market.db import create_engine, warm
from market.metrics import render as render_metrics
from web import (  # the api_* modules register their operations
    api_auctions,  # noqa: F401
    api_imports,  # noqa: F401
    api_listings,  # noqa: F401
    api_operators,  # noqa: F401
    api_parties,  # noqa: F401
    api_settlement,  # noqa: F401
    api_statements,  # noqa: F401
    pages,
    pages_auctions,
    pages_import,
    pages_listings,
    pages_operators,
    pages_statements,
    ws,
    ws_monitor,
)
from web.api import api
from web.errors import EXCEPTION_HANDLERS
from web.middleware import Metrics, SecurityHeaders, WsProtocol
from web.openapi import document

log = logging.getLogger("web")
HERE = Path(__file__).resolve().parent


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    engine: AsyncEngine = request.app.state.engine
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        migrated = await migrate.is_migrated(engine)
    except Exception as exc:
        log.warning("readiness check failed: %s", exc)
        return JSONResponse({"status": "unavailable", "detail": "database unreachable"}, status_code=503)
    if not migrated:
        return JSONResponse(
            {"status": "unavailable", "detail": "database not migrated; run `market migrate`"},
            status_code=503,
        )
    return JSONResponse({"status": "ready"})


async def metrics(request: Request) -> Response:
    body, content_type = render_metrics()
    return Response(body, media_type=content_type)


async def openapi_json(request: Request) -> Response:
    return JSONResponse(request.app.state.openapi)


def create_app(
    settings: Settings | None = None, *, engine: AsyncEngine | None = None, run_background: bool = True
) -> Starlette:
    """Build the service. With no arguments it reads the environment (``market serve`` workers)."""
    settings = settings or Settings()  # fresh: `market serve` sets DATABASE_URL just before
    if engine is None and not settings.database_url:
        raise RuntimeError("DATABASE_URL is not set; start the service with `market serve`")
    own_engine = engine is None
    engine = engine or create_engine(settings.database_url or "", pool_size=settings.db_pool_size)
    # websocket bids on connections of their own that plan each statement once (see create_engine);
    # an engine handed in (tests) serves the bids as well
    bid_engine = engine
    if own_engine:
        bid_engine = create_engine(
            engine.url.render_as_string(hide_password=False),
            pool_size=settings.db_pool_size,
            max_overflow=10,
            generic_plans=True,
        )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        hub = Hub(engine, asyncpg_dsn(engine.url.render_as_string(hide_password=False)))
        app.state.hub = hub
        stop = asyncio.Event()
        await hub.start()
        if own_engine:
            try:
                await warm(bid_engine, settings.db_pool_size)
            except (OSError, DBAPIError) as exc:  # the database is not there yet: /readyz says so
                log.warning("could not open the bid connections at start: %s", exc)
        closer_task = None
        if settings.closer_workers > 0 and run_background:
            closer_task = asyncio.create_task(closer.run(engine, stop, settings))
        demo_task = None
        if settings.demo and run_background:  # `market serve --demo`: one bidder loop across workers
            from auctions import demo

            demo_task = asyncio.create_task(demo.run_bidders(engine, settings, stop))
        presence_task = None
        if run_background:  # watchers per instance for the monitor (every 2 s), ledger reconcile (60 s)
            presence_task = asyncio.create_task(presence.run(engine, hub, stop))
        try:
            yield
        finally:
            stop.set()
            if closer_task is not None:
                with contextlib.suppress(Exception):
                    await closer_task
            if presence_task is not None:
                with contextlib.suppress(Exception):
                    await presence_task
            if demo_task is not None:
                with contextlib.suppress(Exception):
                    await demo_task
            await hub.stop()
            if own_engine:
                await bid_engine.dispose()
                await engine.dispose()

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/api/v1/openapi.json", openapi_json, methods=["GET"]),
        *api.routes(),
        WebSocketRoute("/ws/auctions/{auction_id}", ws.auction_socket),
        WebSocketRoute("/ws/monitor", ws_monitor.monitor_socket),
        *pages.ROUTES,
        *pages_auctions.ROUTES,
        *pages_import.ROUTES,
        *pages_listings.ROUTES,
        *pages_operators.ROUTES,
        *pages_statements.ROUTES,
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(WsProtocol), Middleware(Metrics), Middleware(SecurityHeaders)],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.secret_key = settings.resolved_secret_key()
    app.state.templates = Jinja2Templates(directory=HERE / "templates")
    app.state.openapi = document(api)
    app.state.ws_registry = ws.Registry(settings.ws_max_per_user)
    app.state.bid_engine = bid_engine
    app.state.bid_queues = ws.bid_queues(bid_engine)
    return app
