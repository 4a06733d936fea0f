"""Statements computed from the ledger's postings (never from a separate running total).

Per disposal: price, fees, allocations per claim, surplus to pledgors, deposits and
forfeits, every posting of its lot. Per claim: recovered and outstanding per bucket, each
posting that paid it. Per bank: its claims' totals. All figures are sums of ledger lines.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from listings import settlement
from listings.tables import (
    assets,
    claims,
    disposals,
    listing_assets,
    listings,
    pledges,
    risk_pools,
    settlement_lots,
)
from market import clock, exports, ledger_store, settlement as engine
from market.access import check_owner, require_role
from market.config import Settings
from market.errors import NotFound
from market.ledger_store import ledger_entries, ledger_lines
from market.money import format_cny
from market.parties import Actor, Role
from market.tables import orgs


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
    postings = await _own_postings(conn, row)
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


async def _own_postings(conn: AsyncConnection, row: Row[Any]) -> list[dict[str, Any]]:
    """The lot's postings that belong to this disposal (a defaulted sale and its re-auction are
    separate disposals of one lot): an entry belongs to the disposal its key names, otherwise to
    the latest disposal of the lot agreed before it (the same rule as the disposals report)."""
    from types import SimpleNamespace

    from listings import disposals as disposal_rows

    lot_disposals = await disposal_rows.for_listing(conn, row.listing_id)
    own = []
    for p in await lot_postings(conn, row.listing_id):
        entry = SimpleNamespace(key=p["entry"], effective_at=datetime.fromisoformat(p["at"]))
        if _owner_disposal(entry, lot_disposals) == row.id:
            own.append(p)
    return own


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


# =========================================================================== statements (§13) and reports
#
# Claim statement (bank users), bank statement, disposals report (operators). Every figure is a
# sum of ledger lines; "as of" an instant is the replay of the lines of entries effective by then
# (``ledger_store.balance_at``). Reads are pinned to the last entry id seen when they start, so
# the figures of one statement come from one prefix of the journal even while postings arrive.

BUCKET_NAMES = ledger_store.BUCKETS
_SOURCE_ASSET_RANK = re.compile(r"\(A(\d+) rank (\d+)\)")
_DISPOSAL_KEY = re.compile(r"^(?:receipt|pay|release|default):(\d+)(?::|$)")
FIGURES = (
    "price_fen",
    "received_fen",
    "platform_fee_fen",
    "commission_fen",
    "fees_fen",
    "disposal_costs_fen",
    "to_claims_fen",
    "surplus_fen",
    "pool_compensation_fen",
    "deposits_held_fen",
    "forfeit_reserve_fen",
    "escrow_pending_fen",
)


class BankNotFound(NotFound):
    code = "bank_not_found"
    title = "No such bank"


# --------------------------------------------------------------------------- periods (China Standard Time)


def quarter_of(day: date) -> tuple[date, date]:
    """The calendar quarter containing ``day``: its first and last day."""
    first_month = 3 * ((day.month - 1) // 3) + 1
    start = date(day.year, first_month, 1)
    end = date(day.year + 1, 1, 1) if first_month == 10 else date(day.year, first_month + 3, 1)
    return start, end - timedelta(days=1)


def current_quarter(now: datetime | None = None) -> tuple[date, date]:
    """Today's quarter in China Standard Time."""
    return quarter_of(clock.today_cst(now))


def resolve_period(date_from: date | None, date_to: date | None) -> tuple[date, date]:
    """The days of a report: as given; a missing end is the end of the start's quarter, a missing
    start the start of the end's quarter; neither: the current quarter (CST).

    Raises:
        ValueError: the period ends before it starts.
    """
    if date_from is None and date_to is None:
        return current_quarter()
    start = date_from if date_from is not None else quarter_of(date_to or clock.today_cst())[0]
    end = date_to if date_to is not None else quarter_of(start)[1]
    if end < start:
        raise ValueError(f"the period ends ({end}) before it starts ({start})")
    return start, end


def period_label(date_from: date, date_to: date) -> str:
    """``2026Q4`` when the period is exactly a calendar quarter, else ``2026-10-01_2026-11-15``."""
    if quarter_of(date_from) == (date_from, date_to):
        return f"{date_from.year}Q{(date_from.month - 1) // 3 + 1}"
    return f"{date_from.isoformat()}_{date_to.isoformat()}"


