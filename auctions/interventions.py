"""Cancelling an accepted bid takes two operators (four eyes).

Operator A asks (``request_bid_cancellation``: a ``pending`` row, audited); a different operator B
approves or rejects it (``decide``). On approval, in B's transaction with the auction row locked,
``rules.cancel_bid`` rebuilds the state from the stored events without the bid, the
``bid_cancelled`` event (and any proxy steps that answer the rebuilt price) is appended and
NOTIFYed like every other change, and both the decision and the row are audited. The table's
CHECK refuses the same operator on both sides even if this code were bypassed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from auctions import rules, store
from auctions.monitor_tables import bid_cancellations
from auctions.tables import auction_events, auction_registrations
from market import audit
from market.access import require_role
from market.errors import Conflict, Forbidden, NotFound
from market.metrics import BID_CANCELLATIONS
from market.parties import Actor, Role
from market.tables import orgs, users


class SecondOperatorRequired(Forbidden):
    code = "second_operator_required"
    title = "Another operator must decide on this cancellation"


class CancellationNotFound(NotFound):
    code = "bid_cancellation_not_found"
    title = "No such bid cancellation"


class CancellationPending(Conflict):
    code = "bid_cancellation_pending"
    title = "A cancellation of this bid is already waiting for a second operator"


class CancellationDecided(Conflict):
    code = "bid_cancellation_decided"
    title = "This cancellation was already approved or rejected"


def _who(actor: Actor) -> dict[str, Any]:
    return {"actor_user_id": actor.user_id, "actor_org_id": actor.org_id}


async def request_bid_cancellation(
    conn: AsyncConnection, actor: Actor, auction_id: int, seq: int, reason: str
) -> Row[Any]:
    """Operator A asks to cancel bid ``seq``: checked now against the rules, decided by someone else.

    Raises:
        AuctionNotFound, NotABid, BidAlreadyCancelled, AuctionClosed, ReasonRequired: as
            ``rules.cancel_bid`` would refuse it now.
        CancellationPending: the same bid already waits for a decision.
    """
    require_role(actor, Role.OPERATOR)
    locked = await store.lock(conn, auction_id)
    records = await store.all_records(conn, auction_id)
    rules.cancel_bid(locked.terms, records, seq, reason, locked.now)  # refuses now what would fail later
    pending = await conn.execute(
        select(bid_cancellations.c.id).where(
            bid_cancellations.c.auction_id == auction_id,
            bid_cancellations.c.seq == seq,
            bid_cancellations.c.status == "pending",
        )
    )
    if pending.first() is not None:
        raise CancellationPending(f"Bid {seq} of auction {auction_id} already waits for a second operator")
    row: Row[Any] = (
        await conn.execute(
            bid_cancellations.insert()
            .values(auction_id=auction_id, seq=seq, reason=reason.strip(), requested_by=actor.user_id)
            .returning(bid_cancellations)
        )
    ).one()
    bid = records[seq - 1]
    await audit.record(
        conn,
        **_who(actor),
        action="auction.bid_cancellation_requested",
        entity="auction",
        entity_id=auction_id,
        after={
            "cancellation_id": row.id,
            "seq": seq,
            "paddle_no": bid.get("paddle_no"),
            "amount_fen": bid.get("amount_fen"),
            "reason": row.reason,
        },
    )
    BID_CANCELLATIONS.labels("requested").inc()
    return row


async def decide(
    conn: AsyncConnection, actor: Actor, cancellation_id: int, *, approve: bool
) -> tuple[Row[Any], list[dict[str, Any]]]:
    """Operator B approves (the bid is cancelled now) or rejects a pending cancellation.

    Returns the updated row and the feed events appended (none for a rejection).

    Raises:
        CancellationNotFound: no such cancellation.
        SecondOperatorRequired: B is the operator who asked.
        CancellationDecided: it was decided already.
        rules errors: approving what can no longer be cancelled (the round ended, the bid is gone).
    """
    require_role(actor, Role.OPERATOR)
    row = (
        await conn.execute(
            select(bid_cancellations).where(bid_cancellations.c.id == cancellation_id).with_for_update()
        )
    ).first()
    if row is None:
        raise CancellationNotFound(f"No bid cancellation {cancellation_id}")
    if row.requested_by == actor.user_id:
        raise SecondOperatorRequired("The operator who asked for a cancellation cannot also decide on it")
    if row.status != "pending":
        raise CancellationDecided(f"The cancellation was {row.status} already")
    feed: list[dict[str, Any]] = []
    if approve:
        locked = await store.lock(conn, row.auction_id)
        records = await store.all_records(conn, row.auction_id)
        new_state, events = rules.cancel_bid(locked.terms, records, row.seq, row.reason, locked.now)
        feed = await store.append(conn, locked, new_state, events)
    status = "approved" if approve else "rejected"
    updated: Row[Any] = (
        await conn.execute(
            update(bid_cancellations)
            .where(bid_cancellations.c.id == cancellation_id)
            .values(status=status, approved_by=actor.user_id, approved_at=func.now())
            .returning(bid_cancellations)
        )
    ).one()
    await audit.record(
        conn,
        **_who(actor),
        action=f"auction.bid_cancellation_{status}",
        entity="auction",
        entity_id=row.auction_id,
        before={"cancellation_id": row.id, "status": "pending", "requested_by": row.requested_by},
        after={
            "cancellation_id": row.id,
            "status": status,
            "seq": row.seq,
            "reason": row.reason,
            "events": [e["seq"] for e in feed],
        },
    )
    BID_CANCELLATIONS.labels(status).inc()
    return updated, feed


async def cancellations(
    conn: AsyncConnection, *, auction_id: int | None = None, status: str | None = None, limit: int = 100
) -> list[Row[Any]]:
    """Cancellations newest first, with who asked and who decided (emails) and the bid's paddle."""
    asked, decided = users.alias("asked"), users.alias("decided")
    q = (
        select(
            bid_cancellations,
            asked.c.email.label("requested_by_email"),
            decided.c.email.label("approved_by_email"),
        )
        .join(asked, asked.c.id == bid_cancellations.c.requested_by)
        .outerjoin(decided, decided.c.id == bid_cancellations.c.approved_by)
        .order_by(bid_cancellations.c.id.desc())
        .limit(limit)
    )
    if auction_id is not None:
        q = q.where(bid_cancellations.c.auction_id == auction_id)
    if status is not None:
        q = q.where(bid_cancellations.c.status == status)
    return list((await conn.execute(q)).all())


