"""Use cases of live auctions, each inside the caller's transaction.

Every change of an auction goes the same way: read the auction row (locked, except for bids),
run the pure rule with the database's receipt time, append the events and the new state and
NOTIFY in one statement guarded by the auction's ``seq``. A bid reads without a lock and its
write applies only if nothing changed since, so PostgreSQL's row lock decides every bid while
being held for one statement. The HTTP API calls ``place_bid``; the websocket queues its bids per
auction and process (``auctions.bidqueue``) and ``decide_bids`` decides a queueful with one read
and one write. Both judge each bid with the same code (``_decide``: the rules with the database's
receipt time) and write with the same ``store.append``.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from auctions import events as ev, rules, store
from auctions.tables import auction_registrations, auctions
from listings import disposals, model as lmodel, services as lservices, settlement, store as lstore
from market import audit, pg
from market.access import require_role
from market.config import Settings
from market.errors import Conflict, IdempotencyKeyReused, MarketError, RuleViolation
from market.parties import Actor, Role
from market.tables import orgs

SYSTEM: Actor | None = None  # closes and releases done by the platform itself


class ListingNotAuctionable(Conflict):
    code = "listing_not_auctionable"
    title = "This listing cannot start an auction now"


class LicenceByNegotiation(Conflict):
    code = "licence_by_negotiation"
    title = "A licence listing is disposed of by negotiation, not by auction"


class AppraisalMissing(RuleViolation):
    code = "appraisal_missing"
    title = "The listing has no appraisal to price the auction against"


class BelowBackstop(RuleViolation):
    code = "below_backstop"
    title = "With a backstop acquirer, bidding must start at the qualifying overbid (rule 35)"


def policy(settings: Settings) -> rules.Policy:
    """The rules' timing policy from configuration (money rules are not configurable)."""
    return rules.Policy(
        min_notice=timedelta(seconds=settings.min_notice_seconds),
        min_reauction_notice=timedelta(seconds=settings.min_reauction_notice_seconds),
        min_bidding_window=timedelta(seconds=settings.min_auction_seconds),
        extension=timedelta(seconds=settings.extension_seconds),
        min_extension=timedelta(seconds=settings.min_extension_seconds),
        balance_due=timedelta(days=settings.balance_due_days),
    )


def _who(actor: Actor | None) -> dict[str, Any]:
    return {
        "actor_user_id": actor.user_id if actor else None,
        "actor_org_id": actor.org_id if actor else None,
    }


# --------------------------------------------------------------------------- set-up


@dataclass(frozen=True, slots=True)
class NewAuction:
    listing_id: int
    start_price_fen: int
    increment_fen: int
    deposit_fen: int
    starts_at: datetime
    ends_at: datetime
    extension_seconds: int | None = None
    reserve_fen: int | None = None
    priority_holder_org_ids: tuple[int, ...] = ()
    kind: rules.Kind = "auction"


async def _previous_round(conn: AsyncConnection, listing_id: int) -> Row[Any] | None:
    q = (
        select(auctions)
        .where(auctions.c.listing_id == listing_id)
        .order_by(auctions.c.round_no.desc())
        .limit(1)
    )
    row: Row[Any] | None = (await conn.execute(q)).first()
    return row


async def _related_orgs(conn: AsyncConnection, bank_org_id: int) -> frozenset[int]:
    row = (await conn.execute(select(orgs.c.related_org_ids).where(orgs.c.id == bank_org_id))).one()
    return frozenset(int(x) for x in row.related_org_ids or [])