def start_of_day(day: date) -> datetime:
    """Midnight at the start of ``day`` in China Standard Time."""
    return datetime(day.year, day.month, day.day, tzinfo=clock.CST)


def end_of_day(day: date) -> datetime:
    """The last instant of ``day`` in China Standard Time (an ``as_of`` for "by the end of that day")."""
    return start_of_day(day + timedelta(days=1)) - timedelta(microseconds=1)


def parse_as_of(text: str) -> datetime:
    """``2026-11-30`` (end of that day, CST) or an ISO instant (CST when it names no zone).

    Raises:
        ValueError: ``text`` is neither.
    """
    raw = text.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
        return end_of_day(date.fromisoformat(raw))
    moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=clock.CST)


# --------------------------------------------------------------------------- shared reads


async def _last_entry_id(conn: AsyncConnection, as_of: datetime | None) -> int:
    q = select(func.coalesce(func.max(ledger_entries.c.id), 0))
    if as_of is not None:
        q = q.where(ledger_entries.c.effective_at <= as_of)
    return int((await conn.execute(q)).scalar_one())


def _by(upto_entry: int, as_of: datetime | None) -> Any:
    """Entries counted in a statement: up to the pinned entry id and, for "as of", effective by then
    (the same two filters as ``ledger_store.balance_at``)."""
    cond = ledger_entries.c.id <= upto_entry
    return cond if as_of is None else cond & (ledger_entries.c.effective_at <= as_of)


async def _sums(
    conn: AsyncConnection, accounts: Sequence[str], upto_entry: int, as_of: datetime | None
) -> dict[str, int]:
    """Σ lines per account over the counted entries (the replay, not the stored balance)."""
    if not accounts:
        return {}
    q = (
        select(ledger_lines.c.account, func.sum(ledger_lines.c.amount_fen).label("total"))
        .join(ledger_entries, ledger_entries.c.id == ledger_lines.c.entry_id)
        .where(ledger_lines.c.account.in_(list(accounts)), _by(upto_entry, as_of))
        .group_by(ledger_lines.c.account)
    )
    found = {r.account: int(r.total) for r in (await conn.execute(q)).all()}
    return {a: found.get(a, 0) for a in accounts}


async def _finalized_lots(
    conn: AsyncConnection, claim_ids: Sequence[int], upto_entry: int, as_of: datetime | None
) -> dict[int, list[dict[str, Any]]]:
    """claim -> the lots carrying its pledged assets whose settlement was finalized by ``upto_entry``."""
    if not claim_ids:
        return {}
    pairs = (
        await conn.execute(
            select(pledges.c.claim_id, listing_assets.c.listing_id)
            .join(listing_assets, listing_assets.c.asset_id == pledges.c.asset_id)
            .where(pledges.c.claim_id.in_(list(claim_ids)))
            .distinct()
        )
    ).all()
    scopes = {f"listing:{p.listing_id}" for p in pairs}
    done: dict[str, datetime] = {}
    if scopes:
        q = select(ledger_entries.c.scope, ledger_entries.c.effective_at).where(
            ledger_entries.c.type == "finalize",
            ledger_entries.c.scope.in_(sorted(scopes)),
            _by(upto_entry, as_of),
        )
        done = {r.scope: r.effective_at for r in (await conn.execute(q)).all()}
    out: dict[int, list[dict[str, Any]]] = {c: [] for c in claim_ids}
    for p in sorted(pairs, key=lambda p: (p.claim_id, p.listing_id)):
        at = done.get(f"listing:{p.listing_id}")
        if at is not None:
            out[p.claim_id].append({"listing_id": p.listing_id, "finalized_at": at})
    return out


def _status(outstanding: Mapping[str, int], finalized: bool) -> str:
    if not any(outstanding.values()):
        return "paid"
    return "finalized" if finalized else "open"


def _opening(row: Row[Any]) -> dict[str, int]:
    """What each bucket was owed at registration (the interest bucket includes default interest)."""
    return {
        "costs": row.costs_fen,
        "interest": row.interest_fen + row.default_interest_fen,
        "principal": row.principal_fen,
    }


def _scope_listing(scope: str) -> int | None:
    kind, _, ident = scope.partition(":")
    return int(ident) if kind == "listing" and ident.isdigit() else None


# --------------------------------------------------------------------------- per claim


