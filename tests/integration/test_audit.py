"""The audit trail: hash-chained, append-only in the database, never forked by concurrent writers."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from market import audit
from market.db import transaction


async def test_entries_chain_and_verify(conn: AsyncConnection) -> None:
    await audit.record(
        conn,
        actor_user_id=1,
        actor_org_id=1,
        action="thing.create",
        entity="thing",
        entity_id=7,
        after={"name": "专利 A", "amount_fen": 10**15},
    )
    await audit.record(
        conn,
        actor_user_id=1,
        actor_org_id=1,
        action="thing.update",
        entity="thing",
        entity_id=7,
        before={"name": "专利 A"},
        after={"name": "专利 B"},
    )
    first, second = await audit.flush(conn)
    assert second.seq == first.seq + 1
    assert second.prev_hash == first.hash
    assert (await audit.verify(conn)).ok


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET action = 'forged'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ],
)
async def test_database_refuses_changing_history(conn: AsyncConnection, statement: str) -> None:
    await audit.record(conn, actor_user_id=None, actor_org_id=None, action="x", entity="x", entity_id=1)
    await audit.flush(conn)
    with pytest.raises(DBAPIError, match="append-only"):
        async with conn.begin_nested():
            await conn.execute(text(statement))


async def test_database_refuses_an_entry_that_does_not_extend_the_chain(conn: AsyncConnection) -> None:
    await audit.record(conn, actor_user_id=None, actor_org_id=None, action="x", entity="x", entity_id=1)
    await audit.flush(conn)
    with pytest.raises(DBAPIError, match="chain broken"):
        async with conn.begin_nested():
            await conn.execute(
                text(
                    "INSERT INTO audit_log (seq, at, action, entity, entity_id, prev_hash, hash) "
                    "VALUES ((SELECT max(seq) + 5 FROM audit_log), now(), 'x', 'x', '1', "
                    "repeat('0', 64), 'f')"
                )
            )


async def test_concurrent_writers_never_fork_or_leave_gaps(engine: AsyncEngine) -> None:
    writers, per_writer = 20, 15

    async def writer(n: int) -> None:
        for i in range(per_writer):
            async with transaction(engine) as c:
                await audit.record(
                    c,
                    actor_user_id=n,
                    actor_org_id=None,
                    action="concurrency.test",
                    entity="writer",
                    entity_id=n,
                    after={"i": i},
                )

    await asyncio.gather(*(writer(n) for n in range(writers)))
    async with engine.connect() as c:
        report = await audit.verify(c)
        mine = (
            await c.execute(text("SELECT count(*) FROM audit_log WHERE action = 'concurrency.test'"))
        ).scalar()
        seqs = [r[0] for r in (await c.execute(text("SELECT seq FROM audit_log ORDER BY seq"))).all()]
    assert report.ok, report
    assert mine >= writers * per_writer
    assert seqs == list(range(1, len(seqs) + 1))


async def test_entries_are_written_at_commit_and_go_with_a_rollback(engine: AsyncEngine) -> None:
    """Entries are chained just before COMMIT; a rolled-back transaction or savepoint takes its own."""

    async def count(action: str) -> int:
        async with engine.connect() as c:
            n = await c.scalar(text("SELECT count(*) FROM audit_log WHERE action = :a"), {"a": action})
            return int(n or 0)

    def entry(action: str, n: int) -> dict[str, object]:
        return {"actor_user_id": None, "actor_org_id": None, "action": action, "entity": "t", "entity_id": n}

    async with transaction(engine) as c:
        await audit.record(c, **entry("commit.kept", 1))  # type: ignore[arg-type]
        assert await count("commit.kept") == 0  # not yet: written at COMMIT
        with pytest.raises(RuntimeError):
            async with c.begin_nested():
                await audit.record(c, **entry("savepoint.dropped", 2))  # type: ignore[arg-type]
                raise RuntimeError("roll the savepoint back")
        async with c.begin_nested():
            await audit.record(c, **entry("savepoint.kept", 3))  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        async with transaction(engine) as c:
            await audit.record(c, **entry("rollback.dropped", 4))  # type: ignore[arg-type]
            raise RuntimeError("roll the transaction back")
    async with transaction(engine) as c:  # the same pooled connection: nothing left over from before
        await c.execute(text("SELECT 1"))
    assert [await count(a) for a in ("commit.kept", "savepoint.dropped", "savepoint.kept")] == [1, 0, 1]
    assert await count("rollback.dropped") == 0
    async with engine.connect() as c:
        assert (await audit.verify(c)).ok
