"""Unit tests of the negotiation (对接洽谈) state machine."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from listings import negotiation as n
from listings.negotiation import Side, Thread, ThreadStatus
from market.errors import Conflict, Forbidden, MarketError, NotIntegerFen, RuleViolation

BUYER_ORG = 20
BANK_ORG = 1
T0 = datetime(2025, 6, 1, 2, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def open_thread(amount_fen: int = 800_000_00, **overrides: Any) -> Thread:
    fields: dict[str, Any] = {
        "listing_id": 5,
        "buyer_org_id": BUYER_ORG,
        "bank_org_id": BANK_ORG,
        "amount_fen": amount_fen,
        "now": T0,
        "expires_at": T0 + DAY,
        "message": "愿意以八十万元受让",
    }
    fields.update(overrides)
    return n.offer(**fields)


def test_a_buyer_opens_a_thread_and_the_bank_answers() -> None:
    thread = open_thread()
    assert thread.status is ThreadStatus.OPEN
    assert thread.current.by is Side.BUYER and thread.current.seq == 1
    assert thread.turn is Side.BANK
    countered = n.counter(thread, Side.BANK, 950_000_00, now=T0 + timedelta(hours=1), expires_at=T0 + 2 * DAY)
    assert countered.current.by is Side.BANK and countered.current.seq == 2
    assert countered.turn is Side.BUYER
    assert len(thread.offers) == 1  # the original value is untouched


def test_accepting_returns_the_agreed_price() -> None:
    thread = n.counter(open_thread(), "bank", 900_000_00, now=T0, expires_at=T0 + DAY)
    closed, price = n.accept(thread, Side.BUYER, now=T0 + timedelta(hours=3))
    assert price == 900_000_00
    assert closed.status is ThreadStatus.ACCEPTED
    assert closed.agreed_price_fen == 900_000_00
    assert closed.closed_by is Side.BUYER
    assert closed.closed_at == T0 + timedelta(hours=3)
    assert closed.turn is None


def test_the_bank_may_accept_the_first_offer() -> None:
    closed, price = n.accept(open_thread(123), Side.BANK, now=T0)
    assert (closed.status, price) == (ThreadStatus.ACCEPTED, 123)


def test_reject_and_withdraw_close_the_thread() -> None:
    rejected = n.reject(open_thread(), Side.BANK, now=T0)
    assert (rejected.status, rejected.closed_by) == (ThreadStatus.REJECTED, Side.BANK)
    withdrawn = n.withdraw(open_thread(), Side.BUYER, now=T0)
    assert (withdrawn.status, withdrawn.closed_by) == (ThreadStatus.WITHDRAWN, Side.BUYER)
    assert withdrawn.agreed_price_fen is None


def test_nobody_answers_their_own_offer() -> None:
    thread = open_thread()
    with pytest.raises(n.NotYourTurn) as raised:
        n.counter(thread, Side.BUYER, 1, now=T0, expires_at=T0 + DAY)
    assert raised.value.code == "not_your_turn"
    with pytest.raises(n.NotYourTurn):
        n.accept(thread, Side.BUYER, now=T0)
    with pytest.raises(n.NotYourTurn):
        n.reject(thread, Side.BUYER, now=T0)
    with pytest.raises(n.NotYourOffer) as not_yours:
        n.withdraw(thread, Side.BANK, now=T0)
    assert not_yours.value.code == "not_your_offer"


def test_an_offer_past_its_expiry_cannot_be_accepted() -> None:
    thread = open_thread()
    at_expiry = thread.current.expires_at
    n.accept(thread, Side.BANK, now=at_expiry - timedelta(microseconds=1))
    with pytest.raises(n.OfferExpired) as raised:
        n.accept(thread, Side.BANK, now=at_expiry)
    assert raised.value.code == "offer_expired"
    with pytest.raises(n.OfferExpired):
        n.counter(thread, Side.BANK, 5, now=at_expiry + DAY, expires_at=at_expiry + 2 * DAY)
    with pytest.raises(n.OfferExpired):
        n.withdraw(thread, Side.BUYER, now=at_expiry)


def test_expire_due_closes_only_expired_threads_and_is_idempotent() -> None:
    thread = open_thread()
    assert n.expire_due(thread, T0 + timedelta(hours=23)) is thread
    expired = n.expire_due(thread, T0 + 2 * DAY)
    assert expired.status is ThreadStatus.EXPIRED
    assert expired.closed_at == T0 + DAY
    assert expired.closed_by is None
    assert n.expire_due(expired, T0 + 3 * DAY) is expired
    with pytest.raises(n.ThreadClosed) as raised:
        n.accept(expired, Side.BANK, now=T0 + 3 * DAY)
    assert raised.value.code == "negotiation_closed"


def test_nothing_happens_after_a_terminal_state() -> None:
    closed, _ = n.accept(open_thread(), Side.BANK, now=T0)
    for act in (
        lambda: n.counter(closed, Side.BUYER, 1, now=T0, expires_at=T0 + DAY),
        lambda: n.accept(closed, Side.BUYER, now=T0),
        lambda: n.reject(closed, Side.BUYER, now=T0),
        lambda: n.withdraw(closed, Side.BUYER, now=T0),
    ):
        with pytest.raises(n.ThreadClosed):
            act()
    assert n.expire_due(closed, T0 + 10 * DAY) is closed


@pytest.mark.parametrize("amount", [0, -1])
def test_amounts_must_be_positive(amount: int) -> None:
    with pytest.raises(n.AmountNotPositive) as raised:
        open_thread(amount)
    assert raised.value.code == "offer_amount_invalid"
    with pytest.raises(n.AmountNotPositive):
        n.counter(open_thread(), Side.BANK, amount, now=T0, expires_at=T0 + DAY)


@pytest.mark.parametrize("amount", [1.5, 100.0, True])
def test_amounts_must_be_integer_fen(amount: Any) -> None:
    with pytest.raises(NotIntegerFen):
        open_thread(amount)


def test_an_offer_must_expire_after_it_is_made() -> None:
    with pytest.raises(n.ExpiryInvalid) as raised:
        open_thread(expires_at=T0)
    assert raised.value.code == "offer_expiry_invalid"
    with pytest.raises(n.ExpiryInvalid):
        n.counter(open_thread(), Side.BANK, 5, now=T0, expires_at=T0 - DAY)


def test_only_the_two_parties_take_part() -> None:
    thread = open_thread()
    assert n.side_of(thread, BUYER_ORG) is Side.BUYER
    assert n.side_of(thread, BANK_ORG) is Side.BANK
    with pytest.raises(n.NotAParty) as raised:
        n.side_of(thread, 99)
    assert raised.value.code == "not_negotiation_party"
    with pytest.raises(n.NotAParty):
        n.accept(thread, "auditor", now=T0)
    with pytest.raises(n.OwnListing):
        open_thread(buyer_org_id=BANK_ORG)


def test_error_codes_are_unique_and_in_a_family() -> None:
    own = [
        v
        for v in vars(n).values()
        if isinstance(v, type) and issubclass(v, MarketError) and v.__module__ == n.__name__
    ]
    codes = [cls.code for cls in own]
    assert len(own) >= 7 and len(codes) == len(set(codes))
    assert all(issubclass(cls, Conflict | RuleViolation | Forbidden) for cls in own)


# --------------------------------------------------------------------------- random sequences

OPS = ("counter", "counter", "counter", "counter", "accept", "reject", "withdraw", "expire", "stranger")
steps_strategy = st.lists(
    st.tuples(
        st.sampled_from(OPS),
        st.sampled_from([True, True, True, False]),  # act as the side entitled to, or the wrong one
        st.integers(-3, 10**9),  # amount; non-positive ones must be refused
        st.one_of(st.integers(0, 3), st.just(30)),  # hours to advance before acting
        st.one_of(st.integers(1, 48), st.integers(-2, 0)),  # hours the offer stays open; <= 0 refused
    ),
    max_size=25,
)


def _apply(thread: Thread, step: tuple[str, Side, int, int, int], now: datetime) -> Thread:
    op, side, amount, _, ttl = step
    match op:
        case "counter":
            return n.counter(thread, side, amount, now=now, expires_at=now + timedelta(hours=ttl))
        case "accept":
            closed, price = n.accept(thread, side, now=now)
            assert price == thread.current.amount_fen == closed.agreed_price_fen
            return closed
        case "reject":
            return n.reject(thread, side, now=now)
        case "withdraw":
            return n.withdraw(thread, side, now=now)
        case "expire":
            return n.expire_due(thread, now)
    n.side_of(thread, 99)  # a third organisation can never act
    raise AssertionError("unreachable")


def _check_step(before: Thread, after: Thread, step: tuple[str, Side, int, int, int], now: datetime) -> None:
    op, side = step[0], step[1]
    assert before.is_open or after is before  # nothing changes a closed thread
    if op == "expire":
        return
    assert now < before.current.expires_at
    if op == "withdraw":
        assert side is before.current.by and after.status is ThreadStatus.WITHDRAWN
        return
    assert side is before.current.by.other  # turns alternate
    if op == "counter":
        assert after.offers[:-1] == before.offers and after.current.by is side and after.is_open
        assert after.current.amount_fen > 0 and after.current.expires_at > now


@settings(max_examples=150, deadline=None)
@given(first_ttl=st.integers(1, 48), steps=steps_strategy)
def test_random_sequences_respect_turns_expiry_and_closure(
    first_ttl: int, steps: list[tuple[str, bool, int, int, int]]
) -> None:
    thread = open_thread(expires_at=T0 + timedelta(hours=first_ttl))
    now = T0
    for op, entitled, amount, advance, ttl in steps:
        now += timedelta(hours=advance)
        maker = thread.current.by
        step = (op, maker if (op == "withdraw") == entitled else maker.other, amount, advance, ttl)
        was_open, was_expired = thread.is_open, n.is_expired(thread, now)
        try:
            after = _apply(thread, step, now)
        except n.ThreadClosed:
            assert not was_open
            continue
        except n.OfferExpired:
            assert was_open and was_expired
            continue
        except (n.NotYourTurn, n.NotYourOffer):
            assert was_open and not was_expired
            continue
        except (n.AmountNotPositive, n.ExpiryInvalid):
            assert step[0] == "counter" and (step[2] <= 0 or step[4] <= 0)
            continue
        except n.NotAParty:
            assert step[0] == "stranger"
            continue
        _check_step(thread, after, step, now)
        thread = after
    bys = [o.by for o in thread.offers]
    assert bys[0] is Side.BUYER
    assert all(a is not b for a, b in itertools.pairwise(bys))
    assert [o.seq for o in thread.offers] == list(range(1, len(bys) + 1))
    assert all(o.amount_fen > 0 for o in thread.offers)
    assert (thread.agreed_price_fen is not None) == (thread.status is ThreadStatus.ACCEPTED)
