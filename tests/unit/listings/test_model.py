"""Unit tests of the pure collateral and listing model."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from listings import model as m
from listings.model import (
    Asset,
    AssetKind,
    Backstop,
    Claim,
    CoOwner,
    DisposalMode,
    LegalStatus,
    License,
    LicenseTerms,
    LicenseType,
    Listing,
    ListingAction,
    ListingStatus,
    Pledge,
    WithdrawalReason,
)
from market.errors import Conflict, MarketError, NotIntegerFen, RuleViolation

BANK = 1
OTHER_BANK = 2
TODAY = date(2025, 6, 1)
NOW = datetime(2025, 6, 1, 2, 0, tzinfo=UTC)
_ids = iter(range(1000, 10**9))

# --------------------------------------------------------------------------- factories


def make_asset(**overrides: Any) -> Asset:
    """An eligible, granted invention patent pledged to BANK; override what a test is about."""
    defaults: dict[str, Any] = {
        "id": next(_ids),
        "kind": AssetKind.INVENTION_PATENT,
        "registration_no": "ZL201810123456.7",
        "title_zh": "一种锂电池的制备方法",
        "title_en": "Method of making a lithium battery",
        "holder": "深圳某科技有限公司",
        "legal_status": LegalStatus.GRANTED,
        "pledgee_org_id": BANK,
        "filed_on": date(2018, 3, 1),
        "granted_on": date(2020, 5, 1),
        "appraisal_fen": 100_000_000,
        "appraised_on": date(2025, 1, 15),
        "annuity_paid_through": date(2026, 2, 28),
    }
    defaults.update(overrides)
    return Asset(**defaults)


def make_mark(group: str | None = "G1", **overrides: Any) -> Asset:
    fields: dict[str, Any] = {
        "kind": AssetKind.TRADEMARK,
        "registration_no": f"{next(_ids):08d}",
        "legal_status": LegalStatus.REGISTERED,
        "filed_on": None,
        "granted_on": date(2019, 1, 7),
        "annuity_paid_through": None,
        "similar_mark_group": group,
        "classes": ("9",),
    }
    fields.update(overrides)
    return make_asset(**fields)


def terms(**overrides: Any) -> LicenseTerms:
    fields: dict[str, Any] = {"term_months": 24, "territory": "广东", "field": "动力电池"}
    fields.update(overrides)
    return LicenseTerms(**fields)


def existing(type_: LicenseType = LicenseType.EXCLUSIVE, **overrides: Any) -> License:
    fields: dict[str, Any] = {
        "type": type_,
        "field": "动力电池",
        "territory": "广东",
        "starts_on": date(2024, 1, 1),
        "ends_on": date(2026, 12, 31),
    }
    fields.update(overrides)
    return License(**fields)


def check(asset: Asset, mode: DisposalMode = DisposalMode.TRANSFER, **kwargs: Any) -> list[str]:
    kwargs.setdefault("listing_bank_id", BANK)
    kwargs.setdefault("today", TODAY)
    return [p.code for p in m.eligibility(asset, mode=mode, **kwargs)]


def make_claim(**overrides: Any) -> Claim:
    fields: dict[str, Any] = {
        "id": 7,
        "loan_no": "L-2021-0001",
        "borrower": m.Borrower("深圳某科技有限公司", "91440300MA5XXXXXX1"),
        "principal_fen": 5_000_000_00,
        "interest_fen": 30_000_00,
        "costs_fen": 12_000_00,
        "defaulted_on": date(2022, 3, 10),
    }
    fields.update(overrides)
    return Claim(**fields)


def make_listing(status: ListingStatus = ListingStatus.DRAFT) -> Listing:
    return Listing(1, BANK, "锂电池专利转让", DisposalMode.TRANSFER, (11,), status=status)


# --------------------------------------------------------------------------- eligibility


def test_a_granted_paid_appraised_patent_of_this_bank_is_eligible() -> None:
    assert check(make_asset()) == []
    assert check(make_asset(), DisposalMode.LICENSE, license_terms=terms()) == []


LIC = DisposalMode.LICENSE
SINGLE_PROBLEM_CASES: list[tuple[str, dict[str, Any], DisposalMode, dict[str, Any]]] = [
    ("not_granted", {"legal_status": LegalStatus.PENDING}, DisposalMode.TRANSFER, {}),
    ("lapsed", {"legal_status": LegalStatus.LAPSED}, DisposalMode.TRANSFER, {}),
    ("expired", {"legal_status": LegalStatus.EXPIRED}, DisposalMode.TRANSFER, {}),
    ("expired", {"expires_on": date(2025, 5, 31)}, DisposalMode.TRANSFER, {}),
    ("invalidated", {"legal_status": LegalStatus.INVALIDATED}, DisposalMode.TRANSFER, {}),
    ("revoked", {"legal_status": LegalStatus.REVOKED}, DisposalMode.TRANSFER, {}),
    ("term_unknown", {"filed_on": None}, DisposalMode.TRANSFER, {}),
    ("annuity_unpaid", {"annuity_paid_through": date(2024, 11, 30)}, DisposalMode.TRANSFER, {}),
    ("appraisal_missing", {"appraisal_fen": None}, DisposalMode.TRANSFER, {}),
    ("appraisal_missing", {"appraised_on": None}, DisposalMode.TRANSFER, {}),
    ("appraisal_stale", {"appraised_on": date(2024, 5, 31)}, DisposalMode.TRANSFER, {}),
    ("pledgee_mismatch", {"pledgee_org_id": OTHER_BANK}, DisposalMode.TRANSFER, {}),
    ("pledgee_mismatch", {"pledgee_org_id": None}, DisposalMode.TRANSFER, {}),
    ("preservation_order", {"preservation_order": True}, DisposalMode.TRANSFER, {}),
    ("ownership_dispute", {"ownership_dispute": True}, DisposalMode.TRANSFER, {}),
    ("co_owner_consent_missing", {"co_owners": (CoOwner("乙公司"),)}, DisposalMode.TRANSFER, {}),
    (
        "co_owner_consent_missing",
        {"co_owners": (CoOwner("乙公司", consented=True), CoOwner("丙公司"))},
        LIC,
        {"license_terms": terms(type=LicenseType.SOLE)},
    ),
    (
        "exclusive_license_conflict",
        {"licenses": (existing(),)},
        LIC,
        {"license_terms": terms(type="exclusive")},
    ),
    ("license_term_exceeds_remaining", {"expires_on": date(2026, 5, 31)}, LIC, {"license_terms": terms()}),
    (
        "gi_transfer_unqualified",
        {"kind": AssetKind.GEOGRAPHICAL_INDICATION, "legal_status": LegalStatus.REGISTERED, "filed_on": None},
        DisposalMode.TRANSFER,
        {},
    ),
]


@pytest.mark.parametrize(("code", "overrides", "mode", "kwargs"), SINGLE_PROBLEM_CASES)
def test_each_problem_is_reported_alone(
    code: str, overrides: dict[str, Any], mode: DisposalMode, kwargs: dict[str, Any]
) -> None:
    problems = m.eligibility(make_asset(**overrides), listing_bank_id=BANK, today=TODAY, mode=mode, **kwargs)
    assert [p.code for p in problems] == [code]
    assert problems[0].detail
    assert problems[0].asset_id is not None


def test_a_trademark_assignment_without_its_similar_marks_is_refused() -> None:
    mark, sibling = make_mark(), make_mark()
    assert check(mark, owner_other_marks=[mark, sibling]) == ["similar_marks_missing"]
    problems = m.eligibility(
        mark, listing_bank_id=BANK, today=TODAY, mode=DisposalMode.TRANSFER, owner_other_marks=[sibling]
    )
    assert sibling.registration_no in problems[0].detail


def test_a_bundle_with_every_similar_mark_passes_rule_27() -> None:
    mark, sibling, unrelated = make_mark(), make_mark(), make_mark(group="G2")
    others = [mark, sibling, unrelated]
    assert check(mark, DisposalMode.BUNDLE, bundle_assets=[sibling], owner_other_marks=others) == []
    assert check(mark, DisposalMode.BUNDLE, bundle_assets=[unrelated], owner_other_marks=others) == [
        "similar_marks_missing"
    ]


def test_licensing_a_trademark_does_not_need_its_similar_marks() -> None:
    mark, sibling = make_mark(), make_mark()
    assert check(mark, LIC, license_terms=terms(), owner_other_marks=[sibling]) == []


def test_every_problem_is_reported_at_once() -> None:
    asset = make_asset(
        legal_status=LegalStatus.INVALIDATED,
        expires_on=date(2025, 1, 1),
        annuity_paid_through=date(2023, 12, 31),
        appraised_on=date(2023, 1, 1),
        pledgee_org_id=OTHER_BANK,
        preservation_order=True,
        ownership_dispute=True,
        co_owners=(CoOwner("乙公司"),),
        licenses=(existing(),),
    )
    codes = check(asset, LIC, license_terms=terms(type=LicenseType.EXCLUSIVE))
    assert sorted(codes) == sorted(
        [
            "invalidated",
            "expired",
            "annuity_unpaid",
            "appraisal_stale",
            "pledgee_mismatch",
            "preservation_order",
            "ownership_dispute",
            "co_owner_consent_missing",
            "exclusive_license_conflict",
            "license_term_exceeds_remaining",
        ]
    )


def test_several_gi_and_mark_problems_are_reported_together() -> None:
    gi = make_mark(
        group=None,
        kind=AssetKind.GEOGRAPHICAL_INDICATION,
        legal_status=LegalStatus.LAPSED,
        appraisal_fen=None,
        ownership_dispute=True,
    )
    assert sorted(check(gi, DisposalMode.ENTRUSTED_ACQUISITION)) == [
        "appraisal_missing",
        "gi_transfer_unqualified",
        "lapsed",
        "ownership_dispute",
    ]


def test_status_expired_is_not_reported_twice() -> None:
    asset = make_asset(legal_status=LegalStatus.EXPIRED, expires_on=date(2020, 1, 1))
    assert check(asset) == ["expired"]


def test_annuity_grace_is_six_months_inclusive() -> None:
    asset = make_asset(annuity_paid_through=date(2024, 12, 1))
    assert check(asset, today=date(2025, 6, 1)) == []
    assert check(asset, today=date(2025, 6, 2)) == ["annuity_unpaid"]


def test_annuity_paid_to_the_end_of_the_term_is_never_due() -> None:
    asset = make_asset(expires_on=date(2025, 12, 31), annuity_paid_through=date(2025, 12, 31))
    assert check(asset, today=date(2025, 12, 31)) == []


def test_annuities_are_only_checked_for_patents_and_only_when_recorded() -> None:
    assert check(make_asset(annuity_paid_through=None)) == []
    ic = make_asset(
        kind=AssetKind.IC_LAYOUT, annuity_paid_through=date(2020, 1, 1), filed_on=date(2020, 1, 1)
    )
    assert check(ic) == []


def test_appraisal_is_valid_for_exactly_one_year() -> None:
    asset = make_asset(appraised_on=date(2024, 6, 1))
    assert check(asset, today=date(2025, 6, 1)) == []
    assert check(asset, today=date(2025, 6, 2)) == ["appraisal_stale"]


def test_a_non_exclusive_licence_needs_no_co_owner_consent() -> None:
    asset = make_asset(co_owners=(CoOwner("乙公司"),))
    assert check(asset, LIC, license_terms=terms()) == []
    assert check(asset, LIC) == []  # terms missing: the type defaults to non-exclusive
    assert check(asset, LIC, license_terms=terms(type=LicenseType.EXCLUSIVE)) == ["co_owner_consent_missing"]
    consented = make_asset(co_owners=(CoOwner("乙公司", consented=True),))
    assert check(consented) == []


@pytest.mark.parametrize(
    ("licence", "new_type", "conflict"),
    [
        (existing(LicenseType.EXCLUSIVE), LicenseType.EXCLUSIVE, True),
        (existing(LicenseType.SOLE), LicenseType.SOLE, True),
        (existing(LicenseType.SOLE), LicenseType.EXCLUSIVE, True),
        (existing(LicenseType.EXCLUSIVE), LicenseType.NON_EXCLUSIVE, True),
        (existing(LicenseType.NON_EXCLUSIVE), LicenseType.EXCLUSIVE, False),
        (existing(LicenseType.NON_EXCLUSIVE), LicenseType.NON_EXCLUSIVE, False),
        (existing(territory="浙江"), LicenseType.EXCLUSIVE, False),
        (existing(territory="浙江、广东"), LicenseType.EXCLUSIVE, True),
        (existing(territory="中国"), LicenseType.EXCLUSIVE, True),
        (existing(territory=""), LicenseType.EXCLUSIVE, True),
        (existing(field="储能"), LicenseType.EXCLUSIVE, False),
        (existing(field="ALL"), LicenseType.EXCLUSIVE, True),
        (existing(ends_on=date(2025, 5, 31)), LicenseType.EXCLUSIVE, False),
        (existing(ends_on=date(2025, 6, 1)), LicenseType.EXCLUSIVE, True),
        (existing(ends_on=None), LicenseType.EXCLUSIVE, True),
        (existing(starts_on=date(2027, 6, 1), ends_on=None), LicenseType.EXCLUSIVE, False),
        (existing(starts_on=date(2027, 5, 31), ends_on=None), LicenseType.EXCLUSIVE, True),
    ],
)
def test_exclusive_licence_conflicts_need_overlapping_field_territory_and_term(
    licence: License, new_type: LicenseType, conflict: bool
) -> None:
    codes = check(make_asset(licenses=(licence,)), LIC, license_terms=terms(type=new_type))
    assert codes == (["exclusive_license_conflict"] if conflict else [])


def test_a_licence_may_run_to_the_last_day_of_the_right() -> None:
    asset = make_asset(expires_on=date(2027, 5, 31))
    assert m.remaining_term_months(asset, TODAY) == 24
    assert check(asset, LIC, license_terms=terms(term_months=24)) == []
    assert check(asset, LIC, license_terms=terms(term_months=25)) == ["license_term_exceeds_remaining"]


def test_a_future_licence_start_is_measured_from_that_start() -> None:
    asset = make_asset(expires_on=date(2027, 5, 31))
    late = terms(term_months=24, starts_on=date(2025, 7, 1))
    assert check(asset, LIC, license_terms=late) == ["license_term_exceeds_remaining"]


def test_a_gi_may_be_licensed_or_transferred_to_a_qualified_body() -> None:
    gi = make_mark(group=None, kind=AssetKind.GEOGRAPHICAL_INDICATION)
    assert check(gi, LIC, license_terms=terms()) == []
    assert check(gi, DisposalMode.TRANSFER, gi_buyer_qualified=True) == []
    assert check(gi, DisposalMode.BUNDLE) == ["gi_transfer_unqualified"]


def test_an_unregistered_copyright_term_is_not_a_problem() -> None:
    work = make_asset(kind=AssetKind.SOFTWARE_COPYRIGHT, legal_status=LegalStatus.REGISTERED, filed_on=None)
    assert m.remaining_term_months(work, TODAY) is None
    assert check(work, LIC, license_terms=terms(term_months=600)) == []


# --------------------------------------------------------------------------- terms


@pytest.mark.parametrize(
    ("overrides", "ends"),
    [
        ({"filed_on": date(2005, 3, 1)}, date(2025, 2, 28)),
        ({"kind": AssetKind.UTILITY_MODEL, "filed_on": date(2016, 2, 29)}, date(2026, 2, 27)),
        ({"kind": AssetKind.DESIGN_PATENT, "filed_on": date(2021, 6, 1)}, date(2036, 5, 31)),
        ({"kind": AssetKind.DESIGN_PATENT, "filed_on": date(2021, 5, 31)}, date(2031, 5, 30)),
        ({"kind": AssetKind.TRADEMARK, "granted_on": date(2019, 1, 7)}, date(2029, 1, 6)),
        ({"kind": AssetKind.GEOGRAPHICAL_INDICATION, "granted_on": date(2015, 4, 1)}, date(2025, 3, 31)),
        ({"kind": AssetKind.IC_LAYOUT, "filed_on": date(2018, 5, 1)}, date(2028, 4, 30)),
        (
            {"kind": AssetKind.IC_LAYOUT, "filed_on": date(2018, 5, 1), "first_use_on": date(2017, 5, 1)},
            date(2027, 4, 30),
        ),
        (
            {"kind": AssetKind.IC_LAYOUT, "filed_on": date(2018, 5, 1), "created_on": date(2012, 1, 1)},
            date(2026, 12, 31),
        ),
        (
            {"kind": AssetKind.COPYRIGHT, "filed_on": None, "first_use_on": date(2001, 6, 1)},
            date(2051, 12, 31),
        ),
        ({"expires_on": date(2031, 1, 1)}, date(2031, 1, 1)),
        ({"kind": AssetKind.TRADEMARK, "granted_on": None}, None),
        ({"kind": AssetKind.IC_LAYOUT, "filed_on": None}, None),
    ],
)
def test_statutory_terms(overrides: dict[str, Any], ends: date | None) -> None:
    assert m.term_ends_on(make_asset(**overrides)) == ends


def test_remaining_term_counts_whole_months_to_the_last_day() -> None:
    asset = make_asset(expires_on=date(2025, 2, 28))
    assert m.remaining_term_months(asset, date(2025, 1, 31)) == 1
    assert m.remaining_term_months(asset, date(2025, 2, 1)) == 1
    assert m.remaining_term_months(asset, date(2025, 2, 2)) == 0
    assert m.remaining_term_months(asset, date(2025, 3, 1)) == 0


@settings(max_examples=150, deadline=None)
@given(today=st.dates(date(2000, 1, 1), date(2060, 1, 1)), ends=st.dates(date(2000, 1, 1), date(2080, 1, 1)))
def test_remaining_term_is_the_longest_licence_that_fits(today: date, ends: date) -> None:
    months = m.remaining_term_months(make_asset(expires_on=ends), today)
    assert months is not None and months >= 0
    after_last_day = ends + timedelta(days=1)
    assert months == 0 or m.add_months(today, months) <= after_last_day
    assert m.add_months(today, months + 1) > after_last_day


def test_add_months_clamps_to_the_end_of_the_month() -> None:
    assert m.add_months(date(2025, 1, 31), 1) == date(2025, 2, 28)
    assert m.add_years(date(2024, 2, 29), 1) == date(2025, 2, 28)
    assert m.add_months(date(2025, 3, 15), -3) == date(2024, 12, 15)


# --------------------------------------------------------------------------- listing shape


def shape(mode: DisposalMode, count: int = 1, **kwargs: Any) -> list[str]:
    assets = [make_asset() for _ in range(count)]
    return [p.code for p in m.validate_listing(mode, assets, **kwargs)]


BACKSTOP = Backstop(acquirer_org_id=9, price_fen=1_000_000, break_up_fee_fen=30_000, expense_fen=20_000)


def test_valid_listing_shapes() -> None:
    assert shape(DisposalMode.LICENSE, license_terms=terms(upfront_fen=0, royalty_bp=500)) == []
    assert shape(DisposalMode.TRANSFER) == []
    assert shape(DisposalMode.BUNDLE, 2) == []
    assert shape(DisposalMode.ENTRUSTED_ACQUISITION, 3, backstop=BACKSTOP) == []
    assert shape(DisposalMode.TRANSFER, backstop=BACKSTOP) == []


def test_licence_terms_default_to_non_exclusive() -> None:
    assert terms().type is LicenseType.NON_EXCLUSIVE


@pytest.mark.parametrize(
    ("mode", "count", "kwargs", "codes"),
    [
        (DisposalMode.TRANSFER, 0, {}, ["no_assets"]),
        (DisposalMode.TRANSFER, 2, {}, ["single_asset_required"]),
        (DisposalMode.LICENSE, 2, {"license_terms": terms()}, ["single_asset_required"]),
        (DisposalMode.LICENSE, 1, {}, ["license_terms_required"]),
        (DisposalMode.LICENSE, 1, {"license_terms": terms(term_months=0)}, ["license_term_invalid"]),
        (DisposalMode.LICENSE, 1, {"license_terms": terms(territory=" ")}, ["license_territory_required"]),
        (DisposalMode.LICENSE, 1, {"license_terms": terms(field="")}, ["license_field_required"]),
        (DisposalMode.LICENSE, 1, {"license_terms": terms(upfront_fen=-1)}, ["license_fee_invalid"]),
        (DisposalMode.LICENSE, 1, {"license_terms": terms(royalty_bp=10_001)}, ["license_royalty_invalid"]),
        (DisposalMode.BUNDLE, 1, {}, ["bundle_too_small"]),
        (DisposalMode.ENTRUSTED_ACQUISITION, 1, {}, ["backstop_required"]),
        (DisposalMode.TRANSFER, 1, {"license_terms": terms()}, ["license_terms_unexpected"]),
        (
            DisposalMode.ENTRUSTED_ACQUISITION,
            1,
            {"backstop": replace(BACKSTOP, break_up_fee_fen=30_001)},
            ["break_up_fee_too_high", "bid_protection_too_high"],
        ),
        (
            DisposalMode.LICENSE,
            3,
            {"license_terms": terms(term_months=-1, territory="", field="")},
            [
                "single_asset_required",
                "license_term_invalid",
                "license_territory_required",
                "license_field_required",
            ],
        ),
    ],
)
def test_listing_shape_problems(
    mode: DisposalMode, count: int, kwargs: dict[str, Any], codes: list[str]
) -> None:
    assert shape(mode, count, **kwargs) == codes


def test_duplicate_assets_are_refused() -> None:
    asset = make_asset()
    codes = [p.code for p in m.validate_listing(DisposalMode.BUNDLE, [asset, asset])]
    assert codes == ["duplicate_assets"]


def test_listing_problems_combine_shape_and_every_assets_eligibility() -> None:
    mark, sibling, left_out = make_mark(), make_mark(), make_mark()
    bad = make_asset(pledgee_org_id=OTHER_BANK)
    problems = m.listing_problems(
        DisposalMode.BUNDLE,
        [mark, sibling, bad],
        listing_bank_id=BANK,
        today=TODAY,
        owner_other_marks=[mark, sibling, left_out],
    )
    assert [(p.code, p.asset_id) for p in problems] == [
        ("similar_marks_missing", mark.id),
        ("similar_marks_missing", sibling.id),
        ("pledgee_mismatch", bad.id),
    ]
    with pytest.raises(m.ListingInvalid) as raised:
        m.raise_for_problems(problems)
    assert raised.value.code == "listing_invalid"
    assert [p["code"] for p in raised.value.data["problems"]] == [p.code for p in problems]


def test_listing_problems_of_a_good_licence() -> None:
    problems = m.listing_problems(
        DisposalMode.LICENSE, [make_asset()], listing_bank_id=BANK, today=TODAY, license_terms=terms()
    )
    assert problems == []
    m.raise_for_problems(problems)


# --------------------------------------------------------------------------- backstop


def test_break_up_fee_boundary_is_exactly_three_percent() -> None:
    m.validate_backstop(1_000_000, 30_000, 0)
    with pytest.raises(m.BreakUpFeeTooHigh) as raised:
        m.validate_backstop(1_000_000, 30_001, 0)
    assert raised.value.code == "break_up_fee_too_high"
    m.validate_backstop(333, 9, 0)  # 9 / 333 = 2.70 %
    with pytest.raises(m.BreakUpFeeTooHigh):
        m.validate_backstop(333, 10, 0)  # 10 / 333 = 3.003 %


def test_fee_plus_expenses_boundary_is_exactly_five_percent() -> None:
    m.validate_backstop(1_000_000, 30_000, 20_000)
    with pytest.raises(m.BidProtectionTooHigh) as raised:
        m.validate_backstop(1_000_000, 30_000, 20_001)
    assert raised.value.code == "bid_protection_too_high"
    m.validate_backstop(1_000_000, 0, 50_000)


def test_both_caps_broken_reports_the_fee_first() -> None:
    with pytest.raises(m.BreakUpFeeTooHigh):
        m.validate_backstop(100, 10, 10)
    assert [p.code for p in m.backstop_problems(100, 10, 10)] == [
        "break_up_fee_too_high",
        "bid_protection_too_high",
    ]


@pytest.mark.parametrize("args", [(0, 0, 0), (-5, 0, 0), (100, -1, 0), (100, 0, -1)])
def test_backstop_needs_a_positive_price_and_non_negative_fees(args: tuple[int, int, int]) -> None:
    with pytest.raises(m.BackstopInvalid):
        m.validate_backstop(*args)


@pytest.mark.parametrize("args", [(1000.0, 0, 0), (1000, 1.5, 0), (1000, 0, True)])
def test_backstop_amounts_must_be_integer_fen(args: tuple[Any, Any, Any]) -> None:
    with pytest.raises(NotIntegerFen):
        m.validate_backstop(*args)


@settings(max_examples=150, deadline=None)
@given(
    price=st.integers(1, 10**13),
    fee=st.integers(0, 10**12),
    expense=st.integers(0, 10**12),
)
def test_backstop_caps_match_exact_fractions(price: int, fee: int, expense: int) -> None:
    fee_ok = Fraction(fee, price) <= Fraction(3, 100)
    total_ok = Fraction(fee + expense, price) <= Fraction(5, 100)
    codes = [p.code for p in m.backstop_problems(price, fee, expense)]
    assert ("break_up_fee_too_high" not in codes) == fee_ok
    assert ("bid_protection_too_high" not in codes) == total_ok


def test_minimum_qualifying_bid_is_price_plus_fee_plus_one_increment() -> None:
    assert m.minimum_qualifying_bid(1_000_000, 30_000, 5_000) == 1_035_000
    assert m.minimum_qualifying_bid(1_000_000, 0, 1) == 1_000_001
    with pytest.raises(m.BackstopInvalid):
        m.minimum_qualifying_bid(1_000_000, 30_000, 0)
    with pytest.raises(NotIntegerFen):
        m.minimum_qualifying_bid(1_000_000, 30_000, 0.5)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- ranks


def pledge(claim_id: int, registered_on: date | None = None) -> Pledge:
    return Pledge(claim_id=claim_id, asset_id=11, registered_on=registered_on)


def test_ranks_follow_registration_dates_and_put_unregistered_last() -> None:
    p1 = pledge(1, date(2022, 5, 1))
    p2 = pledge(2, None)
    p3 = pledge(3, date(2021, 1, 1))
    p4 = pledge(4, date(2022, 5, 1))
    p5 = pledge(5, None)
    assert m.ranks([p1, p2, p3, p4, p5]) == [[p3], [p1, p4], [p2, p5]]


def test_ranks_edge_cases() -> None:
    assert m.ranks([]) == []
    only_unregistered = [pledge(1), pledge(2)]
    assert m.ranks(only_unregistered) == [only_unregistered]
    with pytest.raises(ValueError):
        m.ranks([pledge(1), Pledge(claim_id=2, asset_id=12)])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.none(), st.dates(date(2020, 1, 1), date(2020, 1, 10))), max_size=12))
def test_ranks_partition_the_pledges_in_legal_order(days: list[date | None]) -> None:
    pledges = [pledge(i, day) for i, day in enumerate(days)]
    groups = m.ranks(pledges)
    assert sorted(p.claim_id for g in groups for p in g) == list(range(len(days)))
    assert all(groups)
    days_per_rank = [{p.registered_on for p in g} for g in groups]
    assert all(len(days) == 1 for days in days_per_rank)
    heads = [next(iter(days)) for days in days_per_rank]
    registered = [day for day in heads if day is not None]
    assert registered == sorted(set(registered))
    assert heads[len(registered) :] in ([], [None])


# --------------------------------------------------------------------------- limitation


def test_limitation_runs_three_years_from_default() -> None:
    claim = make_claim(defaulted_on=date(2022, 3, 10))
    assert m.limitation_ends_on(claim) == date(2025, 3, 10)
    assert not m.limitation_expired(claim, date(2025, 3, 10))
    assert m.limitation_expired(claim, date(2025, 3, 11))
    m.check_can_start_disposal(claim, date(2025, 3, 10))
    with pytest.raises(m.ClaimTimeBarred) as raised:
        m.check_can_start_disposal(claim, date(2025, 3, 11))
    assert raised.value.code == "claim_time_barred"
    assert raised.value.data["limitation_ended_on"] == "2025-03-10"


def test_an_interruption_restarts_the_period() -> None:
    claim = make_claim(defaulted_on=date(2020, 1, 1), limitation_interrupted_on=date(2023, 6, 30))
    assert not m.limitation_expired(claim, date(2026, 6, 30))
    assert m.limitation_expired(claim, date(2026, 7, 1))
    earlier = make_claim(defaulted_on=date(2022, 3, 10), limitation_interrupted_on=date(2021, 1, 1))
    assert m.limitation_ends_on(earlier) == date(2025, 3, 10)


def test_claim_totals_and_bucket_order() -> None:
    claim = make_claim()
    assert claim.total_fen == 5_000_000_00 + 30_000_00 + 12_000_00
    assert claim.payment_order == m.DEFAULT_BUCKET_ORDER
    custom = (m.Bucket.PRINCIPAL, m.Bucket.INTEREST, m.Bucket.COSTS)
    assert make_claim(bucket_order=custom).payment_order == custom
    with pytest.raises(m.BucketOrderInvalid):
        make_claim(bucket_order=(m.Bucket.PRINCIPAL, m.Bucket.PRINCIPAL, m.Bucket.COSTS))


# --------------------------------------------------------------------------- rule 22


def test_remaining_lots_are_withdrawn_once_the_claim_is_covered() -> None:
    assert m.lots_to_withdraw(1_000, 1_000, [3, 4], False) == [3, 4]
    assert m.lots_to_withdraw(1_000, 1_200, ["c"], False) == ["c"]
    assert m.lots_to_withdraw(1_000, 999, [3, 4], False) == []
    assert m.lots_to_withdraw(1_000, 5_000, [3, 4], True) == []
    with pytest.raises(NotIntegerFen):
        m.lots_to_withdraw(1_000, 999.5, [3], False)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- lifecycle

S, A = ListingStatus, ListingAction
EXPECTED_EDGES = {
    (S.DRAFT, A.PUBLISH): S.PUBLISHED,
    (S.PUBLISHED, A.START_AUCTION): S.IN_AUCTION,
    (S.PUBLISHED, A.START_NEGOTIATION): S.IN_NEGOTIATION,
    (S.PUBLISHED, A.WITHDRAW): S.WITHDRAWN,
    (S.IN_AUCTION, A.SELL): S.SOLD,
    (S.IN_AUCTION, A.FAIL): S.FAILED,
    (S.IN_AUCTION, A.WITHDRAW): S.WITHDRAWN,
    (S.IN_AUCTION, A.REOPEN): S.PUBLISHED,
    (S.IN_NEGOTIATION, A.SELL): S.SOLD,
    (S.IN_NEGOTIATION, A.FAIL): S.FAILED,
    (S.IN_NEGOTIATION, A.WITHDRAW): S.WITHDRAWN,
    (S.IN_NEGOTIATION, A.REOPEN): S.PUBLISHED,
    (S.FAILED, A.PUBLISH): S.PUBLISHED,
    (S.FAILED, A.WITHDRAW): S.WITHDRAWN,
    (S.FAILED, A.SELL): S.SOLD,
    (S.SOLD, A.BUYER_DEFAULT): S.PUBLISHED,
}


@pytest.mark.parametrize(("edge", "target"), list(EXPECTED_EDGES.items()))
def test_every_legal_edge(edge: tuple[ListingStatus, ListingAction], target: ListingStatus) -> None:
    source, action = edge
    reason = WithdrawalReason.BANK_WITHDRAWS if action is A.WITHDRAW else None
    new, record = m.transition(make_listing(source), action, reason=reason, now=NOW)
    assert new.status is target
    assert (record.from_status, record.to_status, record.action, record.at) == (source, target, action, NOW)
    assert record.listing_id == 1
    assert new.status_changed_at == NOW


ILLEGAL = [(s, a) for s in ListingStatus for a in ListingAction if (s, a) not in EXPECTED_EDGES]


@pytest.mark.parametrize(("source", "action"), ILLEGAL)
def test_every_other_move_is_illegal(source: ListingStatus, action: ListingAction) -> None:
    with pytest.raises(m.IllegalTransition) as raised:
        m.transition(make_listing(source), action, reason=WithdrawalReason.CLAIM_REPAID, now=NOW)
    assert raised.value.code == "illegal_transition"
    assert isinstance(raised.value, Conflict)


def test_the_edge_table_is_the_expected_graph() -> None:
    assert dict(m.EDGES) == EXPECTED_EDGES
    assert m.allowed_actions(S.PUBLISHED) == {A.START_AUCTION, A.START_NEGOTIATION, A.WITHDRAW}
    assert m.allowed_actions(S.WITHDRAWN) == frozenset()


def test_unknown_actions_are_illegal() -> None:
    with pytest.raises(m.IllegalTransition):
        m.transition(make_listing(), "teleport", now=NOW)
    new, _ = m.transition(make_listing(), "publish", now=NOW)
    assert new.status is S.PUBLISHED


def test_withdrawal_needs_a_rule_21_reason() -> None:
    listing = make_listing(S.PUBLISHED)
    for missing in (None, "", "  "):
        with pytest.raises(m.ReasonRequired) as raised:
            m.transition(listing, A.WITHDRAW, reason=missing, now=NOW)
        assert raised.value.code == "reason_required"
    with pytest.raises(m.WithdrawalReasonInvalid):
        m.transition(listing, A.WITHDRAW, reason="changed my mind", now=NOW)
    new, record = m.transition(listing, A.WITHDRAW, reason="third_party_objection", now=NOW)
    assert new.withdrawal_reason is WithdrawalReason.THIRD_PARTY_OBJECTION
    assert record.reason == "third_party_objection"


def test_publishing_stamps_each_round() -> None:
    first, _ = m.transition(make_listing(), A.PUBLISH, now=NOW)
    assert first.published_at == NOW
    later = NOW + timedelta(days=40)
    auction, _ = m.transition(first, A.START_AUCTION, now=later)
    assert auction.published_at == NOW
    failed, _ = m.transition(auction, A.FAIL, reason="no bids", now=later)
    again, record = m.transition(failed, A.PUBLISH, now=later)
    assert again.published_at == later
    assert record.reason is None


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(list(ListingAction)),
            st.one_of(st.none(), st.sampled_from(list(WithdrawalReason)), st.just("nonsense")),
        ),
        max_size=30,
    )
)
def test_random_action_sequences_only_ever_take_legal_edges(
    steps: list[tuple[ListingAction, str | None]],
) -> None:
    listing = make_listing()
    trail: list[m.Transition] = []
    for i, (action, reason) in enumerate(steps):
        now = NOW + timedelta(minutes=i)
        try:
            listing, record = m.transition(listing, action, reason=reason, now=now)
        except m.IllegalTransition:
            assert (listing.status, action) not in EXPECTED_EDGES
            continue
        except (m.ReasonRequired, m.WithdrawalReasonInvalid):
            assert action is A.WITHDRAW and reason not in set(WithdrawalReason)
            continue
        assert EXPECTED_EDGES[(record.from_status, record.action)] == record.to_status == listing.status
        trail.append(record)
    assert all(a.to_status == b.from_status for a, b in itertools.pairwise(trail))
    assert all(r.reason in set(WithdrawalReason) for r in trail if r.action is A.WITHDRAW)
    if trail and trail[-1].to_status is S.WITHDRAWN:
        assert listing.status is S.WITHDRAWN


# --------------------------------------------------------------------------- conventions


def _error_classes() -> list[type[MarketError]]:
    return [v for v in vars(m).values() if isinstance(v, type) and issubclass(v, MarketError)]


def test_error_codes_are_unique_snake_case_and_in_a_family() -> None:
    own = [cls for cls in _error_classes() if cls.__module__ == m.__name__]
    codes = [cls.code for cls in own]
    assert len(codes) == len(set(codes))
    assert all(code.replace("_", "").isalpha() and code == code.lower() for code in codes)
    assert all(issubclass(cls, RuleViolation | Conflict) for cls in own)
