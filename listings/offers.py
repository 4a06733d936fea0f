"""Negotiation (对接洽谈) persisted: offer threads between a buyer and the listing bank.

The rules are ``listings.negotiation`` (pure); this module loads a thread under a row lock
(listing first, then thread — one lock order everywhere), applies the rule, stores the
result and audits it. Only the two sides ever see a thread: anyone else gets 404.
An accepted offer sells the listing and creates its disposal for settlement.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from listings import disposals, model, negotiation as neg, services, settlement, store
from listings.tables import offer_threads, offers
from market import audit, clock
from market.access import require_role
from market.config import Settings, load_settings
from market.errors import (
    BuyerNotVerified,  # shared conditions, re-exported here
    Conflict,
    NotFound,
)
from market.parties import Actor, Role

DEFAULT_VALIDITY = timedelta(days=7)
NEGOTIABLE = ("published", "in_negotiation")


class ThreadNotFound(NotFound):
    code = "offer_not_found"
    title = "No such offer"


class NegotiationAlreadyOpen(Conflict):
    code = "negotiation_open"
    title = "You already have an open offer on this listing; counter or withdraw it"


class ListingNotNegotiable(Conflict):
    code = "listing_not_negotiable"
    title = "This listing does not take offers now"


def _thread(row: Row[Any], offer_rows: list[Row[Any]]) -> neg.Thread:
    return neg.Thread(
        listing_id=row.listing_id,
        buyer_org_id=row.buyer_org_id,
        bank_org_id=row.bank_org_id,
        offers=tuple(
            neg.Offer(o.seq, neg.Side(o.by_side), o.amount_fen, o.made_at, o.expires_at, o.message)
            for o in offer_rows
        ),
        status=neg.ThreadStatus(row.status),
        closed_at=row.closed_at,
        closed_by=neg.Side(row.closed_by) if row.closed_by else None,
        agreed_price_fen=row.agreed_price_fen,
    )


async def _offers(conn: AsyncConnection, thread_id: int) -> list[Row[Any]]:
    q = select(offers).where(offers.c.thread_id == thread_id).order_by(offers.c.seq)
    return list((await conn.execute(q)).all())


async def make_offer(
    conn: AsyncConnection,
    actor: Actor,
    listing_id: int,
    amount_fen: int,
    message: str,
    validity: timedelta | None = None,
) -> tuple[int, neg.Thread]:
    """A buyer opens a negotiation with a first offer."""
    require_role(actor, Role.BUYER)
    if not actor.org_verified:
        raise BuyerNotVerified("An operator must verify your organisation before you make offers")
    listing = await store.find_listing_row(conn, listing_id, lock=True)
    if listing is None or listing.status not in services.PUBLIC_STATUSES:
        raise store.ListingNotFound(f"No listing {listing_id}")
    if listing.status not in NEGOTIABLE:
        raise ListingNotNegotiable(f"The listing is {listing.status}")
    await _expire_open_thread_of(conn, listing_id, actor.org_id)
    if await _open_thread_of(conn, listing_id, actor.org_id) is not None:
        raise NegotiationAlreadyOpen("Counter or withdraw your open offer instead")
    now = clock.now()
    thread = neg.offer(
        listing_id=listing_id,
        buyer_org_id=actor.org_id,
        bank_org_id=listing.bank_org_id,
        amount_fen=amount_fen,
        now=now,
        expires_at=now + (validity or DEFAULT_VALIDITY),
        message=message,
    )
    row = (
        await conn.execute(
            insert(offer_threads)
            .values(
                listing_id=listing_id,
                buyer_org_id=actor.org_id,
                bank_org_id=listing.bank_org_id,
                status="open",
            )
            .returning(offer_threads.c.id)
        )
    ).one()
    await _store_offer(conn, row.id, thread.current)
    if listing.status == "published":
        await services.apply_transition(conn, actor, listing, model.ListingAction.START_NEGOTIATION, now=now)
    await _audit(conn, actor, "offer.open", row.id, thread)
    return row.id, thread


async def _open_thread_of(conn: AsyncConnection, listing_id: int, buyer_org_id: int) -> Row[Any] | None:
    q = select(offer_threads.c.id).where(
        offer_threads.c.listing_id == listing_id,
        offer_threads.c.buyer_org_id == buyer_org_id,
        offer_threads.c.status == "open",
    )
    return (await conn.execute(q)).first()


async def _store_offer(conn: AsyncConnection, thread_id: int, o: neg.Offer) -> None:
    await conn.execute(
        insert(offers).values(
            thread_id=thread_id,
            seq=o.seq,
            by_side=o.by.value,
            amount_fen=o.amount_fen,
            message=o.message,
            made_at=o.made_at,
            expires_at=o.expires_at,
        )
    )


async def _audit(
    conn: AsyncConnection, actor: Actor | None, action: str, thread_id: int, t: neg.Thread
) -> None:
    current = t.current
    await audit.record(
        conn,
        actor_user_id=actor.user_id if actor else None,
        actor_org_id=actor.org_id if actor else None,
        action=action,
        entity="offer_thread",
        entity_id=thread_id,
        after={
            "status": t.status.value,
            "seq": current.seq,
            "by": current.by.value,
            "amount_fen": current.amount_fen,
            "listing_id": t.listing_id,
        },
    )


async def get_thread(
    conn: AsyncConnection, actor: Actor, thread_id: int, *, lock: bool = False
) -> tuple[Row[Any], neg.Thread]:
    """The thread, if ``actor`` is one of its two sides (operators may read); expired offers lapse."""
    q = select(offer_threads).where(offer_threads.c.id == thread_id)
    row = (await conn.execute(q)).first()
    if row is None or not (actor.is_operator or actor.org_id in (row.buyer_org_id, row.bank_org_id)):
        raise ThreadNotFound(f"No offer {thread_id}")
    if lock:  # lock order: listing, then thread
        await store.find_listing_row(conn, row.listing_id, lock=True)
        row = (await conn.execute(q.with_for_update())).one()
    thread = _thread(row, await _offers(conn, thread_id))
    return row, thread


async def act(
    conn: AsyncConnection,
    actor: Actor,
    thread_id: int,
    action: str,
    *,
    amount_fen: int | None = None,
    message: str = "",
    validity: timedelta | None = None,
    settings: Settings | None = None,
) -> neg.Thread:
    """Counter, accept, reject or withdraw — by the side whose turn it is."""
    row, thread = await get_thread(conn, actor, thread_id, lock=True)
    now = clock.now()
    # A lapsed offer raises OfferExpired below; the sweeper (expire_due_threads) records the lapse.
    side = neg.side_of(thread, actor.org_id)
    if action == "counter":
        new = neg.counter(
            thread,
            side,
            amount_fen or 0,
            now=now,
            expires_at=now + (validity or DEFAULT_VALIDITY),
            message=message,
        )
        await _store_offer(conn, thread_id, new.current)
        await _audit(conn, actor, "offer.counter", thread_id, new)
        return new
    if action == "accept":
        return await _accept(conn, actor, row, thread, side, now, settings or load_settings())
    closed = neg.reject(thread, side, now=now) if action == "reject" else neg.withdraw(thread, side, now=now)
    await _save_closed(conn, actor, thread_id, closed)
    await _reopen_if_idle(conn, row.listing_id, now)
    return closed


async def _save_closed(conn: AsyncConnection, actor: Actor | None, thread_id: int, t: neg.Thread) -> None:
    await conn.execute(
        update(offer_threads)
        .where(offer_threads.c.id == thread_id)
        .values(
            status=t.status.value,
            closed_at=t.closed_at,
            closed_by=t.closed_by.value if t.closed_by else None,
            agreed_price_fen=t.agreed_price_fen,
        )
    )
    await _audit(conn, actor, f"offer.{t.status.value}", thread_id, t)


async def _accept(
    conn: AsyncConnection,
    actor: Actor,
    row: Row[Any],
    thread: neg.Thread,
    side: neg.Side,
    now: datetime,
    settings: Settings,
) -> neg.Thread:
    listing = await store.find_listing_row(conn, row.listing_id, lock=True)
    assert listing is not None
    if listing.status != "in_negotiation":
        raise ListingNotNegotiable(f"The listing is {listing.status}")
    closed, price = neg.accept(thread, side, now=now)
    await _save_closed(conn, actor, row.id, closed)
    await services.apply_transition(
        conn, actor, listing, model.ListingAction.SELL, now=now, reason=f"offer {row.id} accepted"
    )
    await disposals.create(
        conn,
        actor,
        listing_id=listing.id,
        bank_org_id=listing.bank_org_id,
        buyer_org_id=row.buyer_org_id,
        source="negotiation",
        source_ref=str(row.id),
        price_fen=price,
    )
    if listing.mode != "license":  # a sale with deposit 0 (SETTLEMENT §7); a licence settles by receipts
        close = {
            "id": f"close:n{row.id}",
            "type": "close",
            "lot": settlement.lot_id(listing.id),
            "winner": str(row.buyer_org_id),
            "price_fen": price,
        }
        await settlement.apply(conn, listing.id, close, settings)
    await _close_other_threads(conn, listing.id, row.id, now)
    return closed


async def _close_other_threads(conn: AsyncConnection, listing_id: int, keep: int, now: datetime) -> None:
    q = (
        select(offer_threads)
        .where(
            offer_threads.c.listing_id == listing_id,
            offer_threads.c.status == "open",
            offer_threads.c.id != keep,
        )
        .with_for_update()
    )
    for other in (await conn.execute(q)).all():
        t = replace(
            _thread(other, await _offers(conn, other.id)), status=neg.ThreadStatus.REJECTED, closed_at=now
        )
        await _save_closed(conn, None, other.id, t)


async def _reopen_if_idle(conn: AsyncConnection, listing_id: int, now: datetime) -> None:
    """The last open thread closed without a deal: the listing is back on the market."""
    listing = await store.find_listing_row(conn, listing_id, lock=True)
    if listing is None or listing.status != "in_negotiation":
        return
    q = select(offer_threads.c.id).where(
        offer_threads.c.listing_id == listing_id, offer_threads.c.status == "open"
    )
    if (await conn.execute(q)).first() is None:
        await services.apply_transition(
            conn, None, listing, model.ListingAction.REOPEN, now=now, reason="no open negotiation left"
        )


async def threads_for(conn: AsyncConnection, actor: Actor, *, listing_id: int | None = None) -> list[int]:
    """Ids of the threads ``actor`` takes part in (a bank: on its listings; a buyer: its own)."""
    q = select(offer_threads.c.id).order_by(offer_threads.c.id.desc()).limit(500)
    if not actor.is_operator:
        col = offer_threads.c.bank_org_id if actor.role is Role.BANK else offer_threads.c.buyer_org_id
        q = q.where(col == actor.org_id)
    if listing_id is not None:
        q = q.where(offer_threads.c.listing_id == listing_id)
    return [r.id for r in (await conn.execute(q)).all()]


async def _expire_open_thread_of(conn: AsyncConnection, listing_id: int, buyer_org_id: int) -> None:
    """The buyer's previous offer lapsed: close it so a new negotiation can start."""
    found = await _open_thread_of(conn, listing_id, buyer_org_id)
    if found is None:
        return
    q = select(offer_threads).where(offer_threads.c.id == found.id).with_for_update()
    row = (await conn.execute(q)).one()
    lapsed = neg.expire_due(_thread(row, await _offers(conn, row.id)), clock.now())
    if lapsed.status is neg.ThreadStatus.EXPIRED:
        await _save_closed(conn, None, row.id, lapsed)


async def expire_due_threads(conn: AsyncConnection, limit: int = 100) -> int:
    """Record every lapsed open offer (skipping threads someone else is working on); returns how many.

    A listing whose last open negotiation lapsed goes back on the market.
    """
    q = (
        select(offers.c.thread_id)
        .join(offer_threads, offer_threads.c.id == offers.c.thread_id)
        .where(offer_threads.c.status == "open", offers.c.expires_at <= func.now())
        .order_by(offers.c.thread_id)
        .limit(limit * 4)
    )
    candidates = sorted({r.thread_id for r in (await conn.execute(q)).all()})
    closed = 0
    for thread_id in candidates[:limit]:
        row = (
            await conn.execute(
                select(offer_threads)
                .where(offer_threads.c.id == thread_id, offer_threads.c.status == "open")
                .with_for_update(skip_locked=True)
            )
        ).first()
        if row is None:
            continue
        now = clock.now()
        lapsed = neg.expire_due(_thread(row, await _offers(conn, thread_id)), now)
        if lapsed.status is neg.ThreadStatus.EXPIRED:
            await _save_closed(conn, None, thread_id, lapsed)
            await _reopen_if_idle(conn, row.listing_id, now)
            closed += 1
    return closed
