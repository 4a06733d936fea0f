"""Database plumbing: the one ``MetaData``, the engine, and the unit of work.

The database is reached through SQLAlchemy Core over ``AsyncConnection``; the statements of the
hot paths (bids, closes, receipts) are written-out SQL sent through the same connection's asyncpg
driver (``market.pg``), in the same transaction. The transaction boundary belongs to the edge (a
web request, a CLI command): ``async with transaction(engine) as conn:``; services take ``conn``
and never commit.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import MetaData, event, text
from sqlalchemy.exc import DBAPIError, DisconnectionError
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


def create_engine(
    url: str, *, pool_size: int = 10, max_overflow: int = 20, generic_plans: bool = False
) -> AsyncEngine:
    """An asyncpg engine with timezone UTC and a health-checked pool.

    ``generic_plans``: the connections plan each prepared statement once
    (``plan_cache_mode = force_generic_plan``), for work whose every statement looks rows up by key,
    so that the best plan never depends on the values. PostgreSQL otherwise re-plans a statement
    whose generic plan it estimates dearer than a custom one; for the websocket bids' read (the
    bidders' registrations and stored answers joined to ``unnest`` of the batch's requests) it
    did for the few-bid queuefuls of a hot auction, and planning cost 130 µs of the server's CPU
    per read, more than running it.
    Not for searches and reports, whose plans do depend on the values.

    The health check costs no round trip: SQLAlchemy's ``pool_pre_ping`` on asyncpg is three
    (BEGIN, ``;``, ROLLBACK) before every transaction, more than a whole bid. A connection whose
    socket the server closed (a restart, a terminated backend) is known to asyncpg as closed and
    is replaced at checkout; one that breaks in use fails its statement with
    ``connection_invalidated``, which ``run_in_transaction`` and ``run_autocommit`` retry.
    """
    server_settings = {"timezone": "UTC", "application_name": "market"}
    if generic_plans:
        server_settings["plan_cache_mode"] = "force_generic_plan"
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_recycle=1800,
        connect_args={"server_settings": server_settings},
    )
    event.listen(engine.sync_engine, "checkout", _refuse_closed)
    from market import audit  # audit's tables import this module's metadata

    audit.install(engine.sync_engine)
    return engine


def _refuse_closed(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    driver = getattr(record, "driver_connection", None)
    if driver is None or driver.is_closed():
        raise DisconnectionError("connection closed by the server")  # the pool replaces it


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

    async def once(progress: list[bool]) -> T:
        async with engine.begin() as conn:
            result = await work(conn)
            progress.append(True)  # a connection lost from here on may have committed: not retried
        return result

    return await _retrying(once, attempts)


async def warm(engine: AsyncEngine, connections: int) -> None:
    """Open ``connections`` of ``engine``'s pool now, not under the first requests: each costs a
    server backend and the driver's type set-up, tens of milliseconds that a bid should not wait."""
    async with AsyncExitStack() as stack:  # all held at once, so that each is a new one
        for _ in range(connections):
            conn = await stack.enter_async_context(engine.connect())
            await conn.exec_driver_sql("SELECT 1")


async def run_autocommit(
    engine: AsyncEngine,
    work: Callable[[AsyncConnection], Awaitable[T]],
    *,
    attempts: int = 8,
) -> T:
    """Run ``work`` with every statement its own transaction (no BEGIN/COMMIT round trips).

    For work whose every write is one self-contained statement that a retry recognises as done
    (the websocket bid: one guarded CTE that also stores its request id). Serialization failures,
    deadlocks and broken connections are retried.
    """

    async def once(progress: list[bool]) -> T:
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            return await work(conn)

    return await _retrying(once, attempts)


async def _retrying(once: Callable[[list[bool]], Awaitable[T]], attempts: int) -> T:
    """``once`` until it does not fail retryably, with jittered exponential backoff. ``once`` marks
    its progress list when a COMMIT may have been sent (a broken connection is then not retried)."""
    for attempt in range(attempts):
        progress: list[bool] = []
        try:
            return await once(progress)
        except DBAPIError as exc:
            if not retryable(exc, committing=bool(progress)) or attempt == attempts - 1:
                raise
            await asyncio.sleep(random.uniform(0, 0.005 * (2**attempt)))
    raise AssertionError("unreachable")


def retryable(exc: DBAPIError, *, committing: bool = False) -> bool:
    """A serialization failure or a deadlock (nothing was committed), or a connection that broke
    before the COMMIT was sent."""
    if sqlstate(exc) in RETRYABLE_SQLSTATES:
        return True
    return bool(exc.connection_invalidated) and not committing


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
