"""The 16 worked disposals of settlement_vectors.json, the §15 refusal checks, and reversal (§6)."""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import pytest

from market.errors import MarketError, NotIntegerFen, ValidationFailed
from market.ledger import Posting, check_invariants
from market.settlement import (
    AlreadyReversed,
    BidderBarred,
    Book,
    Finalized,
    HoldExists,
    IdReused,
    NonPositiveAmount,
    NotReversible,
    ReverseBlocked,
    UnknownEvent,
    UnknownLot,
    WrongAmount,
    WrongLotMode,
    WrongLotState,
    parse_disposal,
    settle,
    waterfall,
)
from tests.unit.market import COPIED_VECTORS, SHARED_VECTORS, load_vectors

VECTORS: list[dict[str, Any]] = load_vectors()["vectors"]
BY_NAME = {vector["name"]: vector for vector in VECTORS}
EXPECTED_KEYS = ["postings", "balances", "per_claim", "surplus_to_pledgor_fen", "pool_compensation_fen"]


@cache
def settled(name: str) -> dict[str, object]:
    return settle(BY_NAME[name]["input"])


def book_after(name: str, upto: str | None = None) -> Book:
    """A Book with the vector's events applied, up to and including event ``upto``."""
    data = BY_NAME[name]["input"]
    book = Book.from_input(data)
    for event in data["events"]:
        book.apply(event)
        if event["id"] == upto:
            break
    return book


def snapshot(book: Book) -> tuple[object, ...]:
    """Everything a refused event must leave untouched."""
    return (book.journal, book.balances(), book.applied, [book.lot(lot) for lot in book.disposal.lots])


def refuse(book: Book, event: dict[str, Any], error: type[MarketError]) -> None:
    """Apply ``event``, expect ``error``, and check nothing changed."""
    before = snapshot(book)
    with pytest.raises(error):
        book.apply(event)
    assert snapshot(book) == before


# ----------------------------------------------------------------- the 16 vectors


def test_there_are_sixteen_vectors() -> None:
    assert len(VECTORS) == 16


def test_the_committed_copy_matches_the_shared_vectors() -> None:
    if not SHARED_VECTORS.exists():
        pytest.skip("no shared/ beside the repository")
    assert COPIED_VECTORS.read_bytes() == SHARED_VECTORS.read_bytes()


@pytest.mark.parametrize("key", EXPECTED_KEYS)
@pytest.mark.parametrize("name", list(BY_NAME))
def test_vector_reproduces_expected_figure(name: str, key: str) -> None:
    assert settled(name)[key] == BY_NAME[name]["expected"][key]


@pytest.mark.parametrize("name", list(BY_NAME))
def test_vector_result_has_exactly_the_expected_keys(name: str) -> None:
    assert set(settled(name)) == set(BY_NAME[name]["expected"])


@pytest.mark.parametrize("name", list(BY_NAME))
def test_vector_journal_keeps_every_invariant(name: str) -> None:
    book = book_after(name)
    limits = {
        f"claim:{claim.id}:{bucket}": amount
        for claim in book.disposal.claims.values()
        for bucket, amount in claim.opening.items()
    }
    assert book.problems() == []
    assert check_invariants(book.journal, limits=limits, stored=book.balances()) == []


@pytest.mark.parametrize("name", list(BY_NAME))
def test_vector_claim_statements_balance_per_bucket(name: str) -> None:
    book = book_after(name)
    for claim_id in book.disposal.claims:
        figures = book.claim(claim_id)
        for bucket, opening in figures.opening.items():
            assert figures.recovered[bucket] + figures.outstanding[bucket] == opening
            assert book.balance(f"claim:{claim_id}:{bucket}") == figures.recovered[bucket]


@pytest.mark.parametrize("name", list(BY_NAME))
def test_vector_rebuilds_identically_from_its_stored_events(name: str) -> None:
    book = book_after(name)
    stored = [applied.event for applied in book.applied]
    rebuilt = Book.replay(BY_NAME[name]["input"], stored)
    assert rebuilt.lines == book.lines
    assert rebuilt.balances() == book.balances()


@pytest.mark.parametrize("name", list(BY_NAME))
def test_vector_replayed_twice_changes_nothing(name: str) -> None:
    book = book_after(name)
    before = snapshot(book)
    results = [book.apply(event) for event in BY_NAME[name]["input"]["events"]]
    assert all(result.duplicate for result in results)
    assert snapshot(book) == before


