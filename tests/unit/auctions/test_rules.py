"""Example-based tests of the pure auction rules (DOMAIN.md rules 1-20, 25, 36)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from auctions import events as ev, rules as r
from auctions.rules import AuctionState, AuctionTerms, Bid, Policy, PriorityHolder
from listings.model import Backstop
from market import errors
from market.errors import Conflict, Forbidden, MarketError, RuleViolation

CST = timezone(timedelta(hours=8))
OPENS = datetime(2025, 3, 1, 10, 0, tzinfo=CST)
CLOSES = OPENS + timedelta(hours=24)
START = 1_000_000
INC = 10_000
BANK = 900
RELATED = 901
HOLDER_1 = 71  # priority rank 1
HOLDER_1B = 72  # priority rank 1 too
HOLDER_2 = 73  # priority rank 2
HOLDERS = (PriorityHolder(HOLDER_1, 1), PriorityHolder(HOLDER_1B, 1), PriorityHolder(HOLDER_2, 2))


def make_terms(**overrides: Any) -> AuctionTerms:
    values: dict[str, Any] = {
        "start_price_fen": START,
        "increment_fen": INC,
        "deposit_fen": 100_000,
        "starts_at": OPENS,
        "ends_at": CLOSES,
        "consignor_org_id": BANK,
        "related_org_ids": frozenset({RELATED}),
        "priority_holders": HOLDERS,
    }
    return AuctionTerms(**(values | overrides))


def make_bid(bidder: int, amount: int, *, max_fen: int | None = None, rank: int | None = None) -> Bid:
    return Bid(
        bidder_id=bidder,
        paddle_no=f"P{bidder}",
        amount_fen=amount,
        deposit_held=True,
        max_fen=max_fen,
        priority_rank=rank,
    )


def at(minutes: float) -> datetime:
    return OPENS + timedelta(minutes=minutes)


class Run:
    """An auction driven through transitions, keeping every event for replay checks."""

    def __init__(self, terms: AuctionTerms | None = None) -> None:
        self.terms = terms or make_terms()
        self.state = r.initial_state(self.terms)
        self.events: list[ev.Event] = []

    def _keep(self, result: tuple[AuctionState, list[ev.Event]]) -> list[ev.Event]:
        self.state, new = result
        self.events += new
        assert r.replay(self.terms, self.events) == self.state
        return new

    def bid(self, bidder: int, amount: int, when: datetime | None = None, **kw: Any) -> list[ev.Event]:
        bid = make_bid(bidder, amount, **kw)
        return self._keep(r.place_bid(self.terms, self.state, bid, when or at(1)))

    def close(self, when: datetime | None = None) -> list[ev.Event]:
        return self._keep(r.close(self.terms, self.state, when or self.state.ends_at))

    def suspend(self, when: datetime, reason: str = "system fault") -> list[ev.Event]:
        return self._keep(r.suspend(self.state, reason, when))

    def resume(self, when: datetime) -> list[ev.Event]:
        return self._keep(r.resume(self.state, when))

    def cancel(self, when: datetime, reason: str = "claim repaid") -> list[ev.Event]:
        return self._keep(r.cancel(self.state, reason, when))

    @property
    def price(self) -> int | None:
        return self.state.current_price_fen

    @property
    def leader(self) -> int | None:
        return None if self.state.leader is None else self.state.leader.bidder_id


def bids_of(events: list[ev.Event]) -> list[tuple[str, int, bool]]:
    return [(e.paddle_no, e.amount_fen, e.proxy) for e in events if isinstance(e, ev.BidPlaced)]


def problem_codes(excinfo: pytest.ExceptionInfo[r.InvalidTerms]) -> set[str]:
    return {p["code"] for p in excinfo.value.problems}


# --------------------------------------------------------------------------- policy and money


def test_policy_defaults_are_the_laws_numbers() -> None:
    policy = Policy()
    assert policy.min_notice == timedelta(days=30)
    assert policy.min_reauction_notice == timedelta(days=15)
    assert policy.min_bidding_window == timedelta(hours=24)
    assert policy.extension == policy.min_extension == timedelta(seconds=300)
    assert policy.reauction_within == timedelta(days=30)
    assert policy.balance_due == timedelta(days=10)
    assert policy.fixed_price_period == timedelta(days=60)
    assert policy.fixed_price_window == timedelta(hours=24)


@pytest.mark.parametrize(
    ("amount", "percent", "expected"),
    [(1_000_000, 70, 700_000), (1_000_001, 70, 700_001), (700_001, 80, 560_001), (3, 50, 2), (0, 80, 0)],
)
def test_percent_of_rounds_up_to_the_fen(amount: int, percent: int, expected: int) -> None:
    assert r.percent_of(amount, percent) == expected


def test_balance_falls_due_ten_days_after_close() -> None:
    assert r.balance_due_at(CLOSES, Policy()) == CLOSES + timedelta(days=10)


# --------------------------------------------------------------------------- validate_terms

PUBLISHED = OPENS - timedelta(days=30)


def validate(terms: AuctionTerms, policy: Policy | None = None, **kw: Any) -> None:
    values: dict[str, Any] = {
        "appraisal_fen": 1_000_000,
        "previous_start_fen": None,
        "published_at": PUBLISHED,
        "now": PUBLISHED,
    }
    r.validate_terms(terms, policy or Policy(), **(values | kw))


def test_valid_first_round_terms_pass() -> None:
    validate(make_terms(start_price_fen=700_000, deposit_fen=35_000))


def test_first_round_start_must_be_70_percent_of_appraisal_rounded_up() -> None:
    validate(make_terms(start_price_fen=700_001, deposit_fen=70_000), appraisal_fen=1_000_001)
    with pytest.raises(r.InvalidTerms) as excinfo:
        validate(make_terms(start_price_fen=700_000, deposit_fen=70_000), appraisal_fen=1_000_001)
    assert problem_codes(excinfo) == {"start_below_appraisal_floor"}
    assert "700001" in excinfo.value.problems[0]["detail"]


def test_worked_example_second_round_may_start_at_80_percent_of_the_first() -> None:
    second = make_terms(start_price_fen=560_000, deposit_fen=56_000, round_no=2)
    policy = Policy()
    validate(second, previous_start_fen=700_000, published_at=OPENS - policy.min_reauction_notice)
    with pytest.raises(r.InvalidTerms) as excinfo:
        validate(replace(second, start_price_fen=559_999), previous_start_fen=700_000)
    assert problem_codes(excinfo) == {"start_below_previous_round_floor"}


def test_later_round_floor_rounds_up_and_ignores_the_appraisal() -> None:
    validate(make_terms(start_price_fen=560_001, deposit_fen=56_001, round_no=3), previous_start_fen=700_001)
    with pytest.raises(r.InvalidTerms) as excinfo:
        validate(
            make_terms(start_price_fen=560_000, deposit_fen=56_000, round_no=3), previous_start_fen=700_001
        )
    assert problem_codes(excinfo) == {"start_below_previous_round_floor"}


def test_a_re_auction_needs_the_previous_start() -> None:
    with pytest.raises(r.InvalidTerms) as excinfo:
        validate(make_terms(round_no=2))
    assert problem_codes(excinfo) == {"previous_start_required"}


@pytest.mark.parametrize(
    ("start", "deposit", "ok"),
    [
        (1_000_000, 50_000, True),  # 5 % exactly
        (1_000_000, 49_999, False),
        (1_000_000, 200_000, True),  # 20 % exactly
        (1_000_000, 200_001, False),
        (1_000_001, 50_000, False),  # 5 % is 50 000.05: the least deposit is 50 001
        (1_000_001, 50_001, True),
        (1_000_001, 200_000, True),  # 20 % is 200 000.2
        (1_000_001, 200_001, False),
    ],
)
def test_deposit_is_5_to_20_percent_of_the_start_inclusive(start: int, deposit: int, ok: bool) -> None:
    terms = make_terms(start_price_fen=start, deposit_fen=deposit)
    if ok:
        validate(terms)
    else:
        with pytest.raises(r.InvalidTerms) as excinfo:
            validate(terms)
        assert problem_codes(excinfo) == {"deposit_out_of_range"}


def test_invalid_terms_list_every_problem_with_code_and_detail() -> None:
    terms = make_terms(
        start_price_fen=600_000,
        increment_fen=0,
        deposit_fen=1,
        reserve_fen=500_000,
        ends_at=OPENS + timedelta(hours=2),
        extension_seconds=60,
        priority_holders=(PriorityHolder(5, 0), PriorityHolder(5, 1), PriorityHolder(BANK, 2)),
    )
    with pytest.raises(r.InvalidTerms) as excinfo:
        validate(terms, published_at=OPENS - timedelta(days=3))
    assert problem_codes(excinfo) == {
        "increment_not_positive",
        "reserve_below_start",
        "start_below_appraisal_floor",
        "deposit_out_of_range",
        "bidding_window_too_short",
        "extension_too_short",
        "notice_too_short",
        "priority_rank_invalid",
        "priority_holder_duplicate",
        "priority_holder_is_consignor",
    }
    assert all(p["detail"] for p in excinfo.value.problems)
    assert excinfo.value.code == "invalid_terms"
    assert excinfo.value.data["problems"] == excinfo.value.problems


def test_non_positive_amounts_are_problems() -> None:
    with pytest.raises(r.InvalidTerms) as excinfo:
        validate(make_terms(start_price_fen=0, deposit_fen=0, increment_fen=-1), appraisal_fen=0)
    assert {"start_price_not_positive", "increment_not_positive", "appraisal_not_positive"} <= problem_codes(
        excinfo
    )


def test_a_bank_may_set_a_reserve_above_the_start() -> None:
    validate(make_terms(reserve_fen=START + 1))


def test_first_round_notice_is_30_days_and_re_auction_notice_15() -> None:
    validate(make_terms(), published_at=OPENS - timedelta(days=30))
    with pytest.raises(r.InvalidTerms) as excinfo:
        validate(make_terms(), published_at=OPENS - timedelta(days=30) + timedelta(seconds=1))
    assert problem_codes(excinfo) == {"notice_too_short"}
    second = make_terms(start_price_fen=800_000, deposit_fen=80_000, round_no=2)
    validate(second, previous_start_fen=START, published_at=OPENS - timedelta(days=15))
    with pytest.raises(r.InvalidTerms):
        validate(second, previous_start_fen=START, published_at=OPENS - timedelta(days=14))


def test_a_re_auction_opens_within_30_days_of_the_failed_round() -> None:
    second = make_terms(start_price_fen=800_000, deposit_fen=80_000, round_no=2)
    kw: dict[str, Any] = {"previous_start_fen": START, "published_at": OPENS - timedelta(days=15)}
    validate(second, previous_ended_at=OPENS - timedelta(days=30), **kw)
    with pytest.raises(r.InvalidTerms) as excinfo:
        validate(second, previous_ended_at=OPENS - timedelta(days=30, seconds=1), **kw)
    assert problem_codes(excinfo) == {"reauction_too_late"}


def test_bidding_cannot_open_in_the_past() -> None:
    with pytest.raises(r.InvalidTerms) as excinfo:
        validate(make_terms(), now=OPENS + timedelta(seconds=1))
    assert problem_codes(excinfo) == {"starts_in_past"}


def test_bidding_lasts_24_hours_unless_the_policy_lowers_it() -> None:
    short = make_terms(ends_at=OPENS + timedelta(hours=1))
    with pytest.raises(r.InvalidTerms) as excinfo:
        validate(short)
    assert problem_codes(excinfo) == {"bidding_window_too_short"}
    validate(short, Policy(min_bidding_window=timedelta(minutes=10)))
    with pytest.raises(r.InvalidTerms):
        validate(make_terms(ends_at=OPENS))


def test_extension_may_not_go_below_the_policy_minimum() -> None:
    with pytest.raises(r.InvalidTerms) as excinfo:
        validate(make_terms(extension_seconds=299))
    assert problem_codes(excinfo) == {"extension_too_short"}
    validate(make_terms(extension_seconds=30), Policy(min_extension=timedelta(seconds=30)))


def fixed_price_terms(**overrides: Any) -> AuctionTerms:
    values: dict[str, Any] = {
        "kind": "fixed_price_sale",
        "round_no": 3,
        "start_price_fen": 560_000,
        "deposit_fen": 56_000,
        "ends_at": OPENS + timedelta(days=60),
    }
    return make_terms(**(values | overrides))


def test_a_fixed_price_sale_follows_round_two_and_never_goes_below_half_the_appraisal() -> None:
    published = OPENS - timedelta(days=15)
    validate(fixed_price_terms(), previous_start_fen=560_000, published_at=published)
    validate(fixed_price_terms(start_price_fen=500_000, deposit_fen=50_000), published_at=published)
    with pytest.raises(r.InvalidTerms) as excinfo:
        validate(
            fixed_price_terms(start_price_fen=499_999, deposit_fen=50_000, round_no=2), published_at=published
        )
    assert problem_codes(excinfo) == {"fixed_price_below_floor", "fixed_price_sale_too_early"}


def test_a_fixed_price_sale_lasts_at_most_60_days_with_24_hours_after_a_first_bid() -> None:
    terms = fixed_price_terms(ends_at=OPENS + timedelta(days=60, seconds=1), fixed_price_window_seconds=3600)
    with pytest.raises(r.InvalidTerms) as excinfo:
        validate(terms, published_at=OPENS - timedelta(days=15))
    assert problem_codes(excinfo) == {"fixed_price_period_too_long", "fixed_price_window_too_short"}


def test_appraisal_must_be_under_a_year_old_at_first_notice() -> None:
    published = datetime(2025, 1, 30, 9, 0, tzinfo=CST)
    terms = make_terms(starts_at=published + timedelta(days=30), ends_at=published + timedelta(days=31))
    validate(terms, published_at=published, now=published, appraised_on=date(2024, 1, 30))
    with pytest.raises(r.InvalidTerms) as excinfo:
        validate(terms, published_at=published, now=published, appraised_on=date(2024, 1, 29))
    assert problem_codes(excinfo) == {"appraisal_expired"}


def test_a_sale_ends_at_most_six_months_after_the_appraisal_expires() -> None:
    ends = datetime(2025, 7, 1, 23, 0, tzinfo=CST)  # 15:00 UTC: the CST date counts
    terms = make_terms(starts_at=ends - timedelta(days=1), ends_at=ends, round_no=2, start_price_fen=800_000)
    kw: dict[str, Any] = {"previous_start_fen": START, "published_at": ends - timedelta(days=16)}
    validate(terms, now=ends - timedelta(days=16), appraised_on=date(2024, 1, 1), **kw)
    with pytest.raises(r.InvalidTerms) as excinfo:
        validate(terms, now=ends - timedelta(days=16), appraised_on=date(2023, 12, 31), **kw)
    assert problem_codes(excinfo) == {"appraisal_too_old_for_sale"}


def test_naive_datetimes_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        validate(make_terms(), now=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        r.place_bid(make_terms(), r.initial_state(make_terms()), make_bid(1, START), datetime(2025, 3, 1, 12))


def test_bidding_on_unvalidated_terms_without_an_increment_is_a_programming_error() -> None:
    terms = make_terms(increment_fen=0)
    with pytest.raises(ValueError, match="positive increment"):
        r.place_bid(terms, r.initial_state(terms), make_bid(1, START), at(1))


# --------------------------------------------------------------------------- who may register


def test_verified_outsiders_may_register() -> None:
    r.may_register(make_terms(), 1, barred_org_ids=(), verified=True)


@pytest.mark.parametrize(
    ("org", "barred", "verified", "error"),
    [
        (1, (), False, r.BuyerNotVerified),
        (BANK, (), True, r.ConsignorMayNotBid),
        (RELATED, (), True, r.ConsignorMayNotBid),
        (1, (1,), True, r.BidderBarred),
    ],
)
def test_unverified_consignor_side_and_defaulters_may_not_register(
    org: int, barred: tuple[int, ...], verified: bool, error: type[MarketError]
) -> None:
    with pytest.raises(error):
        r.may_register(make_terms(), org, barred_org_ids=barred, verified=verified)


# --------------------------------------------------------------------------- opening and bidding


def test_bidding_is_refused_before_opening_and_at_or_after_the_end() -> None:
    run = Run()
    with pytest.raises(r.AuctionNotOpen):
        run.bid(1, START, OPENS - timedelta(seconds=1))
    with pytest.raises(r.AuctionClosed):
        run.bid(1, START, CLOSES)
    with pytest.raises(r.AuctionClosed):
        run.bid(1, START, CLOSES + timedelta(hours=1))
    run.bid(1, START, OPENS)
    assert run.leader == 1


def test_the_first_bid_must_reach_the_start_price() -> None:
    run = Run()
    with pytest.raises(r.BidTooLow) as excinfo:
        run.bid(1, START - 1)
    assert excinfo.value.minimum_fen == excinfo.value.data["minimum_fen"] == START
    run.bid(1, START)
    assert (run.price, run.state.status, run.state.bid_count) == (START, "live", 1)


def test_later_bids_must_add_at_least_the_increment() -> None:
    run = Run()
    run.bid(1, START)
    with pytest.raises(r.BidTooLow) as excinfo:
        run.bid(2, START + INC - 1)
    assert excinfo.value.minimum_fen == START + INC
    run.bid(2, START + INC)
    run.bid(3, START + 5 * INC + 7)  # any amount above the minimum, off the grid too
    assert (run.leader, run.price) == (3, START + 5 * INC + 7)
    assert r.minimum_next_bid(run.terms, run.state) == START + 6 * INC + 7


def test_the_leader_may_not_outbid_himself() -> None:
    run = Run()
    run.bid(1, START)
    with pytest.raises(r.SelfOutbid) as excinfo:
        run.bid(1, START + INC)
    assert excinfo.value.code == "already_leading"


def test_a_bid_without_a_confirmed_deposit_is_refused() -> None:
    terms = make_terms()
    bid = replace(make_bid(1, START), deposit_held=False)
    with pytest.raises(r.DepositRequired):
        r.place_bid(terms, r.initial_state(terms), bid, at(1))


def test_the_consigning_bank_and_related_parties_may_not_bid() -> None:
    run = Run()
    for org in (BANK, RELATED):
        with pytest.raises(r.ConsignorMayNotBid):
            run.bid(org, START)


def test_only_confirmed_holders_bid_with_their_priority_rank() -> None:
    run = Run()
    with pytest.raises(r.NotPriorityHolder):
        run.bid(1, START, rank=1)
    with pytest.raises(r.NotPriorityHolder):
        run.bid(HOLDER_2, START, rank=1)
    run.bid(HOLDER_2, START, rank=2)
    assert run.state.leader is not None and run.state.leader.priority_rank == 2


def test_a_maximum_below_the_bid_is_refused() -> None:
    with pytest.raises(r.MaxBelowAmount):
        Run().bid(1, START, max_fen=START - 1)


@pytest.mark.parametrize("status", ["closed", "failed", "cancelled"])
def test_nothing_is_accepted_after_the_round_finished(status: r.Status) -> None:
    run = Run()
    run.state = replace(run.state, status=status)
    with pytest.raises(r.AuctionClosed):
        run.bid(1, START)


def test_bid_events_show_paddles_never_bidders_or_maxima() -> None:
    run = Run()
    [bid] = run.bid(1, START, max_fen=START * 2)
    public = bid.to_dict()
    assert public == {
        "type": "bid",
        "at": "2025-03-01T02:01:00+00:00",
        "paddle_no": "P1",
        "amount_fen": START,
        "ends_at": "2025-03-02T02:00:00+00:00",
        "proxy": False,
        "priority_rank": None,
    }
    assert bid.to_record() == public | {"bidder_id": 1, "max_fen": START * 2}
    json.dumps(public)


# --------------------------------------------------------------------------- anti-sniping (rule 9)


def test_anti_sniping_doc_example() -> None:
    end = datetime(2025, 3, 2, 10, 0, 0, tzinfo=CST)
    run = Run(make_terms(ends_at=end))
    events = run.bid(1, START, datetime(2025, 3, 2, 9, 57, 0, tzinfo=CST))
    assert run.state.ends_at == datetime(2025, 3, 2, 10, 2, 0, tzinfo=CST)
    assert [e.type for e in events] == ["bid", "extended"]
    assert events[1] == ev.Extended(at=events[0].at, ends_at=run.state.ends_at, previous_ends_at=end)
    run.bid(2, START + INC, datetime(2025, 3, 2, 10, 1, 30, tzinfo=CST))
    assert run.state.ends_at == datetime(2025, 3, 2, 10, 6, 30, tzinfo=CST)


def test_a_bid_before_the_last_five_minutes_does_not_extend() -> None:
    run = Run()
    events = run.bid(1, START, CLOSES - timedelta(minutes=5))
    assert [e.type for e in events] == ["bid"]
    assert run.state.ends_at == CLOSES


def test_extensions_repeat_without_limit_and_never_shorten() -> None:
    run = Run()
    when = CLOSES - timedelta(seconds=1)
    for n in range(50):
        run.bid(1 + n % 2, START + n * INC, when)
        assert run.state.ends_at == when + timedelta(seconds=300)
        when = run.state.ends_at - timedelta(seconds=1)
    end = run.state.ends_at
    run.bid(3, START + 50 * INC, end - timedelta(seconds=301))
    assert run.state.ends_at == end
    with pytest.raises(r.AuctionClosed):
        run.bid(1, START + 60 * INC, run.state.ends_at)


def test_the_extension_is_the_terms_own() -> None:
    run = Run(make_terms(extension_seconds=600))
    run.bid(1, START, CLOSES - timedelta(seconds=10))
    assert run.state.ends_at == CLOSES + timedelta(seconds=590)


# --------------------------------------------------------------------------- priority purchasers (rule 12)


def test_a_priority_holder_may_match_the_current_price_and_then_leads() -> None:
    run = Run()
    run.bid(1, START)
    assert r.minimum_next_bid(run.terms, run.state, priority_rank=2) == START
    run.bid(HOLDER_2, START, rank=2)
    assert (run.leader, run.price) == (HOLDER_2, START)


def test_a_priority_holder_matches_exactly_or_adds_the_full_increment() -> None:
    run = Run()
    run.bid(1, START)
    with pytest.raises(r.BidTooLow) as excinfo:
        run.bid(HOLDER_1, START + 1, rank=1)
    assert excinfo.value.minimum_fen == START + INC
    run.bid(HOLDER_1, START + INC, rank=1)
    assert run.price == START + INC


def test_after_a_holder_matched_others_must_exceed_by_the_increment() -> None:
    run = Run()
    run.bid(1, START)
    run.bid(HOLDER_2, START, rank=2)
    with pytest.raises(r.BidTooLow) as excinfo:
        run.bid(1, START)
    assert excinfo.value.minimum_fen == START + INC
    run.bid(1, START + INC)
    run.bid(HOLDER_2, START + INC, rank=2)
    assert run.leader == HOLDER_2


def test_a_lower_rank_number_beats_a_higher_at_equal_price() -> None:
    run = Run()
    run.bid(HOLDER_2, START, rank=2)
    run.bid(HOLDER_1, START, rank=1)
    assert (run.leader, run.price) == (HOLDER_1, START)
    assert r.minimum_next_bid(run.terms, run.state, priority_rank=2) == START + INC
    with pytest.raises(r.BidTooLow):
        run.bid(HOLDER_2, START, rank=2)


def test_at_the_same_rank_the_earlier_bid_wins() -> None:
    run = Run()
    run.bid(1, START)
    run.bid(HOLDER_1, START, rank=1)
    assert r.minimum_next_bid(run.terms, run.state, priority_rank=1) == START + INC
    with pytest.raises(r.BidTooLow):
        run.bid(HOLDER_1B, START, rank=1)
    assert run.leader == HOLDER_1


def test_a_holder_bidding_without_its_code_is_an_ordinary_bidder() -> None:
    run = Run()
    run.bid(1, START)
    with pytest.raises(r.BidTooLow):
        run.bid(HOLDER_1, START)


def test_the_first_bid_of_a_holder_is_at_least_the_start() -> None:
    run = Run()
    assert r.minimum_next_bid(run.terms, run.state, priority_rank=1) == START
    with pytest.raises(r.BidTooLow):
        run.bid(HOLDER_1, START - 1, rank=1)


# --------------------------------------------------------------------------- proxy bids (rule 36)


def test_a_lone_maximum_does_not_raise_its_own_bid() -> None:
    run = Run()
    events = run.bid(1, START, max_fen=2 * START)
    assert bids_of(events) == [("P1", START, False)]
    assert run.state.proxy_of(1) == r.ProxyBid(1, "P1", 2 * START, at(1), 1, None)


def test_a_maximum_answers_a_manual_bid_with_the_least_amount_that_leads() -> None:
    run = Run()
    run.bid(1, START, max_fen=1_500_000)
    events = run.bid(2, 1_200_000, at(2))
    assert bids_of(events) == [("P2", 1_200_000, False), ("P1", 1_210_000, True)]
    assert (run.leader, run.price) == (1, 1_210_000)


def test_a_maximum_short_of_a_full_increment_bids_its_maximum() -> None:
    run = Run()
    run.bid(1, START, max_fen=1_205_000)
    events = run.bid(2, 1_200_000, at(2))
    assert bids_of(events)[-1] == ("P1", 1_205_000, True)
    assert run.leader == 1


def test_a_manual_bid_above_the_maximum_takes_the_lead() -> None:
    run = Run()
    run.bid(1, START, max_fen=1_200_000)
    events = run.bid(2, 1_200_001, at(2))
    assert bids_of(events) == [("P2", 1_200_001, False)]
    assert run.leader == 2


def test_a_manual_bid_equal_to_an_earlier_maximum_loses_the_tie() -> None:
    run = Run()
    run.bid(1, START, max_fen=1_200_000)
    events = run.bid(2, 1_200_000, at(2))
    assert bids_of(events) == [("P2", 1_200_000, False), ("P1", 1_200_000, True)]
    assert (run.leader, run.price) == (1, 1_200_000)


def test_two_maxima_the_higher_wins_at_the_least_amount_above_the_other() -> None:
    run = Run()
    run.bid(1, START, max_fen=1_500_000)
    events = run.bid(2, 1_010_000, at(2), max_fen=1_305_000)
    assert (run.leader, run.price) == (1, 1_315_000)
    amounts = [amount for _, amount, _ in bids_of(events)]
    assert amounts == sorted(amounts) and len(amounts) <= 6
    assert bids_of(events)[-2:] == [("P2", 1_305_000, True), ("P1", 1_315_000, True)]


def test_a_new_higher_maximum_wins_one_increment_above_the_old() -> None:
    run = Run()
    run.bid(1, START, max_fen=1_300_000)
    run.bid(3, 1_400_000, at(2), max_fen=2_000_000)
    assert (run.leader, run.price) == (3, 1_400_000)
    run.bid(1, 1_410_000, at(3), max_fen=1_700_000)
    assert (run.leader, run.price) == (3, 1_710_000)


@pytest.mark.parametrize("maximum", [1_300_000, 1_310_000])
def test_equal_maxima_the_earlier_wins_whatever_the_parity(maximum: int) -> None:
    run = Run()
    run.bid(1, START, max_fen=maximum)
    run.bid(2, START + INC, at(2), max_fen=maximum)
    assert (run.leader, run.price) == (1, maximum)


def test_no_maximum_is_ever_exceeded_and_every_step_is_a_bid_event() -> None:
    run = Run()
    run.bid(1, START, max_fen=1_234_567)
    events = run.bid(2, START + INC, at(2), max_fen=1_234_566)
    for paddle, amount, _ in bids_of(events):
        assert amount <= {"P1": 1_234_567, "P2": 1_234_566}[paddle]
    assert run.state.bid_count == len(bids_of(run.events))


def test_a_long_duel_is_resolved_in_a_few_events() -> None:
    run = Run(make_terms(increment_fen=1))
    run.bid(1, START, max_fen=10**12)
    events = run.bid(2, START + 1, at(2), max_fen=10**11)
    assert (run.leader, run.price) == (1, 10**11 + 1)
    assert len(events) <= 6


def test_every_proxy_step_extends_the_end() -> None:
    run = Run()
    run.bid(1, START, CLOSES - timedelta(hours=1), max_fen=1_500_000)
    when = CLOSES - timedelta(seconds=10)
    events = run.bid(2, 1_100_000, when, max_fen=1_200_000)
    assert run.state.ends_at == when + timedelta(seconds=300)
    assert all(e.ends_at == when + timedelta(seconds=300) for e in events if isinstance(e, ev.BidPlaced))
    assert [e.type for e in events].count("extended") == 1


def test_a_priority_maximum_matches_instead_of_adding_the_increment() -> None:
    run = Run()
    run.bid(HOLDER_1, START, rank=1, max_fen=1_300_000)
    events = run.bid(1, 1_200_000, at(2))
    assert bids_of(events) == [("P1", 1_200_000, False), (f"P{HOLDER_1}", 1_200_000, True)]
    run.bid(1, 1_300_000, at(3))
    assert (run.leader, run.price) == (HOLDER_1, 1_300_000)
    run.bid(1, 1_310_000, at(4))
    assert run.leader == 1


def test_an_ordinary_maximum_against_a_priority_maximum() -> None:
    run = Run()
    run.bid(HOLDER_2, START, rank=2, max_fen=1_250_000)
    run.bid(1, START + INC, at(2), max_fen=1_400_000)
    assert (run.leader, run.price) == (1, 1_260_000)


def test_the_leader_may_raise_his_maximum_without_moving_the_price() -> None:
    run = Run()
    run.bid(1, START, max_fen=1_100_000)
    events = run.bid(1, START, at(2), max_fen=1_300_000)
    assert [e.type for e in events] == ["max_raised"]
    assert events[0].to_dict() == {"type": "max_raised", "at": "2025-03-01T02:02:00+00:00"}
    assert not ev.MaxRaised.public
    assert (run.price, run.state.proxy_of(1)) == (START, r.ProxyBid(1, "P1", 1_300_000, at(2), 2, None))
    run.bid(2, 1_250_000, at(3))
    assert (run.leader, run.price) == (1, 1_260_000)


def test_a_leader_without_a_maximum_may_set_one() -> None:
    run = Run()
    run.bid(1, START)
    run.bid(1, START, at(2), max_fen=START + 1)
    assert run.state.proxy_of(1) is not None


def test_a_new_maximum_must_exceed_the_old() -> None:
    run = Run()
    run.bid(1, START, max_fen=1_100_000)
    with pytest.raises(r.MaxNotRaised):
        run.bid(1, START, at(2), max_fen=1_100_000)


def test_a_manual_bid_without_maximum_drops_the_old_one() -> None:
    run = Run()
    run.bid(1, START, max_fen=1_100_000)
    run.bid(2, 1_200_000, at(2))
    run.bid(1, 1_210_000, at(3))
    assert run.state.proxy_of(1) is None


# --------------------------------------------------------------------------- closing (rule 11)


def test_a_single_bid_at_the_start_wins() -> None:
    run = Run()
    run.bid(1, START)
    [closed] = run.close()
    assert closed == ev.Closed(at=CLOSES, bidder_id=1, paddle_no="P1", amount_fen=START)
    assert closed.to_dict() == {
        "type": "closed",
        "at": "2025-03-02T02:00:00+00:00",
        "paddle_no": "P1",
        "amount_fen": START,
        "priority_rank": None,
    }
    assert (run.state.status, run.state.closed_at) == ("closed", CLOSES)


def test_no_bid_is_a_failed_round() -> None:
    run = Run()
    [failed] = run.close()
    assert failed == ev.Failed(at=CLOSES, reason="no_bids")
    assert run.state.status == "failed"


def test_a_leading_bid_below_a_bank_reserve_fails() -> None:
    run = Run(make_terms(reserve_fen=START + INC))
    run.bid(1, START)
    assert run.close() == [ev.Failed(at=CLOSES, reason="reserve_not_met", highest_fen=START)]
    run = Run(make_terms(reserve_fen=START + INC))
    run.bid(1, START + INC)
    assert run.close()[0].type == "closed"


def test_closing_waits_for_the_extended_end_and_is_idempotent() -> None:
    run = Run()
    run.bid(1, START, CLOSES - timedelta(seconds=1))
    with pytest.raises(r.BiddingStillOpen):
        run.close(CLOSES)
    run.close(run.state.ends_at)
    before = run.state
    assert run.close(run.state.ends_at + timedelta(hours=1)) == []
    assert run.state == before


def test_a_suspended_round_cannot_close() -> None:
    run = Run()
    run.suspend(at(5))
    with pytest.raises(r.AuctionSuspended):
        run.close(CLOSES + timedelta(days=1))


# ---------------------------------------------------------------- suspension and termination (rule 20)


@pytest.mark.parametrize("reason", ["", "   "])
def test_suspending_or_cancelling_needs_a_reason(reason: str) -> None:
    run = Run()
    with pytest.raises(r.ReasonRequired):
        run.suspend(at(5), reason)
    with pytest.raises(r.ReasonRequired):
        run.cancel(at(5), reason)


def test_resuming_re_bases_the_remaining_time() -> None:
    run = Run()
    run.bid(1, START)
    [suspended] = run.suspend(CLOSES - timedelta(hours=2), " court order ")
    assert suspended.to_dict() == {
        "type": "suspended",
        "at": "2025-03-02T00:00:00+00:00",
        "reason": "court order",
        "remaining_seconds": 7200,
    }
    assert run.state.remaining_at_suspension == timedelta(hours=2)
    with pytest.raises(r.AuctionSuspended):
        run.bid(2, START + INC, CLOSES - timedelta(hours=1))
    back = CLOSES + timedelta(days=3)
    [resumed] = run.resume(back)
    assert resumed == ev.Resumed(at=back, starts_at=OPENS, ends_at=back + timedelta(hours=2))
    assert run.state.ends_at == back + timedelta(hours=2)
    assert (run.state.status, run.state.suspended_at, run.state.reason) == ("live", None, None)
    run.bid(2, START + INC, back + timedelta(minutes=1))


def test_a_round_suspended_before_opening_opens_later_by_the_pause() -> None:
    run = Run()
    run.suspend(OPENS - timedelta(hours=1))
    run.resume(OPENS + timedelta(hours=1))
    assert (run.state.starts_at, run.state.ends_at) == (
        OPENS + timedelta(hours=2),
        CLOSES + timedelta(hours=2),
    )
    assert run.state.status == "scheduled"
    with pytest.raises(r.AuctionNotOpen):
        run.bid(1, START, OPENS + timedelta(hours=1, minutes=59))


def test_only_a_suspended_round_resumes_and_only_once_suspended() -> None:
    run = Run()
    with pytest.raises(r.AuctionNotSuspended):
        run.resume(at(1))
    run.suspend(at(1))
    with pytest.raises(r.AuctionSuspended):
        run.suspend(at(2))


def test_a_finished_round_cannot_be_suspended_or_cancelled() -> None:
    run = Run()
    with pytest.raises(r.AuctionClosed):
        run.suspend(CLOSES)  # bidding time is over: close it instead
    run.close()
    with pytest.raises(r.AuctionClosed):
        run.suspend(CLOSES + timedelta(seconds=1))
    with pytest.raises(r.AuctionClosed):
        run.cancel(CLOSES + timedelta(seconds=1))


def test_cancelling_publishes_the_reason_and_ends_bidding() -> None:
    run = Run()
    run.bid(1, START)
    run.suspend(at(2))
    [cancelled] = run.cancel(at(3), "third-party ownership objection")
    assert cancelled.to_dict() == {
        "type": "cancelled",
        "at": "2025-03-01T02:03:00+00:00",
        "reason": "third-party ownership objection",
    }
    assert run.state.status == "cancelled"
    assert run.close() == []
    with pytest.raises(r.AuctionClosed):
        run.bid(2, START + INC, at(4))


def test_status_at_derives_scheduled_and_live_from_the_clock() -> None:
    run = Run()
    assert r.status_at(run.state, OPENS - timedelta(seconds=1)) == "scheduled"
    assert r.status_at(run.state, OPENS) == "live"
    assert r.is_open(run.state, OPENS) and not r.is_open(run.state, OPENS - timedelta(seconds=1))
    assert r.status_at(run.state, CLOSES + timedelta(hours=1)) == "live"  # until closed
    assert not r.is_open(run.state, CLOSES)
    run.suspend(at(1))
    assert r.status_at(run.state, at(2)) == "suspended" and not r.is_open(run.state, at(2))
    run.resume(at(3))
    run.close()
    assert r.status_at(run.state, CLOSES) == "failed"


# --------------------------------------------------------------------------- fixed-price sale (变卖, rule 18)


def test_a_fixed_price_sale_opens_a_24_hour_window_at_its_first_bid() -> None:
    run = Run(fixed_price_terms())
    first = OPENS + timedelta(days=59, hours=12)
    with pytest.raises(r.BidTooLow):
        run.bid(1, 559_999, first)
    events = run.bid(1, 560_000, first)
    assert run.state.ends_at == first + timedelta(hours=24)
    assert [e.type for e in events] == ["bid", "extended"]
    run.bid(2, 570_000, first + timedelta(hours=23, minutes=58))
    assert run.state.ends_at == first + timedelta(hours=24, minutes=3)
    run.close()
    assert run.state.status == "closed" and run.price == 570_000


def test_an_early_first_bid_shortens_the_sale_period_to_its_window() -> None:
    run = Run(fixed_price_terms())
    run.bid(1, 560_000, OPENS + timedelta(days=1))
    assert run.state.ends_at == OPENS + timedelta(days=2)


def test_a_fixed_price_sale_without_a_buyer_fails() -> None:
    run = Run(fixed_price_terms())
    assert run.close()[0] == ev.Failed(at=OPENS + timedelta(days=60), reason="no_bids")


# --------------------------------------------------------------------------- round ladder (rules 18, 19)

FAILED_AT = CLOSES


def test_round_one_failed_leads_to_round_two_at_80_percent_rounded_up() -> None:
    step = r.next_round(make_terms(start_price_fen=700_001), "failed", 1_000_001, Policy(), FAILED_AT)
    assert step == r.NextStep(
        kind="auction",
        round_no=2,
        start_price_floor_fen=560_001,
        earliest_starts_at=FAILED_AT + timedelta(days=15),
        latest_starts_at=FAILED_AT + timedelta(days=30),
    )


def test_round_two_failed_leads_to_a_60_day_fixed_price_sale_at_its_start() -> None:
    step = r.next_round(
        make_terms(start_price_fen=560_000, round_no=2), "failed", 1_000_000, Policy(), FAILED_AT
    )
    assert step == r.NextStep(
        kind="fixed_price_sale",
        round_no=3,
        price_fen=560_000,
        earliest_starts_at=FAILED_AT + timedelta(days=15),
        period=timedelta(days=60),
    )


def test_the_fixed_price_never_goes_below_half_the_appraisal() -> None:
    step = r.next_round(
        make_terms(start_price_fen=400_000, round_no=2), "failed", 1_000_001, Policy(), FAILED_AT
    )
    assert step.price_fen == 500_001


def test_a_failed_fixed_price_sale_goes_to_the_backstop_else_back_to_the_bank() -> None:
    sale = fixed_price_terms()
    backstop = Backstop(acquirer_org_id=55, price_fen=450_000)
    step = r.next_round(sale, "failed", 1_000_000, Policy(), FAILED_AT, backstop=backstop)
    assert step == r.NextStep(kind="entrusted_acquisition", price_fen=450_000, acquirer_org_id=55)
    assert r.next_round(sale, "failed", 1_000_000, Policy(), FAILED_AT) == r.NextStep(kind="return_to_bank")


@pytest.mark.parametrize("terms", [make_terms(), make_terms(round_no=2), fixed_price_terms()])
def test_the_bank_may_take_the_asset_at_the_failed_rounds_reserve(terms: AuctionTerms) -> None:
    step = r.next_round(terms, "failed", 1_000_000, Policy(), FAILED_AT, bank_takes_over=True)
    assert step == r.NextStep(kind="bank_takeover", price_fen=terms.reserve)


def test_a_default_re_runs_the_same_kind_of_round() -> None:
    assert r.next_round(make_terms(), "defaulted", 1_000_000, Policy(), FAILED_AT).kind == "auction"
    after_sale = r.next_round(fixed_price_terms(), "defaulted", 1_000_000, Policy(), FAILED_AT)
    assert (after_sale.kind, after_sale.round_no, after_sale.price_fen) == ("fixed_price_sale", 4, 560_000)


# --------------------------------------------------------------------------- replay and storage


def busy_run() -> Run:
    run = Run()
    run.bid(1, START, max_fen=1_300_000)
    run.bid(2, 1_100_000, at(2), max_fen=1_250_000)
    run.bid(1, START, at(3), max_fen=1_400_000)
    run.bid(HOLDER_2, 1_260_000, at(4), rank=2)
    run.suspend(at(5), "system fault")
    run.resume(at(65))
    run.bid(3, 1_500_000, CLOSES + timedelta(minutes=59))
    run.close()
    return run


def test_replay_of_all_events_equals_the_live_state() -> None:
    run = busy_run()
    assert r.replay(run.terms, run.events) == run.state
    assert run.state.seq == len(run.events)
    assert {e.type for e in run.events} == {"bid", "extended", "max_raised", "suspended", "resumed", "closed"}


def test_events_survive_their_stored_form() -> None:
    run = busy_run()
    run.events.append(ev.Cancelled(at=CLOSES, reason="x"))
    run.events.append(ev.Failed(at=CLOSES, reason="reserve_not_met", highest_fen=5))
    for event in run.events:
        record = json.loads(json.dumps(event.to_record()))
        assert ev.event_from_record(record | {"seq": 9}) == event
        assert set(event.to_dict()) <= set(record)


def test_an_unknown_event_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown"):
        ev.event_from_record({"type": "teleported", "at": "2025-01-01T00:00:00+00:00"})


def test_the_state_survives_its_json_form() -> None:
    for state in (r.initial_state(make_terms()), busy_run().state):
        data = json.loads(json.dumps(r.state_to_dict(state)))
        assert r.state_from_dict(data) == state
    assert r.state_to_dict(busy_run().state)["ends_at"].endswith("+00:00")


def test_the_leader_paddle_is_exposed_for_the_api() -> None:
    run = Run()
    assert run.state.leader_paddle is None
    run.bid(1, START)
    assert run.state.leader_paddle == "P1"


# --------------------------------------------------------------------------- errors


def test_every_auction_error_has_a_unique_code_and_a_family() -> None:
    mine = [v for v in vars(r).values() if isinstance(v, type) and issubclass(v, MarketError)]
    mine = [cls for cls in mine if cls.__module__ == r.__name__]
    market = [v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, MarketError)]
    codes = [cls.code for cls in mine + market]
    assert len(codes) == len(set(codes))
    assert all(issubclass(cls, RuleViolation | Conflict | Forbidden) for cls in mine)
    assert len(mine) >= 13  # plus BidderBarred, BuyerNotVerified, ReasonRequired shared in market.errors


def test_bid_too_low_is_a_conflict_as_the_api_says() -> None:
    assert issubclass(r.BidTooLow, Conflict) and r.BidTooLow.code == "bid_too_low"
