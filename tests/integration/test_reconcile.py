"""``market reconcile``: every ledger invariant over the whole database, every problem listed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from market import ledger_store
from market.ledger import Posting


async def test_clean_ledger_has_no_problems(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        assert await ledger_store.reconcile(conn) == []


async def test_every_kind_of_tampering_is_listed(conn: AsyncConnection) -> None:
    await ledger_store.post(
        conn,
        key="rec-test-1",
        scope="test",
        type="test",
        content={"x": 1},
        postings=[Posting("buyer:rec1", "escrow:rec1", 500, "money left in escrow")],
    )
    await conn.execute(text("UPDATE ledger_accounts SET balance = balance + 7 WHERE name = 'buyer:rec1'"))
    await conn.execute(
        text(
            "INSERT INTO ledger_accounts (name, balance, may_go_negative) VALUES ('hold:999999:1', 3, false)"
        )
    )
    codes = {p.code for p in await ledger_store.reconcile(conn)}
    assert {"money_created_or_lost", "balance_drift", "escrow_not_zero", "hold_mismatch"} <= codes


async def test_database_refuses_an_unbalanced_entry(conn: AsyncConnection) -> None:
    entry = (
        await conn.execute(
            text(
                "INSERT INTO ledger_entries (key, scope, type, content, content_hash) "
                "VALUES ('unbalanced-1', 't', 't', '{}', 'x') RETURNING id"
            )
        )
    ).scalar()
    await conn.execute(
        text(
            "INSERT INTO ledger_accounts (name, may_go_negative) VALUES ('buyer:unb', true) "
            "ON CONFLICT DO NOTHING"
        )
    )
    await conn.execute(
        text(
            "INSERT INTO ledger_lines (entry_id, posting_no, side, account, amount_fen) "
            "VALUES (:e, 1, 'C', 'buyer:unb', 100)"
        ),
        {"e": entry},
    )
    with pytest.raises(DBAPIError, match="does not balance"):
        await conn.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))


async def test_database_refuses_overdraft_and_edits(conn: AsyncConnection) -> None:
    with pytest.raises(DBAPIError, match="not_negative"):
        async with conn.begin_nested():
            await ledger_store.post(
                conn,
                key="overdraft-1",
                scope="t",
                type="t",
                content={},
                postings=[Posting("escrow:od1", "buyer:od1", 1, "overdraft")],
            )
    await ledger_store.post(
        conn,
        key="edit-1",
        scope="t",
        type="t",
        content={},
        postings=[Posting("buyer:ed1", "escrow:ed1", 1, "x")],
    )
    for sql in (
        "UPDATE ledger_lines SET amount_fen = 2 WHERE amount_fen = 1 AND account = 'escrow:ed1'",
        "DELETE FROM ledger_entries WHERE key = 'edit-1'",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with conn.begin_nested():
                await conn.execute(text(sql))


def test_cli_exit_code(database_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": database_url}
    r = subprocess.run(
        [sys.executable, "-m", "market", "reconcile"], env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "reconciled" in r.stdout