async def create_auction(
    conn: AsyncConnection, actor: Actor, spec: NewAuction, settings: Settings
) -> Row[Any]:
    """Schedule the next round of a published listing, validated against every price and timing rule."""
    require_role(actor, Role.BANK)
    listing = await lservices.lock_own_listing(conn, actor, spec.listing_id)
    if listing.status not in ("published", "failed"):
        raise ListingNotAuctionable(f"The listing is {listing.status}; publish it first")
    if listing.mode == "license":  # its fees settle receipt by receipt (upfront, instalments, royalties)
        raise LicenceByNegotiation("Licences are agreed through offers on the listing, not auctioned")
    if listing.appraisal_fen is None:
        raise AppraisalMissing("Every asset of the listing needs an appraisal")
    asset_rows = await lstore.listing_asset_rows(conn, listing.id)
    await lservices.check_claims_enforceable(conn, [a.id for a in asset_rows], _today(await _db_now(conn)))
    previous = await _previous_round(conn, listing.id)
    terms = await _terms(conn, spec, listing, previous, settings)
    now = await _db_now(conn)
    rules.validate_terms(
        terms,
        policy(settings),
        appraisal_fen=listing.appraisal_fen,
        previous_start_fen=previous.terms["start_price_fen"] if previous else None,
        published_at=listing.published_at if previous is None else now,
        now=now,
        previous_ended_at=previous.closed_at if previous else None,
        appraised_on=min((a.appraised_on for a in asset_rows if a.appraised_on), default=None),
    )
    _check_backstop(listing, terms)
    if listing.status == "failed":
        listing = await lservices.apply_transition(
            conn, actor, listing, lmodel.ListingAction.PUBLISH, now=now
        )
    await lservices.apply_transition(
        conn, actor, listing, lmodel.ListingAction.START_AUCTION, now=now, reason=f"round {terms.round_no}"
    )
    state = rules.initial_state(terms)
    row: Row[Any] = (
        await conn.execute(
            insert(auctions)
            .values(
                listing_id=listing.id,
                bank_org_id=listing.bank_org_id,
                round_no=terms.round_no,
                kind=terms.kind,
                terms=store.terms_to_dict(terms),
                state=rules.state_to_dict(state),
                status=state.status,
                ends_at=state.ends_at,
            )
            .returning(auctions)
        )
    ).one()
    await audit.record(
        conn,
        **_who(actor),
        action="auction.create",
        entity="auction",
        entity_id=row.id,
        after={"listing_id": listing.id, **store.terms_to_dict(terms)},
    )
    return row


async def _db_now(conn: AsyncConnection) -> datetime:
    value: datetime = (await conn.execute(select(func.now()))).scalar_one()
    return value


def _today(now: datetime) -> Any:
    from market.clock import today_cst

    return today_cst(now)


async def _terms(
    conn: AsyncConnection, spec: NewAuction, listing: Row[Any], previous: Row[Any] | None, settings: Settings
) -> rules.AuctionTerms:
    holders = tuple(
        rules.PriorityHolder(org_id, rank) for rank, org_id in enumerate(spec.priority_holder_org_ids, 1)
    )
    return rules.AuctionTerms(
        start_price_fen=spec.start_price_fen,
        increment_fen=spec.increment_fen,
        deposit_fen=spec.deposit_fen,
        starts_at=spec.starts_at,
        ends_at=spec.ends_at,
        extension_seconds=spec.extension_seconds or settings.extension_seconds,
        reserve_fen=spec.reserve_fen,
        priority_holders=holders,
        round_no=(previous.round_no + 1) if previous else 1,
        kind=spec.kind,
        consignor_org_id=listing.bank_org_id,
        related_org_ids=await _related_orgs(conn, listing.bank_org_id),
    )


def _check_backstop(listing: Row[Any], terms: rules.AuctionTerms) -> None:
    stop = listing.backstop
    if not stop:
        return
    floor = lmodel.minimum_qualifying_bid(
        stop["price_fen"], stop.get("break_up_fee_fen", 0), terms.increment_fen
    )
    if terms.start_price_fen < floor:
        raise BelowBackstop(
            f"Start at least at {floor} fen (backstop + break-up fee + one increment)", minimum_fen=floor
        )


# --------------------------------------------------------------------------- registration and deposits


def hold_account(listing_id: int, org_id: int) -> str:
    return f"hold:{listing_id}:{org_id}"


class AlreadyRegistered(Conflict):
    code = "already_registered"
    title = "Already registered for this auction"


