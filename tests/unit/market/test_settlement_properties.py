"""Properties of the settlement engine over random disposals, and of the ledger's invariant checks."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from hypothesis import given, settings, strategies as st

from market.ledger import (
    LedgerInvariantBroken,
    Posting,
    account_may_go_negative,
    balances,
    check_balances,
    check_invariants,
)
from market.settlement import (
    BUCKETS,
    Asset,
    Book,
    Claim,
    Disposal,
    Lot,
    Pledge,
    waterfall,
)

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)
BIDDERS = ("X1", "X2", "X3", "X4")

small = st.integers(min_value=0, max_value=3_000_000)
money = st.one_of(
    st.integers(min_value=1, max_value=50_000_000), st.integers(min_value=10**11, max_value=10**13)
)


# ----------------------------------------------------------------- random disposals


@st.composite
def disposal_inputs(draw: st.DrawFn) -> dict[str, Any]:
    with_pool = draw(st.booleans())
    claims = {f"C{i}": draw(claim_inputs(with_pool)) for i in range(1, draw(st.integers(1, 4)) + 1)}
    assets = {f"A{j}": draw(asset_inputs(list(claims))) for j in range(1, draw(st.integers(1, 4)) + 1)}
    order = draw(st.permutations(list(assets)))
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(order) - 1)), max_size=len(order) - 1)))
    groups = [order[a:b] for a, b in zip([0, *cuts], [*cuts, len(order)], strict=True) if order[a:b]]
    lots = {f"L{k}": draw(lot_inputs(group)) for k, group in enumerate(groups, 1)}
    pools = {"P1": draw(pool_inputs())} if with_pool else {}
    return {"disposal_id": "DX", "claims": claims, "assets": assets, "lots": lots, "pools": pools}


@st.composite
def claim_inputs(draw: st.DrawFn, with_pool: bool) -> dict[str, Any]:
    return {
        "bank": draw(st.sampled_from(["B1", "B2"])),
        "costs_fen": draw(small),
        "interest_fen": draw(small),
        "default_interest_fen": draw(small),
        "principal_fen": draw(money),
        "order": draw(st.permutations(list(BUCKETS))),
        "pool": "P1" if with_pool and draw(st.booleans()) else None,
    }


@st.composite
def asset_inputs(draw: st.DrawFn, claim_ids: list[str]) -> dict[str, Any]:
    secured = draw(st.lists(st.sampled_from(claim_ids), unique=True, max_size=len(claim_ids)))
    return {
        "pledgor": draw(st.sampled_from(["E1", "E2", "E3"])),
        "appraisal_fen": draw(money),
        "secures": [{"claim": claim, "rank": draw(st.integers(1, 3))} for claim in secured],
    }


@st.composite
def lot_inputs(draw: st.DrawFn, assets: list[str]) -> dict[str, Any]:
    return {
        "assets": assets,
        "disposal_costs_fen": draw(small),
        "platform_fee_bp": draw(st.integers(0, 500)),
        "buyer_commission": draw(st.booleans()),
        "mode": draw(st.sampled_from(["sale", "sale", "licence"])),
    }


@st.composite
def pool_inputs(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "balance_fen": draw(money),
        "share_bp": draw(st.integers(0, 10_000)),
        "per_loan_cap_fen": draw(st.none() | money),
    }


# ----------------------------------------------------------------- random event scripts


@dataclass
class Round:
    """One auction round of a sale lot: who holds, and how it ends."""

    holds: list[tuple[str, int]]
    outcome: str  # fail | pay | default
    winner: str
    price_fen: int
    cost_fen: int


rounds = st.builds(
    Round,
    holds=st.lists(st.tuples(st.sampled_from(BIDDERS), money), max_size=3, unique_by=lambda h: h[0]),
    outcome=st.sampled_from(["fail", "pay", "pay", "default"]),
    winner=st.sampled_from(BIDDERS),
    price_fen=money,
    cost_fen=small,
)
scripts = st.fixed_dictionaries(
    {
        "rounds": st.lists(rounds, min_size=1, max_size=3),
        "receipts": st.lists(money, min_size=1, max_size=4),
        "finalize": st.booleans(),
    }
)


class Driver:
    """Turns a script into valid events, applying each one and checking the invariants after it."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.book = Book.from_input(data)
        self.events: list[dict[str, Any]] = []

    def apply(self, kind: str, **fields: Any) -> None:
        event = {"id": f"e{len(self.events) + 1}", "type": kind, **fields}
        applied = self.book.apply(event)
        self.events.append(event)
        assert_escrow_in_equals_out(applied.postings)
        assert_invariants(self.book)

    def run_sale(self, lot: str, script: list[Round]) -> None:
        for round_ in script:
            if self.run_round(lot, round_):
                return

    def run_round(self, lot: str, round_: Round) -> bool:
        barred = self.book.lot(lot).barred
        for bidder, amount in round_.holds:
            if bidder not in barred:
                self.apply("hold", lot=lot, bidder=bidder, amount_fen=amount)
        if round_.outcome == "fail" or round_.winner in barred:
            self.apply("fail", lot=lot)
            return False
        self.apply("close", lot=lot, winner=round_.winner, price_fen=round_.price_fen)
        if round_.outcome == "default":
            self.apply("default", lot=lot)
            if round_.cost_fen:
                self.apply("cost", lot=lot, amount_fen=round_.cost_fen, memo="re-auction costs")
            return False
        self.apply("pay", lot=lot, amount_fen=self.book.lot(lot).balance_due_fen)
        return True

    def run_licence(self, lot: str, receipts: list[int]) -> None:
        for n, amount in enumerate(receipts, 1):
            self.apply("receipt", lot=lot, payer="LIC1", amount_fen=amount, memo=f"royalty {n}")


