"""Property tests of the auction rules: a random lifecycle keeps its invariants, and proxy bidding
matches a reference implementation written here from rule 36's wording."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from auctions import events as ev, rules as r
from auctions.rules import AuctionState, AuctionTerms, Bid, PriorityHolder
from market.errors import MarketError

OPENS = datetime(2025, 3, 1, 2, 0, tzinfo=UTC)
START = 100_000
INC = 1_000
EXTENSION = timedelta(seconds=300)
ORDINARY = (1, 2, 3)
RANKS = {4: 1, 5: 1, 6: 2}  # two holders share rank 1
BIDDERS = (*ORDINARY, *RANKS)
TERMS = AuctionTerms(
    start_price_fen=START,
    increment_fen=INC,
    deposit_fen=10_000,
    starts_at=OPENS,
    ends_at=OPENS + timedelta(hours=1),
    reserve_fen=START + 5 * INC,
    priority_holders=tuple(PriorityHolder(org, rank) for org, rank in RANKS.items()),
)
SETTINGS = settings(max_examples=150, stateful_step_count=30, deadline=None)

# --------------------------------------------------------------------------- reference implementation


@dataclass
class RefMax:
    bidder: int
    max_fen: int
    order: int
    rank: int | None


class Reference:
    """Rule 36 stated directly, one step at a time and without shortcuts.

    A bid is valid if it reaches the current price plus the increment, or (rule 12) equals the price
    for a priority holder of better rank. A maximum is a standing offer from the moment it is set:
    the system may bid it exactly even short of a full increment. At an equal price a better rank
    leads, then the earlier commitment. After every bid, each maximum that can lead bids the least
    valid amount that leads, strongest maximum first, until none can.
    """

    def __init__(self, start: int, increment: int) -> None:
        self.start, self.increment = start, increment
        self.price: int | None = None
        self.leader: int | None = None
        self.leader_rank: int | None = None
        self.leader_order = 0
        self.maxima: dict[int, RefMax] = {}
        self.clock = 0

    @staticmethod
    def better(rank: int | None, other: int | None) -> bool:
        return rank is not None and (other is None or rank < other)

    def leads(self, amount: int, rank: int | None, order: int) -> bool:
        if self.price is None or amount != self.price:
            return self.price is None or amount > self.price
        same = rank == self.leader_rank and order < self.leader_order
        return self.better(rank, self.leader_rank) or same

    def bid(self, bidder: int, amount: int, max_fen: int | None, rank: int | None) -> bool:
        """Apply a manual bid; False if the rules refuse it."""
        if bidder == self.leader:
            return self.raise_max(bidder, max_fen)
        if self.price is None:
            valid = amount >= self.start
        else:
            valid = amount >= self.price + self.increment or (
                amount == self.price and self.better(rank, self.leader_rank)
            )
        if not valid or (max_fen is not None and max_fen < amount):
            return False
        self.clock += 1
        self.take_lead(bidder, amount, rank, self.clock)
        if max_fen is None:
            self.maxima.pop(bidder, None)
        else:
            self.maxima[bidder] = RefMax(bidder, max_fen, self.clock, rank)
        self.respond()
        return True

    def raise_max(self, bidder: int, max_fen: int | None) -> bool:
        current = self.maxima.get(bidder)
        floor = current.max_fen if current else self.price or 0
        if max_fen is None or max_fen <= floor:
            return False
        self.clock += 1
        self.maxima[bidder] = RefMax(bidder, max_fen, self.clock, self.leader_rank)
        return True

    def take_lead(self, bidder: int, amount: int, rank: int | None, order: int) -> None:
        self.price, self.leader, self.leader_rank, self.leader_order = amount, bidder, rank, order

    def least_leading(self, offer: RefMax) -> int | None:
        assert self.price is not None
        candidates = {self.price, self.price + self.increment, offer.max_fen}
        for amount in sorted(a for a in candidates if a <= offer.max_fen):
            order = offer.order if amount == offer.max_fen else self.clock + 1
            valid = (
                amount >= self.price + self.increment
                or amount == offer.max_fen
                or (amount == self.price and self.better(offer.rank, self.leader_rank))
            )
            if valid and self.leads(amount, offer.rank, order):
                return amount
        return None

    def respond(self) -> None:
        while True:
            able = []
            for offer in self.maxima.values():
                amount = None if offer.bidder == self.leader else self.least_leading(offer)
                if amount is not None:
                    rank = 99 if offer.rank is None else offer.rank
                    able.append(((-offer.max_fen, rank, offer.order), offer, amount))
            if not able:
                return
            _, offer, amount = min(able, key=lambda item: item[0])
            self.clock += 1
            self.take_lead(
                offer.bidder, amount, offer.rank, offer.order if amount == offer.max_fen else self.clock
            )


# --------------------------------------------------------------------------- bid strategy

bid_plans = st.tuples(
    st.sampled_from(BIDDERS),
    st.integers(-2, 6),  # increments above the minimum (negative: refused)
    st.integers(0, INC - 1) | st.just(0),  # fen off the increment grid
    st.none() | st.tuples(st.integers(0, 40), st.integers(0, INC - 1) | st.just(0)),  # maximum above the bid
    st.booleans(),  # a holder bids with its priority code
)


def make_bid(state: AuctionState, plan: tuple[int, int, int, tuple[int, int] | None, bool]) -> Bid:
    bidder, steps, fen, maximum, use_rank = plan
    rank = RANKS.get(bidder) if use_rank else None
    amount = r.minimum_next_bid(TERMS, state, priority_rank=rank) + steps * INC + (fen if steps >= 0 else 0)
    max_fen = None if maximum is None else amount + maximum[0] * INC + maximum[1]
    return Bid(
        bidder_id=bidder,
        paddle_no=f"P{bidder}",
        amount_fen=amount,
        deposit_held=True,
        max_fen=max_fen,
        priority_rank=rank,
    )


def check_proxy_steps(before: AuctionState, bid: Bid, events: list[ev.Event]) -> None:
    """No maximum is exceeded; amounts never fall; every bid extends the end to at least at + 5 min."""
    maxima = {p.bidder_id: p.max_fen for p in before.proxies}
    if bid.max_fen is not None:
        maxima[bid.bidder_id] = bid.max_fen
    previous = before.current_price_fen or 0
    for event in events:
        if isinstance(event, ev.BidPlaced):
            assert not event.proxy or event.amount_fen <= maxima[event.bidder_id]
            assert event.amount_fen >= previous
            assert event.ends_at >= event.at + EXTENSION
            previous = event.amount_fen


@SETTINGS
@given(st.lists(bid_plans, max_size=25))
def test_proxy_bidding_matches_the_reference(
    plans: list[tuple[int, int, int, tuple[int, int] | None, bool]],
) -> None:
    state, reference = r.initial_state(TERMS), Reference(START, INC)
    for n, plan in enumerate(plans):
        bid = make_bid(state, plan)
        accepted = reference.bid(bid.bidder_id, bid.amount_fen, bid.max_fen, bid.priority_rank)
        try:
            new, events = r.place_bid(TERMS, state, bid, OPENS + timedelta(seconds=n))
        except MarketError:
            assert not accepted
            continue
        assert accepted
        check_proxy_steps(state, bid, events)
        state = new
        assert state.leader is not None
        assert (state.leader.bidder_id, state.current_price_fen) == (reference.leader, reference.price)


@SETTINGS
@given(
    st.integers(0, 30),
    st.integers(0, 60),
    st.integers(0, 60),
    st.integers(0, INC - 1),
    st.integers(0, INC - 1),
)
def test_two_maxima_the_higher_wins_paying_at_most_an_increment_over_the_other(
    opening_steps: int, first_steps: int, second_steps: int, first_fen: int, second_fen: int
) -> None:
    """eBay-like: the higher maximum (the earlier if equal) wins, at no more than the other maximum
    plus one increment (capped at its own) and at no less than the other maximum."""
    first_max = START + first_steps * INC + first_fen
    state, _ = r.place_bid(TERMS, r.initial_state(TERMS), make_bid_at(1, START, first_max), OPENS)
    opening = START + (1 + opening_steps) * INC
    second_max = max(opening, START + second_steps * INC + second_fen)
    state, _ = r.place_bid(TERMS, state, make_bid_at(2, opening, second_max), OPENS)
    price = state.current_price_fen
    assert state.leader is not None and price is not None
    if first_max < opening:  # the first maximum cannot answer the opening bid at all
        assert (state.leader.bidder_id, price) == (2, opening)
        return
    high, low = max(first_max, second_max), min(first_max, second_max)
    assert state.leader.bidder_id == (1 if first_max >= second_max else 2)
    assert low <= price <= min(high, low + INC)


def make_bid_at(bidder: int, amount: int, max_fen: int) -> Bid:
    return Bid(
        bidder_id=bidder, paddle_no=f"P{bidder}", amount_fen=amount, deposit_held=True, max_fen=max_fen
    )


# --------------------------------------------------------------------------- lifecycle state machine


class AuctionLifecycle(RuleBasedStateMachine):
    """Random bids, maxima, clock moves, suspensions, closing and cancelling of one round."""

    def __init__(self) -> None:
        super().__init__()
        self.state = r.initial_state(TERMS)
        self.events: list[ev.Event] = []
        self.now = OPENS - timedelta(minutes=5)
        self.reference = Reference(START, INC)

    def commit(self, before: AuctionState, result: tuple[AuctionState, list[ev.Event]]) -> None:
        new, events = result
        assert before.status not in r.TERMINAL or not events, "nothing happens after the end"
        if before.current_price_fen is not None:
            assert new.current_price_fen is not None and new.current_price_fen >= before.current_price_fen
        assert new.ends_at >= before.ends_at
        assert new.seq == before.seq + len(events)
        self.state, self.events = new, self.events + events

    @rule(seconds=st.integers(0, 900))
    def advance_clock(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    @rule(plan=bid_plans)
    def bid(self, plan: tuple[int, int, int, tuple[int, int] | None, bool]) -> None:
        bid, before = make_bid(self.state, plan), self.state
        try:
            result = r.place_bid(TERMS, self.state, bid, self.now)
        except (r.AuctionClosed, r.AuctionNotOpen, r.AuctionSuspended):
            assert not r.is_open(self.state, self.now)
            return
        except MarketError:
            assert not self.reference.bid(bid.bidder_id, bid.amount_fen, bid.max_fen, bid.priority_rank)
            return
        assert r.is_open(before, self.now)
        assert self.reference.bid(bid.bidder_id, bid.amount_fen, bid.max_fen, bid.priority_rank)
        check_proxy_steps(before, bid, result[1])
        self.commit(before, result)
        assert self.state.leader is not None
        assert (self.state.leader.bidder_id, self.state.current_price_fen) == (
            self.reference.leader,
            self.reference.price,
        )

    @rule()
    def suspend(self) -> None:
        try:
            self.commit(self.state, r.suspend(self.state, "system fault", self.now))
        except (r.AuctionClosed, r.AuctionSuspended):
            assert self.state.status in ("suspended", *r.TERMINAL) or self.now >= self.state.ends_at

    @rule()
    def resume(self) -> None:
        try:
            remaining = self.state.remaining_at_suspension
            self.commit(self.state, r.resume(self.state, self.now))
        except r.AuctionNotSuspended:
            assert self.state.status != "suspended"
            return
        assert remaining is not None and self.state.ends_at == self.now + remaining

    @rule()
    def close(self) -> None:
        try:
            self.commit(self.state, r.close(TERMS, self.state, self.now))
        except r.BiddingStillOpen:
            assert self.now < self.state.ends_at
            return
        except r.AuctionSuspended:
            assert self.state.status == "suspended"
            return
        assert self.state.status in r.TERMINAL

    @precondition(lambda self: self.state.bid_count >= 3)
    @rule()
    def cancel(self) -> None:
        try:
            self.commit(self.state, r.cancel(self.state, "claim repaid", self.now))
        except r.AuctionClosed:
            assert self.state.status in r.TERMINAL

    @invariant()
    def replay_equals_the_live_state(self) -> None:
        assert r.replay(TERMS, self.events) == self.state
        assert r.state_from_dict(r.state_to_dict(self.state)) == self.state

    @invariant()
    def a_closed_round_has_a_winner_at_or_above_the_reserve(self) -> None:
        if self.state.status == "closed":
            assert self.state.current_price_fen is not None and self.state.current_price_fen >= TERMS.reserve
        if self.state.status == "failed":
            price = self.state.current_price_fen
            assert price is None or price < TERMS.reserve


AuctionLifecycle.TestCase.settings = SETTINGS
TestAuctionLifecycle = AuctionLifecycle.TestCase