async def register(
    conn: AsyncConnection, actor: Actor, auction_id: int, settings: Settings
) -> tuple[Row[Any], bool]:
    """Register a verified buyer: hold the deposit in the ledger and give an anonymous paddle number.

    Returns the registration and whether it was created now (a repeat returns the first one).
    """
    require_role(actor, Role.BUYER)
    locked = await store.lock(conn, auction_id)
    existing = await store.registration(conn, auction_id, actor.org_id)
    if existing is not None:
        return existing, False
    if locked.state.status in rules.TERMINAL or locked.now >= locked.state.ends_at:
        raise rules.AuctionClosed("Registration is closed")
    barred = await settlement.barred_org_ids(conn, locked.listing_id)
    rules.may_register(locked.terms, actor.org_id, barred_org_ids=barred, verified=actor.org_verified)
    row = await _insert_registration(conn, actor, locked)
    if row.deposit_fen > 0:
        await settlement.apply(
            conn,
            locked.listing_id,
            {
                "id": f"hold:a{auction_id}:o{actor.org_id}",
                "type": "hold",
                "lot": settlement.lot_id(locked.listing_id),
                "bidder": str(actor.org_id),
                "amount_fen": row.deposit_fen,
            },
            settings,
        )
    await audit.record(
        conn,
        **_who(actor),
        action="auction.register",
        entity="auction",
        entity_id=auction_id,
        after={"paddle_no": row.paddle_no, "deposit_fen": row.deposit_fen},
    )
    return row, True


async def _insert_registration(conn: AsyncConnection, actor: Actor, locked: store.Locked) -> Row[Any]:
    rank = locked.terms.priority_rank_of(actor.org_id)
    for _ in range(20):
        paddle = f"{secrets.randbelow(900000) + 100000}"
        try:
            async with conn.begin_nested():
                row: Row[Any] = (
                    await conn.execute(
                        insert(auction_registrations)
                        .values(
                            auction_id=locked.id,
                            bidder_org_id=actor.org_id,
                            user_id=actor.user_id,
                            paddle_no=paddle,
                            deposit_fen=locked.terms.deposit_fen,
                            deposit_status="held",
                            priority_rank=rank,
                        )
                        .returning(auction_registrations)
                    )
                ).one()
                return row
        except IntegrityError:
            continue
    raise AssertionError("could not allocate a paddle number")


async def settle_round(
    conn: AsyncConnection, locked: store.Locked, event: dict[str, Any], settings: Settings
) -> None:
    """Tell the settlement engine how the round ended (close: losers' holds voided; fail: all voided),
    then mirror which deposits are still held on the registrations (rule 15)."""
    result = await settlement.apply(conn, locked.listing_id, event, settings)
    still_held = [int(b) for b in result.state.holds]
    await pg.execute(conn, _RELEASE_DEPOSITS, locked.id, still_held)


_RELEASE_DEPOSITS = """
    UPDATE auction_registrations SET deposit_status = 'released', resolved_at = now()
    WHERE auction_id = $1 AND deposit_status = 'held' AND NOT (bidder_org_id = ANY($2::bigint[]))
"""


# --------------------------------------------------------------------------- bids


@dataclass(frozen=True, slots=True)
class BidAck:
    seq: int
    amount_fen: int
    price_fen: int | None
    leading: bool
    ends_at: datetime
    events: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "amount_fen": self.amount_fen,
            "price_fen": self.price_fen,
            "leading": self.leading,
            "ends_at": ev.rfc3339(self.ends_at),
        }


STALE_RETRIES = 200  # reads of a contended auction before a bid gives up (each one a new state)


class AuctionBusy(Conflict):
    code = "auction_busy"
    title = "The auction changed too often while the bid was being placed; send it again"


async def place_bid(
    conn: AsyncConnection,
    actor: Actor,
    auction_id: int,
    amount_fen: int,
    max_fen: int | None = None,
) -> BidAck:
    """The bid: read, validate with the database's receipt time, write under a ``seq`` guard.

    The read takes no lock; the write (events, new state, NOTIFY) is one statement that applies
    only if the auction is still as read, so the row lock is held for that statement alone. If
    another bid, a close or an intervention got there first, the bid is decided again against the
    new state — it may now be too low, or the auction closed.

    Raises:
        DepositRequired: the caller has no registration with a held deposit.
        rules errors: every refusal of the auction rules (bid_too_low, auction_closed, …).
        AuctionBusy: the auction kept changing under the bid (never under ordinary load).
    """
    require_role(actor, Role.BUYER)
    bid = QueuedBid(actor, amount_fen, max_fen, ("", "", ""))  # no request: nothing stored to replay
    for _ in range(STALE_RETRIES):
        snap, regs, _ = await _read(conn, auction_id, [bid])
        new_state, events, ack = _decide(snap, regs.get(actor.org_id), bid)
        try:
            await store.append(conn, snap, new_state, events)
        except store.Stale:
            continue
        return ack
    raise AuctionBusy(f"Auction {auction_id} changed {STALE_RETRIES} times while the bid was decided")