def drive(data: dict[str, Any], script: dict[str, Any]) -> Driver:
    driver = Driver(data)
    for lot_id, lot in driver.book.disposal.lots.items():
        if lot.mode == "licence":
            driver.run_licence(lot_id, script["receipts"])
        else:
            driver.run_sale(lot_id, script["rounds"])
    if script["finalize"]:
        driver.apply("finalize")
    return driver


def assert_escrow_in_equals_out(postings: tuple[Posting, ...]) -> None:
    for account in {p.credit for p in postings if p.credit.startswith("escrow:")}:
        into = sum(p.amount_fen for p in postings if p.credit == account)
        out = sum(p.amount_fen for p in postings if p.debit == account)
        assert into == out, account


def assert_invariants(book: Book) -> None:
    current = book.balances()
    assert sum(current.values()) == 0
    assert all(amount >= 0 for name, amount in current.items() if not account_may_go_negative(name))
    for claim in book.disposal.claims.values():
        for bucket in BUCKETS:
            assert 0 <= current.get(f"claim:{claim.id}:{bucket}", 0) <= claim.opening[bucket]
    assert all(amount == 0 for name, amount in current.items() if name.startswith("escrow:"))
    assert book.problems() == []


# ----------------------------------------------------------------- the properties


@PROPERTY_SETTINGS
@given(disposal_inputs(), scripts)
def test_random_disposals_keep_every_invariant_after_every_event(
    data: dict[str, Any], script: dict[str, Any]
) -> None:
    driver = drive(data, script)
    if script["finalize"]:
        assert driver.book.finalized
        assert all(not driver.book.lot(lot).holds for lot in driver.book.disposal.lots)
        assert all(driver.book.lot(lot).forfeit_reserve_fen == 0 for lot in driver.book.disposal.lots)


@PROPERTY_SETTINGS
@given(disposal_inputs(), scripts)
def test_replaying_the_same_events_changes_nothing(data: dict[str, Any], script: dict[str, Any]) -> None:
    driver = drive(data, script)
    book = driver.book
    lines, current = book.lines, book.balances()
    assert all(book.apply(event).duplicate for event in driver.events)
    assert (book.lines, book.balances()) == (lines, current)
    rebuilt = Book.replay(data, driver.events)
    assert (rebuilt.lines, rebuilt.balances(), rebuilt.result()) == (lines, current, book.result())


@PROPERTY_SETTINGS
@given(disposal_inputs(), scripts)
def test_gross_equals_costs_fee_claims_and_surplus(data: dict[str, Any], script: dict[str, Any]) -> None:
    book = drive(data, script).book
    current = book.balances()

    def total(*kinds: str) -> int:
        return sum(v for k, v in current.items() if k.split(":", 1)[0] in kinds)

    received = -total("buyer") - total("hold") - total("forfeit")
    paid_out = total("costs", "fee", "claim", "pledgor")
    assert received == paid_out


@PROPERTY_SETTINGS
@given(disposal_inputs(), scripts)
def test_pool_never_pays_more_than_its_share_or_its_balance(
    data: dict[str, Any], script: dict[str, Any]
) -> None:
    book = drive(data, script).book
    for claim in book.disposal.claims.values():
        paid = book.claim(claim.id).pool_compensation_fen
        if claim.pool is None or not book.finalized:
            assert paid == 0
            continue
        pool = book.disposal.pools[claim.pool]
        assert paid * 10_000 <= book.claim(claim.id).outstanding["principal"] * pool.share_bp
        assert pool.per_loan_cap_fen is None or paid <= pool.per_loan_cap_fen
    assert all(v >= 0 for k, v in book.balances().items() if k.startswith("pool:"))


# ----------------------------------------------------------------- the waterfall alone


