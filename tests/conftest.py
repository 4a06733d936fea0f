"""Test fixtures: a real PostgreSQL (embedded, or DATABASE_URL's server), one fresh database per run.

Migrations run once per session with Alembic (never ``create_all``). Isolation per test is
cheap: service tests get a connection whose transaction is rolled back; HTTP tests create
their own organisations with unique names, and everything they touch is scoped to those.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from market import migrate
from market.config import Settings
from market.db import create_engine

ROOT = Path(__file__).resolve().parent.parent
# Timing rules shortened for tests (allowed for bank-led listings); money rules are never settings.
FAST_TIMING = {
    "MARKET_MIN_NOTICE_SECONDS": 0,
    "MARKET_MIN_REAUCTION_NOTICE_SECONDS": 0,
    "MARKET_MIN_AUCTION_SECONDS": 1,
    "MARKET_MIN_EXTENSION_SECONDS": 1,
    "MARKET_EXTENSION_SECONDS": 2,
    "MARKET_CLOSE_GRACE_MS": 300,
}
TEST_DATA = ROOT / "var" / "test"


def _server_url() -> str:
    """URL of a maintenance database on the server the tests use."""
    external = os.environ.get("DATABASE_URL")
    if external:
        return external
    from market import embedded

    return embedded.start(TEST_DATA / "pgdata", database="postgres")


async def _admin(url: str, sql: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql(sql)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def database_url() -> Any:
    server = _server_url()
    name = f"market_test_{os.getpid()}_{secrets.token_hex(3)}"
    asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(url)
    yield url
    asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        DATABASE_URL=database_url,
        MARKET_DATA_DIR=tmp_path_factory.mktemp("data"),
        MARKET_SECRET_KEY="test-secret-key-" + "x" * 32,
        MARKET_LOGIN_MAX_FAILURES=5,
        **FAST_TIMING,
    )


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url, pool_size=5)
    yield eng
    await eng.dispose()


@pytest.fixture
async def conn(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection inside a transaction that is rolled back after the test."""
    async with engine.connect() as connection:
        outer = await connection.begin()
        try:
            yield connection
        finally:
            await outer.rollback()


@pytest.fixture(scope="session")
def app(settings: Settings, engine: AsyncEngine) -> Any:
    from web.app import create_app

    return create_app(settings, engine=engine)


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


_counter = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}{os.getpid()}{next(_counter)}{secrets.token_hex(2)}"
