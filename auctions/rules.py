"""Auction rules: a pure (Sans-I/O) state machine for one round of an online auction.

Values in, values out. Every transition takes the auction's fixed ``AuctionTerms``, its current
``AuctionState`` and the clock reading ``now`` (timezone-aware UTC; the server's receipt time,
DOMAIN rule 10), and returns ``(new_state, events)``. The new state is always the old one with
the events applied (``apply_event``), so ``replay(terms, all_events) == live_state``.
Nothing here reads a clock, a database or a socket.

Rule numbers refer to DOMAIN.md "Rules to implement":

- prices and deposits (1-3, 6), notices and windows (4, 5, 8), validated by ``validate_terms``;
- bidding (7-12): ``place_bid``, ``minimum_next_bid``; anti-sniping ``ends_at = max(ends_at,
  bid time + extension)`` for every accepted bid, without limit;
- priority purchasers (12): a holder may match the current price and then leads; lower rank number
  beats higher, at the same rank the earlier bid wins;
- proxy bids (36): the system bids for a maximum the least amount that leads, never above it;
- closing (11), suspension and termination with a published reason (20);
- cancelling one accepted bid (operators, two of them): ``cancel_bid`` rebuilds the state from every
  other event (see its docstring for what exactly is voided);
- who may register (17, 25): ``may_register``; the round ladder (18, 19): ``next_round``.

Money rules are constants here; timing rules live in ``Policy`` so a deployment may lower them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from typing import Any, Literal

from auctions.events import (
    BidCancelled,
    BidPlaced,
    Cancelled,
    Closed,
    Event,
    Extended,
    Failed,
    MaxRaised,
    Resumed,
    Suspended,
    event_from_record,
    rfc3339,
)
from listings import model as listings
from market.errors import (  # shared conditions, re-exported here
    BidderBarred,
    BuyerNotVerified,
    Conflict,
    Forbidden,
    ReasonRequired,
    RuleViolation,
)

Status = Literal["scheduled", "live", "suspended", "closed", "failed", "cancelled"]
Kind = Literal["auction", "fixed_price_sale"]
Outcome = Literal["failed", "defaulted"]
StepKind = Literal["auction", "fixed_price_sale", "entrusted_acquisition", "bank_takeover", "return_to_bank"]

TERMINAL: frozenset[Status] = frozenset({"closed", "failed", "cancelled"})

# Money rules: law, not settings (API.md "Command line and configuration").
FIRST_ROUND_FLOOR_PERCENT = 70  # of the appraisal (rule 2)
LATER_ROUND_FLOOR_PERCENT = 80  # of the previous round's start (rule 3)
DEPOSIT_MIN_PERCENT = 5  # of the start price, inclusive (rule 6)
DEPOSIT_MAX_PERCENT = 20
FIXED_PRICE_FLOOR_PERCENT = 50  # of the appraisal (rule 18)
FIXED_PRICE_SALE_FIRST_ROUND = 3  # a 变卖 follows two auction rounds (rule 18)
APPRAISAL_GRACE_MONTHS = 6  # a sale may end this long after the appraisal expires (rule 4)

_CST = timezone(timedelta(hours=8), "CST")  # calendar dates (appraisals) are China Standard Time


def percent_of(amount_fen: int, percent: int) -> int:
    """``percent`` % of ``amount_fen``, rounded **up** to the fen (price floors round up)."""
    return -(-amount_fen * percent // 100)


# --------------------------------------------------------------------------- errors


class BidTooLow(Conflict):
    code = "bid_too_low"
    title = "Bid below the minimum"

    def __init__(self, detail: str = "", *, minimum_fen: int) -> None:
        super().__init__(detail or f"The minimum bid is {minimum_fen} fen", minimum_fen=minimum_fen)
        self.minimum_fen = minimum_fen


class AuctionNotOpen(Conflict):
    code = "auction_not_open"
    title = "Bidding has not opened yet"


class AuctionClosed(Conflict):
    code = "auction_closed"
    title = "Bidding has ended"


class AuctionSuspended(Conflict):
    code = "auction_suspended"
    title = "The auction is suspended"


class AuctionNotSuspended(Conflict):
    code = "auction_not_suspended"
    title = "The auction is not suspended"


class BiddingStillOpen(Conflict):
    code = "bidding_still_open"
    title = "Bidding has not ended yet"


class SelfOutbid(Conflict):
    code = "already_leading"
    title = "You already lead this auction"


class MaxNotRaised(Conflict):
    code = "max_not_raised"
    title = "A new maximum must exceed the current one"


class DepositRequired(Forbidden):
    code = "deposit_required"
    title = "A confirmed deposit is required to bid"


class ConsignorMayNotBid(Forbidden):
    code = "consignor_may_not_bid"
    title = "The consigning bank and its related parties may not bid"


class NotPriorityHolder(Forbidden):
    code = "not_priority_holder"
    title = "Not a confirmed priority purchaser of this auction"


class NotABid(Conflict):
    code = "not_a_bid"
    title = "No accepted bid has this sequence number"


class BidAlreadyCancelled(Conflict):
    code = "bid_already_cancelled"
    title = "This bid was cancelled already"


class MaxBelowAmount(RuleViolation):
    code = "max_below_amount"
    title = "The maximum is below the bid"


class InvalidTerms(RuleViolation):
    code = "invalid_terms"
    title = "The auction terms break the rules"

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__("; ".join(p["detail"] for p in problems), problems=problems)
        self.problems = problems


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Policy:
    """Timing rules with the law's defaults for IP (其他财产权). A deployment or a test may lower them."""

    min_notice: timedelta = timedelta(days=30)  # rule 5, first round
    min_reauction_notice: timedelta = timedelta(days=15)  # rule 5, later rounds and 变卖
    min_bidding_window: timedelta = timedelta(hours=24)  # rule 8
    extension: timedelta = timedelta(seconds=300)  # rule 9, default for new terms
    min_extension: timedelta = timedelta(seconds=300)
    reauction_within: timedelta = timedelta(days=30)  # rule 5
    balance_due: timedelta = timedelta(days=10)  # rule 16
    fixed_price_period: timedelta = timedelta(days=60)  # rule 18
    fixed_price_window: timedelta = timedelta(hours=24)  # rule 18: bidding after the first bid