async def claim_statement(
    conn: AsyncConnection, actor: Actor, claim_id: int, *, as_of: datetime | None = None
) -> dict[str, Any]:
    """The claim statement (SETTLEMENT.md §13), now or as of an instant.

    Opening, recovered and outstanding per bucket; every posting to the claim's buckets with its
    entry, lot, asset and rank; pool compensation; status ``open`` / ``paid`` / ``finalized``
    with the unsecured shortfall; and the check line opening = recovered + outstanding per bucket.
    The bank that holds the claim and operators may read it; anyone else gets 404.
    """
    require_role(actor, Role.BANK, Role.OPERATOR)
    row = (await conn.execute(select(claims).where(claims.c.id == claim_id))).first()
    if row is None:
        raise NotFound("No such claim")
    check_owner(actor, row.bank_org_id, "claim")
    bank_name = (await conn.execute(select(orgs.c.name).where(orgs.c.id == row.bank_org_id))).scalar_one()
    upto = await _last_entry_id(conn, as_of)
    accounts = {b: f"claim:{claim_id}:{b}" for b in BUCKET_NAMES}
    poolcomp_account = f"poolcomp:{claim_id}"
    recovered = {
        b: await ledger_store.balance_at(conn, acct, as_of_entry=upto, as_of=as_of)
        for b, acct in accounts.items()
    }
    compensation = await ledger_store.balance_at(conn, poolcomp_account, as_of_entry=upto, as_of=as_of)
    postings = await _claim_lines(conn, [*accounts.values(), poolcomp_account], upto, as_of)
    opening = _opening(row)
    outstanding = {b: opening[b] - recovered[b] for b in BUCKET_NAMES}
    finalized = (await _finalized_lots(conn, [claim_id], upto, as_of))[claim_id]
    status = _status(outstanding, bool(finalized))
    paid_by_postings = {b: sum(p["amount_fen"] for p in postings if p["bucket"] == b) for b in BUCKET_NAMES}
    buckets = [
        {
            "bucket": b,
            "opening_fen": opening[b],
            "recovered_fen": recovered[b],
            "outstanding_fen": outstanding[b],
            "postings_fen": paid_by_postings[b],
            "check": opening[b] == recovered[b] + outstanding[b]
            and recovered[b] == paid_by_postings[b]
            and 0 <= recovered[b] <= opening[b],
        }
        for b in BUCKET_NAMES
    ]
    return {
        "claim_id": row.id,
        "bank_org_id": row.bank_org_id,
        "bank_name": bank_name,
        "loan_no": row.loan_no,
        "borrower_name": row.borrower_name,
        "borrower_credit_code": row.borrower_credit_code,
        "pool_code": row.pool_code,
        "as_of": as_of,
        "last_entry_id": upto,
        "buckets": buckets,
        "opening_fen": sum(opening.values()),
        "recovered_fen": sum(recovered.values()),
        "outstanding_fen": sum(outstanding.values()),
        "pool_compensation_fen": compensation,
        "status": status,
        "shortfall_fen": sum(outstanding.values()) if status == "finalized" else 0,
        "finalized_lots": finalized,
        "postings": [p for p in postings if p["bucket"] in BUCKET_NAMES],
        "compensation_postings": [p for p in postings if p["bucket"] == "poolcomp"],
        "check": all(b["check"] for b in buckets)
        and compensation == sum(p["amount_fen"] for p in postings if p["bucket"] == "poolcomp"),
    }


async def _claim_lines(
    conn: AsyncConnection, accounts: Sequence[str], upto_entry: int, as_of: datetime | None
) -> list[dict[str, Any]]:
    q = (
        select(
            ledger_entries.c.id,
            ledger_entries.c.key,
            ledger_entries.c.type,
            ledger_entries.c.scope,
            ledger_entries.c.effective_at,
            ledger_lines.c.posting_no,
            ledger_lines.c.account,
            ledger_lines.c.amount_fen,
            ledger_lines.c.memo,
        )
        .join(ledger_lines, ledger_lines.c.entry_id == ledger_entries.c.id)
        .where(ledger_lines.c.account.in_(list(accounts)), _by(upto_entry, as_of))
        .order_by(ledger_entries.c.id, ledger_lines.c.posting_no, ledger_lines.c.side)
    )
    out = []
    for r in (await conn.execute(q)).all():
        source = _SOURCE_ASSET_RANK.search(r.memo or "")
        bucket = "poolcomp" if r.account.startswith("poolcomp:") else r.account.rsplit(":", 1)[1]
        out.append(
            {
                "entry_id": r.id,
                "entry": r.key,
                "type": r.type,
                "listing_id": _scope_listing(r.scope),
                "at": r.effective_at,
                "bucket": bucket,
                "amount_fen": int(r.amount_fen),
                "asset_id": int(source.group(1)) if source else None,
                "rank": int(source.group(2)) if source else None,
                "memo": r.memo,
            }
        )
    return out