def test_every_memo_starts_with_its_event_id() -> None:
    for line in book_after("winner_default_reauction").lines:
        assert line.posting.memo.startswith(f"[{line.event_id}] ")


def test_duplicate_receipt_returns_the_original_postings() -> None:
    book = Book.from_input(BY_NAME["idempotent_receipt_replay"]["input"])
    event = BY_NAME["idempotent_receipt_replay"]["input"]["events"][0]
    first = book.apply(event)
    again = book.apply(dict(reversed(list(event.items()))))  # key order is not content
    assert again.duplicate and not first.duplicate
    assert again.postings == first.postings and again.seq == first.seq
    assert len(book.journal) == len(first.postings)


def test_balances_can_be_read_as_at_an_earlier_event() -> None:
    book = book_after("winner_default_reauction")
    as_at_default = book.balances(as_of="d1")
    assert as_at_default["forfeit:L1"] == 7_000_000
    assert as_at_default["costs:L1"] == 1_000_000
    assert book.balances(as_of="p2") == book.balances()


def test_claim_status_and_shortfall_are_recorded_at_finalize() -> None:
    open_book = book_after("single_claim_shortfall", upto="p1")
    assert open_book.claim("C1").status == "open" and open_book.claim("C1").shortfall is None
    closed = book_after("single_claim_shortfall").claim("C1")
    assert closed.status == "finalized with shortfall"
    assert closed.shortfall == {"costs": 0, "interest": 0, "principal": 22_699_999}
    assert book_after("single_claim_surplus").claim("C1").status == "paid"


def test_pool_compensation_shows_on_the_claim_statement() -> None:
    book = book_after("risk_pool_cap_then_balance")
    assert book.claim("C1").pool_compensation_fen == 1_000_000_000
    assert book.claim("C2").pool_compensation_fen == 500_000_000
    assert book.claim("C2").outstanding["principal"] == 1_200_000_001  # the debtor still owes it


def test_lot_view_tracks_holds_bars_and_forfeit() -> None:
    after_default = book_after("winner_default_reauction", upto="k1").lot("L1")
    assert after_default.status == "listed" and after_default.barred == ("X1",)
    assert after_default.forfeit_reserve_fen == 6_500_000 and after_default.holds == {}
    sold = book_after("winner_default_reauction").lot("L1")
    assert sold.status == "sold" and sold.forfeit_reserve_fen == 0 and sold.unpaid_costs_fen == 0


def test_waterfall_is_a_pure_function_of_the_money_and_the_register() -> None:
    data = BY_NAME["bundle_three_assets_rounding"]
    disposal = parse_disposal(data["input"])
    postings = waterfall(
        6_000_000,
        6_000_000,
        disposal.lots["L1"],
        disposal=disposal,
        outstanding={cid: dict(claim.opening) for cid, claim in disposal.claims.items()},
        unpaid_costs_fen=100_000,
        event_id="p1",
    )
    assert [p.as_dict() for p in postings] == data["expected"]["postings"][1:]


def test_waterfall_refuses_negative_gross() -> None:
    disposal = parse_disposal(BY_NAME["single_claim_surplus"]["input"])
    with pytest.raises(ValueError):
        waterfall(
            -1, 0, disposal.lots["L1"], disposal=disposal, outstanding={}, unpaid_costs_fen=0, event_id="x"
        )


# ----------------------------------------------------------------- the six §15 refusal checks


def test_refusal_reused_id_with_different_content() -> None:
    book = book_after("idempotent_receipt_replay", upto="r1")
    changed = {**BY_NAME["idempotent_receipt_replay"]["input"]["events"][0], "amount_fen": 5_000_001}
    refuse(book, changed, IdReused)


def test_refusal_barred_defaulter_may_not_hold_again() -> None:
    book = book_after("winner_default_reauction", upto="k1")
    refuse(
        book, {"id": "h9", "type": "hold", "lot": "L1", "bidder": "X1", "amount_fen": 6_400_000}, BidderBarred
    )


def test_refusal_barred_defaulter_may_not_win_again() -> None:
    book = book_after("winner_default_reauction", upto="h4")
    refuse(
        book,
        {"id": "c2", "type": "close", "lot": "L1", "winner": "X1", "price_fen": 46_000_000},
        BidderBarred,
    )