@dataclass(frozen=True)
class PriorityHolder:
    """A confirmed priority purchaser (优先购买权人); rank 1 is the highest."""

    org_id: int
    rank: int


@dataclass(frozen=True, kw_only=True)
class AuctionTerms:
    """What the bank set and the operator approved for one round; fixed once the round is published."""

    start_price_fen: int
    increment_fen: int
    deposit_fen: int
    starts_at: datetime
    ends_at: datetime
    extension_seconds: int = 300
    reserve_fen: int | None = None  # None: reserve = start price (rule 1)
    priority_holders: tuple[PriorityHolder, ...] = ()
    round_no: int = 1
    kind: Kind = "auction"
    consignor_org_id: int | None = None
    related_org_ids: frozenset[int] = frozenset()
    fixed_price_window_seconds: int = 86_400  # 变卖: bidding time after the first bid

    @property
    def reserve(self) -> int:
        return self.start_price_fen if self.reserve_fen is None else self.reserve_fen

    def priority_rank_of(self, org_id: int) -> int | None:
        return next((h.rank for h in self.priority_holders if h.org_id == org_id), None)

    def is_consignor_side(self, org_id: int) -> bool:
        return org_id == self.consignor_org_id or org_id in self.related_org_ids


@dataclass(frozen=True, kw_only=True)
class Bid:
    """One bid as received. ``bidder_id`` is the bidding organisation; ``priority_rank`` is set when
    the bidder bids with its priority code; ``max_fen`` asks the system to bid on up to that amount."""

    bidder_id: int
    paddle_no: str
    amount_fen: int
    deposit_held: bool
    max_fen: int | None = None
    priority_rank: int | None = None


@dataclass(frozen=True)
class Leader:
    """The leading bidder. ``committed_seq`` orders commitments for ties at an equal price: the
    ``seq`` of the leading bid, or, for a proxy bid at its maximum, of the event that set that
    maximum (a maximum is a standing offer from the moment it was set)."""

    bidder_id: int
    paddle_no: str
    priority_rank: int | None
    committed_seq: int


@dataclass(frozen=True)
class ProxyBid:
    """A bidder's maximum (rule 36), set at ``set_at`` by event ``set_seq``; secret until the system
    bids from it."""

    bidder_id: int
    paddle_no: str
    max_fen: int
    set_at: datetime
    set_seq: int
    priority_rank: int | None


@dataclass(frozen=True, kw_only=True)
class AuctionState:
    """Where one round stands. ``starts_at``/``ends_at`` are the effective times (re-based by
    suspensions, moved by anti-sniping); ``seq`` counts the events applied so far."""

    status: Status
    starts_at: datetime
    ends_at: datetime
    current_price_fen: int | None = None
    leader: Leader | None = None
    seq: int = 0
    bid_count: int = 0
    last_bid_at: datetime | None = None
    proxies: tuple[ProxyBid, ...] = ()
    suspended_at: datetime | None = None
    reason: str | None = None
    closed_at: datetime | None = None

    @property
    def leader_paddle(self) -> str | None:
        return None if self.leader is None else self.leader.paddle_no

    @property
    def remaining_at_suspension(self) -> timedelta | None:
        """Bidding time left when suspended (what ``resume`` re-bases on)."""
        return None if self.suspended_at is None else self.ends_at - self.suspended_at

    def proxy_of(self, bidder_id: int) -> ProxyBid | None:
        return next((p for p in self.proxies if p.bidder_id == bidder_id), None)


def initial_state(terms: AuctionTerms) -> AuctionState:
    """A freshly published round: scheduled, no bids."""
    return AuctionState(status="scheduled", starts_at=terms.starts_at, ends_at=terms.ends_at)


# --------------------------------------------------------------------------- terms


def validate_terms(
    terms: AuctionTerms,
    policy: Policy,
    *,
    appraisal_fen: int,
    previous_start_fen: int | None,
    published_at: datetime,
    now: datetime,
    previous_ended_at: datetime | None = None,
    appraised_on: date | None = None,
) -> None:
    """Check a round's terms against rules 1-6, 8 and 18 before it is published.

    ``previous_start_fen``/``previous_ended_at`` describe the previous round (re-auctions);
    ``appraised_on`` enables the appraisal-age checks of rule 4.

    Raises:
        InvalidTerms: listing every problem found, each ``{"code", "detail"}``.
    """
    _require_aware(terms.starts_at, terms.ends_at, published_at, now)
    problems = [
        *_price_problems(terms, appraisal_fen),
        *_floor_problems(terms, appraisal_fen, previous_start_fen),
        *_deposit_problems(terms),
        *_window_problems(terms, policy),
        *_notice_problems(terms, policy, published_at, now, previous_ended_at),
        *_appraisal_age_problems(terms, published_at, appraised_on),
        *_priority_problems(terms),
    ]
    if problems:
        raise InvalidTerms(problems)


def _problem(code: str, detail: str) -> dict[str, str]:
    return {"code": code, "detail": detail}


def _price_problems(terms: AuctionTerms, appraisal_fen: int) -> Iterator[dict[str, str]]:
    if terms.start_price_fen <= 0:
        yield _problem("start_price_not_positive", "The starting price must be positive")
    if terms.increment_fen <= 0:
        yield _problem("increment_not_positive", "The bid increment must be positive")
    if appraisal_fen <= 0:
        yield _problem("appraisal_not_positive", "The appraised value must be positive")
    if terms.reserve < terms.start_price_fen:
        yield _problem("reserve_below_start", "The reserve may not be below the starting price")
    if terms.round_no < 1:
        yield _problem("round_invalid", "Rounds are numbered from 1")


def _floor_problems(
    terms: AuctionTerms, appraisal_fen: int, previous_start_fen: int | None
) -> Iterator[dict[str, str]]:
    start = terms.start_price_fen
    if terms.kind == "fixed_price_sale":
        yield from _fixed_price_problems(terms, appraisal_fen)
    elif terms.round_no == 1:
        floor = percent_of(appraisal_fen, FIRST_ROUND_FLOOR_PERCENT)
        if start < floor:
            yield _problem(
                "start_below_appraisal_floor", f"A first round starts at >= 70 % of the appraisal: {floor}"
            )
    elif previous_start_fen is None:
        yield _problem("previous_start_required", "A re-auction needs the previous round's starting price")
    elif start < (floor := percent_of(previous_start_fen, LATER_ROUND_FLOOR_PERCENT)):
        yield _problem(
            "start_below_previous_round_floor", f"A re-auction starts at >= 80 % of the last: {floor}"
        )


