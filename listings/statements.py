"""Statements computed from the ledger's postings (never from a separate running total).

Per disposal: price, fees, allocations per claim, surplus to pledgors, deposits and
forfeits, every posting of its lot. Per claim: recovered and outstanding per bucket, each
posting that paid it. Per bank: its claims' totals. All figures are sums of ledger lines.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from listings import settlement
from listings.tables import risk_pools
from market import ledger_store, settlement as engine
from market.config import Settings
from market.errors import NotFound
from market.ledger_store import ledger_entries, ledger_lines


async def lot_postings(conn: AsyncConnection, listing_id: int) -> list[dict[str, Any]]:
    """Every posting of the lot's entries, in journal order."""
    q = (
        select(
            ledger_entries.c.id,
            ledger_entries.c.key,
            ledger_entries.c.type,
            ledger_entries.c.effective_at,
            ledger_lines.c.posting_no,
            ledger_lines.c.side,
            ledger_lines.c.account,
            ledger_lines.c.amount_fen,
            ledger_lines.c.memo,
        )
        .join(ledger_lines, ledger_lines.c.entry_id == ledger_entries.c.id)
        .where(ledger_entries.c.scope == f"listing:{listing_id}")
        .order_by(ledger_entries.c.id, ledger_lines.c.posting_no, ledger_lines.c.side)
    )
    postings: dict[tuple[int, int], dict[str, Any]] = {}
    for r in (await conn.execute(q)).all():
        p = postings.setdefault(
            (r.id, r.posting_no),
            {
                "entry": r.key,
                "type": r.type,
                "at": r.effective_at.isoformat(),
                "amount_fen": abs(r.amount_fen),
                "memo": r.memo,
            },
        )
        p["credit" if r.side == "C" else "debit"] = r.account
    return list(postings.values())


def _sum_to(postings: list[dict[str, Any]], prefix: str) -> int:
    """Net amount that arrived in accounts starting with ``prefix``."""
    arrived = sum(int(p["amount_fen"]) for p in postings if p["credit"].startswith(prefix))
    left = sum(int(p["amount_fen"]) for p in postings if p["debit"].startswith(prefix))
    return arrived - left


def _allocations(postings: list[dict[str, Any]]) -> list[dict[str, int]]:
    by_claim: dict[int, dict[str, int]] = defaultdict(
        lambda: {"costs_fen": 0, "interest_fen": 0, "principal_fen": 0}
    )
    for p in postings:
        for side, sign in (("credit", 1), ("debit", -1)):
            parts = p[side].split(":")
            if parts[0] == "claim" and len(parts) == 3:
                by_claim[int(parts[1])][f"{parts[2]}_fen"] += sign * p["amount_fen"]
    return [{"claim_id": cid, **buckets} for cid, buckets in sorted(by_claim.items())]


async def disposal(conn: AsyncConnection, row: Row[Any], settings: Settings) -> dict[str, Any]:
    """The disposal statement (SETTLEMENT.md §13) of ``row`` and its lot."""
    lot = row.listing_id
    postings = await lot_postings(conn, lot)
    state = await settlement.lot_state(conn, lot)
    sc = await settlement.scope(conn, lot, settings, lock=False)
    balances = await ledger_store.balances(
        conn, [engine.forfeit_account(str(lot)), settlement.escrow_pending_account(lot)]
    )
    due = engine.balance_due_fen(sc.lot, state) if row.stage == "awaiting_payment" and state.winner else None
    platform = _sum_to(postings, engine.PLATFORM_FEE)
    commission = _sum_to(postings, engine.COMMISSION)
    return {
        "id": row.id,
        "listing_id": lot,
        "bank_org_id": row.bank_org_id,
        "buyer_org_id": row.buyer_org_id,
        "source": row.source,
        "stage": row.stage,
        "price_fen": row.price_fen,
        "balance_due_fen": due,
        "balance_due_at": row.balance_due_at,
        "fees_fen": platform + commission,
        "platform_fee_fen": platform,
        "commission_fen": commission,
        "disposal_costs_fen": _sum_to(postings, f"costs:{lot}"),
        "allocations": _allocations(postings),
        "surplus_to_pledgor_fen": _sum_to(postings, "pledgor:"),
        "pool_compensation_fen": _sum_to(postings, "poolcomp:"),
        "deposits_held_fen": sum(state.holds.values()),
        "forfeit_reserve_fen": balances[engine.forfeit_account(str(lot))],
        "escrow_pending_fen": balances[settlement.escrow_pending_account(lot)],
        "postings": postings,
    }


async def pool(conn: AsyncConnection, code: str) -> Row[Any]:
    row: Row[Any] | None = (await conn.execute(select(risk_pools).where(risk_pools.c.code == code))).first()
    if row is None:
        raise NotFound(f"No pool {code}")
    return row


async def claim_postings(conn: AsyncConnection, claim_id: int) -> list[dict[str, Any]]:
    """Each posting that paid the claim (any bucket), with its entry and lot."""
    q = (
        select(
            ledger_entries.c.key,
            ledger_entries.c.scope,
            ledger_entries.c.effective_at,
            ledger_lines.c.account,
            ledger_lines.c.amount_fen,
            ledger_lines.c.memo,
        )
        .join(ledger_lines, ledger_lines.c.entry_id == ledger_entries.c.id)
        .where(ledger_lines.c.account.in_(ledger_store.claim_accounts(claim_id)))
        .order_by(ledger_entries.c.id, ledger_lines.c.posting_no)
    )
    return [
        {
            "entry": r.key,
            "lot": r.scope,
            "at": r.effective_at.isoformat(),
            "bucket": r.account.rsplit(":", 1)[1],
            "amount_fen": r.amount_fen,
            "memo": r.memo,
        }
        for r in (await conn.execute(q)).all()
    ]