def test_refusal_short_balance_then_the_corrected_retry_keeps_its_id() -> None:
    name = "deposits_winner_applied_losers_released"
    book = book_after(name, upto="c1")
    refuse(book, {"id": "p1", "type": "pay", "lot": "L1", "amount_fen": 56_999_999}, WrongAmount)
    book.apply({"id": "p1", "type": "pay", "lot": "L1", "amount_fen": 57_000_000})
    assert book.result() == BY_NAME[name]["expected"]


def test_refusal_float_amount_then_the_corrected_retry_keeps_its_id() -> None:
    name = "licence_upfront_instalments"
    book = Book.from_input(BY_NAME[name]["input"])
    event = dict(BY_NAME[name]["input"]["events"][0])
    refuse(book, {**event, "amount_fen": 4_000_000.0}, NotIntegerFen)
    refuse(book, {**event, "amount_fen": True}, NotIntegerFen)
    assert book.apply(event).postings[0].amount_fen == 4_000_000


def test_refusal_event_after_finalize_but_exact_replay_is_fine() -> None:
    book = book_after("single_claim_shortfall")
    refuse(book, {"id": "k9", "type": "cost", "lot": "L1", "amount_fen": 100}, Finalized)
    refuse(book, {"id": "h9", "type": "hold", "lot": "L1", "bidder": "X9", "amount_fen": 100}, Finalized)
    refuse(book, {"id": "x9", "type": "reverse", "target": "p1"}, Finalized)
    assert book.apply({"id": "f1", "type": "finalize"}).duplicate


def test_refusal_second_hold_by_the_same_bidder() -> None:
    book = book_after("deposits_winner_applied_losers_released", upto="h3")
    refuse(
        book, {"id": "h4", "type": "hold", "lot": "L1", "bidder": "X1", "amount_fen": 5_000_000}, HoldExists
    )


# ----------------------------------------------------------------- further refusals


@pytest.mark.parametrize(
    ("upto", "event", "error"),
    [
        (None, {"id": "p9", "type": "pay", "lot": "L1", "amount_fen": 1}, WrongLotState),
        (None, {"id": "h9", "type": "hold", "lot": "L9", "bidder": "X1", "amount_fen": 1}, UnknownLot),
        (None, {"id": "h9", "type": "hold", "lot": "L1", "bidder": "X1", "amount_fen": 0}, NonPositiveAmount),
        (None, {"id": "c9", "type": "close", "lot": "L1", "winner": "X1", "price_fen": 0}, NonPositiveAmount),
        (None, {"id": "r9", "type": "receipt", "lot": "L1", "payer": "P", "amount_fen": 1}, WrongLotMode),
        (None, {"id": "k9", "type": "cost", "lot": "L1", "amount_fen": -5}, NonPositiveAmount),
        (None, {"id": "z9", "type": "teleport", "lot": "L1"}, ValidationFailed),
        (None, {"type": "fail", "lot": "L1"}, ValidationFailed),
        (None, {"id": "h9", "type": "hold", "lot": "L1", "bidder": "a:b", "amount_fen": 1}, ValidationFailed),
        ("c1", {"id": "h9", "type": "hold", "lot": "L1", "bidder": "X9", "amount_fen": 1}, WrongLotState),
        ("c1", {"id": "f9", "type": "fail", "lot": "L1"}, WrongLotState),
        ("p1", {"id": "d9", "type": "default", "lot": "L1"}, WrongLotState),
        ("p1", {"id": "p1", "type": "pay", "lot": "L1", "amount_fen": 57_000_000, "note": "x"}, IdReused),
    ],
)
def test_a_refused_event_leaves_no_trace(
    upto: str | None, event: dict[str, Any], error: type[MarketError]
) -> None:
    name = "deposits_winner_applied_losers_released"
    book = Book.from_input(BY_NAME[name]["input"]) if upto is None else book_after(name, upto)
    refuse(book, event, error)


def test_receipt_on_a_licence_lot_refuses_sale_events() -> None:
    book = Book.from_input(BY_NAME["licence_upfront_instalments"]["input"])
    refuse(book, {"id": "h1", "type": "hold", "lot": "L1", "bidder": "X1", "amount_fen": 1}, WrongLotMode)