# --------------------------------------------------------------------------- per bank


async def bank_statement(
    conn: AsyncConnection, actor: Actor, bank_org_id: int, *, as_of: datetime | None = None
) -> dict[str, Any]:
    """The bank statement (§13): its claims, recovered per bucket, outstanding, pool compensation,
    and the payout due (Σ its claim-bucket balances + its ``poolcomp`` balances).

    The bank's own users and operators may read it; anyone else gets 404.
    """
    require_role(actor, Role.BANK, Role.OPERATOR)
    check_owner(actor, bank_org_id, "bank", BankNotFound)
    org = (await conn.execute(select(orgs).where(orgs.c.id == bank_org_id))).first()
    if org is None or org.kind != "bank":
        raise BankNotFound("No such bank")
    upto = await _last_entry_id(conn, as_of)
    rows = list(
        (
            await conn.execute(
                select(claims).where(claims.c.bank_org_id == bank_org_id).order_by(claims.c.id)
            )
        ).all()
    )
    names = [a for r in rows for a in (*ledger_store.claim_accounts(r.id), f"poolcomp:{r.id}")]
    sums = await _sums(conn, names, upto, as_of)
    finalized = await _finalized_lots(conn, [r.id for r in rows], upto, as_of)
    items = []
    for r in rows:
        opening = _opening(r)
        recovered = {b: sums[f"claim:{r.id}:{b}"] for b in BUCKET_NAMES}
        outstanding = {b: opening[b] - recovered[b] for b in BUCKET_NAMES}
        status = _status(outstanding, bool(finalized[r.id]))
        items.append(
            {
                "claim_id": r.id,
                "loan_no": r.loan_no,
                "borrower_name": r.borrower_name,
                "pool_code": r.pool_code,
                "opening_fen": sum(opening.values()),
                **{f"recovered_{b}_fen": recovered[b] for b in BUCKET_NAMES},
                "recovered_fen": sum(recovered.values()),
                "outstanding_fen": sum(outstanding.values()),
                "pool_compensation_fen": sums[f"poolcomp:{r.id}"],
                "status": status,
                "shortfall_fen": sum(outstanding.values()) if status == "finalized" else 0,
                "check": all(0 <= recovered[b] <= opening[b] for b in BUCKET_NAMES),
            }
        )
    keys = (
        "opening_fen",
        *(f"recovered_{b}_fen" for b in BUCKET_NAMES),
        "recovered_fen",
        "outstanding_fen",
        "pool_compensation_fen",
        "shortfall_fen",
    )
    totals = {k: sum(int(i[k]) for i in items) for k in keys}
    payout_due = totals["recovered_fen"] + totals["pool_compensation_fen"]
    return {
        "bank_org_id": bank_org_id,
        "bank_name": org.name,
        "as_of": as_of,
        "last_entry_id": upto,
        "claims": items,
        "totals": totals,
        "payout_due_fen": payout_due,
        "check": all(i["check"] for i in items),  # no bucket above what it was owed, none below 0
    }


# --------------------------------------------------------------------------- disposals report


def _classify(account: str) -> tuple[str, int]:
    """Which figure a line on ``account`` counts toward, and with which sign."""
    if account == engine.PLATFORM_FEE:
        return "platform_fee_fen", 1
    if account == engine.COMMISSION:
        return "commission_fen", 1
    prefix = account.split(":", 1)[0]
    return {
        "costs": ("disposal_costs_fen", 1),
        "claim": ("to_claims_fen", 1),
        "pledgor": ("surplus_fen", 1),
        "poolcomp": ("pool_compensation_fen", 1),
        "pool": ("pool_paid_fen", -1),
        "buyer": ("received_fen", -1),
        "hold": ("deposits_held_fen", 1),
        "forfeit": ("forfeit_reserve_fen", 1),
        "regescrow": ("escrow_pending_fen", 1),
    }.get(prefix, ("unexplained_fen", 1))