@dataclass(frozen=True, slots=True)
class QueuedBid:
    """A websocket bid waiting in this process's queue for its auction (``auctions.bidqueue``)."""

    actor: Actor
    amount_fen: int
    max_fen: int | None
    request: tuple[str, str, str]  # idempotency scope, key, hash of the bid


async def decide_bids(
    conn: AsyncConnection, auction_id: int, bids: Sequence[QueuedBid]
) -> list[dict[str, Any] | MarketError]:
    """Several websocket bids on one auction, decided in their order against one read, written in
    one statement: what ``place_bid`` does for one, idempotent by each bid's request (scope, key,
    hash), in two round trips for all of them.

    The read (auction, the bidders' registrations, stored answers to the requests) takes no lock
    and gives the receipt time: every bid here arrived before it. Each bid is decided by the rules
    against the state the previous ones left; the accepted ones' events, new state and answers are
    written by ``store.append`` under the ``seq`` guard. If anything else changed the auction in
    between, nothing is written and the whole queue is decided again against the new state — so
    no answer is given, not even a refusal, that the database did not confirm. A request repeated
    within the queue gets the first one's answer.

    Returns, for each bid, its ack (as stored for its request) or the refusal.
    """
    for bid in bids:
        require_role(bid.actor, Role.BUYER)
    for _ in range(STALE_RETRIES):
        snap, regs, stored = await _read(conn, auction_id, bids)
        results: list[dict[str, Any] | MarketError] = []
        seen: dict[tuple[str, str], int] = {}
        cursor, events, answers = snap, [], []
        for bid in bids:
            scope, key, digest = bid.request
            if (scope, key) in seen:
                first = seen[(scope, key)]
                same = bids[first].request[2] == digest
                results.append(results[first] if same else IdempotencyKeyReused(_REUSED))
                continue
            seen[(scope, key)] = len(results)
            try:
                answer = stored.get((scope, key))
                if answer is not None:
                    if answer.request_hash != digest:
                        raise IdempotencyKeyReused(_REUSED)
                    results.append(_canonical(answer.response))
                    continue
                new_state, new_events, ack = _decide(cursor, regs.get(bid.actor.org_id), bid)
            except MarketError as exc:
                results.append(exc)
                continue
            response = _canonical(ack.to_dict())
            answers.append((scope, key, digest, response))
            events.extend(new_events)
            cursor = replace(cursor, state=new_state)
            results.append(response)
        if not events:
            return results
        try:
            await store.append(conn, snap, cursor.state, events, answers=answers)
        except (store.Stale, IntegrityError):  # moved on, or a request was answered on another socket
            continue
        return [_as_of(snap.terms, cursor.state, regs, bid, r) for bid, r in zip(bids, results, strict=True)]
    raise AuctionBusy(f"Auction {auction_id} changed {STALE_RETRIES} times while bids were decided")


def _as_of(
    terms: rules.AuctionTerms,
    final: rules.AuctionState,
    regs: dict[int, store.Registration],
    bid: QueuedBid,
    result: dict[str, Any] | MarketError,
) -> dict[str, Any] | MarketError:
    """A bid refused as too low tells the minimum as of the queueful's write (the state it is
    answered in), not as of the moment it was judged: still too low then — prices only rose — and
    the bidder does not come back with an amount that is already taken."""
    if not isinstance(result, rules.BidTooLow):
        return result
    reg = regs.get(bid.actor.org_id)
    minimum = rules.minimum_next_bid(terms, final, priority_rank=reg.priority_rank if reg else None)
    return result if minimum <= result.minimum_fen else rules.BidTooLow(minimum_fen=minimum)


_REUSED = "This request_id was used for a different bid"


async def _read(
    conn: AsyncConnection, auction_id: int, bids: Sequence[QueuedBid]
) -> tuple[store.Locked, dict[int, store.Registration], dict[tuple[str, str], store.StoredAnswer]]:
    if len(bids) > 1:
        return await store.read_for_bidders(
            conn, auction_id, [b.actor.org_id for b in bids], [b.request[:2] for b in bids]
        )
    (bid,) = bids  # a lone bid: the plain join reads it for less than the aggregating query
    snap, row = await store.read_for_bidder(conn, auction_id, bid.actor.org_id, bid.request[:2])
    regs = {}
    if row.r_paddle_no is not None:
        reg = store.Registration(row.r_paddle_no, row.r_deposit_status, row.r_priority_rank)
        regs[bid.actor.org_id] = reg
    stored = {}
    if row.k_hash is not None:
        stored[bid.request[:2]] = store.StoredAnswer(row.k_hash, row.k_response)
    return snap, regs, stored