@pytest.mark.parametrize(
    ("path", "value", "error"),
    [
        (("claims", "C1", "principal_fen"), 1.5, NotIntegerFen),
        (("claims", "C1", "order"), ["costs", "costs", "principal"], ValidationFailed),
        (("claims", "C1", "pool"), "P404", ValidationFailed),
        (("assets", "A1", "secures"), [{"claim": "C404", "rank": 1}], ValidationFailed),
        (("assets", "A1", "secures"), [{"claim": "C1", "rank": 0}], ValidationFailed),
        (("lots", "L1", "assets"), ["A404"], ValidationFailed),
        (("lots", "L1", "platform_fee_bp"), 10_001, ValidationFailed),
        (("lots", "L1", "buyer_commission"), "yes", ValidationFailed),
        (("lots", "L1", "mode"), "lease", ValidationFailed),
    ],
)
def test_malformed_input_is_refused(path: tuple[str, ...], value: object, error: type[MarketError]) -> None:
    data = copy.deepcopy(BY_NAME["single_claim_surplus"]["input"])
    data[path[0]][path[1]][path[2]] = value
    with pytest.raises(error):
        Book.from_input(data)


# ----------------------------------------------------------------- reversal (§6)


def test_reverse_mirrors_the_target_and_replays_later_receipts() -> None:
    book = book_after("licence_upfront_instalments")
    applied = book.apply({"id": "x1", "type": "reverse", "target": "r2"})
    memos = [p.memo for p in applied.postings]
    assert memos[0] == "[x1] reversal of [r4] surplus of A1 to pledgor E1"  # newest first
    assert memos[-1] == "[x1:replay:2] surplus of A1 to pledgor E1"
    assert book.problems() == []
    assert book.balance("buyer:LIC1") == -12_000_000
    assert book.claim("C1").outstanding == {"costs": 0, "interest": 0, "principal": 0}
    assert book.balance("pledgor:E1") == 1_460_000


def test_reversing_a_reversal_restores_the_original_balances() -> None:
    book = book_after("licence_upfront_instalments")
    before = book.balances()
    book.apply({"id": "x1", "type": "reverse", "target": "r2"})
    book.apply({"id": "x2", "type": "reverse", "target": "x1"})
    assert {k: v for k, v in book.balances().items() if v} == {k: v for k, v in before.items() if v}
    assert book.problems() == []


def test_reversing_a_pay_restores_the_claim_and_the_lot() -> None:
    book = book_after("winner_default_reauction")
    applied = book.apply({"id": "x1", "type": "reverse", "target": "p2"})
    assert all(p.memo.startswith("[x1] reversal of [p2] ") for p in applied.postings)
    amounts = [48_840_000, 3_000_000, 200_000, 460_000, 2_500_000, 4_000_000, 39_600_000, 6_400_000]
    assert [p.amount_fen for p in applied.postings] == amounts  # the exact mirror, newest first
    assert book.claim("C1").recovered == {"costs": 0, "interest": 0, "principal": 0}
    lot = book.lot("L1")
    assert (lot.status, lot.winner, lot.holds, lot.forfeit_reserve_fen) == (
        "closed",
        "X3",
        {"X3": 6_400_000},
        6_500_000,
    )
    assert book.problems() == []


def test_a_reversal_is_itself_idempotent() -> None:
    book = book_after("licence_upfront_instalments")
    first = book.apply({"id": "x1", "type": "reverse", "target": "r4"})
    assert book.apply({"id": "x1", "type": "reverse", "target": "r4"}).postings == first.postings


@pytest.mark.parametrize(
    ("target", "error"),
    [("h1", NotReversible), ("c2", ReverseBlocked), ("d1", ReverseBlocked), ("nope", UnknownEvent)],
)
def test_reverse_refusals_leave_no_trace(target: str, error: type[MarketError]) -> None:
    book = book_after("winner_default_reauction")
    refuse(book, {"id": "x1", "type": "reverse", "target": target}, error)


def test_a_target_is_reversed_at_most_once() -> None:
    book = book_after("licence_upfront_instalments")
    book.apply({"id": "x1", "type": "reverse", "target": "r4"})
    refuse(book, {"id": "x2", "type": "reverse", "target": "r4"}, AlreadyReversed)


def test_postings_are_immutable_values() -> None:
    posting = Posting("a:1", "b:1", 1, "[e] m")
    with pytest.raises(AttributeError):
        posting.amount_fen = 2  # type: ignore[misc]
