"""Database plumbing: the one ``MetaData``, the engine, and the unit of work.

One way to talk to the database: SQLAlchemy Core over ``AsyncConnection``. The
transaction boundary belongs to the edge (a web request, a CLI command):
``async with transaction(engine) as conn:``; services take ``conn`` and never commit.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import MetaData, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

T = TypeVar("T")

# SQLSTATEs worth retrying: serialization failure, deadlock, and connection loss mid-transaction.
RETRYABLE_SQLSTATES = {"40001", "40P01"}


def create_engine(url: str, *, pool_size: int = 10, max_overflow: int = 20) -> AsyncEngine:
    """An asyncpg engine with timezone UTC and a health-checked pool."""
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={"server_settings": {"timezone": "UTC", "application_name": "market"}},
    )


@asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One unit of work: commits on success, rolls back on any exception."""
    async with engine.begin() as conn:
        yield conn


def sqlstate(exc: BaseException) -> str | None:
    """The PostgreSQL SQLSTATE behind a SQLAlchemy/asyncpg error, if any."""
    orig = getattr(exc, "orig", None)
    for candidate in (orig, getattr(orig, "__cause__", None), exc):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if code:
            return str(code)
    return None


async def run_in_transaction(
    engine: AsyncEngine,
    work: Callable[[AsyncConnection], Awaitable[T]],
    *,
    attempts: int = 8,
) -> T:
    """Run ``work`` in its own transaction, retrying serialization failures and deadlocks."""
    for attempt in range(attempts):
        try:
            async with engine.begin() as conn:
                return await work(conn)
        except DBAPIError as exc:
            if sqlstate(exc) not in RETRYABLE_SQLSTATES or attempt == attempts - 1:
                raise
            await asyncio.sleep(random.uniform(0, 0.005 * (2**attempt)))
    raise AssertionError("unreachable")


async def scalar(conn: AsyncConnection, sql: str, **params: Any) -> Any:
    """Run a textual query and return its first column of its first row."""
    return (await conn.execute(text(sql), params)).scalar()


TABLE_MODULES = (
    "market.tables",
    "market.ledger_store",
    "listings.tables",
    "auctions.tables",
    "auctions.monitor_tables",
)


def load_all_tables() -> MetaData:
    """Import every module that defines tables, so ``metadata`` describes the whole schema."""
    import importlib

    for name in TABLE_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    return metadata