def _fixed_price_problems(terms: AuctionTerms, appraisal_fen: int) -> Iterator[dict[str, str]]:
    if terms.round_no < FIXED_PRICE_SALE_FIRST_ROUND:
        yield _problem("fixed_price_sale_too_early", "A fixed-price sale may open only after round 2 failed")
    floor = percent_of(appraisal_fen, FIXED_PRICE_FLOOR_PERCENT)
    if terms.start_price_fen < floor:
        yield _problem("fixed_price_below_floor", f"A fixed-price sale is >= 50 % of the appraisal: {floor}")


def _deposit_problems(terms: AuctionTerms) -> Iterator[dict[str, str]]:
    start, deposit = terms.start_price_fen, terms.deposit_fen
    if not start * DEPOSIT_MIN_PERCENT <= deposit * 100 <= start * DEPOSIT_MAX_PERCENT:
        low, high = percent_of(start, DEPOSIT_MIN_PERCENT), start * DEPOSIT_MAX_PERCENT // 100
        yield _problem("deposit_out_of_range", f"The deposit must be 5-20 % of the start: {low}-{high} fen")


def _window_problems(terms: AuctionTerms, policy: Policy) -> Iterator[dict[str, str]]:
    window = terms.ends_at - terms.starts_at
    if window < policy.min_bidding_window:
        yield _problem("bidding_window_too_short", f"Bidding must last at least {policy.min_bidding_window}")
    if terms.kind == "fixed_price_sale" and window > policy.fixed_price_period:
        yield _problem(
            "fixed_price_period_too_long", f"A fixed-price sale lasts at most {policy.fixed_price_period}"
        )
    if (
        terms.kind == "fixed_price_sale"
        and terms.fixed_price_window_seconds < policy.fixed_price_window.total_seconds()
    ):
        yield _problem(
            "fixed_price_window_too_short", f"Bidding after a first bid lasts {policy.fixed_price_window}"
        )
    if terms.extension_seconds < policy.min_extension.total_seconds():
        yield _problem("extension_too_short", f"The extension must be at least {policy.min_extension}")


def _notice_problems(
    terms: AuctionTerms,
    policy: Policy,
    published_at: datetime,
    now: datetime,
    previous_ended_at: datetime | None,
) -> Iterator[dict[str, str]]:
    notice = policy.min_notice if terms.round_no == 1 else policy.min_reauction_notice
    if terms.starts_at < now:
        yield _problem("starts_in_past", "Bidding cannot open in the past")
    if terms.starts_at - published_at < notice:
        yield _problem("notice_too_short", f"The notice must be published at least {notice} before bidding")
    late = previous_ended_at is not None and terms.starts_at > previous_ended_at + policy.reauction_within
    if terms.kind == "auction" and terms.round_no > 1 and late:
        yield _problem(
            "reauction_too_late", f"A re-auction opens within {policy.reauction_within} of the failure"
        )


def _appraisal_age_problems(
    terms: AuctionTerms, published_at: datetime, appraised_on: date | None
) -> Iterator[dict[str, str]]:
    if appraised_on is None:
        return
    expires_on = listings.add_years(appraised_on, listings.APPRAISAL_VALID_YEARS)
    if terms.round_no == 1 and published_at.astimezone(_CST).date() > expires_on:
        yield _problem("appraisal_expired", f"The appraisal expired on {expires_on}; get a new one")
    sell_by = listings.add_months(expires_on, APPRAISAL_GRACE_MONTHS)
    if terms.ends_at.astimezone(_CST).date() > sell_by:
        yield _problem("appraisal_too_old_for_sale", f"The sale must end by {sell_by}, 6 months after expiry")


def _priority_problems(terms: AuctionTerms) -> Iterator[dict[str, str]]:
    org_ids = [holder.org_id for holder in terms.priority_holders]
    if any(holder.rank < 1 for holder in terms.priority_holders):
        yield _problem("priority_rank_invalid", "Priority ranks are numbered from 1")
    if len(set(org_ids)) != len(org_ids):
        yield _problem("priority_holder_duplicate", "A priority holder is listed twice")
    if any(terms.is_consignor_side(org_id) for org_id in org_ids):
        yield _problem("priority_holder_is_consignor", "The consignor side cannot hold a priority right")


def _require_aware(*moments: datetime) -> None:
    if any(moment.tzinfo is None for moment in moments):
        raise ValueError("auction rules need timezone-aware datetimes")


# --------------------------------------------------------------------------- who may bid


def may_register(
    terms: AuctionTerms, bidder_org_id: int, *, barred_org_ids: Iterable[int], verified: bool
) -> None:
    """Check that an organisation may register (and so bid) for this round.

    Raises:
        BuyerNotVerified: the buyer's identity is not verified (rule 7).
        ConsignorMayNotBid: the consigning bank or a related party (rule 25).
        BidderBarred: e.g. the defaulter of an earlier round of this listing (rule 17).
    """
    if not verified:
        raise BuyerNotVerified()
    if terms.is_consignor_side(bidder_org_id):
        raise ConsignorMayNotBid()
    if bidder_org_id in set(barred_org_ids):
        raise BidderBarred()


# --------------------------------------------------------------------------- reading the state


def status_at(state: AuctionState, now: datetime) -> Status:
    """The status to show at ``now``: ``live`` from the opening until the round is closed."""
    if state.status in TERMINAL or state.status == "suspended":
        return state.status
    return "scheduled" if now < state.starts_at else "live"


def is_open(state: AuctionState, now: datetime) -> bool:
    """Whether a bid received at ``now`` could be accepted (``starts_at <= now < ends_at``)."""
    return status_at(state, now) == "live" and now < state.ends_at