def _decide(
    snap: store.Locked, reg: store.Registration | None, bid: QueuedBid
) -> tuple[rules.AuctionState, list[ev.Event], BidAck]:
    if snap.state.status in rules.TERMINAL:
        raise rules.AuctionClosed(f"The auction is {snap.state.status}")
    if reg is None or reg.deposit_status != "held":
        raise rules.DepositRequired("Register and hold the deposit before bidding")
    placed = rules.Bid(
        bidder_id=bid.actor.org_id,
        paddle_no=reg.paddle_no,
        amount_fen=bid.amount_fen,
        deposit_held=True,
        max_fen=bid.max_fen,
        priority_rank=reg.priority_rank,
    )
    new_state, events = rules.place_bid(snap.terms, snap.state, placed, snap.now)
    feed = store.feed_of(snap, events)
    return new_state, list(events), _ack(feed, reg.paddle_no, bid.amount_fen, new_state, bid.actor.org_id)


def _canonical(value: dict[str, Any]) -> dict[str, Any]:
    return {k: value[k] for k in sorted(value)}


def _ack(
    feed: list[dict[str, Any]], paddle: str, amount_fen: int, new_state: rules.AuctionState, org_id: int
) -> BidAck:
    own = next((e for e in feed if e.get("paddle_no") == paddle and e["type"] == "bid"), feed[0])
    leader = new_state.leader
    return BidAck(
        seq=own["seq"],
        amount_fen=own.get("amount_fen", amount_fen),
        price_fen=new_state.current_price_fen,
        leading=leader is not None and leader.bidder_id == org_id,
        ends_at=new_state.ends_at,
        events=feed,
    )


# --------------------------------------------------------------------------- closing


@dataclass(frozen=True, slots=True)
class CloseResult:
    auction_id: int
    outcome: str  # closed | failed | not_due | already
    disposal_id: int | None = None
    lag_seconds: float | None = None  # closed or failed this long after the end


async def close_auction(
    conn: AsyncConnection, auction_id: int, settings: Settings, *, locked: store.Locked | None = None
) -> CloseResult:
    """Close one due auction exactly once: winner -> disposal, losers' deposits released; no bid -> 流拍.

    ``locked`` is the auction already locked in this transaction (the closer's ``store.lock_due``).
    """
    locked = locked or await store.lock(conn, auction_id)
    try:
        new_state, events = rules.close(locked.terms, locked.state, locked.now)
    except (rules.BiddingStillOpen, rules.AuctionSuspended):
        return CloseResult(auction_id, "not_due")
    if not events:
        return CloseResult(auction_id, "already")
    await store.append(conn, locked, new_state, events)
    outcome = events[-1]
    lag = max(0.0, (locked.now - locked.state.ends_at).total_seconds())
    if isinstance(outcome, ev.Closed):
        return replace(await _sold(conn, locked, outcome, settings), lag_seconds=lag)
    await _failed(conn, locked, outcome, settings)
    return CloseResult(auction_id, "failed", lag_seconds=lag)


async def _sold(
    conn: AsyncConnection, locked: store.Locked, outcome: ev.Closed, settings: Settings
) -> CloseResult:
    listing = await lstore.find_listing_row(conn, locked.listing_id, lock=True)
    assert listing is not None
    await lservices.apply_transition(
        conn, SYSTEM, listing, lmodel.ListingAction.SELL, now=locked.now, reason=f"auction {locked.id} closed"
    )
    disposal = await disposals.create(
        conn,
        SYSTEM,
        listing_id=locked.listing_id,
        bank_org_id=locked.bank_org_id,
        buyer_org_id=outcome.bidder_id,
        source="auction",
        source_ref=str(locked.id),
        price_fen=outcome.amount_fen,
        balance_due_at=locked.now + timedelta(days=settings.balance_due_days),
    )
    close = {
        "id": f"close:a{locked.id}",
        "type": "close",
        "lot": settlement.lot_id(locked.listing_id),
        "winner": str(outcome.bidder_id),
        "price_fen": outcome.amount_fen,
    }
    await settle_round(conn, locked, close, settings)
    await audit.record(
        conn,
        **_who(SYSTEM),
        action="auction.close",
        entity="auction",
        entity_id=locked.id,
        after={
            "winner_paddle": outcome.paddle_no,
            "price_fen": outcome.amount_fen,
            "disposal_id": disposal.id,
        },
    )
    return CloseResult(locked.id, "closed", disposal.id)


