"""asyncpg underneath a SQLAlchemy ``AsyncConnection``, for the few statements on hot paths.

SQLAlchemy Core costs about 80–130 µs of CPU per statement on top of asyncpg's 60 (statement
construction, cache keys, the greenlet hop, result metadata). The bid, the close and the receipt
run a dozen or more statements each, so on those paths the SQL is written out and sent through
the connection's own asyncpg driver — in the SAME transaction as the SQLAlchemy statements around
it, with the same JSON codecs (SQLAlchemy installs them on connect: ``jsonb`` parameters are
JSON text, results come back decoded), and with errors turned into SQLAlchemy's exceptions so
that ``market.db.retryable`` and the callers' ``except IntegrityError`` see them as before.

Rows are ``Rec``: asyncpg records that also answer attribute access (``row.state``), as
SQLAlchemy rows do.
"""

from __future__ import annotations

import contextlib
from typing import Any

import asyncpg
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["Rec", "driver", "execute", "fetch", "fetchrow", "fetchval"]


class Rec(asyncpg.Record):  # type: ignore[misc]  # asyncpg ships no stubs
    """An asyncpg record whose columns are also attributes."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def _mapping(self) -> Rec:  # SQLAlchemy's ``Row._mapping``: the record already maps
        return self

    def _asdict(self) -> dict[str, Any]:
        return dict(self.items())


async def driver(conn: AsyncConnection) -> Any:
    """The asyncpg connection behind ``conn``, inside ``conn``'s transaction.

    SQLAlchemy's asyncpg adapter sends BEGIN lazily, with its first statement; a raw statement
    that came first would run outside the transaction, so the BEGIN is sent here if it is due.
    """
    if not conn.in_transaction():
        await conn.begin()  # what SQLAlchemy's autobegin would do on the next execute
    sync = conn.sync_connection
    if sync is not None and not sync.invalidated and not sync.closed:
        fairy = sync.connection  # already checked out: no I/O, so no greenlet hop is needed
    else:
        fairy = await conn.get_raw_connection()  # raises the reason it cannot be used
    adapted: Any = fairy.dbapi_connection
    if _transaction_due(adapted):
        await adapted._start_transaction()  # a no-op under AUTOCOMMIT
    return fairy.driver_connection


def _transaction_due(adapted: Any) -> bool:
    if hasattr(adapted, "_started"):  # SQLAlchemy 2.0
        return not adapted._started
    return adapted._transaction is None  # SQLAlchemy 2.1


async def fetch(conn: AsyncConnection, sql: str, *args: Any) -> list[Rec]:
    driver_conn = await driver(conn)
    try:
        rows: list[Rec] = await driver_conn.fetch(sql, *args, record_class=Rec)
    except Exception as error:
        raise await _translate(conn, error, sql, args) from error
    return rows


async def fetchrow(conn: AsyncConnection, sql: str, *args: Any) -> Rec | None:
    driver_conn = await driver(conn)
    try:
        row: Rec | None = await driver_conn.fetchrow(sql, *args, record_class=Rec)
    except Exception as error:
        raise await _translate(conn, error, sql, args) from error
    return row


async def fetchval(conn: AsyncConnection, sql: str, *args: Any) -> Any:
    driver_conn = await driver(conn)
    try:
        return await driver_conn.fetchval(sql, *args)
    except Exception as error:
        raise await _translate(conn, error, sql, args) from error


async def execute(conn: AsyncConnection, sql: str, *args: Any) -> str:
    """Run a statement; returns its status (``UPDATE 1``)."""
    driver_conn = await driver(conn)
    try:
        status: str = await driver_conn.execute(sql, *args)
    except Exception as error:
        raise await _translate(conn, error, sql, args) from error
    return status


_BY_CLASS: dict[str, type[sa_exc.DBAPIError]] = {
    "23": sa_exc.IntegrityError,  # integrity constraint violation
    "22": sa_exc.DataError,  # data exception
    "40": sa_exc.OperationalError,  # serialization failure, deadlock
    "42": sa_exc.ProgrammingError,  # syntax error or access rule violation
    "57": sa_exc.OperationalError,  # operator intervention (a cancelled statement)
}


async def _translate(conn: AsyncConnection, error: Exception, sql: str, args: tuple[Any, ...]) -> Exception:
    """The SQLAlchemy exception SQLAlchemy would have raised for ``error``.

    A lost connection is invalidated (the pool discards it) and says so, so that the unit of
    work's retry treats it as SQLAlchemy's own disconnects.
    """
    if isinstance(error, asyncpg.PostgresConnectionError):  # class 08, the connection is gone
        return await _lost(conn, error, sql, args)
    if isinstance(error, asyncpg.PostgresError):
        code = str(getattr(error, "sqlstate", "") or "")
        if code.startswith("57P"):  # the server is going away: so is the connection
            return await _lost(conn, error, sql, args)
        return _BY_CLASS.get(code[:2], sa_exc.DBAPIError)(sql, args, error)
    if isinstance(error, (asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError, OSError)):
        return await _lost(conn, error, sql, args)
    return error


async def _lost(conn: AsyncConnection, error: Exception, sql: str, args: tuple[Any, ...]) -> Exception:
    with contextlib.suppress(Exception):  # already gone: the pool replaces it either way
        await conn.invalidate()
    return sa_exc.OperationalError(sql, args, error, connection_invalidated=True)