def minimum_next_bid(terms: AuctionTerms, state: AuctionState, *, priority_rank: int | None = None) -> int:
    """The least amount a bid may have (rules 8, 12): the start price for the first bid; then the
    current price + increment, or the current price itself for a priority holder who outranks the
    leader."""
    if state.leader is None or state.current_price_fen is None:
        return terms.start_price_fen
    if _outranks(priority_rank, state.leader.priority_rank):
        return state.current_price_fen
    return state.current_price_fen + terms.increment_fen


def balance_due_at(closed_at: datetime, policy: Policy) -> datetime:
    """When the winner's balance falls due (rule 16; moving off public holidays is the caller's)."""
    return closed_at + policy.balance_due


def _outranks(rank: int | None, other: int | None) -> bool:
    """A priority holder beats a non-holder; a lower rank number beats a higher one."""
    return rank is not None and (other is None or rank < other)


# --------------------------------------------------------------------------- applying events


def apply_event(state: AuctionState, event: Event) -> AuctionState:
    """The state after ``event``; every transition's new state is built with this."""
    state = replace(state, seq=state.seq + 1)
    match event:
        case BidPlaced():
            return _apply_bid(state, event)
        case Extended():
            return replace(state, ends_at=event.ends_at)
        case MaxRaised():
            return replace(state, proxies=_set_proxy(state.proxies, _raised_proxy(state, event)))
        case Suspended():
            return replace(state, status="suspended", suspended_at=event.at, reason=event.reason)
        case Resumed():
            status: Status = "live" if state.bid_count else "scheduled"
            return replace(
                state,
                status=status,
                starts_at=event.starts_at,
                ends_at=event.ends_at,
                suspended_at=None,
                reason=None,
            )
        case Closed():
            return replace(state, status="closed", closed_at=event.at)
        case Failed():
            return replace(state, status="failed", closed_at=event.at)
        case Cancelled():
            return replace(state, status="cancelled", closed_at=event.at, reason=event.reason)
        case BidCancelled():
            raise ValueError(
                "a bid cancellation rebuilds the state from the history: use replay or cancel_bid"
            )


def replay(terms: AuctionTerms, events: Iterable[Event]) -> AuctionState:
    """Rebuild a round's state from its events; equals the live state after the same events.

    A ``BidCancelled`` needs the history before it: the state after it is rebuilt from every earlier
    event but the voided ones (``after_cancellation``), exactly as ``cancel_bid`` built it live.
    """
    state = initial_state(terms)
    history: list[Event] = []
    for event in events:
        if isinstance(event, BidCancelled):
            state = after_cancellation(terms, history, event)
        else:
            state = apply_event(state, event)
        history.append(event)
    return state


def _apply_bid(state: AuctionState, bid: BidPlaced) -> AuctionState:
    """Apply a bid whose ``seq`` is ``state.seq``."""
    proxies = state.proxies if bid.proxy else _proxies_after_manual_bid(state, bid)
    own = state.proxy_of(bid.bidder_id) if bid.proxy else None
    at_max = own is not None and own.max_fen == bid.amount_fen
    committed_seq = own.set_seq if own is not None and at_max else state.seq
    return replace(
        state,
        status="live",
        current_price_fen=bid.amount_fen,
        leader=Leader(bid.bidder_id, bid.paddle_no, bid.priority_rank, committed_seq),
        ends_at=bid.ends_at,
        bid_count=state.bid_count + 1,
        last_bid_at=bid.at,
        proxies=proxies,
    )


def _proxies_after_manual_bid(state: AuctionState, bid: BidPlaced) -> tuple[ProxyBid, ...]:
    """A manual bid replaces the bidder's maximum with the one sent with it, if any."""
    if bid.max_fen is None:
        return tuple(p for p in state.proxies if p.bidder_id != bid.bidder_id)
    proxy = ProxyBid(bid.bidder_id, bid.paddle_no, bid.max_fen, bid.at, state.seq, bid.priority_rank)
    return _set_proxy(state.proxies, proxy)


def _raised_proxy(state: AuctionState, event: MaxRaised) -> ProxyBid:
    rank = state.leader.priority_rank if state.leader is not None else None
    return ProxyBid(event.bidder_id, event.paddle_no, event.max_fen, event.at, state.seq, rank)


def _set_proxy(proxies: tuple[ProxyBid, ...], proxy: ProxyBid) -> tuple[ProxyBid, ...]:
    others = [p for p in proxies if p.bidder_id != proxy.bidder_id]
    return tuple(sorted([*others, proxy], key=lambda p: p.bidder_id))


def _emit(state: AuctionState, events: list[Event], event: Event) -> AuctionState:
    events.append(event)
    return apply_event(state, event)


# --------------------------------------------------------------------------- bidding


def place_bid(
    terms: AuctionTerms, state: AuctionState, bid: Bid, now: datetime
) -> tuple[AuctionState, list[Event]]:
    """Accept one bid received at ``now``, then let proxy maxima respond (rule 36).

    The leader may not outbid himself, but a leader's bid with ``max_fen`` raises his maximum.
    Every accepted bid, proxy steps included, moves ``ends_at`` to at least ``now + extension``.

    Raises:
        AuctionClosed, AuctionSuspended, AuctionNotOpen: outside ``starts_at <= now < ends_at``.
        ConsignorMayNotBid, DepositRequired, NotPriorityHolder: the bidder may not bid so.
        MaxBelowAmount: ``max_fen`` below ``amount_fen``.
        SelfOutbid, MaxNotRaised: the leader bid without raising his maximum.
        BidTooLow: below ``minimum_next_bid``, or a priority holder's bid between the price and the
            price + increment (the least valid amount is in ``data["minimum_fen"]``).
    """
    _require_aware(now)
    if terms.increment_fen <= 0:
        raise ValueError("auction terms need a positive increment: validate them first")
    _check_open(state, now)
    _check_bidder(terms, bid)
    if state.leader is not None and state.leader.bidder_id == bid.bidder_id:
        return _raise_max(state, bid, now)
    _check_amount(terms, state, bid)
    events: list[Event] = []
    manual = _bid_event(terms, state, now, bid.bidder_id, bid.paddle_no, bid.amount_fen, bid.priority_rank)
    state = _accept(state, events, replace(manual, max_fen=bid.max_fen))
    return _run_proxies(terms, state, events, now), events


