"""The double-entry ledger in PostgreSQL.

Shape (migration 0003):
- ``ledger_accounts``: one row per account with its signed balance (credits − debits).
  CHECKs refuse a negative balance where the account may not go negative, and a balance
  above the account's ceiling (a claim bucket never receives more than it was owed).
- ``ledger_entries``: one per operation, keyed by its idempotency key (unique); the
  canonical content's hash tells a replay (same content: nothing happens) from a reused
  key (different content: refused).
- ``ledger_lines``: each posting ``{debit, credit, amount}`` is two lines, −amount on the
  debit account and +amount on the credit account. A deferred constraint trigger refuses
  to commit an entry whose lines do not sum to zero; another trigger keeps the account
  balance; entries and lines can never be updated or deleted — corrections are reversals.

Balances at a past moment are the sum of lines up to that entry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from market import pg
from market.db import metadata
from market.errors import IdempotencyKeyReused
from market.ledger import LedgerProblem, Posting, account_may_go_negative

TS = DateTime(timezone=True)

ledger_accounts = Table(
    "ledger_accounts",
    metadata,
    Column("name", String(120), primary_key=True),
    Column("balance", BigInteger, nullable=False, server_default="0"),
    Column("may_go_negative", Boolean, nullable=False),
    Column("ceiling", BigInteger),
    Column("created_at", TS, nullable=False, server_default=func.now()),
    CheckConstraint("may_go_negative OR balance >= 0", name="not_negative"),
    CheckConstraint("ceiling IS NULL OR balance <= ceiling", name="within_ceiling"),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("key", String(200), nullable=False, unique=True),
    Column("scope", String(120), nullable=False),
    Column("type", String(32), nullable=False),
    Column("content", JSONB, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("effective_at", TS, nullable=False, server_default=func.now()),
    Column("created_at", TS, nullable=False, server_default=func.now()),
    Column("reverses_entry_id", BigInteger, ForeignKey("ledger_entries.id"), unique=True),
    Index("ix_ledger_entries_scope", "scope", "id"),
)

ledger_lines = Table(
    "ledger_lines",
    metadata,
    Column("entry_id", BigInteger, ForeignKey("ledger_entries.id"), nullable=False),
    Column("posting_no", Integer, nullable=False),
    Column("side", String(1), nullable=False),
    Column("account", String(120), ForeignKey("ledger_accounts.name"), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("memo", Text, nullable=False, server_default=""),
    PrimaryKeyConstraint("entry_id", "posting_no", "side", name="pk_ledger_lines"),
    CheckConstraint("(side = 'D' AND amount_fen < 0) OR (side = 'C' AND amount_fen > 0)", name="side_sign"),
    Index("ix_ledger_lines_account", "account", "entry_id"),
)

BUCKETS = ("costs", "interest", "principal")


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    key: str
    duplicate: bool
    result: Any


def canonical(content: Mapping[str, Any]) -> str:
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def content_hash(content: Mapping[str, Any]) -> str:
    return _digest(canonical(content))


def _digest(canonical_text: str) -> str:
    return hashlib.sha256(canonical_text.encode()).hexdigest()


_ENSURE_ACCOUNTS = """
    INSERT INTO ledger_accounts (name, may_go_negative, ceiling)
    SELECT * FROM unnest($1::text[], $2::boolean[], $3::bigint[])
    ON CONFLICT DO NOTHING
"""


async def ensure_accounts(
    conn: AsyncConnection, names: Iterable[str], ceilings: Mapping[str, int] | None = None
) -> None:
    """Create missing accounts (idempotent); ``ceilings`` caps claim buckets at what is owed.

    In name order, so that two transactions creating the same accounts cannot deadlock.
    """
    wanted = sorted(set(names))
    if wanted:
        caps = ceilings or {}
        await pg.execute(
            conn,
            _ENSURE_ACCOUNTS,
            wanted,
            [account_may_go_negative(n) for n in wanted],
            [caps.get(n) for n in wanted],
        )


_FIND_ENTRY = "SELECT * FROM ledger_entries WHERE key = $1"


async def find_entry(conn: AsyncConnection, key: str) -> Any:
    return await pg.fetchrow(conn, _FIND_ENTRY, key)


# The entry and its lines in one statement; nothing at all if the key is taken (ON CONFLICT), in
# which case the caller reads the stored entry. The lines' triggers move the account balances.
_POST = """
    WITH e AS (
        INSERT INTO ledger_entries (key, scope, type, content, content_hash, effective_at, reverses_entry_id)
        VALUES ($1, $2, $3, $4::jsonb, $5, coalesce($6::timestamptz, now()), $7)
        ON CONFLICT (key) DO NOTHING
        RETURNING id
    ), l AS (
        INSERT INTO ledger_lines (entry_id, posting_no, side, account, amount_fen, memo)
        SELECT e.id, x.posting_no, x.side, x.account, x.amount_fen, x.memo
        FROM e, unnest($8::int[], $9::text[], $10::text[], $11::bigint[], $12::text[])
            AS x(posting_no, side, account, amount_fen, memo)
        RETURNING 1
    )
    SELECT (SELECT id FROM e) AS id, (SELECT count(*) FROM l) AS lines