async def bids_with_identities(conn: AsyncConnection, auction_id: int) -> list[Any]:
    """Every bid event of an auction with the identity behind its paddle (operators only: rule 14)."""
    q = (
        select(
            auction_events.c.seq,
            auction_events.c.at,
            auction_events.c.amount_fen,
            auction_events.c.bidder_org_id,
            auction_events.c.record,
            auction_registrations.c.paddle_no,
            orgs.c.name.label("org_name"),
            orgs.c.credit_code,
        )
        .outerjoin(
            auction_registrations,
            (auction_registrations.c.auction_id == auction_events.c.auction_id)
            & (auction_registrations.c.bidder_org_id == auction_events.c.bidder_org_id),
        )
        .outerjoin(orgs, orgs.c.id == auction_events.c.bidder_org_id)
        .where(auction_events.c.auction_id == auction_id, auction_events.c.type == "bid")
        .order_by(auction_events.c.seq.desc())
        .limit(500)
    )
    return list((await conn.execute(q)).all())


async def voided_seqs(conn: AsyncConnection, auction_id: int) -> set[int]:
    """The seqs every approved cancellation of the auction voided."""
    q = select(auction_events.c.record).where(
        auction_events.c.auction_id == auction_id, auction_events.c.type == "bid_cancelled"
    )
    return {int(s) for r in (await conn.execute(q)).all() for s in r.record.get("cancelled_seqs", [])}