def _check_open(state: AuctionState, now: datetime) -> None:
    if state.status in TERMINAL:
        raise AuctionClosed(f"The auction is {state.status}")
    if state.status == "suspended":
        raise AuctionSuspended(state.reason or "")
    if now < state.starts_at:
        raise AuctionNotOpen(f"Bidding opens at {rfc3339(state.starts_at)}")
    if now >= state.ends_at:
        raise AuctionClosed(f"Bidding ended at {rfc3339(state.ends_at)}")


def _check_amount(terms: AuctionTerms, state: AuctionState, bid: Bid) -> None:
    """At least the minimum; a priority holder's match is the price exactly (rules 8, 12)."""
    minimum = minimum_next_bid(terms, state, priority_rank=bid.priority_rank)
    if bid.amount_fen < minimum:
        raise BidTooLow(minimum_fen=minimum)
    raised = minimum_next_bid(terms, state)
    if minimum < bid.amount_fen < raised:
        raise BidTooLow(f"Match {minimum} fen exactly or bid at least {raised} fen", minimum_fen=raised)


def _check_bidder(terms: AuctionTerms, bid: Bid) -> None:
    if terms.is_consignor_side(bid.bidder_id):
        raise ConsignorMayNotBid()
    if not bid.deposit_held:
        raise DepositRequired()
    if bid.priority_rank is not None and terms.priority_rank_of(bid.bidder_id) != bid.priority_rank:
        raise NotPriorityHolder()
    if bid.max_fen is not None and bid.max_fen < bid.amount_fen:
        raise MaxBelowAmount()


def _raise_max(state: AuctionState, bid: Bid, now: datetime) -> tuple[AuctionState, list[Event]]:
    if bid.max_fen is None:
        raise SelfOutbid()
    own = state.proxy_of(bid.bidder_id)
    floor = own.max_fen if own is not None else state.current_price_fen or 0
    if bid.max_fen <= floor:
        raise MaxNotRaised(f"The new maximum must exceed {floor} fen")
    events: list[Event] = []
    state = _emit(
        state,
        events,
        MaxRaised(at=now, bidder_id=bid.bidder_id, paddle_no=bid.paddle_no, max_fen=bid.max_fen),
    )
    return state, events


def _bid_event(
    terms: AuctionTerms,
    state: AuctionState,
    now: datetime,
    bidder_id: int,
    paddle_no: str,
    amount_fen: int,
    priority_rank: int | None,
    *,
    proxy: bool = False,
) -> BidPlaced:
    ends_at = _ends_after_bid(terms, state, now)
    return BidPlaced(
        at=now,
        bidder_id=bidder_id,
        paddle_no=paddle_no,
        amount_fen=amount_fen,
        ends_at=ends_at,
        proxy=proxy,
        priority_rank=priority_rank,
    )


def _ends_after_bid(terms: AuctionTerms, state: AuctionState, now: datetime) -> datetime:
    """Rule 9: ``max(ends_at, now + extension)``; a 变卖's first bid opens its own window (rule 18)."""
    if terms.kind == "fixed_price_sale" and state.bid_count == 0:
        return now + timedelta(seconds=terms.fixed_price_window_seconds)
    return max(state.ends_at, now + timedelta(seconds=terms.extension_seconds))


def _accept(state: AuctionState, events: list[Event], bid: BidPlaced) -> AuctionState:
    previous_ends_at = state.ends_at
    state = _emit(state, events, bid)
    if bid.ends_at != previous_ends_at:
        state = _emit(
            state, events, Extended(at=bid.at, ends_at=bid.ends_at, previous_ends_at=previous_ends_at)
        )
    return state


# --------------------------------------------------------------------------- proxy bidding


def _run_proxies(
    terms: AuctionTerms, state: AuctionState, events: list[Event], now: datetime
) -> AuctionState:
    """Let maxima outbid the leader until none can (rule 36), one normal bid event per step.

    A duel between two maxima is fast-forwarded over its middle: only its last full exchange and
    its end are emitted, so the outcome equals bidding one step at a time.
    """
    while challengers := _challengers(terms, state):
        challenger = challengers[0]
        if len(challengers) == 1:
            state = _skip_duel(terms, state, challenger)
        amount = _proxy_amount(terms, state, challenger)
        if amount is None:  # pragma: no cover - a skipped duel always leaves a full exchange
            break
        step = _bid_event(
            terms,
            state,
            now,
            challenger.bidder_id,
            challenger.paddle_no,
            amount,
            challenger.priority_rank,
            proxy=True,
        )
        state = _accept(state, events, step)
    return state


def _challengers(terms: AuctionTerms, state: AuctionState) -> list[ProxyBid]:
    """Maxima of non-leaders that can take the lead now, strongest first."""
    leader_id = state.leader.bidder_id if state.leader is not None else None
    able = [
        p for p in state.proxies if p.bidder_id != leader_id and _proxy_amount(terms, state, p) is not None
    ]
    return sorted(able, key=_offer_strength)


def _offer_strength(proxy: ProxyBid) -> tuple[int, float, int, int]:
    rank = float("inf") if proxy.priority_rank is None else proxy.priority_rank
    return (-proxy.max_fen, rank, proxy.set_seq, proxy.bidder_id)


def _proxy_amount(terms: AuctionTerms, state: AuctionState, proxy: ProxyBid) -> int | None:
    """The least amount with which ``proxy`` leads, capped at its maximum; None if it cannot lead.

    That is the current price for a priority holder who outranks the leader, else the current price
    plus the increment. Capped at the maximum, the bid still leads if it is above the price, or at
    the price if the maximum was set before the leader committed to that price: the earlier of two
    equal maxima wins, and a loser's maximum always shows before the winner tops it (eBay-style).
    """
    leader, price = state.leader, state.current_price_fen
    if leader is None or price is None:
        return None
    outranks = _outranks(proxy.priority_rank, leader.priority_rank)
    amount = min(price if outranks else price + terms.increment_fen, proxy.max_fen)
    if amount > price:
        return amount
    same_rank_earlier = proxy.priority_rank == leader.priority_rank and proxy.set_seq < leader.committed_seq
    return amount if amount == price and (outranks or same_rank_earlier) else None