"""


async def post(
    conn: AsyncConnection,
    *,
    key: str,
    scope: str,
    type: str,
    content: Mapping[str, Any],
    postings: Sequence[Posting],
    effective_at: datetime | None = None,
    reverses_entry_id: int | None = None,
    ceilings: Mapping[str, int] | None = None,
) -> Entry:
    """Record one operation and its postings atomically, once per idempotency key.

    Every account the postings touch is created first if missing (and those of ``ceilings``,
    with their ceilings), then the entry and its lines are one statement. Returns the stored
    entry; a replay with the same content returns the original (``duplicate=True``) and changes
    nothing.

    Raises:
        IdempotencyKeyReused: the key was used for different content.
    """
    text_ = canonical(content)
    digest = _digest(text_)
    touched = [a for p in postings for a in (p.debit, p.credit)]
    await ensure_accounts(conn, [*(ceilings or {}), *touched], ceilings)
    numbers, sides, accounts, amounts, memos = [], [], [], [], []
    for n, p in enumerate(postings, 1):
        numbers += [n, n]
        sides += ["D", "C"]
        accounts += [p.debit, p.credit]
        amounts += [-p.amount_fen, p.amount_fen]
        memos += [p.memo, p.memo]
    row = await pg.fetchrow(
        conn,
        _POST,
        key,
        scope,
        type,
        text_,
        digest,
        effective_at,
        reverses_entry_id,
        numbers,
        sides,
        accounts,
        amounts,
        memos,
    )
    assert row is not None
    if row.id is None:
        existing = await find_entry(conn, key)
        if existing.content_hash != digest:
            raise IdempotencyKeyReused(f"Operation id {key!r} was already used for a different operation")
        return Entry(existing.id, key, True, existing.content)
    assert row.lines == len(numbers), "ledger lines not written"
    return Entry(row.id, key, False, content)


async def balances(conn: AsyncConnection, names: Iterable[str]) -> dict[str, int]:
    wanted = list(names)
    q = select(ledger_accounts.c.name, ledger_accounts.c.balance).where(ledger_accounts.c.name.in_(wanted))
    found = {r.name: r.balance for r in (await conn.execute(q)).all()}
    return {n: found.get(n, 0) for n in wanted}


async def balance_at(
    conn: AsyncConnection, account: str, *, as_of_entry: int | None = None, as_of: datetime | None = None
) -> int:
    """The balance of ``account`` after entry ``as_of_entry`` or at instant ``as_of`` (replay of lines)."""
    q = (
        select(func.coalesce(func.sum(ledger_lines.c.amount_fen), 0))
        .join(ledger_entries, ledger_entries.c.id == ledger_lines.c.entry_id)
        .where(ledger_lines.c.account == account)
    )
    if as_of_entry is not None:
        q = q.where(ledger_entries.c.id <= as_of_entry)
    if as_of is not None:
        q = q.where(ledger_entries.c.effective_at <= as_of)
    return int((await conn.execute(q)).scalar_one())


def claim_accounts(claim_id: int) -> list[str]:
    return [f"claim:{claim_id}:{b}" for b in BUCKETS]


async def claim_recovered(conn: AsyncConnection, claim_id: int) -> dict[str, int]:
    """What has been applied to each bucket of a claim (the claim receivable balances)."""
    found = await balances(conn, claim_accounts(claim_id))
    return {f"{b}_fen": found[f"claim:{claim_id}:{b}"] for b in BUCKETS}


async def reconcile(conn: AsyncConnection) -> list[LedgerProblem]:
    """Every ledger invariant over the whole database; all problems, not just the first."""
    problems: list[LedgerProblem] = []
    total = (await conn.execute(text("SELECT coalesce(sum(balance), 0) FROM ledger_accounts"))).scalar_one()
    if total != 0:
        problems.append(LedgerProblem("money_created_or_lost", f"balances sum to {total}, not 0"))
    drift = await conn.execute(
        text(
            "SELECT a.name, a.balance, coalesce(sum(l.amount_fen), 0) AS replay FROM ledger_accounts a "
            "LEFT JOIN ledger_lines l ON l.account = a.name GROUP BY a.name, a.balance "
            "HAVING a.balance <> coalesce(sum(l.amount_fen), 0)"
        )
    )
    problems += [
        LedgerProblem("balance_drift", f"{r.name}: stored {r.balance}, journal {r.replay}")
        for r in drift.all()
    ]
    unbalanced = await conn.execute(
        text(
            "SELECT entry_id, sum(amount_fen) AS s FROM ledger_lines "
            "GROUP BY entry_id HAVING sum(amount_fen) <> 0"
        )
    )
    problems += [LedgerProblem("unbalanced", f"entry {r.entry_id} sums to {r.s}") for r in unbalanced.all()]
    negative = await conn.execute(
        text("SELECT name, balance FROM ledger_accounts WHERE balance < 0 AND NOT may_go_negative")
    )
    problems += [LedgerProblem("negative_balance", f"{r.name}: {r.balance}") for r in negative.all()]
    over = await conn.execute(
        text(
            "SELECT name, balance, ceiling FROM ledger_accounts "
            "WHERE ceiling IS NOT NULL AND balance > ceiling"
        )
    )
    problems += [LedgerProblem("over_limit", f"{r.name}: {r.balance} > {r.ceiling}") for r in over.all()]
    problems += await _settlement_problems(conn)
    return problems


# Checks against the settlement registers (tables of the listings package, read by name so the
# kernel does not import it). Each returns every offending account, not just the first.
_HOLD = "coalesce((s.state->'holds'->>split_part(a.name, ':', 3))::bigint, 0)"
_FORFEIT = (
    "coalesce((SELECT sum((f->>'reserve_fen')::bigint) FROM jsonb_array_elements(s.state->'forfeits') f), 0)"
)
_OWED = (
    "CASE split_part(a.name, ':', 3) WHEN 'costs' THEN c.costs_fen "
    "WHEN 'interest' THEN c.interest_fen + c.default_interest_fen ELSE c.principal_fen END"
)
_LOT = "LEFT JOIN settlement_lots s ON s.listing_id::text = split_part(a.name, ':', 2)"
_SETTLEMENT_CHECKS = {
    "escrow_not_zero": (
        "SELECT name, balance FROM ledger_accounts WHERE name LIKE 'escrow:%' AND balance <> 0",
        "{name}: {balance} fen left in escrow after an operation",
    ),
    "hold_mismatch": (
        f"SELECT a.name, a.balance, {_HOLD} AS expected FROM ledger_accounts a {_LOT} "
        f"WHERE a.name LIKE 'hold:%' AND a.balance <> {_HOLD}",
        "{name}: balance {balance}, unresolved hold {expected}",
    ),
    "forfeit_mismatch": (
        f"SELECT a.name, a.balance, {_FORFEIT} AS expected FROM ledger_accounts a {_LOT} "
        f"WHERE a.name LIKE 'forfeit:%' AND a.balance <> {_FORFEIT}",
        "{name}: balance {balance}, forfeit reserve {expected}",
    ),
    "claim_overpaid": (
        f"SELECT a.name, a.balance, {_OWED} AS expected FROM ledger_accounts a "
        "JOIN claims c ON c.id::text = split_part(a.name, ':', 2) "
        f"WHERE a.name LIKE 'claim:%' AND a.balance > {_OWED}",
        "{name}: recovered {balance} exceeds the {expected} owed",
    ),
}


async def _settlement_problems(conn: AsyncConnection) -> list[LedgerProblem]:
    exists = (await conn.execute(text("SELECT to_regclass('public.settlement_lots')"))).scalar()
    if exists is None:
        return []
    problems: list[LedgerProblem] = []
    for code, (sql, message) in _SETTLEMENT_CHECKS.items():
        for row in (await conn.execute(text(sql))).all():
            problems.append(LedgerProblem(code, message.format(**row._mapping)))
    return problems
