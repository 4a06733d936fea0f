"""``market.pg``: raw asyncpg statements share the SQLAlchemy connection's transaction, and fail
the way SQLAlchemy's own statements fail (so retries and ``except IntegrityError`` still work)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from market import pg
from market.db import retryable, run_autocommit, run_in_transaction, sqlstate, transaction
from tests.conftest import unique


@pytest.fixture
async def table(engine: AsyncEngine) -> AsyncIterator[str]:
    name = unique("pg_raw_probe_")
    async with transaction(engine) as conn:
        await conn.execute(text(f"CREATE TABLE {name} (id bigint PRIMARY KEY, note text, doc jsonb)"))
    yield name
    async with transaction(engine) as conn:
        await conn.execute(text(f"DROP TABLE {name}"))


async def _count(engine: AsyncEngine, table: str) -> int:
    async with transaction(engine) as conn:
        return int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


async def test_a_raw_statement_that_comes_first_is_inside_the_transaction(
    engine: AsyncEngine, table: str
) -> None:
    with pytest.raises(RuntimeError):
        async with transaction(engine) as conn:
            await pg.execute(conn, f"INSERT INTO {table} (id, note) VALUES (1, 'first')")
            await conn.execute(text(f"INSERT INTO {table} (id, note) VALUES (2, 'second')"))
            assert await pg.fetchval(conn, f"SELECT count(*) FROM {table}") == 2
            raise RuntimeError("roll it back")
    assert await _count(engine, table) == 0
    async with transaction(engine) as conn:
        await pg.execute(conn, f"INSERT INTO {table} (id, note) VALUES (1, 'kept')")
    assert await _count(engine, table) == 1


async def test_a_raw_row_lock_is_held_until_the_transaction_ends(engine: AsyncEngine, table: str) -> None:
    async with transaction(engine) as conn:
        await conn.execute(text(f"INSERT INTO {table} (id) VALUES (1)"))
    async with transaction(engine) as holder:
        await pg.fetchrow(holder, f"SELECT * FROM {table} WHERE id = 1 FOR UPDATE")
        with pytest.raises(DBAPIError) as refused:
            async with transaction(engine) as other:
                await pg.fetchrow(other, f"SELECT * FROM {table} WHERE id = 1 FOR UPDATE NOWAIT")
        assert sqlstate(refused.value) == "55P03"  # lock_not_available


async def test_rows_answer_attributes_and_jsonb_round_trips(engine: AsyncEngine, table: str) -> None:
    async with transaction(engine) as conn:
        await pg.execute(conn, f"INSERT INTO {table} VALUES ($1, $2, $3::jsonb)", 7, "专利", '{"a": [1, 2]}')
        row = await pg.fetchrow(conn, f"SELECT * FROM {table} WHERE id = $1", 7)
    assert row is not None
    assert (row.id, row.note, row.doc) == (7, "专利", {"a": [1, 2]})
    assert row._mapping["note"] == "专利" and row._asdict() == {"id": 7, "note": "专利", "doc": {"a": [1, 2]}}
    with pytest.raises(AttributeError):
        _ = row.missing


async def test_a_constraint_violation_is_sqlalchemys_integrity_error(engine: AsyncEngine, table: str) -> None:
    async with transaction(engine) as conn:
        await pg.execute(conn, f"INSERT INTO {table} (id) VALUES (1)")
    with pytest.raises(IntegrityError) as duplicate:
        async with transaction(engine) as conn:
            await pg.execute(conn, f"INSERT INTO {table} (id) VALUES (1)")
    assert sqlstate(duplicate.value) == "23505"
    assert not retryable(duplicate.value)


async def test_a_killed_connection_is_invalidated_and_retryable(engine: AsyncEngine, table: str) -> None:
    with pytest.raises(DBAPIError) as lost:
        async with transaction(engine) as conn:
            pid = await pg.fetchval(conn, "SELECT pg_backend_pid()")
            async with transaction(engine) as killer:
                await killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            await pg.execute(conn, f"INSERT INTO {table} (id) VALUES (1)")
    assert lost.value.connection_invalidated
    assert retryable(lost.value)
    async with transaction(engine) as conn:  # the pool replaced the connection
        assert await pg.fetchval(conn, "SELECT 1") == 1


async def test_under_autocommit_each_raw_statement_commits_alone(engine: AsyncEngine, table: str) -> None:
    async def work(conn: object) -> None:
        await pg.execute(conn, f"INSERT INTO {table} (id) VALUES (1)")  # type: ignore[arg-type]
        await pg.execute(conn, f"INSERT INTO {table} (id) VALUES (1)")  # type: ignore[arg-type]

    with pytest.raises(IntegrityError):
        await run_autocommit(engine, work)
    assert await _count(engine, table) == 1  # the first insert stands


async def test_the_unit_of_work_retries_serialization_failures_and_lost_connections(
    engine: AsyncEngine, table: str
) -> None:
    attempts: list[int] = []

    async def work(conn: Any) -> int:
        attempts.append(len(attempts) + 1)
        await pg.execute(conn, f"INSERT INTO {table} (id) VALUES ($1)", len(attempts))
        if len(attempts) == 1:  # the first attempt is chosen as a serialization victim
            await pg.execute(conn, "DO $$ BEGIN RAISE EXCEPTION 'victim' USING ERRCODE = '40001'; END $$")
        if len(attempts) == 2:  # the second loses its connection
            pid = await pg.fetchval(conn, "SELECT pg_backend_pid()")
            async with transaction(engine) as killer:
                await killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            await pg.execute(conn, "SELECT 1")
        return len(attempts)

    assert await run_in_transaction(engine, work) == 3
    async with transaction(engine) as conn:  # only the third attempt's insert was committed
        assert [r.id for r in await pg.fetch(conn, f"SELECT id FROM {table}")] == [3]


async def test_the_unit_of_work_does_not_retry_what_is_not_transient(engine: AsyncEngine, table: str) -> None:
    attempts: list[int] = []

    async def work(conn: Any) -> None:
        attempts.append(1)
        await pg.execute(conn, f"INSERT INTO {table} (id) VALUES (1), (1)")

    with pytest.raises(IntegrityError):
        await run_in_transaction(engine, work)
    assert len(attempts) == 1


async def test_the_services_websocket_bids_run_on_connections_that_plan_once(settings: Any) -> None:
    """``market serve``'s app decides websocket bids on an engine of its own whose connections
    use generic plans; its other work keeps PostgreSQL's choice (searches' plans depend on values)."""
    from web.app import create_app

    app = create_app(settings)
    try:
        async with app.state.bid_engine.connect() as conn:
            assert await pg.fetchval(conn, "SHOW plan_cache_mode") == "force_generic_plan"
        async with app.state.engine.connect() as conn:
            assert await pg.fetchval(conn, "SHOW plan_cache_mode") == "auto"
        assert app.state.bid_engine is not app.state.engine
    finally:
        await app.state.bid_engine.dispose()
        await app.state.engine.dispose()


async def test_warm_opens_the_pools_connections_before_they_are_needed(database_url: str) -> None:
    from market.db import create_engine, warm

    fresh = create_engine(database_url, pool_size=3)
    try:
        assert fresh.sync_engine.pool.checkedin() == 0
        await warm(fresh, 3)
        assert fresh.sync_engine.pool.checkedin() == 3
    finally:
        await fresh.dispose()
