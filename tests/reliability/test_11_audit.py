"""11. Audit: 1,000 random tamperings of a copy of the audit table — all detected, each at the first
broken entry; 50 concurrent writers x 200 entries — no fork, no gap.

The copy is ``CREATE TABLE … AS SELECT * FROM audit_log WHERE seq <= N`` (a prefix: a chain is
verified from its genesis entry; the first 400 entries keep 1,000 verifications fast). Each
tampering runs in a transaction that is rolled back, so every one starts from the pristine copy.

A hash chain alone cannot see the loss of its last entry (or a rewrite of everything after an
edit, hashes recomputed): what is left is still a valid chain. So the check has two parts:

1. ``market.audit.verify(conn, table=copy)`` walks the chain: the first entry whose seq, prev_hash
   or hash does not follow is the first broken entry;
2. when the chain is intact, its head is compared with the anchor — the live table's entry at
   seq N (count and hash), which the database itself protects (UPDATE/DELETE refused) — and the
   first seq whose hash differs from the live table's (or is missing) is the first broken entry.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from market import audit
from market.db import create_engine, transaction
from tests.reliability import helpers as h

pytestmark = pytest.mark.reliability
PREFIX, TAMPERINGS = 400, 1000
WRITERS, EACH, PER_TRANSACTION = 50, 200, 5
EDITABLE = ("action", "entity", "entity_id", "actor_user_id", "after", "before", "at", "hash", "prev_hash")


async def check(conn: AsyncConnection, table: str, anchor: tuple[int, str]) -> int | None:
    """The first broken seq of the copy, or None when it is intact and ends at the anchor."""
    report = await audit.verify(conn, table=table)
    if not report.ok:
        return report.first_broken_seq
    count, head = (
        await conn.execute(
            text(f"SELECT count(*), (SELECT hash FROM {table} ORDER BY seq DESC LIMIT 1) FROM {table}")
        )
    ).one()
    if (count, head) == anchor:
        return None
    first = (
        await conn.execute(
            text(
                f"SELECT min(l.seq) FROM audit_log l LEFT JOIN {table} c ON c.seq = l.seq "
                "WHERE l.seq <= :n AND c.hash IS DISTINCT FROM l.hash"
            ),
            {"n": anchor[0]},
        )
    ).scalar()
    return int(first) if first is not None else anchor[0]


async def tamper(conn: AsyncConnection, table: str, rng: random.Random) -> tuple[str, int]:
    """One random tampering; returns what was done and the seq that must be reported first."""
    kind = rng.choice(("edit", "edit", "delete", "delete_last", "swap", "swap_content", "rewrite"))
    k = rng.randint(1, PREFIX)
    if kind == "edit":
        column = rng.choice(EDITABLE)
        change = {
            "action": "action = action || 'x'",
            "entity": "entity = 'forged'",
            "entity_id": "entity_id = entity_id || '0'",
            "actor_user_id": "actor_user_id = coalesce(actor_user_id, 0) + 1",
            "after": "after = coalesce(after, '{}'::jsonb) || '{\"forged\": true}'::jsonb",
            "before": "before = '{\"forged\": 1}'::jsonb",
            "at": "at = at + interval '1 microsecond'",
            "hash": "hash = md5(hash) || md5(hash)",
            "prev_hash": "prev_hash = md5(prev_hash) || md5(prev_hash)",
        }[column]
        await conn.execute(text(f"UPDATE {table} SET {change} WHERE seq = :k"), {"k": k})
        return f"edit {column}", k
    if kind in ("delete", "delete_last"):
        k = PREFIX if kind == "delete_last" else min(k, PREFIX - 1)
        await conn.execute(text(f"DELETE FROM {table} WHERE seq = :k"), {"k": k})
        return kind, (k + 1 if k < PREFIX else PREFIX)  # a gap shows at the next entry
    i, j = sorted(rng.sample(range(1, PREFIX + 1), 2))
    if kind == "swap":  # two entries change places
        await conn.execute(
            text(f"UPDATE {table} SET seq = CASE seq WHEN :i THEN :j ELSE :i END WHERE seq IN (:i, :j)"),
            {"i": i, "j": j},
        )
        return "swap", i
    if kind == "swap_content":  # two entries swap what they say, keeping their hashes
        await conn.execute(
            text(
                f"UPDATE {table} t SET action = o.action, entity = o.entity, entity_id = o.entity_id, "
                f"after = o.after, before = o.before FROM {table} o "
                "WHERE t.seq IN (:i, :j) AND o.seq = CASE t.seq WHEN :i THEN :j ELSE :i END"
            ),
            {"i": i, "j": j},
        )
        rows = (
            await conn.execute(
                text(
                    f"SELECT seq, action, entity, entity_id, after, before FROM {table} WHERE seq IN (:i, :j)"
                ),
                {"i": i, "j": j},
            )
        ).all()
        if rows[0][1:] == rows[1][1:]:
            return "swap_content (identical)", 0
        return "swap_content", i
    # rewrite: edit entry k and recompute every later hash, so the chain itself verifies
    rows = (await conn.execute(text(f"SELECT * FROM {table} WHERE seq >= :k ORDER BY seq"), {"k": k})).all()
    prev = rows[0].prev_hash
    for n, r in enumerate(rows):
        e = audit._row_to_entry(r)
        action = e.action + ("-forged" if n == 0 else "")
        digest = audit.entry_hash(
            prev,
            seq=e.seq,
            at=e.at,
            actor_user_id=e.actor_user_id,
            actor_org_id=e.actor_org_id,
            action=action,
            entity=e.entity,
            entity_id=e.entity_id,
            before=e.before,
            after=e.after,
        )
        await conn.execute(
            text(f"UPDATE {table} SET action = :a, prev_hash = :p, hash = :h WHERE seq = :s"),
            {"a": action, "p": prev, "h": digest, "s": e.seq},
        )
        prev = digest
    return "rewrite", k


async def test_random_tamperings_are_all_detected(engine: AsyncEngine) -> None:
    total = await h.scalar(engine, "SELECT count(*) FROM audit_log")
    for n in range(PREFIX - total):  # a fresh database (this module alone): write the prefix first
        async with transaction(engine) as conn:
            await audit.record(
                conn,
                actor_user_id=None,
                actor_org_id=None,
                action="reliability.fill",
                entity="x",
                entity_id=n,
            )
    table = f"audit_copy_{secrets.token_hex(4)}"
    async with transaction(engine) as conn:
        await conn.execute(
            text(f"CREATE TABLE {table} AS SELECT * FROM audit_log WHERE seq <= :n"), {"n": PREFIX}
        )
        anchor_row = (
            await conn.execute(text("SELECT hash FROM audit_log WHERE seq = :n"), {"n": PREFIX})
        ).one()
    anchor = (PREFIX, anchor_row.hash)
    rng = random.Random(11)
    missed, wrong, kinds = [], [], {}
    started = time.monotonic()
    try:
        async with engine.connect() as conn:
            assert await check(conn, table, anchor) is None, "the pristine copy must verify"
            await conn.rollback()
            for _ in range(TAMPERINGS):
                tx = await conn.begin()
                try:
                    kind, expected = await tamper(conn, table, rng)
                    if expected == 0:
                        continue  # a no-op tampering (two identical entries swapped): nothing to find
                    kinds[kind.split()[0]] = kinds.get(kind.split()[0], 0) + 1
                    found = await check(conn, table, anchor)
                    if found is None:
                        missed.append(kind)
                    elif found != expected:
                        wrong.append((kind, expected, found))
                finally:
                    await tx.rollback()
            assert await check(conn, table, anchor) is None
    finally:
        async with transaction(engine) as conn:
            await conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
    done = sum(kinds.values())
    print(
        f"\n[audit] {done} random tamperings of a {PREFIX}-entry copy of audit_log {kinds} in "
        f"{time.monotonic() - started:.1f}s: {done - len(missed)} detected, {len(missed)} missed, "
        f"{len(wrong)} reported at the wrong entry (last-entry deletions and rewrites caught by the "
        f"anchor: the live table's entry at seq {PREFIX})"
    )
    assert done >= TAMPERINGS * 0.99
    assert missed == [], missed[:10]
    assert wrong == [], wrong[:10]


async def test_concurrent_writers_never_fork_the_chain(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=WRITERS, max_overflow=0)
    tag = secrets.token_hex(4)
    started = time.monotonic()

    async def writer(w: int) -> None:
        for start in range(0, EACH, PER_TRANSACTION):
            async with transaction(engine) as conn:
                for i in range(start, start + PER_TRANSACTION):
                    await audit.record(
                        conn,
                        actor_user_id=None,
                        actor_org_id=None,
                        action="reliability.write",
                        entity=f"writer-{tag}",
                        entity_id=f"{w}:{i}",
                        after={"writer": w, "n": i},
                    )

    try:
        first = await h.scalar(engine, "SELECT coalesce(max(seq), 0) FROM audit_log")
        await asyncio.gather(*(writer(w) for w in range(WRITERS)))
        elapsed = time.monotonic() - started
        async with engine.connect() as conn:
            mine = (
                await conn.execute(
                    text("SELECT count(*) FROM audit_log WHERE entity = :e"), {"e": f"writer-{tag}"}
                )
            ).scalar()
            stats: Any = (
                await conn.execute(
                    text(
                        "SELECT count(*) AS n, min(seq) AS lo, max(seq) AS hi, "
                        "count(DISTINCT prev_hash) AS prevs "
                        "FROM audit_log WHERE seq > :f"
                    ),
                    {"f": first},
                )
            ).one()
            forks = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM (SELECT prev_hash FROM audit_log "
                        "GROUP BY prev_hash HAVING count(*) > 1) x"
                    )
                )
            ).scalar()
            report = await audit.verify(conn)
    finally:
        await engine.dispose()
    gaps = (stats.hi - stats.lo + 1) - stats.n
    print(
        f"\n[audit] {WRITERS} concurrent writers x {EACH} entries ({PER_TRANSACTION} per transaction) in "
        f"{elapsed:.1f}s "
        f"({WRITERS * EACH / elapsed:.0f} entries/s): {mine} written, forks {forks}, gaps {gaps}; "
        f"whole chain ({report.entries} entries) verifies: {report.ok}"
    )
    assert mine == WRITERS * EACH
    assert forks == 0 and gaps == 0 and stats.prevs == stats.n
    assert report.ok, report
