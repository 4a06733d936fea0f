"""Corrections are reversals: a recorded entry is never edited; a new entry mirrors it.

A reversal posts the exact mirror of every posting of the target (debit and credit swapped,
same amounts, reverse order, memo ``reversal of …``), is keyed ``reverse:{target key}`` and
points at its target (a unique column: an entry is reversed at most once). Receipts are the
corrections operators need (a wrong amount, a payment booked to the wrong disposal); they can
be reversed while they are the lot's latest entry. Reversing an earlier one would need
reverse-and-replay of everything settled after it (SETTLEMENT.md §6), which is refused with
``reverse_blocked`` so nothing is silently recomputed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from listings.settlement import entry_postings
from listings.tables import disposals
from market import audit, ledger_store
from market.access import require_role
from market.errors import Conflict, NotFound
from market.ledger import Posting
from market.ledger_store import ledger_entries
from market.parties import Actor, Role

REVERSIBLE = ("receipt", "receipt_escrow")


class EntryNotFound(NotFound):
    code = "entry_not_found"
    title = "No such ledger entry"


class EntryNotReversible(Conflict):
    code = "entry_not_reversible"
    title = "This entry cannot be reversed"


class ReverseBlocked(Conflict):
    code = "reversal_blocked"
    title = "Later entries were settled against this one; reverse them first, newest first"


async def reverse(conn: AsyncConnection, actor: Actor, entry_id: int, reason: str) -> ledger_store.Entry:
    """Post the mirror of entry ``entry_id`` (a receipt) and restore the disposal it changed."""
    require_role(actor, Role.OPERATOR)
    target = (await conn.execute(select(ledger_entries).where(ledger_entries.c.id == entry_id))).first()
    if target is None:
        raise EntryNotFound(f"No ledger entry {entry_id}")
    if target.type not in REVERSIBLE:
        raise EntryNotReversible(f"A {target.type} entry is not reversed; record a correcting operation")
    await _lock_scope(conn, target.scope)
    later = (
        await conn.execute(
            select(ledger_entries.c.key)
            .where(
                ledger_entries.c.scope == target.scope,
                ledger_entries.c.id > target.id,
                ledger_entries.c.reverses_entry_id.is_(None),
            )
            .limit(1)
        )
    ).first()
    if later is not None and later.key != f"reverse:{target.key}":
        raise ReverseBlocked(f"Entry {later.key} was settled after it")
    mirrored = [
        Posting(p["credit"], p["debit"], p["amount_fen"], f"[reverse:{target.key}] reversal of {p['memo']}")
        for p in reversed(await entry_postings(conn, target.id))
    ]
    entry = await ledger_store.post(
        conn,
        key=f"reverse:{target.key}",
        scope=target.scope,
        type="reversal",
        content={"target": target.key, "reason": reason},
        postings=mirrored,
        reverses_entry_id=target.id,
    )
    if not entry.duplicate:
        await _restore_disposal(conn, target.content)
        await audit.record(
            conn,
            actor_user_id=actor.user_id,
            actor_org_id=actor.org_id,
            action="ledger.reverse",
            entity="ledger_entry",
            entity_id=target.id,
            after={"target": target.key, "reason": reason, "postings": len(mirrored)},
        )
    return entry


async def _lock_scope(conn: AsyncConnection, scope: str) -> None:
    """Serialise with settlement of the same lot (the lot row is the lock settlement takes)."""
    if scope.startswith("listing:"):
        from listings.settlement import lock_lot

        await lock_lot(conn, int(scope.split(":", 1)[1]))


async def _restore_disposal(conn: AsyncConnection, content: dict[str, Any]) -> None:
    """A reversed escrowed balance puts the disposal back to awaiting payment."""
    disposal_id = content.get("disposal")
    if disposal_id is None:
        return
    await conn.execute(
        update(disposals)
        .where(disposals.c.id == int(disposal_id), disposals.c.stage == "in_escrow")
        .values(stage="awaiting_payment")
    )