#: received = costs + fee + commission + to claims + surplus + deposits held + forfeit reserve
#: + escrow pending (§13's check line; escrow pending is money waiting for a registry filing).
RECEIVED_GOES_TO = (
    "disposal_costs_fen",
    "platform_fee_fen",
    "commission_fen",
    "to_claims_fen",
    "surplus_fen",
    "deposits_held_fen",
    "forfeit_reserve_fen",
    "escrow_pending_fen",
)


async def disposals_report(
    conn: AsyncConnection, date_from: date, date_to: date, bank_org_id: int | None = None
) -> dict[str, Any]:
    """Disposals of a period (operators): per disposal, per bank and in all, from the ledger.

    The period is the days ``date_from``..``date_to`` in China Standard Time. A disposal is in it
    when it was agreed in the period or its lot posted money in the period; its figures are the
    sums of the lines of its lot's entries *effective in the period*. Each entry of a lot belongs
    to one disposal: the one its key names (``receipt:``/``pay:``/``release:``/``default:``), else
    the latest disposal of the lot agreed by the entry's time (else the lot's first disposal). A
    lot that posted money without any disposal (e.g. finalized unsold: pool compensation) is a
    row of its own with no disposal. Per-bank subtotals group rows by the bank that disposed of
    the lot (to claims may include other banks' claims on the same assets). ``ledger`` sums the
    same entries' lines straight from the journal; ``check`` says the totals equal it and every
    row's check line holds.

    Raises:
        ValueError: the period ends before it starts.
    """
    if date_to < date_from:
        raise ValueError("the period ends before it starts")
    start, end = start_of_day(date_from), start_of_day(date_to + timedelta(days=1))
    in_period = (ledger_entries.c.effective_at >= start) & (ledger_entries.c.effective_at < end)
    entries = (
        await conn.execute(
            select(
                ledger_entries.c.id,
                ledger_entries.c.key,
                ledger_entries.c.scope,
                ledger_entries.c.effective_at,
            )
            .where(in_period, ledger_entries.c.scope.like("listing:%"))
            .order_by(ledger_entries.c.id)
        )
    ).all()
    lots = {lot for e in entries if (lot := _scope_listing(e.scope)) is not None}
    agreed = (disposals.c.created_at >= start) & (disposals.c.created_at < end)
    disposal_rows = (
        await conn.execute(
            select(disposals)
            .where(disposals.c.listing_id.in_(sorted(lots)) | agreed)
            .order_by(disposals.c.listing_id, disposals.c.created_at, disposals.c.id)
        )
    ).all()
    by_lot: dict[int, list[Row[Any]]] = defaultdict(list)
    for d in disposal_rows:
        by_lot[d.listing_id].append(d)
    owner: dict[int, tuple[int, int | None]] = {}  # entry id -> (lot, disposal id or None)
    for e in entries:
        lot = _scope_listing(e.scope)
        if lot is not None:
            owner[e.id] = (lot, _owner_disposal(e, by_lot.get(lot, [])))
    info = await _listing_info(conn, sorted(lots | set(by_lot)))
    report_rows: dict[tuple[int, int | None], dict[str, Any]] = {}
    for d in disposal_rows:
        if start <= d.created_at < end:
            report_rows[(d.listing_id, d.id)] = _report_row(d.listing_id, d, info)
    for lot, did in owner.values():
        if (lot, did) not in report_rows:
            found: Row[Any] | None = next((x for x in by_lot.get(lot, []) if x.id == did), None)
            report_rows[(lot, did)] = _report_row(lot, found, info)
    if bank_org_id is not None:
        report_rows = {k: v for k, v in report_rows.items() if v["bank_org_id"] == bank_org_id}
    chosen = sorted(eid for eid, key in owner.items() if key in report_rows)
    for eid, account, amount in await _entry_lines(conn, chosen):
        figure, sign = _classify(account)
        row = report_rows[owner[eid]]
        row[figure] += sign * amount
        row["entry_ids"].add(eid)
    rows = sorted(
        report_rows.values(), key=lambda r: (r["bank_org_id"] or 0, r["listing_id"], r["disposal_id"] or 0)
    )
    for r in rows:
        r["fees_fen"] = r["platform_fee_fen"] + r["commission_fen"]
        r["entries"] = len(r.pop("entry_ids"))
        pool_paid, unexplained = r.pop("pool_paid_fen"), r.pop("unexplained_fen")
        r["check"] = (
            r["received_fen"] == sum(r[k] for k in RECEIVED_GOES_TO)
            and pool_paid == r["pool_compensation_fen"]
            and unexplained == 0
        )
    totals = _sum_figures(rows)
    ledger = await _ledger_sums(conn, chosen)
    return {
        "from": date_from,
        "to": date_to,
        "bank_org_id": bank_org_id,
        "period": period_label(date_from, date_to),
        "rows": rows,
        "banks": _bank_subtotals(rows),
        "totals": totals,
        "ledger": ledger,
        "check": all(totals[k] == v for k, v in ledger.items()) and all(r["check"] for r in rows),
    }


