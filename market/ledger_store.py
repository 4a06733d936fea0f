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
from sqlalchemy.dialects.postgresql import JSONB, insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

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
    return hashlib.sha256(canonical(content).encode()).hexdigest()


async def ensure_accounts(
    conn: AsyncConnection, names: Iterable[str], ceilings: Mapping[str, int] | None = None
) -> None:
    """Create missing accounts (idempotent); ``ceilings`` caps claim buckets at what is owed."""
    rows = [
        {"name": n, "may_go_negative": account_may_go_negative(n), "ceiling": (ceilings or {}).get(n)}
        for n in sorted(set(names))
    ]
    if rows:
        await conn.execute(pg_insert(ledger_accounts).values(rows).on_conflict_do_nothing())


async def find_entry(conn: AsyncConnection, key: str) -> Any:
    return (await conn.execute(select(ledger_entries).where(ledger_entries.c.key == key))).first()


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
) -> Entry:
    """Record one operation and its postings atomically, once per idempotency key.

    Returns the stored entry; a replay with the same content returns the original
    (``duplicate=True``) and changes nothing.

    Raises:
        IdempotencyKeyReused: the key was used for different content.
    """
    digest = content_hash(content)
    stmt = (
        pg_insert(ledger_entries)
        .values(
            key=key,
            scope=scope,
            type=type,
            content=json.loads(canonical(content)),
            content_hash=digest,
            effective_at=effective_at or func.now(),
            reverses_entry_id=reverses_entry_id,
        )
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(ledger_entries.c.id)
    )
    entry_id = (await conn.execute(stmt)).scalar()
    if entry_id is None:
        existing = await find_entry(conn, key)
        if existing.content_hash != digest:
            raise IdempotencyKeyReused(f"Operation id {key!r} was already used for a different operation")
        return Entry(existing.id, key, True, existing.content)
    await ensure_accounts(conn, [a for p in postings for a in (p.debit, p.credit)])
    await _insert_lines(conn, entry_id, postings)
    return Entry(entry_id, key, False, content)


async def _insert_lines(conn: AsyncConnection, entry_id: int, postings: Sequence[Posting]) -> None:
    rows = []
    for n, p in enumerate(postings, 1):
        rows.append(
            {
                "entry_id": entry_id,
                "posting_no": n,
                "side": "D",
                "account": p.debit,
                "amount_fen": -p.amount_fen,
                "memo": p.memo,
            }
        )
        rows.append(
            {
                "entry_id": entry_id,
                "posting_no": n,
                "side": "C",
                "account": p.credit,
                "amount_fen": p.amount_fen,
                "memo": p.memo,
            }
        )
    if rows:
        await conn.execute(ledger_lines.insert(), rows)


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