async def _failed(conn: AsyncConnection, locked: store.Locked, outcome: ev.Event, settings: Settings) -> None:
    listing = await lstore.find_listing_row(conn, locked.listing_id, lock=True)
    assert listing is not None
    await lservices.apply_transition(
        conn, SYSTEM, listing, lmodel.ListingAction.FAIL, now=locked.now, reason=f"auction {locked.id} failed"
    )
    fail = {"id": f"fail:a{locked.id}", "type": "fail", "lot": settlement.lot_id(locked.listing_id)}
    await settle_round(conn, locked, fail, settings)
    step = rules.next_round(
        locked.terms,
        "failed",
        listing.appraisal_fen or 0,
        rules.Policy(),
        locked.now,
        backstop=lservices.backstop_from_json(listing.backstop),
    )
    await conn.execute(update(auctions).where(auctions.c.id == locked.id).values(next_step=_step_dict(step)))
    await audit.record(
        conn,
        **_who(SYSTEM),
        action="auction.fail",
        entity="auction",
        entity_id=locked.id,
        after={"reason": getattr(outcome, "reason", None), "next_step": _step_dict(step)},
    )


def _step_dict(step: rules.NextStep) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("kind", "round_no", "start_price_floor_fen", "price_fen", "acquirer_org_id"):
        out[key] = getattr(step, key, None)
    for key in ("earliest_starts_at", "latest_starts_at"):
        value = getattr(step, key, None)
        out[key] = ev.rfc3339(value) if value else None
    period = getattr(step, "period", None)
    out["period_seconds"] = int(period.total_seconds()) if period else None
    return out


# --------------------------------------------------------------------------- interventions


async def intervene(
    conn: AsyncConnection, actor: Actor, auction_id: int, action: str, reason: str | None, settings: Settings
) -> list[dict[str, Any]]:
    """Suspend, resume or cancel (operators only), with the reason published in the feed (rule 20)."""
    require_role(actor, Role.OPERATOR)
    locked = await store.lock(conn, auction_id)
    if action == "suspend":
        new_state, events = rules.suspend(locked.state, reason or "", locked.now)
    elif action == "resume":
        new_state, events = rules.resume(locked.state, locked.now)
    else:
        new_state, events = rules.cancel(locked.state, reason or "", locked.now)
    feed = await store.append(conn, locked, new_state, events)
    if action == "cancel":
        await _cancelled(conn, actor, locked, settings)
    await audit.record(
        conn,
        **_who(actor),
        action=f"auction.{action}",
        entity="auction",
        entity_id=auction_id,
        before={"status": locked.state.status},
        after={"status": new_state.status, "reason": reason},
    )
    return feed


async def _cancelled(conn: AsyncConnection, actor: Actor, locked: store.Locked, settings: Settings) -> None:
    fail = {"id": f"fail:a{locked.id}", "type": "fail", "lot": settlement.lot_id(locked.listing_id)}
    await settle_round(conn, locked, fail, settings)
    listing = await lstore.find_listing_row(conn, locked.listing_id, lock=True)
    if listing is not None and listing.status == "in_auction":
        await lservices.apply_transition(
            conn,
            actor,
            listing,
            lmodel.ListingAction.REOPEN,
            now=locked.now,
            reason=f"auction {locked.id} cancelled",
        )


# --------------------------------------------------------------------------- reads


@dataclass(frozen=True, slots=True)
class View:
    row: Row[Any]
    terms: rules.AuctionTerms
    state: rules.AuctionState
    status: str
    now: datetime
    minimum_next_bid_fen: int | None
    mine: Row[Any] | None