@st.composite
def one_asset_runs(draw: st.DrawFn) -> tuple[Disposal, dict[str, dict[str, int]], int, int]:
    n = draw(st.integers(1, 5))
    ids = [f"C{i}" for i in range(1, n + 1)]
    order = tuple(draw(st.permutations(list(BUCKETS))))
    claims = {cid: Claim(cid, "B", {b: draw(small) for b in BUCKETS}, order) for cid in ids}
    pledges = tuple(Pledge(cid, draw(st.integers(1, 3))) for cid in ids)
    outstanding = {cid: {b: draw(st.integers(0, claims[cid].opening[b])) for b in BUCKETS} for cid in ids}
    lot = Lot("L1", ("A1",), draw(small), draw(st.integers(0, 1000)))
    disposal = Disposal("D", claims, {"A1": Asset("A1", "E1", 1, pledges)}, {"L1": lot})
    return disposal, outstanding, draw(st.integers(0, 20_000_000)), draw(small)


@PROPERTY_SETTINGS
@given(one_asset_runs())
def test_waterfall_pays_ranks_in_order_and_equal_ranks_pro_rata(
    run: tuple[Disposal, dict[str, dict[str, int]], int, int],
) -> None:
    disposal, outstanding, gross, unpaid = run
    postings = waterfall(
        gross,
        gross,
        disposal.lots["L1"],
        disposal=disposal,
        outstanding=outstanding,
        unpaid_costs_fen=unpaid,
        event_id="w",
    )
    assert sum(p.amount_fen for p in postings) == gross
    got = balances(postings)
    paid = {cid: sum(got.get(f"claim:{cid}:{b}", 0) for b in BUCKETS) for cid in outstanding}
    owed = {cid: sum(buckets.values()) for cid, buckets in outstanding.items()}
    for cid, buckets in outstanding.items():
        assert all(got.get(f"claim:{cid}:{b}", 0) <= buckets[b] for b in BUCKETS)
    pledges = disposal.assets["A1"].secures
    for rank in {p.rank for p in pledges}:
        junior_paid = any(paid[p.claim] for p in pledges if p.rank > rank)
        senior_short = any(paid[p.claim] < owed[p.claim] for p in pledges if p.rank < rank + 1)
        assert not (junior_paid and senior_short)
        _assert_pro_rata([p.claim for p in pledges if p.rank == rank], paid, owed)
    if got.get("pledgor:E1", 0):
        assert paid == owed


def _assert_pro_rata(members: list[str], paid: dict[str, int], owed: dict[str, int]) -> None:
    """Within a short rank every claim is within one fen of its exact share by total outstanding."""
    pot, whole = sum(paid[c] for c in members), sum(owed[c] for c in members)
    if pot == whole or whole == 0:
        return
    for claim in members:
        assert abs(paid[claim] - Fraction(pot * owed[claim], whole)) < 1


# ----------------------------------------------------------------- the ledger's invariant checks


def test_check_invariants_reports_every_problem_as_values() -> None:
    journal = [
        Posting("buyer:X1", "escrow:L1", 100, "[p1] in"),
        Posting("escrow:L1", "claim:C1:principal", 90, "[p1] claim"),
        Posting("pool:P1", "poolcomp:C1", 5, "[f1] comp"),
    ]
    problems = check_invariants(
        journal,
        limits={"claim:C1:principal": 80},
        expected={"hold:L1:X1": 7},
        stored={"buyer:X1": -100, "escrow:L1": 10, "claim:C1:principal": 91},
    )
    codes = sorted(problem.code for problem in problems)
    drifts = ["balance_drift"] * 3  # claim (91 vs 90), pool:P1 and poolcomp:C1 missing from the store
    assert codes == sorted(
        [*drifts, "negative_balance", "over_limit", "register_mismatch", "escrow_not_zero"]
    )


def test_check_balances_reports_an_unbalanced_set() -> None:
    assert [p.code for p in check_balances({"buyer:X": -5, "fee:platform": 4})] == ["unbalanced"]
    assert check_balances({"buyer:X": -5, "poolfund:P": -5, "fee:platform": 10}) == []


def test_a_bad_posting_is_a_bug_not_a_user_error() -> None:
    for debit, credit, amount in [("a:1", "a:1", 1), ("a:1", "b:1", 0), ("a:1", "b:1", -3)]:
        try:
            Posting(debit, credit, amount, "[x] bad")
        except LedgerInvariantBroken as broken:
            assert broken.problems
        else:
            raise AssertionError("posting accepted")


def test_only_the_outside_world_may_go_negative() -> None:
    assert account_may_go_negative("buyer:X1") and account_may_go_negative("poolfund:P1")
    assert not any(
        account_may_go_negative(a) for a in ["hold:L1:X1", "escrow:L1", "pool:P1", "claim:C1:costs"]
    )
