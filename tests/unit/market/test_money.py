from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from market import money
from market.errors import NotIntegerFen
from market.money import (
    DEFAULT_SLICES,
    CommissionSlice,
    basis_points_fen,
    buyer_commission_fen,
    format_cny,
    require_fen,
    split_pro_rata,
)
from tests.unit.market import load_vectors

SPLIT_CASES: list[dict[str, Any]] = load_vectors()["split_cases"]
COMMISSION_CASES: list[dict[str, Any]] = load_vectors()["commission_cases"]
PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)

totals = st.integers(min_value=0, max_value=10**13)
weight_lists = st.lists(st.integers(min_value=0, max_value=10**13), min_size=1, max_size=8).filter(any)
prices = st.integers(min_value=0, max_value=10**13)


# ----------------------------------------------------------------- worked cases


@pytest.mark.parametrize("case", SPLIT_CASES, ids=lambda c: f"{c['total']}/{len(c['weights'])}")
def test_split_pro_rata_reproduces_every_split_case(case: dict[str, Any]) -> None:
    assert split_pro_rata(case["total"], case["weights"]) == case["expected"]


@pytest.mark.parametrize("case", COMMISSION_CASES, ids=lambda c: str(c["price_fen"]))
def test_buyer_commission_reproduces_every_commission_case(case: dict[str, Any]) -> None:
    assert buyer_commission_fen(case["price_fen"]) == case["expected_fen"]


def test_the_vectors_carry_the_documented_case_counts() -> None:
    assert len(SPLIT_CASES) >= 9
    assert len(COMMISSION_CASES) >= 13


# ----------------------------------------------------------------- split_pro_rata


def test_odd_fen_goes_to_the_lower_index_on_a_tie() -> None:
    assert split_pro_rata(3, [1, 1]) == [2, 1]
    assert split_pro_rata(2, [1, 1, 1]) == [1, 1, 0]


def test_zero_weight_never_receives_a_leftover_fen() -> None:
    assert split_pro_rata(1, [0, 1, 1]) == [0, 1, 0]


def test_zero_total_over_zero_weights_is_all_zeros() -> None:
    assert split_pro_rata(0, [0, 0]) == [0, 0]
    assert split_pro_rata(0, []) == []


@pytest.mark.parametrize(("total", "weights"), [(1, [0, 0]), (5, []), (-1, [1]), (1, [1, -1])])
def test_split_refuses_what_cannot_be_split(total: int, weights: list[int]) -> None:
    with pytest.raises(ValueError):
        split_pro_rata(total, weights)


def test_split_is_exact_where_a_float_would_round_the_wrong_way() -> None:
    # vector 16: remainders 0.49999915 vs 0.50000085; the float variant gives A1 the odd fen
    total, weights = 1_229_876_532_132, [720_076_215_346, 600_000_000_002]
    naive = [total * w / sum(weights) for w in weights]
    assert split_pro_rata(total, weights) == [670_874_020_987, 559_002_511_145]
    # the float variant sees a tie (0.5 vs 0.5) and gives the odd fen to the lower index, A1
    assert naive[0] - math.floor(naive[0]) >= naive[1] - math.floor(naive[1])


def _reference_split(total: int, weights: list[int]) -> list[int]:
    """Largest remainder with Fractions, written independently of the implementation."""
    exact = [Fraction(total * w, sum(weights)) for w in weights]
    parts = [math.floor(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - parts[i]), i))
    for i in order[: total - sum(parts)]:
        parts[i] += 1
    return parts


@PROPERTY_SETTINGS
@given(totals, weight_lists)
def test_split_parts_sum_exactly_to_the_total(total: int, weights: list[int]) -> None:
    assert sum(split_pro_rata(total, weights)) == total


@PROPERTY_SETTINGS
@given(totals, weight_lists)
def test_each_part_is_within_one_fen_of_its_exact_share(total: int, weights: list[int]) -> None:
    whole = sum(weights)
    for part, weight in zip(split_pro_rata(total, weights), weights, strict=True):
        assert abs(part * whole - total * weight) < whole  # |part - exact share| < 1