def _skip_duel(terms: AuctionTerms, state: AuctionState, challenger: ProxyBid) -> AuctionState:
    """Jump over all but the last full exchange of a duel between the leader's maximum and one other.

    In a full exchange each side bids its normal step (no cap), so the price rises by a fixed amount
    and the leader is the same afterwards; the skipped state is never emitted, and the next event
    overwrites everything the jump changed.
    """
    leader, price = state.leader, state.current_price_fen
    own = state.proxy_of(leader.bidder_id) if leader is not None else None
    if own is None or price is None:
        return state
    inc = terms.increment_fen
    challenger_step = 0 if _outranks(challenger.priority_rank, own.priority_rank) else inc
    exchange = challenger_step + (0 if _outranks(own.priority_rank, challenger.priority_rank) else inc)
    full = min(
        (challenger.max_fen - price - challenger_step) // exchange + 1, (own.max_fen - price) // exchange
    )
    if full < 2:
        return state
    # The leader's last skipped step is below its maximum: committed after every maximum set so far.
    stepped = Leader(own.bidder_id, own.paddle_no, own.priority_rank, state.seq + 1)
    return replace(state, current_price_fen=price + (full - 1) * exchange, leader=stepped)


# --------------------------------------------------------------------------- closing, suspending


def close(terms: AuctionTerms, state: AuctionState, now: datetime) -> tuple[AuctionState, list[Event]]:
    """End bidding at or after ``ends_at`` (rule 11): a leader at or above the reserve wins; else the
    round fails (流拍). Closing a finished round changes nothing (the closer may race).

    Raises:
        AuctionSuspended: the round is suspended.
        BiddingStillOpen: ``now`` is before ``ends_at``.
    """
    _require_aware(now)
    if state.status in TERMINAL:
        return state, []
    if state.status == "suspended":
        raise AuctionSuspended("Resume or cancel a suspended auction; it cannot close")
    if now < state.ends_at:
        raise BiddingStillOpen(f"Bidding ends at {rfc3339(state.ends_at)}")
    events: list[Event] = []
    return _emit(state, events, _outcome(terms, state, now)), events


def _outcome(terms: AuctionTerms, state: AuctionState, now: datetime) -> Event:
    leader, price = state.leader, state.current_price_fen
    if leader is None or price is None:
        return Failed(at=now, reason="no_bids")
    if price < terms.reserve:
        return Failed(at=now, reason="reserve_not_met", highest_fen=price)
    return Closed(
        at=now,
        bidder_id=leader.bidder_id,
        paddle_no=leader.paddle_no,
        amount_fen=price,
        priority_rank=leader.priority_rank,
    )


def suspend(state: AuctionState, reason: str, now: datetime) -> tuple[AuctionState, list[Event]]:
    """Suspend bidding (暂缓, rule 20) with a published reason; the remaining time is kept.

    Raises:
        ReasonRequired: the reason is blank.
        AuctionClosed: the round is finished or its bidding time is over.
        AuctionSuspended: it is suspended already.
    """
    _require_aware(now)
    reason = _required_reason(reason)
    if state.status in TERMINAL or now >= state.ends_at:
        raise AuctionClosed("Only a scheduled or running auction can be suspended")
    if state.status == "suspended":
        raise AuctionSuspended("The auction is suspended already")
    remaining = int((state.ends_at - max(now, state.starts_at)).total_seconds())
    events: list[Event] = []
    return _emit(state, events, Suspended(at=now, reason=reason, remaining_seconds=remaining)), events


def resume(state: AuctionState, now: datetime) -> tuple[AuctionState, list[Event]]:
    """Resume a suspended round: ``ends_at = now + remaining at suspension``; an opening that had not
    come yet moves by the same pause.

    Raises:
        AuctionNotSuspended: the round is not suspended.
    """
    _require_aware(now)
    if state.status != "suspended" or state.suspended_at is None:
        raise AuctionNotSuspended()
    pause = max(now - state.suspended_at, timedelta(0))
    starts_at = state.starts_at + pause if state.starts_at > state.suspended_at else state.starts_at
    events: list[Event] = []
    return _emit(state, events, Resumed(at=now, starts_at=starts_at, ends_at=state.ends_at + pause)), events


def cancel(state: AuctionState, reason: str, now: datetime) -> tuple[AuctionState, list[Event]]:
    """Terminate the round (中止, rule 20) with a published reason.

    Raises:
        ReasonRequired: the reason is blank.
        AuctionClosed: the round is finished already.
    """
    _require_aware(now)
    reason = _required_reason(reason)
    if state.status in TERMINAL:
        raise AuctionClosed(f"The auction is {state.status}")
    events: list[Event] = []
    return _emit(state, events, Cancelled(at=now, reason=reason)), events


def _required_reason(reason: str) -> str:
    if not reason or not reason.strip():
        raise ReasonRequired()
    return reason.strip()


# --------------------------------------------------------------------------- cancelling a bid