async def view(conn: AsyncConnection, actor: Actor | None, auction_id: int) -> View:
    row = await store.find(conn, auction_id)
    if row is None:
        raise store.AuctionNotFound(f"No auction {auction_id}")
    terms, state = store.terms_from_dict(row.terms), rules.state_from_dict(row.state)
    status = rules.status_at(state, row.db_now)
    mine = await store.registration(conn, auction_id, actor.org_id) if actor else None
    rank = mine.priority_rank if mine is not None else None
    minimum = None if status in rules.TERMINAL else rules.minimum_next_bid(terms, state, priority_rank=rank)
    return View(row, terms, state, status, row.db_now, minimum, mine)


async def registrations(conn: AsyncConnection, actor: Actor, auction_id: int) -> list[Row[Any]]:
    """Who is behind each paddle: operators only (rule 14)."""
    require_role(actor, Role.OPERATOR)
    if await store.find(conn, auction_id) is None:
        raise store.AuctionNotFound(f"No auction {auction_id}")
    q = (
        select(auction_registrations, orgs.c.name.label("org_name"), orgs.c.credit_code)
        .join(orgs, orgs.c.id == auction_registrations.c.bidder_org_id)
        .where(auction_registrations.c.auction_id == auction_id)
        .order_by(auction_registrations.c.id)
    )
    return list((await conn.execute(q)).all())


# --------------------------------------------------------------------------- after failed rounds


class NoTakeOver(Conflict):
    code = "take_over_not_available"
    title = "Nobody can take the asset over at this point"


async def take_over(conn: AsyncConnection, actor: Actor, listing_id: int, by: str, settings: Settings) -> Any:
    """After a failed round (rule 19): the backstop acquirer (after a failed 变卖) or the bank itself
    takes the asset at that round's reserve; the sale enters settlement like any other."""
    require_role(actor, Role.BANK)
    listing = await lservices.lock_own_listing(conn, actor, listing_id)
    last = await _previous_round(conn, listing_id)
    if listing.status != "failed" or last is None or last.status != "failed":
        raise NoTakeOver("Only after a failed round")
    terms = store.terms_from_dict(last.terms)
    buyer, price = _taker(listing, last, terms, actor, by)
    now = await _db_now(conn)
    await lservices.apply_transition(
        conn,
        actor,
        listing,
        lmodel.ListingAction.SELL,
        now=now,
        reason=f"{by} takes over after round {last.round_no}",
    )
    disposal = await disposals.create(
        conn,
        actor,
        listing_id=listing_id,
        bank_org_id=listing.bank_org_id,
        buyer_org_id=buyer,
        source="entrusted_acquisition",
        source_ref=f"{listing_id}:{last.round_no}",
        price_fen=price,
        balance_due_at=now + timedelta(days=settings.balance_due_days),
    )
    close = {
        "id": f"close:t{listing_id}:{last.round_no}",
        "type": "close",
        "lot": settlement.lot_id(listing_id),
        "winner": str(buyer),
        "price_fen": price,
    }
    await settlement.apply(conn, listing_id, close, settings)
    return disposal


def _taker(
    listing: Row[Any], last: Row[Any], terms: rules.AuctionTerms, actor: Actor, by: str
) -> tuple[int, int]:
    if by == "bank":
        return actor.org_id, terms.reserve
    step = last.next_step or {}
    if not listing.backstop or step.get("kind") != "entrusted_acquisition":
        raise NoTakeOver("The backstop acquirer takes over only after a failed fixed-price sale")
    return int(listing.backstop["acquirer_org_id"]), int(listing.backstop["price_fen"])


async def purchase(conn: AsyncConnection, actor: Actor, listing_id: int, settings: Settings) -> BidAck:
    """Fixed-price sale (变卖, rule 18): register (deposit held) and bid the fixed price; the first
    such bid opens the 24 h window in which others may still bid up."""
    q = (
        select(auctions.c.id)
        .where(
            auctions.c.listing_id == listing_id,
            auctions.c.kind == "fixed_price_sale",
            auctions.c.status.in_(("scheduled", "live")),
        )
        .order_by(auctions.c.id.desc())
    )
    found = (await conn.execute(q)).first()
    if found is None:
        raise ListingNotAuctionable("This listing has no fixed-price sale running")
    await register(conn, actor, found.id, settings)
    locked = await store.find(conn, found.id)
    assert locked is not None
    terms = store.terms_from_dict(locked.terms)
    state = rules.state_from_dict(locked.state)
    return await place_bid(conn, actor, found.id, rules.minimum_next_bid(terms, state))