def _owner_disposal(entry: Any, lot_disposals: Sequence[Row[Any]]) -> int | None:
    if not lot_disposals:
        return None
    named = _DISPOSAL_KEY.match(entry.key)
    if named and any(d.id == int(named.group(1)) for d in lot_disposals):
        return int(named.group(1))
    earlier = [d for d in lot_disposals if d.created_at <= entry.effective_at]
    return int((earlier[-1] if earlier else lot_disposals[0]).id)


async def _listing_info(conn: AsyncConnection, listing_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Title, mode, asset kinds (lot order), bank and whether the lot's settlement is finalized."""
    if not listing_ids:
        return {}
    q = (
        select(
            listings.c.id,
            listings.c.title,
            listings.c.mode,
            listings.c.bank_org_id,
            orgs.c.name.label("bank_name"),
            settlement_lots.c.finalized_at,
        )
        .join(orgs, orgs.c.id == listings.c.bank_org_id)
        .outerjoin(settlement_lots, settlement_lots.c.listing_id == listings.c.id)
        .where(listings.c.id.in_(list(listing_ids)))
    )
    out = {
        r.id: {
            "title": r.title,
            "mode": r.mode,
            "bank_org_id": r.bank_org_id,
            "bank_name": r.bank_name,
            "finalized": r.finalized_at is not None,
            "kinds": [],
        }
        for r in (await conn.execute(q)).all()
    }
    kinds = (
        await conn.execute(
            select(listing_assets.c.listing_id, assets.c.kind)
            .join(assets, assets.c.id == listing_assets.c.asset_id)
            .where(listing_assets.c.listing_id.in_(list(listing_ids)))
            .order_by(listing_assets.c.listing_id, listing_assets.c.position)
        )
    ).all()
    for k in kinds:
        if k.kind not in out[k.listing_id]["kinds"]:
            out[k.listing_id]["kinds"].append(k.kind)
    return out


def _report_row(lot: int, d: Row[Any] | None, info: Mapping[int, dict[str, Any]]) -> dict[str, Any]:
    listing = info[lot]
    return {
        "disposal_id": d.id if d is not None else None,
        "listing_id": lot,
        "listing_title": listing["title"],
        "mode": listing["mode"],
        "kinds": list(listing["kinds"]),
        "bank_org_id": d.bank_org_id if d is not None else listing["bank_org_id"],
        "bank_name": listing["bank_name"],
        "buyer_org_id": d.buyer_org_id if d is not None else None,
        "source": d.source if d is not None else None,
        "stage": d.stage if d is not None else None,
        "agreed_at": d.created_at if d is not None else None,
        "lot_finalized": listing["finalized"],
        **dict.fromkeys(FIGURES, 0),
        "price_fen": d.price_fen if d is not None else 0,
        "pool_paid_fen": 0,
        "unexplained_fen": 0,
        "entry_ids": set(),
    }


async def _entry_lines(conn: AsyncConnection, entry_ids: Sequence[int]) -> list[tuple[int, str, int]]:
    if not entry_ids:
        return []
    q = (
        select(ledger_lines.c.entry_id, ledger_lines.c.account, ledger_lines.c.amount_fen)
        .where(ledger_lines.c.entry_id.in_(list(entry_ids)))
        .order_by(ledger_lines.c.entry_id, ledger_lines.c.posting_no, ledger_lines.c.side)
    )
    return [(r.entry_id, r.account, int(r.amount_fen)) for r in (await conn.execute(q)).all()]


def _sum_figures(rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    out = {k: sum(int(r[k]) for r in rows) for k in FIGURES}
    out["disposals"] = len({r["disposal_id"] for r in rows if r["disposal_id"] is not None})
    return out


def _bank_subtotals(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    grouped: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        grouped[int(r["bank_org_id"])].append(r)
    return [
        {"bank_org_id": bank, "bank_name": members[0]["bank_name"], **_sum_figures(members)}
        for bank, members in sorted(grouped.items())
    ]


async def _ledger_sums(conn: AsyncConnection, entry_ids: Sequence[int]) -> dict[str, int]:
    """The journal's own sums over ``entry_ids``: fees, disposal costs, claims, pledgors, pools."""
    account = ledger_lines.c.account
    figures = {
        "platform_fee_fen": account == engine.PLATFORM_FEE,
        "commission_fen": account == engine.COMMISSION,
        "disposal_costs_fen": account.like("costs:%"),
        "to_claims_fen": account.like("claim:%"),
        "surplus_fen": account.like("pledgor:%"),
        "pool_compensation_fen": account.like("poolcomp:%"),
    }
    if not entry_ids:
        return dict.fromkeys(figures, 0)
    q = select(
        *(
            func.coalesce(func.sum(ledger_lines.c.amount_fen).filter(cond), 0).label(name)
            for name, cond in figures.items()
        )
    ).where(ledger_lines.c.entry_id.in_(list(entry_ids)))
    row = (await conn.execute(q)).one()
    return {name: int(row._mapping[name]) for name in figures}


# --------------------------------------------------------------------------- files (CSV, XLSX, PDF)


class Translate(Protocol):
    def __call__(self, message: str, **params: object) -> str: ...


def _english(message: str, **params: object) -> str:
    return message % params if params else message


BUCKET_LABELS = {
    "costs": "Costs",
    "interest": "Interest (incl. default interest)",
    "principal": "Principal",
}


def _passed(ok: bool, _: Translate) -> str:
    return _("passed") if ok else _("FAILED")


def _when(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(clock.CST).strftime("%Y-%m-%d %H:%M")


def claim_statement_tables(st: Mapping[str, Any], _: Translate = _english) -> exports.Report:
    """The claim statement as a report: facts, buckets (with totals), then every posting."""
    title = _("Claim statement %(loan_no)s", loan_no=st["loan_no"])
    as_of = _when(st["as_of"]) if st["as_of"] else _("now")
    status = _(f"statement_status.{st['status']}")
    notes = [
        _("Bank: %(bank)s", bank=st["bank_name"]),
        _("Borrower: %(name)s (%(code)s)", name=st["borrower_name"], code=st["borrower_credit_code"]),
        _("As of: %(when)s (ledger entry %(entry)s)", when=as_of, entry=st["last_entry_id"]),
        _("Status: %(status)s", status=status),
        _("Pool compensation: %(amount)s", amount=format_cny(st["pool_compensation_fen"])),
        _("Unsecured shortfall: %(amount)s", amount=format_cny(st["shortfall_fen"])),
        _(
            "Check: opening = recovered + outstanding for every bucket: %(result)s",
            result=_passed(st["check"], _),
        ),
    ]
    buckets = exports.Table(
        _("Amounts by bucket"),
        [
            exports.Column(_("Bucket"), width=3),
            exports.Column(_("Opening"), "fen", 2),
            exports.Column(_("Recovered"), "fen", 2),
            exports.Column(_("Outstanding"), "fen", 2),
        ],
        [
            [_(BUCKET_LABELS[b["bucket"]]), b["opening_fen"], b["recovered_fen"], b["outstanding_fen"]]
            for b in st["buckets"]
        ],
        totals=[_("Total"), st["opening_fen"], st["recovered_fen"], st["outstanding_fen"]],
    )
    postings = exports.Table(
        _("Postings to the claim"),
        [
            exports.Column(_("Date"), width=2.2),
            exports.Column(_("Entry"), width=2.4),
            exports.Column(_("Lot"), "int", 0.8),
            exports.Column(_("Asset"), "int", 0.8),
            exports.Column(_("Rank"), "int", 0.7),
            exports.Column(_("Bucket"), width=1.8),
            exports.Column(_("Amount"), "fen", 1.8),
            exports.Column(_("Memo"), width=5),
        ],
        [
            [
                p["at"],
                p["entry"],
                p["listing_id"],
                p["asset_id"],
                p["rank"],
                _(BUCKET_LABELS[p["bucket"]]),
                p["amount_fen"],
                p["memo"],
            ]
            for p in st["postings"]
        ],
        totals=[_("Total"), None, None, None, None, None, st["recovered_fen"], None],
    )
    return exports.Report(title, [buckets, postings], notes)


def _kinds(row: Mapping[str, Any], _: Translate) -> str:
    return "、".join(_(f"kind.{k}") for k in row["kinds"]) + f" / {_('mode.' + row['mode'])}"


def disposals_report_tables(rep: Mapping[str, Any], _: Translate = _english) -> exports.Report:
    """The disposals report as a title and tables: every disposal, then per bank with the totals."""
    title = _("Disposals report %(period)s", period=rep["period"])
    notes = [
        _("Period: %(start)s to %(end)s (China Standard Time)", start=rep["from"], end=rep["to"]),
        _("Generated at %(when)s", when=_when(clock.now())),
        _(
            "Check: the totals equal the ledger's sums for these entries: %(result)s",
            result=_passed(rep["check"], _),
        ),
    ]
    if rep["bank_org_id"] is not None:
        notes.insert(1, _("Bank: %(bank)s", bank=rep["bank_org_id"]))
    money = [
        ("price_fen", _("Price")),
        ("received_fen", _("Received")),
        ("disposal_costs_fen", _("Disposal costs")),
        ("fees_fen", _("Fees")),
        ("to_claims_fen", _("To claims")),
        ("surplus_fen", _("Surplus to pledgors")),
        ("pool_compensation_fen", _("Pool compensation")),
    ]
    amount_columns = [exports.Column(label, "fen", 1.6) for _k, label in money]
    detail = exports.Table(
        _("Disposals"),
        [
            exports.Column(_("Disposal"), "int", 0.9),
            exports.Column(_("Lot"), "int", 0.8),
            exports.Column(_("Title"), width=3),
            exports.Column(_("Kind"), width=2),
            exports.Column(_("Bank"), width=2),
            exports.Column(_("Source"), width=1.3),
            exports.Column(_("Stage"), width=1.3),
            *amount_columns,
        ],
        [
            [
                r["disposal_id"],
                r["listing_id"],
                r["listing_title"],
                _kinds(r, _),
                r["bank_name"],
                _(f"disposal_source.{r['source']}") if r["source"] else "",
                _(f"disposal_stage.{r['stage'] or 'none'}"),
                *(r[k] for k, _label in money),
            ]
            for r in rep["rows"]
        ],
        totals=[_("Total"), None, None, None, None, None, None, *(rep["totals"][k] for k, _label in money)],
    )
    per_bank = exports.Table(
        _("Per bank"),
        [
            exports.Column(_("Bank"), width=3),
            exports.Column(_("Number of disposals"), "int", 1),
            *amount_columns,
        ],
        [[b["bank_name"], b["disposals"], *(b[k] for k, _label in money)] for b in rep["banks"]],
        totals=[_("Total"), rep["totals"]["disposals"], *(rep["totals"][k] for k, _label in money)],
    )
    return exports.Report(title, [detail, per_bank], notes)


def _unit(_: Translate, message: str) -> str:
    """A unit for column headings: ``Price (fen)``, ``价格（分）`` (no space before a full-width bracket)."""
    unit = _(message)
    return unit if unit.startswith("（") else " " + unit


def render_file(fmt: str, report: exports.Report, _: Translate = _english) -> bytes:
    """``report`` as a ``csv`` (amounts in integer fen), ``xlsx`` or ``pdf`` (amounts in CNY) file."""
    if fmt == "csv":
        fen = _unit(_, "(fen)")
        return exports.to_csv_tables(report.tables, fen_suffix=fen, title=report.title, notes=report.notes)
    cny = _unit(_, "(CNY)")
    if fmt == "xlsx":
        return exports.to_xlsx(report.tables, cny_suffix=cny, title=report.title, notes=report.notes)
    if fmt == "pdf":
        footer = _("IP Disposal Marketplace") + " · " + report.title
        return exports.to_pdf(report.title, report.tables, cny_suffix=cny, footer=footer, notes=report.notes)
    raise ValueError(f"unknown format {fmt!r}")