def cancel_bid(
    terms: AuctionTerms,
    records: Sequence[Event | Mapping[str, Any]],
    seq: int,
    reason: str,
    now: datetime,
) -> tuple[AuctionState, list[Event]]:
    """Cancel the accepted bid ``seq`` of a running round (a second operator approved it).

    ``records`` are every stored event of the round in ``seq`` order (``Event`` values or their
    ``to_record()`` form). The bid is void together with everything that came from it:

    - the automatic events that followed it in its transaction: its extension and the proxy steps
      that answered it, with theirs (a price pushed up through other bidders' maxima goes back down);
    - the maximum it carried: the bidder's later proxy steps (each with the automatic answers in its
      transaction) and raises of that maximum, up to the bidder's next manual bid; the bidder's
      standing maximum is withdrawn unless such a later manual bid set a new one.

    Every other event stays as it happened (earlier cancellations keep voiding what they voided),
    and the state is rebuilt by replaying them with each event's own ``seq``: the leader and price
    become those of the highest remaining bid. The bidding end never moves earlier; while bidding is
    open it moves to at least ``now + extension`` (the price changed, as after a bid, rule 9), and
    the remaining standing maxima then answer as after any bid (rule 36), as ``bid`` events after the
    ``bid_cancelled``. A suspended round is rebuilt but nobody bids until it resumes. ``replay`` of
    the stored events gives the same state.

    Raises:
        ReasonRequired: the reason is blank.
        AuctionClosed: the round is finished (closed, failed or cancelled).
        NotABid: ``seq`` is not an accepted bid of this round.
        BidAlreadyCancelled: that bid was voided by an earlier cancellation.
    """
    _require_aware(now)
    reason = _required_reason(reason)
    history = [r if isinstance(r, _EVENT_CLASSES) else event_from_record(dict(r)) for r in records]
    state = replay(terms, history)
    if state.status in TERMINAL:
        raise AuctionClosed(f"The auction is {state.status}; its bids can no longer be cancelled")
    target = history[seq - 1] if 1 <= seq <= len(history) else None
    if not isinstance(target, BidPlaced):
        raise NotABid(f"Event {seq} is not an accepted bid of this auction")
    if seq in _voided(history):
        raise BidAlreadyCancelled(f"Bid {seq} was cancelled already")
    ends_at = state.ends_at
    if is_open(state, now):
        ends_at = max(ends_at, now + timedelta(seconds=terms.extension_seconds))
    dropped = _voided_by(history, seq)
    cancelling = _Cancelling(seq, target.bidder_id, ends_at)
    rebuilt = _rebuild(terms, history, _voided(history) | set(dropped), cancelling)
    event = BidCancelled(
        at=now,
        cancelled_seq=seq,
        cancelled_seqs=dropped,
        reason=reason,
        bidder_id=target.bidder_id,
        paddle_no=target.paddle_no,
        ends_at=ends_at,
        price_fen=rebuilt.current_price_fen,
        leader_paddle=rebuilt.leader_paddle,
    )
    events: list[Event] = [event]
    if is_open(rebuilt, now):
        rebuilt = _run_proxies(terms, rebuilt, events, now)
    return rebuilt, events


def after_cancellation(terms: AuctionTerms, history: Sequence[Event], event: BidCancelled) -> AuctionState:
    """The state right after ``event``, given every event before it (``history``, ``seq`` order)."""
    excluded = _voided(history) | set(event.cancelled_seqs)
    cancelling = _Cancelling(event.cancelled_seq, event.bidder_id, event.ends_at)
    return _rebuild(terms, history, excluded, cancelling)


_EVENT_CLASSES = (BidPlaced, Extended, MaxRaised, Suspended, Resumed, Closed, Failed, Cancelled, BidCancelled)


@dataclass(frozen=True)
class _Cancelling:
    seq: int
    bidder_id: int
    ends_at: datetime


def _voided(history: Sequence[Event]) -> set[int]:
    """Every ``seq`` the cancellations in ``history`` voided."""
    return {s for e in history if isinstance(e, BidCancelled) for s in e.cancelled_seqs}


def _voided_by(history: Sequence[Event], seq: int) -> tuple[int, ...]:
    """What cancelling bid ``seq`` voids (see ``cancel_bid``), in ``seq`` order."""
    target = history[seq - 1]
    assert isinstance(target, BidPlaced)
    bidder = target.bidder_id
    out = set(_answers(history, seq))
    for later in range(seq + 1, len(history) + 1):
        event = history[later - 1]
        if isinstance(event, BidPlaced) and event.bidder_id == bidder and not event.proxy:
            break  # the bidder's next manual bid: a new maximum (or none) from here on
        if later in out:
            continue
        if isinstance(event, BidPlaced) and event.proxy and event.bidder_id == bidder:
            out.update(_answers(history, later))
        elif isinstance(event, MaxRaised) and event.bidder_id == bidder:
            out.add(later)
    return tuple(sorted(out))


def _answers(history: Sequence[Event], seq: int) -> tuple[int, ...]:
    """The bid ``seq`` and the automatic events that followed it in its transaction (same receipt
    time, only extensions and proxy steps: a later transaction starts with a manual bid or another
    kind of event)."""
    first = history[seq - 1]
    out = [seq]
    for later in range(seq + 1, len(history) + 1):
        event = history[later - 1]
        automatic = isinstance(event, Extended) or (isinstance(event, BidPlaced) and event.proxy)
        if event.at != first.at or not automatic:
            break
        out.append(later)
    return tuple(out)


def _withdraws(history: Sequence[Event], excluded: set[int], cancelling: _Cancelling, at_seq: int) -> bool:
    """Whether a cancellation at ``at_seq`` withdraws its bidder's standing maximum: yes, unless the
    bidder made a manual bid (which set a new maximum, or none) after the cancelled one."""
    return not any(
        isinstance(e, BidPlaced) and not e.proxy and e.bidder_id == cancelling.bidder_id
        for s, e in enumerate(history[: at_seq - 1], 1)
        if cancelling.seq < s and s not in excluded
    )


def _rebuild(
    terms: AuctionTerms, history: Sequence[Event], excluded: set[int], cancelling: _Cancelling
) -> AuctionState:
    """Replay ``history`` without the ``excluded`` events, each with its own ``seq`` (tie-breaks by
    commitment order stay those of the live auction), earlier cancellations withdrawing maxima where
    they happened; the result stands right after a new cancellation at ``len(history) + 1``."""
    state = initial_state(terms)
    for seq, event in enumerate(history, 1):
        if isinstance(event, BidCancelled):
            earlier = _Cancelling(event.cancelled_seq, event.bidder_id, event.ends_at)
            state = _after(state, history, excluded, earlier, seq)
        elif seq not in excluded:
            state = apply_event(replace(state, seq=seq - 1), event)
    return _after(state, history, excluded, cancelling, len(history) + 1)


def _after(
    state: AuctionState, history: Sequence[Event], excluded: set[int], cancelling: _Cancelling, seq: int
) -> AuctionState:
    proxies = state.proxies
    if _withdraws(history, excluded, cancelling, seq):
        proxies = tuple(p for p in proxies if p.bidder_id != cancelling.bidder_id)
    return replace(state, seq=seq, ends_at=cancelling.ends_at, proxies=proxies)


# --------------------------------------------------------------------------- round ladder