@PROPERTY_SETTINGS
@given(totals, weight_lists)
def test_split_agrees_with_an_independent_fraction_reference(total: int, weights: list[int]) -> None:
    assert split_pro_rata(total, weights) == _reference_split(total, weights)


# ----------------------------------------------------------------- commission and fees


@PROPERTY_SETTINGS
@given(prices, prices)
def test_commission_is_monotone_in_the_price(a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert buyer_commission_fen(low) <= buyer_commission_fen(high)


@PROPERTY_SETTINGS
@given(prices)
def test_commission_never_exceeds_five_percent_nor_the_exact_slice_sum(price: int) -> None:
    exact = _exact_commission(price)
    assert buyer_commission_fen(price) == math.floor(exact)
    assert buyer_commission_fen(price) * 20 <= price


def _exact_commission(price: int) -> Fraction:
    bounds = [0, 200_000_000, 1_000_000_000, 5_000_000_000, 10_000_000_000, max(price, 10_000_000_000)]
    rates = [Fraction(5, 100), Fraction(3, 100), Fraction(2, 100), Fraction(1, 100), Fraction(5, 1000)]
    return sum(
        (
            max(0, min(price, hi) - lo) * rate
            for lo, hi, rate in zip(bounds[:-1], bounds[1:], rates, strict=True)
        ),
        Fraction(0),
    )


def test_commission_slice_table_is_configurable() -> None:
    flat_five_percent = (CommissionSlice(None, 500),)
    assert buyer_commission_fen(1_000_000_000, flat_five_percent) == 50_000_000
    assert buyer_commission_fen(1_000_000_000) == 34_000_000
    assert DEFAULT_SLICES[-1].upto_fen is None


@pytest.mark.parametrize(
    "slices",
    [(), (CommissionSlice(100, 500),), (CommissionSlice(None, 5), CommissionSlice(None, 5))],
)
def test_a_malformed_slice_table_is_refused(slices: tuple[CommissionSlice, ...]) -> None:
    with pytest.raises(ValueError):
        buyer_commission_fen(1, slices)


def test_commission_refuses_a_negative_price() -> None:
    with pytest.raises(ValueError):
        buyer_commission_fen(-1)


def test_basis_points_are_floored_once() -> None:
    assert basis_points_fen(30_000_001, 50) == 150_000  # 150,000.005 fen
    assert basis_points_fen(1_234_567_890_123, 30) == 3_703_703_670
    assert basis_points_fen(2_400_000_001, 5000) == 1_200_000_000


# ----------------------------------------------------------------- require_fen


@pytest.mark.parametrize(
    "value",
    [True, False, 100.0, "100", math.nan, 10**30, -(2**63) - 1, 2**63, None, Decimal("100"), [100]],
    ids=repr,
)
def test_require_fen_refuses_anything_but_a_bigint_int(value: object) -> None:
    with pytest.raises(NotIntegerFen) as refused:
        require_fen(value)
    assert refused.value.code == "not_integer_fen"


@pytest.mark.parametrize("value", [0, 1, -1, 2**63 - 1, -(2**63)])
def test_require_fen_accepts_ints_in_the_bigint_range(value: int) -> None:
    assert require_fen(value) == value


# ----------------------------------------------------------------- format_cny


@pytest.mark.parametrize(
    ("fen", "text"),
    [
        (0, "0.00"),
        (5, "0.05"),
        (123_456, "1,234.56"),
        (-123_456, "-1,234.56"),
        (-5, "-0.05"),
        (1_234_567_890_123, "12,345,678,901.23"),
    ],
)
def test_format_cny(fen: int, text: str) -> None:
    assert format_cny(fen) == text


def test_module_has_no_float_in_its_public_constants() -> None:
    assert all(type(s.rate_bp) is int for s in money.DEFAULT_SLICES)
