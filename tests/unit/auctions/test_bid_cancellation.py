"""Cancelling one accepted bid (two operators, DOMAIN rule 20's spirit): ``rules.cancel_bid``.

The state after a cancellation is rebuilt from every stored event except what the cancelled bid
caused; ``rules.replay`` of the stored events (the ``bid_cancelled`` event included) must give
exactly the live state, whatever happens before and after.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from auctions import events as ev, rules as r
from auctions.rules import AuctionState, AuctionTerms, Bid
from market.errors import ReasonRequired

OPENS = datetime(2025, 3, 1, 2, 0, tzinfo=UTC)
START = 1_000_000
INC = 10_000
TERMS = AuctionTerms(
    start_price_fen=START,
    increment_fen=INC,
    deposit_fen=100_000,
    starts_at=OPENS,
    ends_at=OPENS + timedelta(hours=1),
    extension_seconds=300,
)


def at(minutes: float) -> datetime:
    return OPENS + timedelta(minutes=minutes)


class Run:
    """One round driven through the rules, keeping every event (what the database stores)."""

    def __init__(self, terms: AuctionTerms = TERMS) -> None:
        self.terms = terms
        self.state = r.initial_state(terms)
        self.events: list[ev.Event] = []

    def keep(self, result: tuple[AuctionState, list[ev.Event]]) -> list[ev.Event]:
        self.state, new = result
        self.events += new
        assert r.replay(self.terms, self.events) == self.state
        return new

    def bid(self, bidder: int, amount: int, when: float = 1, max_fen: int | None = None) -> list[ev.Event]:
        bid = Bid(
            bidder_id=bidder, paddle_no=f"P{bidder}", amount_fen=amount, deposit_held=True, max_fen=max_fen
        )
        return self.keep(r.place_bid(self.terms, self.state, bid, at(when)))

    def cancel_bid(self, seq: int, when: float = 10, reason: str = "shill bidding") -> list[ev.Event]:
        records = [e.to_record() for e in self.events]  # as stored
        return self.keep(r.cancel_bid(self.terms, records, seq, reason, at(when)))

    def seq_of(self, bidder: int, amount: int) -> int:
        return next(
            i
            for i, e in enumerate(self.events, 1)
            if isinstance(e, ev.BidPlaced) and (e.bidder_id, e.amount_fen) == (bidder, amount)
        )


def test_cancelling_the_leading_bid_gives_the_lead_back() -> None:
    run = Run()
    run.bid(1, START, 1)
    run.bid(2, START + INC, 2)
    run.bid(3, START + 2 * INC, 3)
    before = run.state
    (event,) = run.cancel_bid(3, when=10)
    assert isinstance(event, ev.BidCancelled)
    assert (event.cancelled_seq, event.cancelled_seqs, event.reason) == (3, (3,), "shill bidding")
    assert (event.paddle_no, event.bidder_id, event.price_fen, event.leader_paddle) == (
        "P3",
        3,
        START + INC,
        "P2",
    )
    s = run.state
    assert s.leader is not None and s.leader.bidder_id == 2 and s.current_price_fen == START + INC
    assert s.bid_count == 2 and s.seq == 4 and s.last_bid_at == at(2)
    assert s.ends_at == max(before.ends_at, at(10) + timedelta(seconds=300))
    assert s.status == "live"


def test_cancelling_an_earlier_bid_keeps_the_leader_and_counts_one_bid_less() -> None:
    run = Run()
    run.bid(1, START)
    run.bid(2, START + INC)
    run.bid(1, START + 2 * INC)
    run.cancel_bid(2)
    s = run.state
    assert s.leader is not None and s.leader.bidder_id == 1
    assert (s.current_price_fen, s.bid_count) == (START + 2 * INC, 2)


def test_cancelling_the_only_bid_leaves_no_leader() -> None:
    run = Run()
    run.bid(1, START)
    run.cancel_bid(1)
    s = run.state
    assert (s.leader, s.current_price_fen, s.bid_count, s.last_bid_at) == (None, None, 0, None)
    assert r.status_at(s, at(10)) == "live"
    assert r.minimum_next_bid(TERMS, s) == START
    run.bid(2, START, 11)  # bidding goes on from the start price
    assert run.state.leader is not None and run.state.leader.bidder_id == 2


def test_proxy_answers_to_the_cancelled_bid_are_void_too() -> None:
    run = Run()
    run.bid(1, START, max_fen=START + 30 * INC)
    answered = run.bid(2, START + 5 * INC, 2)  # bidder 1's maximum answers at once
    assert [type(e).__name__ for e in answered][
        -1
    ] == "BidPlaced" and run.state.current_price_fen == START + 6 * INC
    (event,) = run.cancel_bid(2)
    assert event.cancelled_seqs == tuple(range(2, 2 + len(answered)))
    s = run.state
    assert s.leader is not None and s.leader.bidder_id == 1 and s.current_price_fen == START
    assert s.proxy_of(1) is not None and s.proxy_of(1).max_fen == START + 30 * INC  # type: ignore[union-attr]
    assert s.proxy_of(2) is None


def test_the_cancelled_bids_maximum_is_withdrawn_with_its_later_steps() -> None:
    run = Run()
    run.bid(1, START)  # seq 1
    run.bid(2, START + INC, 2, max_fen=START + 20 * INC)  # seq 2: sets bidder 2's maximum
    run.bid(3, START + 3 * INC, 3)  # bidder 2's maximum answers in this transaction
    assert run.state.leader is not None and run.state.leader.bidder_id == 2
    step = run.seq_of(2, START + 4 * INC)
    (event,) = run.cancel_bid(2)
    assert 2 in event.cancelled_seqs and step in event.cancelled_seqs
    assert run.seq_of(3, START + 3 * INC) not in event.cancelled_seqs  # bidder 3's own bid stands
    s = run.state
    assert s.leader is not None and s.leader.bidder_id == 3 and s.current_price_fen == START + 3 * INC
    assert s.proxy_of(2) is None  # withdrawn: the system will not bid it again


def test_a_later_manual_bid_of_the_same_bidder_stands_with_its_own_maximum() -> None:
    run = Run()
    run.bid(2, START)  # seq 1
    run.bid(1, START + INC, 2)  # seq 2
    run.bid(2, START + 2 * INC, 3, max_fen=START + 10 * INC)  # seq 3, a new maximum
    run.cancel_bid(1)
    s = run.state
    assert s.leader is not None and s.leader.bidder_id == 2 and s.current_price_fen == START + 2 * INC
    assert s.proxy_of(2) is not None and s.proxy_of(2).max_fen == START + 10 * INC  # type: ignore[union-attr]


def test_remaining_maxima_answer_the_rebuilt_price_while_bidding_is_open() -> None:
    run = Run()
    run.bid(1, START, 1, max_fen=START + 10 * INC)  # seq 1: 1 leads with a maximum
    run.bid(2, START + 20 * INC, 2)  # seq 2: 2 outbids that maximum
    run.bid(3, START + 21 * INC, 3, max_fen=START + 40 * INC)  # 3 leads with a maximum
    run.bid(4, START + 30 * INC, 4)  # 3's maximum answers
    first_of_3 = run.seq_of(3, START + 21 * INC)
    new = run.cancel_bid(first_of_3, when=20)
    # 3's bid, maximum and steps are void: 4 leads at its own bid again; 1's maximum cannot reach it
    assert [e.type for e in new] == ["bid_cancelled"]
    s = run.state
    assert s.leader is not None and s.leader.bidder_id == 4 and s.current_price_fen == START + 30 * INC
    # cancelling 4 and 2 too: bidder 1's standing maximum leads again at its own bid, no proxy step needed
    run.cancel_bid(run.seq_of(4, START + 30 * INC), when=21)
    run.cancel_bid(run.seq_of(2, START + 20 * INC), when=22)
    s = run.state
    assert s.leader is not None and s.leader.bidder_id == 1 and s.current_price_fen == START
    assert r.replay(TERMS, run.events) == s


def test_a_cancellation_never_shortens_bidding_and_extends_it_near_the_end() -> None:
    run = Run()
    run.bid(1, START, 1)
    run.bid(2, START + INC, 58)  # last minutes: extended to 58 + 5
    assert run.state.ends_at == at(63)
    run.cancel_bid(2, when=62)
    assert run.state.ends_at == at(67)  # price changed near the end: extension from the cancellation
    run.cancel_bid(1, when=63)
    assert run.state.ends_at == at(68)


def test_suspended_round_is_rebuilt_without_bidding_and_resumes_with_the_time_left() -> None:
    run = Run()
    run.bid(1, START, 1, max_fen=START + 5 * INC)
    run.bid(2, START + 10 * INC, 2)
    run.keep(r.suspend(run.state, "checking bidder 2", at(5)))
    left = run.state.remaining_at_suspension
    run.cancel_bid(2, when=6)
    s = run.state
    assert s.status == "suspended" and s.reason == "checking bidder 2" and s.remaining_at_suspension == left
    assert s.leader is not None and s.leader.bidder_id == 1 and s.current_price_fen == START
    run.keep(r.resume(run.state, at(10)))
    assert run.state.ends_at == at(10) + left  # type: ignore[operator]


def test_refusals() -> None:
    run = Run()
    run.bid(1, START, 1)
    run.bid(2, START + INC, 58)  # a bid and its extension
    records = [e.to_record() for e in run.events]
    with pytest.raises(ReasonRequired):
        r.cancel_bid(TERMS, records, 1, "  ", at(10))
    with pytest.raises(r.NotABid):
        r.cancel_bid(TERMS, records, 3, "x", at(10))  # the extension, not a bid
    with pytest.raises(r.NotABid):
        r.cancel_bid(TERMS, records, 9, "x", at(10))
    run.cancel_bid(2, when=59)
    with pytest.raises(r.BidAlreadyCancelled):
        run.cancel_bid(2, when=59)
    run.keep(r.close(TERMS, run.state, run.state.ends_at))
    with pytest.raises(r.AuctionClosed):
        run.cancel_bid(1, when=70)


def test_the_event_survives_its_stored_and_public_forms() -> None:
    run = Run()
    run.bid(1, START)
    run.bid(2, START + INC)
    (event,) = run.cancel_bid(2)
    record = json.loads(json.dumps(event.to_record()))
    assert ev.event_from_record(record | {"seq": 3}) == event
    public = event.to_dict()
    assert "bidder_id" not in public and public["type"] == "bid_cancelled"
    assert (
        public["cancelled_seq"] == 2 and public["reason"] == "shill bidding" and public["paddle_no"] == "P2"
    )
    assert public["cancelled_seqs"] == [2]
    with pytest.raises(ValueError, match="history"):
        r.apply_event(run.state, event)


def test_the_state_after_a_cancellation_survives_its_json_form() -> None:
    run = Run()
    run.bid(1, START, max_fen=START + 5 * INC)
    run.bid(2, START + 2 * INC)
    run.cancel_bid(2)
    assert r.state_from_dict(json.loads(json.dumps(r.state_to_dict(run.state)))) == run.state


# --------------------------------------------------------------------------- properties

BIDDERS = (1, 2, 3, 4)
step = st.tuples(
    st.sampled_from(BIDDERS),
    st.integers(0, 3),  # increments above the minimum
    st.one_of(st.none(), st.integers(0, 15)),  # maximum: increments above the amount
    st.integers(0, 240),  # seconds later
)
action = st.one_of(step.map(lambda s: ("bid", s)), st.integers(1, 60).map(lambda k: ("cancel", k)))


def _try_bid(run: Run, plan: tuple[int, int, int | None, int], now: datetime) -> None:
    bidder, extra, over, _ = plan
    amount = r.minimum_next_bid(TERMS, run.state) + extra * INC
    max_fen = None if over is None else amount + over * INC
    bid = Bid(bidder_id=bidder, paddle_no=f"P{bidder}", amount_fen=amount, deposit_held=True, max_fen=max_fen)
    with contextlib.suppress(r.SelfOutbid, r.MaxNotRaised, r.AuctionClosed):
        run.keep(r.place_bid(TERMS, run.state, bid, now))


@settings(max_examples=300, deadline=None)
@given(st.lists(action, min_size=1, max_size=40))
def test_any_history_with_cancellations_replays_to_the_live_state(actions: list[tuple[str, Any]]) -> None:
    run = Run()
    now = OPENS + timedelta(seconds=1)
    for kind, arg in actions:
        if kind == "bid":
            now += timedelta(seconds=arg[3])
            _try_bid(run, arg, now)
            continue
        bids = [i for i, e in enumerate(run.events, 1) if isinstance(e, ev.BidPlaced)]
        if not bids:
            continue
        seq = bids[arg % len(bids)]
        before = run.state
        try:
            _cancel(run, seq, now)
        except (r.BidAlreadyCancelled, r.AuctionClosed):
            continue
        after, target = run.state, run.events[seq - 1]
        assert isinstance(target, ev.BidPlaced)
        assert after.ends_at >= before.ends_at
        assert after.seq == len(run.events)
        if before.current_price_fen is not None and after.current_price_fen is not None:
            assert after.current_price_fen <= before.current_price_fen
        if after.leader is not None and after.leader.bidder_id == target.bidder_id:  # by a bid still standing
            void = {s for e in run.events if isinstance(e, ev.BidCancelled) for s in e.cancelled_seqs}
            assert any(
                isinstance(e, ev.BidPlaced) and e.bidder_id == target.bidder_id and i not in void
                for i, e in enumerate(run.events, 1)
            )
        if r.is_open(after, now):
            assert not r._challengers(TERMS, after), "a standing maximum could still lead"
    assert r.replay(TERMS, run.events) == run.state
    assert r.state_from_dict(json.loads(json.dumps(r.state_to_dict(run.state)))) == run.state
    stored = [ev.event_from_record(json.loads(json.dumps(e.to_record()))) for e in run.events]
    assert r.replay(TERMS, stored) == run.state


def _cancel(run: Run, seq: int, now: datetime) -> None:
    run.keep(r.cancel_bid(TERMS, run.events, seq, "shill bidding", now))