@dataclass(frozen=True, kw_only=True)
class NextStep:
    """What follows a round that did not sell (rules 17-19).

    ``auction``: a re-auction whose start is at least ``start_price_floor_fen``, opening between
    ``earliest_starts_at`` and ``latest_starts_at``. ``fixed_price_sale``: a 变卖 at ``price_fen``
    lasting ``period``. ``entrusted_acquisition``/``bank_takeover``: a sale to ``acquirer_org_id``
    (None: the bank) at ``price_fen``. ``return_to_bank``: the disposal ends unsold.
    """

    kind: StepKind
    round_no: int | None = None
    start_price_floor_fen: int | None = None
    price_fen: int | None = None
    earliest_starts_at: datetime | None = None
    latest_starts_at: datetime | None = None
    period: timedelta | None = None
    acquirer_org_id: int | None = None


def next_round(
    previous_terms: AuctionTerms,
    outcome: Outcome,
    appraisal_fen: int,
    policy: Policy,
    now: datetime,
    *,
    backstop: listings.Backstop | None = None,
    bank_takes_over: bool = False,
) -> NextStep:
    """The next step after a round failed (流拍) or its winner defaulted (悔拍) at ``now``.

    Failed auction rounds climb the ladder: round 1 -> round 2 (start >= 80 % of round 1's) ->
    变卖 at round 2's start (never below 50 % of the appraisal) -> the recorded entrusted-acquisition
    ``backstop``, else ``return_to_bank``. ``bank_takes_over`` (以物抵债, rule 19) ends the ladder
    after any failed round at that round's reserve. A default re-runs the same kind of round.
    """
    if outcome == "failed" and bank_takes_over:
        return NextStep(kind="bank_takeover", price_fen=previous_terms.reserve)
    if outcome == "failed" and previous_terms.kind == "fixed_price_sale":
        return _after_fixed_price_sale(backstop)
    if outcome == "failed" and previous_terms.round_no >= FIXED_PRICE_SALE_FIRST_ROUND - 1:
        return _fixed_price_sale(previous_terms, appraisal_fen, policy, now)
    if previous_terms.kind == "fixed_price_sale":
        return _fixed_price_sale(previous_terms, appraisal_fen, policy, now)
    return _reauction(previous_terms, policy, now)


def _reauction(previous: AuctionTerms, policy: Policy, now: datetime) -> NextStep:
    return NextStep(
        kind="auction",
        round_no=previous.round_no + 1,
        start_price_floor_fen=percent_of(previous.start_price_fen, LATER_ROUND_FLOOR_PERCENT),
        earliest_starts_at=now + policy.min_reauction_notice,
        latest_starts_at=now + policy.reauction_within,
    )


def _fixed_price_sale(previous: AuctionTerms, appraisal_fen: int, policy: Policy, now: datetime) -> NextStep:
    floor = percent_of(appraisal_fen, FIXED_PRICE_FLOOR_PERCENT)
    return NextStep(
        kind="fixed_price_sale",
        round_no=max(previous.round_no + 1, FIXED_PRICE_SALE_FIRST_ROUND),
        price_fen=max(previous.start_price_fen, floor),
        earliest_starts_at=now + policy.min_reauction_notice,
        period=policy.fixed_price_period,
    )


def _after_fixed_price_sale(backstop: listings.Backstop | None) -> NextStep:
    if backstop is None:
        return NextStep(kind="return_to_bank")
    return NextStep(
        kind="entrusted_acquisition", price_fen=backstop.price_fen, acquirer_org_id=backstop.acquirer_org_id
    )


# --------------------------------------------------------------------------- storage shape


def state_to_dict(state: AuctionState) -> dict[str, Any]:
    """The state as JSON-ready data (a JSONB column); ``state_from_dict`` reads it back."""
    leader = state.leader
    return {
        "status": state.status,
        "starts_at": rfc3339(state.starts_at),
        "ends_at": rfc3339(state.ends_at),
        "current_price_fen": state.current_price_fen,
        "leader": None if leader is None else _leader_to_dict(leader),
        "seq": state.seq,
        "bid_count": state.bid_count,
        "last_bid_at": _time_or_none(state.last_bid_at),
        "proxies": [_proxy_to_dict(p) for p in state.proxies],
        "suspended_at": _time_or_none(state.suspended_at),
        "reason": state.reason,
        "closed_at": _time_or_none(state.closed_at),
    }


def state_from_dict(data: dict[str, Any]) -> AuctionState:
    """Read back ``state_to_dict``'s output."""
    leader = data["leader"]
    return AuctionState(
        status=data["status"],
        starts_at=datetime.fromisoformat(data["starts_at"]),
        ends_at=datetime.fromisoformat(data["ends_at"]),
        current_price_fen=data["current_price_fen"],
        leader=None if leader is None else _leader_from_dict(leader),
        seq=data["seq"],
        bid_count=data["bid_count"],
        last_bid_at=_parse_or_none(data["last_bid_at"]),
        proxies=tuple(_proxy_from_dict(p) for p in data["proxies"]),
        suspended_at=_parse_or_none(data["suspended_at"]),
        reason=data["reason"],
        closed_at=_parse_or_none(data["closed_at"]),
    )


def _leader_to_dict(leader: Leader) -> dict[str, Any]:
    return {
        "bidder_id": leader.bidder_id,
        "paddle_no": leader.paddle_no,
        "priority_rank": leader.priority_rank,
        "committed_seq": leader.committed_seq,
    }


def _leader_from_dict(data: dict[str, Any]) -> Leader:
    return Leader(data["bidder_id"], data["paddle_no"], data["priority_rank"], data["committed_seq"])


def _proxy_to_dict(proxy: ProxyBid) -> dict[str, Any]:
    return {
        "bidder_id": proxy.bidder_id,
        "paddle_no": proxy.paddle_no,
        "max_fen": proxy.max_fen,
        "set_at": rfc3339(proxy.set_at),
        "set_seq": proxy.set_seq,
        "priority_rank": proxy.priority_rank,
    }


def _proxy_from_dict(data: dict[str, Any]) -> ProxyBid:
    set_at = datetime.fromisoformat(data["set_at"])
    return ProxyBid(
        data["bidder_id"], data["paddle_no"], data["max_fen"], set_at, data["set_seq"], data["priority_rank"]
    )


def _time_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else rfc3339(moment)


def _parse_or_none(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)
