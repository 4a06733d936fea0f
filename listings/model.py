"""Collateral and listings: the pure domain model of what banks put up for disposal.

A bank holds a defaulted **claim** (a loan with costs, interest and principal buckets) secured by
**pledges** over intellectual-property **assets** (patents, trademarks, copyrights, IC layouts,
geographical indications). To recover the claim it creates a **listing** that disposes of one or
more assets by licence, transfer, bundle or entrusted acquisition (a backstop acquirer who buys at
a recorded price unless a better bid arrives).

Everything here is pure: values in, values (or a ``MarketError``) out. ``today`` and ``now`` are
always arguments; nothing reads a clock, a database or the network. Rule numbers refer to
``DOMAIN.md`` "Rules to implement".

- Eligibility (rules 26-28, DOMAIN 3.3 and 6.10) returns *every* problem as a ``Problem`` with a
  stable ``code``, so a bank sees the whole list at once.
- Pledge ranks (rule 24), limitation (rule 31), the listing lifecycle (rule 21), withdrawing
  surplus lots (rule 22) and backstop bid protections (rule 35) are plain functions.
"""

from __future__ import annotations

import calendar
import enum
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from market.errors import (
    Conflict,
    NotIntegerFen,
    ReasonRequired,  # shared conditions, re-exported here
    RuleViolation,
)

T = TypeVar("T")

# --------------------------------------------------------------------------- vocabulary


class AssetKind(enum.StrEnum):
    """The kinds of pledged IP the platform disposes of."""

    INVENTION_PATENT = "invention_patent"
    UTILITY_MODEL = "utility_model"
    DESIGN_PATENT = "design_patent"
    TRADEMARK = "trademark"
    COPYRIGHT = "copyright"
    SOFTWARE_COPYRIGHT = "software_copyright"
    IC_LAYOUT = "ic_layout"
    GEOGRAPHICAL_INDICATION = "geographical_indication"


PATENT_KINDS = frozenset({AssetKind.INVENTION_PATENT, AssetKind.UTILITY_MODEL, AssetKind.DESIGN_PATENT})
COPYRIGHT_KINDS = frozenset({AssetKind.COPYRIGHT, AssetKind.SOFTWARE_COPYRIGHT})
MARK_KINDS = frozenset({AssetKind.TRADEMARK, AssetKind.GEOGRAPHICAL_INDICATION})


class LegalStatus(enum.StrEnum):
    """Where the right stands at its registry."""

    PENDING = "pending"  # application filed, not granted / registered yet
    GRANTED = "granted"  # patents, IC layouts
    REGISTERED = "registered"  # trademarks, GIs, registered copyrights
    LAPSED = "lapsed"  # annuity or renewal not paid, or surrendered
    EXPIRED = "expired"  # statutory term over
    INVALIDATED = "invalidated"  # declared invalid (宣告无效)
    REVOKED = "revoked"  # registration revoked (撤销), e.g. a trademark for non-use


IN_FORCE = frozenset({LegalStatus.GRANTED, LegalStatus.REGISTERED})


class LicenseType(enum.StrEnum):
    """Licence types of DOMAIN 3.1; unspecified means non-exclusive."""

    EXCLUSIVE = "exclusive"  # 独占: one licensee, not even the licensor practises
    SOLE = "sole"  # 排他: one licensee, the licensor may still practise
    NON_EXCLUSIVE = "non_exclusive"  # 普通


EXCLUSIVE_TYPES = frozenset({LicenseType.EXCLUSIVE, LicenseType.SOLE})


class DisposalMode(enum.StrEnum):
    """How a listing disposes of its assets."""

    LICENSE = "license"
    TRANSFER = "transfer"
    BUNDLE = "bundle"
    ENTRUSTED_ACQUISITION = "entrusted_acquisition"


ASSIGNMENT_MODES = frozenset({DisposalMode.TRANSFER, DisposalMode.BUNDLE, DisposalMode.ENTRUSTED_ACQUISITION})


class ListingStatus(enum.StrEnum):
    """Lifecycle states of a listing; see ``transition``."""

    DRAFT = "draft"
    PUBLISHED = "published"
    IN_AUCTION = "in_auction"
    IN_NEGOTIATION = "in_negotiation"
    SOLD = "sold"
    FAILED = "failed"
    WITHDRAWN = "withdrawn"


class WithdrawalReason(enum.StrEnum):
    """Why a listing is withdrawn (rule 21; DOMAIN 1.11.3, 1.11.6)."""

    CLAIM_REPAID = "claim_repaid"  # the debtor paid in full (still bears incurred costs)
    BANK_WITHDRAWS = "bank_withdraws"
    PARTIES_SETTLED = "parties_settled"
    THIRD_PARTY_OBJECTION = "third_party_objection"  # justified ownership objection
    TITLE_SET_ASIDE = "title_set_aside"  # enforcement title / self-disposal basis set aside
    AUCTIONEER_COLLUSION = "auctioneer_collusion"
    CLAIM_COVERED = "claim_covered"  # rule 22: earlier lots already cover claim + costs


class Bucket(enum.StrEnum):
    """Buckets of a claim, paid costs -> interest -> principal unless agreed otherwise."""

    COSTS = "costs"
    INTEREST = "interest"
    PRINCIPAL = "principal"


DEFAULT_BUCKET_ORDER = (Bucket.COSTS, Bucket.INTEREST, Bucket.PRINCIPAL)

# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class CoOwner:
    """A co-owner of the right and whether it consented to this disposal."""

    name: str
    consented: bool = False


@dataclass(frozen=True, slots=True)
class License:
    """An existing licence on the asset; it survives an assignment (DOMAIN 3.3.4).

    Empty ``field``/``territory`` mean unrestricted; ``ends_on=None`` means until the right ends.
    """

    type: LicenseType
    field: str
    territory: str
    starts_on: date
    ends_on: date | None = None
    licensee: str = ""


@dataclass(frozen=True, slots=True)
class Asset:
    """A pledged IP right as the bank recorded it.

    ``registration_no`` is text (leading zeros and check digits matter). ``expires_on`` is the
    registry's end date when known; otherwise the statutory term is derived from the other dates
    (see ``term_ends_on``). ``first_use_on`` is the first publication (copyright) or the first
    commercial exploitation (IC layout). ``similar_mark_group`` ties a trademark to the owner's
    same or similar marks on the same or similar goods (rule 27).
    """

    id: int
    kind: AssetKind
    registration_no: str
    title_zh: str
    holder: str
    legal_status: LegalStatus
    pledgee_org_id: int | None = None
    title_en: str = ""
    filed_on: date | None = None
    granted_on: date | None = None
    expires_on: date | None = None
    first_use_on: date | None = None
    created_on: date | None = None
    classes: tuple[str, ...] = ()
    appraisal_fen: int | None = None
    appraised_on: date | None = None
    appraiser: str = ""
    co_owners: tuple[CoOwner, ...] = ()
    licenses: tuple[License, ...] = ()
    annuity_paid_through: date | None = None
    preservation_order: bool = False
    ownership_dispute: bool = False
    similar_mark_group: str | None = None


@dataclass(frozen=True, slots=True)
class Borrower:
    """The defaulted borrower: name and unified social credit code (统一社会信用代码)."""

    name: str
    credit_code: str


class BucketOrderInvalid(RuleViolation):
    code = "bucket_order_invalid"
    title = "The bucket order must name costs, interest and principal once each"


@dataclass(frozen=True, slots=True)
class Claim:
    """A defaulted loan with its outstanding buckets, in fen.

    ``limitation_interrupted_on`` is the last recorded interruption of the limitation period
    (demand, acknowledgement, suit). ``bucket_order`` is a contractual payment order, if any.

    Raises:
        BucketOrderInvalid: ``bucket_order`` is not a permutation of the three buckets.
    """

    id: int
    loan_no: str
    borrower: Borrower
    principal_fen: int
    interest_fen: int
    costs_fen: int
    defaulted_on: date
    limitation_interrupted_on: date | None = None
    bucket_order: tuple[Bucket, ...] | None = None

    def __post_init__(self) -> None:
        if self.bucket_order is not None and sorted(self.bucket_order) != sorted(DEFAULT_BUCKET_ORDER):
            raise BucketOrderInvalid(order=[str(b) for b in self.bucket_order])

    @property
    def total_fen(self) -> int:
        """Everything still owed: costs + interest + principal."""
        return self.costs_fen + self.interest_fen + self.principal_fen

    @property
    def payment_order(self) -> tuple[Bucket, ...]:
        """The contractual bucket order, else costs -> interest -> principal (CC 561)."""
        return self.bucket_order or DEFAULT_BUCKET_ORDER


@dataclass(frozen=True, slots=True)
class Pledge:
    """A pledge of one asset securing one claim; ``registered_on=None`` means unregistered.

    ``rank`` is what the bank declared; the effective rank comes from ``ranks``.
    """

    claim_id: int
    asset_id: int
    rank: int | None = None
    registration_no: str | None = None
    registered_on: date | None = None


@dataclass(frozen=True, slots=True)
class LicenseTerms:
    """The licence a licence-mode listing offers (rule 28).

    ``starts_on=None`` means the licence starts when it is granted (eligibility uses ``today``).
    ``royalty_bp`` is a running royalty in basis points of ``royalty_base`` (CC 846).
    """

    term_months: int
    territory: str
    field: str
    type: LicenseType = LicenseType.NON_EXCLUSIVE
    upfront_fen: int | None = None
    royalty_bp: int | None = None
    royalty_base: str = ""
    starts_on: date | None = None


@dataclass(frozen=True, slots=True)
class Backstop:
    """An entrusted acquirer's (stalking horse's) committed price and bid protections (rule 35)."""

    acquirer_org_id: int
    price_fen: int
    break_up_fee_fen: int = 0
    expense_fen: int = 0


@dataclass(frozen=True, slots=True)
class Listing:
    """A bank's disposal of one or more assets."""

    id: int
    bank_org_id: int
    title: str
    mode: DisposalMode
    asset_ids: tuple[int, ...]
    status: ListingStatus = ListingStatus.DRAFT
    license_terms: LicenseTerms | None = None
    backstop: Backstop | None = None
    published_at: datetime | None = None
    status_changed_at: datetime | None = None
    withdrawal_reason: WithdrawalReason | None = None


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a listing or asset cannot go ahead: a stable ``code`` and a human ``detail``."""

    code: str
    detail: str
    asset_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape used in API responses and error data."""
        return {"code": self.code, "detail": self.detail, "asset_id": self.asset_id}


class ListingInvalid(RuleViolation):
    code = "listing_invalid"
    title = "The listing cannot be accepted"


def raise_for_problems(problems: Sequence[Problem]) -> None:
    """Raise one error carrying every problem, or return if there are none.

    Raises:
        ListingInvalid: with ``data["problems"]`` listing each problem's code, detail and asset.
    """
    if problems:
        detail = "; ".join(p.detail for p in problems)
        raise ListingInvalid(detail, problems=[p.as_dict() for p in problems])


# --------------------------------------------------------------------------- dates and terms

PATENT_TERM_YEARS = {
    AssetKind.INVENTION_PATENT: 20,
    AssetKind.UTILITY_MODEL: 10,
    AssetKind.DESIGN_PATENT: 15,
}
DESIGN_LONG_TERM_FROM = date(2021, 6, 1)  # 2020 Patent Law: designs filed from here get 15 y, before 10 y
MARK_TERM_YEARS = 10
IC_TERM_YEARS = 10
IC_MAX_YEARS_FROM_CREATION = 15
COPYRIGHT_YEARS_AFTER_PUBLICATION = 50


def add_months(day: date, months: int) -> date:
    """``day`` moved by whole calendar months, clamped to the month's last day (Jan 31 + 1 = Feb 28)."""
    total = day.year * 12 + day.month - 1 + months
    year, month0 = divmod(total, 12)
    last = calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(day.day, last))


def add_years(day: date, years: int) -> date:
    """``day`` moved by whole years (Feb 29 -> Feb 28 in common years)."""
    return add_months(day, 12 * years)


def _years_from(start: date | None, years: int) -> date | None:
    """Last day of a term of ``years`` counted from ``start``."""
    return None if start is None else add_years(start, years) - timedelta(days=1)


def _patent_term_end(asset: Asset) -> date | None:
    years = PATENT_TERM_YEARS[asset.kind]
    filed = asset.filed_on
    if asset.kind is AssetKind.DESIGN_PATENT and filed is not None and filed < DESIGN_LONG_TERM_FROM:
        years = 10
    return _years_from(filed, years)


def _ic_term_end(asset: Asset) -> date | None:
    starts = [d for d in (asset.filed_on, asset.first_use_on) if d is not None]
    ends = [add_years(min(starts), IC_TERM_YEARS)] if starts else []
    if asset.created_on is not None:
        ends.append(add_years(asset.created_on, IC_MAX_YEARS_FROM_CREATION))
    return min(ends) - timedelta(days=1) if ends else None


def _copyright_term_end(asset: Asset) -> date | None:
    if asset.first_use_on is None:
        return None  # a natural person's work lasts life + 50 years: unknown here, but long
    return date(asset.first_use_on.year + COPYRIGHT_YEARS_AFTER_PUBLICATION, 12, 31)


def term_ends_on(asset: Asset) -> date | None:
    """The last day the right is in force, or ``None`` when it cannot be told.

    The registry's ``expires_on`` wins (term extensions, renewals). Otherwise: patents from the
    filing date (invention 20 y, utility 10 y, design 15 y, or 10 y if filed before 2021-06-01);
    trademarks and GIs 10 y from registration; IC layouts 10 y from the earlier of filing and first
    commercial use, never past 15 y from creation; copyright 50 y after first publication (Dec 31).
    """
    if asset.expires_on is not None:
        return asset.expires_on
    match asset.kind:
        case AssetKind.INVENTION_PATENT | AssetKind.UTILITY_MODEL | AssetKind.DESIGN_PATENT:
            return _patent_term_end(asset)
        case AssetKind.TRADEMARK | AssetKind.GEOGRAPHICAL_INDICATION:
            return _years_from(asset.granted_on, MARK_TERM_YEARS)
        case AssetKind.IC_LAYOUT:
            return _ic_term_end(asset)
        case AssetKind.COPYRIGHT | AssetKind.SOFTWARE_COPYRIGHT:
            return _copyright_term_end(asset)


def months_between(start: date, end_exclusive: date) -> int:
    """The most whole months ``m`` with ``add_months(start, m) <= end_exclusive`` (0 if none)."""
    if end_exclusive <= start:
        return 0
    months = (end_exclusive.year - start.year) * 12 + end_exclusive.month - start.month
    while months > 0 and add_months(start, months) > end_exclusive:
        months -= 1
    return months


def remaining_term_months(asset: Asset, today: date) -> int | None:
    """Whole months a licence starting ``today`` can run before the right ends.

    A licence of ``m`` months starting ``today`` fits iff ``m <= remaining_term_months``.
    Returns 0 for an ended right and ``None`` when the end date cannot be told.
    """
    end = term_ends_on(asset)
    if end is None:
        return None
    return months_between(today, end + timedelta(days=1))


# --------------------------------------------------------------------------- eligibility

ANNUITY_GRACE_MONTHS = 6
APPRAISAL_VALID_YEARS = 1

# Territory / field words that mean "everything". A PRC right is territorial to the PRC, so the
# whole country is the whole territory.
_WHOLE_SCOPE = frozenset(
    {"*", "all", "any", "unlimited", "worldwide", "global", "china", "cn", "prc", "mainland china"}
    | {"全部", "所有", "不限", "全球", "全世界", "中国", "中国大陆", "中华人民共和国", "全国", "全部领域"}
)
_SCOPE_SEPARATORS = re.compile(r"[,;/|、，；]+")


@dataclass(frozen=True, slots=True)
class _Case:
    """The inputs of one eligibility run, passed to every check."""

    asset: Asset
    listing_bank_id: int
    today: date
    mode: DisposalMode
    license_terms: LicenseTerms | None
    bundle_assets: tuple[Asset, ...]
    owner_other_marks: tuple[Asset, ...]
    gi_buyer_qualified: bool

    def problem(self, code: str, detail: str) -> Problem:
        return Problem(code, detail, self.asset.id)

    @property
    def licence_start(self) -> date:
        terms = self.license_terms
        return terms.starts_on if terms is not None and terms.starts_on is not None else self.today


_STATUS_PROBLEMS: Mapping[LegalStatus, tuple[str, str]] = {
    LegalStatus.PENDING: ("not_granted", "The right is not yet granted or registered"),
    LegalStatus.LAPSED: ("lapsed", "The right has lapsed (annuity or renewal unpaid, or surrendered)"),
    LegalStatus.EXPIRED: ("expired", "The right's term has ended"),
    LegalStatus.INVALIDATED: ("invalidated", "The right has been declared invalid"),
    LegalStatus.REVOKED: ("revoked", "The registration has been revoked"),
}


def _status_problems(case: _Case) -> list[Problem]:
    entry = _STATUS_PROBLEMS.get(case.asset.legal_status)
    return [case.problem(*entry)] if entry else []


def _term_problems(case: _Case) -> list[Problem]:
    if case.asset.legal_status is LegalStatus.EXPIRED:
        return []  # already reported by status
    end = term_ends_on(case.asset)
    if end is None:
        if case.asset.kind in COPYRIGHT_KINDS:
            return []
        return [case.problem("term_unknown", "The expiry date or the dates to derive it are missing")]
    if case.today > end:
        return [case.problem("expired", f"The right's term ended on {end.isoformat()}")]
    return []


def _annuity_problems(case: _Case) -> list[Problem]:
    asset = case.asset
    paid = asset.annuity_paid_through
    if asset.kind not in PATENT_KINDS or paid is None:
        return []
    end = term_ends_on(asset)
    grace_end = add_months(paid, ANNUITY_GRACE_MONTHS)
    if (end is not None and paid >= end) or case.today <= grace_end:
        return []
    detail = f"Annuities are paid through {paid.isoformat()}; the grace period ended {grace_end.isoformat()}"
    return [case.problem("annuity_unpaid", detail)]


def _appraisal_problems(case: _Case) -> list[Problem]:
    asset = case.asset
    if asset.appraisal_fen is None or asset.appraised_on is None or asset.appraisal_fen <= 0:
        return [case.problem("appraisal_missing", "No appraisal value and date are recorded")]
    valid_until = add_years(asset.appraised_on, APPRAISAL_VALID_YEARS)
    if case.today > valid_until:
        detail = f"The appraisal of {asset.appraised_on.isoformat()} expired on {valid_until.isoformat()}"
        return [case.problem("appraisal_stale", detail)]
    return []


def _pledgee_problems(case: _Case) -> list[Problem]:
    pledgee = case.asset.pledgee_org_id
    if pledgee == case.listing_bank_id:
        return []
    if pledgee is None:
        return [case.problem("pledgee_mismatch", "No registered pledge of this asset is recorded")]
    return [case.problem("pledgee_mismatch", "The registered pledgee is not the listing bank")]


def _encumbrance_problems(case: _Case) -> list[Problem]:
    problems = []
    if case.asset.preservation_order:
        problems.append(case.problem("preservation_order", "A court preservation order is recorded"))
    if case.asset.ownership_dispute:
        problems.append(case.problem("ownership_dispute", "An ownership dispute is recorded"))
    return problems


def needs_co_owner_consent(mode: DisposalMode, license_terms: LicenseTerms | None) -> bool:
    """Whether co-owners must all consent: anything beyond a non-exclusive licence (DOMAIN 3.3.6)."""
    if mode is not DisposalMode.LICENSE:
        return True
    return license_terms is not None and license_terms.type in EXCLUSIVE_TYPES


def _co_owner_problems(case: _Case) -> list[Problem]:
    if not needs_co_owner_consent(case.mode, case.license_terms):
        return []
    missing = [owner.name for owner in case.asset.co_owners if not owner.consented]
    if not missing:
        return []
    return [case.problem("co_owner_consent_missing", f"Consent missing from co-owners: {', '.join(missing)}")]


def _similar_mark_problems(case: _Case) -> list[Problem]:
    asset = case.asset
    group = asset.similar_mark_group
    if asset.kind is not AssetKind.TRADEMARK or case.mode not in ASSIGNMENT_MODES or group is None:
        return []
    included = {asset.id} | {other.id for other in case.bundle_assets}
    mates = [m for m in case.owner_other_marks if m.similar_mark_group == group and m.id not in included]
    missing = sorted({m.registration_no for m in mates})
    if not missing:
        return []
    detail = f"The owner's same or similar marks must be assigned together: {', '.join(missing)}"
    return [case.problem("similar_marks_missing", detail)]


def _scope_items(scope: str) -> frozenset[str]:
    text = unicodedata.normalize("NFKC", scope).casefold()
    return frozenset(item.strip() for item in _SCOPE_SEPARATORS.split(text) if item.strip())


def scopes_overlap(a: str, b: str) -> bool:
    """Whether two field or territory descriptions overlap.

    A scope is a list of items separated by ``, ; / | 、``; an empty scope or one naming the whole
    (``all``, ``全部``, ``中国`` ...) covers everything; otherwise they overlap iff an item is shared.
    """
    items_a, items_b = _scope_items(a), _scope_items(b)
    if not items_a or not items_b or items_a & _WHOLE_SCOPE or items_b & _WHOLE_SCOPE:
        return True
    return bool(items_a & items_b)


def _terms_overlap(lic: License, start: date, end_exclusive: date) -> bool:
    return lic.starts_on < end_exclusive and (lic.ends_on is None or lic.ends_on >= start)


def _clashes(lic: License, terms: LicenseTerms, start: date) -> bool:
    """An existing exclusive or sole licence leaves no room for another licensee in its scope."""
    end = add_months(start, max(terms.term_months, 0))
    return (
        lic.type in EXCLUSIVE_TYPES
        and _terms_overlap(lic, start, end)
        and scopes_overlap(lic.field, terms.field)
        and scopes_overlap(lic.territory, terms.territory)
    )


def _license_conflict_problems(case: _Case) -> list[Problem]:
    terms = case.license_terms
    if case.mode is not DisposalMode.LICENSE or terms is None:
        return []
    clashing = [lic for lic in case.asset.licenses if _clashes(lic, terms, case.licence_start)]
    if not clashing:
        return []
    who = ", ".join(f"{lic.type} licence from {lic.starts_on.isoformat()}" for lic in clashing)
    detail = f"An existing licence covers an overlapping field, territory and term: {who}"
    return [case.problem("exclusive_license_conflict", detail)]


def _license_term_problems(case: _Case) -> list[Problem]:
    terms = case.license_terms
    if case.mode is not DisposalMode.LICENSE or terms is None or terms.term_months <= 0:
        return []
    remaining = remaining_term_months(case.asset, case.licence_start)
    if remaining is None or terms.term_months <= remaining:
        return []
    detail = f"A {terms.term_months}-month licence outlasts the right: {remaining} months remain"
    return [case.problem("license_term_exceeds_remaining", detail)]


def _gi_problems(case: _Case) -> list[Problem]:
    if case.asset.kind is not AssetKind.GEOGRAPHICAL_INDICATION or case.mode is DisposalMode.LICENSE:
        return []
    if case.gi_buyer_qualified:
        return []
    detail = "A geographical indication may only be licensed, unless the transferee is a qualified body"
    return [case.problem("gi_transfer_unqualified", detail)]


_CHECKS: tuple[Callable[[_Case], list[Problem]], ...] = (
    _status_problems,
    _term_problems,
    _annuity_problems,
    _appraisal_problems,
    _pledgee_problems,
    _encumbrance_problems,
    _co_owner_problems,
    _similar_mark_problems,
    _license_conflict_problems,
    _license_term_problems,
    _gi_problems,
)


def eligibility(
    asset: Asset,
    *,
    listing_bank_id: int,
    today: date,
    mode: DisposalMode,
    license_terms: LicenseTerms | None = None,
    bundle_assets: Iterable[Asset] = (),
    owner_other_marks: Iterable[Asset] = (),
    gi_buyer_qualified: bool = False,
) -> list[Problem]:
    """Every reason ``asset`` cannot be disposed of by ``listing_bank_id`` in ``mode`` today.

    ``bundle_assets`` are the other assets on the same listing; ``owner_other_marks`` are the
    holder's other registered marks (for rule 27). An empty list means eligible.
    Codes: not_granted, lapsed, expired, invalidated, revoked, term_unknown, annuity_unpaid,
    appraisal_missing, appraisal_stale, pledgee_mismatch, preservation_order, ownership_dispute,
    co_owner_consent_missing, similar_marks_missing, exclusive_license_conflict,
    license_term_exceeds_remaining, gi_transfer_unqualified.

    Raises:
        Nothing: problems are returned, never raised (see ``raise_for_problems``).
    """
    case = _Case(
        asset=asset,
        listing_bank_id=listing_bank_id,
        today=today,
        mode=DisposalMode(mode),
        license_terms=license_terms,
        bundle_assets=tuple(bundle_assets),
        owner_other_marks=tuple(owner_other_marks),
        gi_buyer_qualified=gi_buyer_qualified,
    )
    return [problem for check in _CHECKS for problem in check(case)]


# --------------------------------------------------------------------------- listing shape


def _is_fen(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _require_fen(**amounts: object) -> None:
    for name, value in amounts.items():
        if not _is_fen(value):
            raise NotIntegerFen(f"{name} must be an integer number of fen", field=name)


def _license_terms_problems(terms: LicenseTerms | None) -> list[Problem]:
    if terms is None:
        return [Problem("license_terms_required", "A licence listing needs licence terms")]
    problems = []
    if not _is_fen(terms.term_months) or terms.term_months <= 0:
        problems.append(
            Problem("license_term_invalid", "The licence term must be a positive number of months")
        )
    if not terms.territory.strip():
        problems.append(Problem("license_territory_required", "The licence needs a territory"))
    if not terms.field.strip():
        problems.append(Problem("license_field_required", "The licence needs a field of use"))
    if terms.upfront_fen is not None and (not _is_fen(terms.upfront_fen) or terms.upfront_fen < 0):
        problems.append(
            Problem("license_fee_invalid", "The upfront fee must be a non-negative integer of fen")
        )
    if terms.royalty_bp is not None and (
        not _is_fen(terms.royalty_bp) or not 0 <= terms.royalty_bp <= 10_000
    ):
        problems.append(Problem("license_royalty_invalid", "The royalty must be 0-10000 basis points"))
    return problems


def _asset_count_problems(mode: DisposalMode, count: int) -> list[Problem]:
    if count == 0:
        return [Problem("no_assets", "A listing needs at least one asset")]
    match mode:
        case DisposalMode.LICENSE | DisposalMode.TRANSFER if count != 1:
            return [Problem("single_asset_required", f"A {mode} listing takes exactly one asset")]
        case DisposalMode.BUNDLE if count < 2:
            return [Problem("bundle_too_small", "A bundle needs at least two assets")]
    return []


def _mode_problems(
    mode: DisposalMode, terms: LicenseTerms | None, backstop: Backstop | None
) -> list[Problem]:
    if mode is DisposalMode.LICENSE:
        return _license_terms_problems(terms)
    problems = []
    if terms is not None:
        problems.append(Problem("license_terms_unexpected", f"A {mode} listing takes no licence terms"))
    if mode is DisposalMode.ENTRUSTED_ACQUISITION and backstop is None:
        problems.append(
            Problem("backstop_required", "Entrusted acquisition needs a backstop acquirer and price")
        )
    return problems


def validate_listing(
    mode: DisposalMode,
    assets: Sequence[Asset],
    *,
    license_terms: LicenseTerms | None = None,
    backstop: Backstop | None = None,
) -> list[Problem]:
    """Every problem with the listing's shape for its mode (not the assets' eligibility).

    License: exactly one asset and valid licence terms. Transfer: one asset. Bundle: two or more.
    Entrusted acquisition: a backstop. A backstop given in any mode must respect rule 35.
    Problems are returned, not raised; see ``raise_for_problems``.

    Raises:
        NotIntegerFen: a backstop amount is not an integer.
    """
    mode = DisposalMode(mode)
    problems = _asset_count_problems(mode, len(assets))
    if len({asset.id for asset in assets}) != len(assets):
        problems.append(Problem("duplicate_assets", "An asset appears twice in the listing"))
    problems += _mode_problems(mode, license_terms, backstop)
    if backstop is not None:
        problems += backstop_problems(backstop.price_fen, backstop.break_up_fee_fen, backstop.expense_fen)
    return problems


def listing_problems(
    mode: DisposalMode,
    assets: Sequence[Asset],
    *,
    listing_bank_id: int,
    today: date,
    license_terms: LicenseTerms | None = None,
    backstop: Backstop | None = None,
    owner_other_marks: Iterable[Asset] = (),
    gi_buyer_qualified: bool = False,
) -> list[Problem]:
    """``validate_listing`` plus ``eligibility`` of every asset, with the listing as the bundle.

    Raises:
        NotIntegerFen: a backstop amount is not an integer.
    """
    marks = tuple(owner_other_marks)
    problems = validate_listing(mode, assets, license_terms=license_terms, backstop=backstop)
    for asset in assets:
        problems += eligibility(
            asset,
            listing_bank_id=listing_bank_id,
            today=today,
            mode=mode,
            license_terms=license_terms if mode is DisposalMode.LICENSE else None,
            bundle_assets=[other for other in assets if other is not asset],
            owner_other_marks=marks,
            gi_buyer_qualified=gi_buyer_qualified,
        )
    return problems


# --------------------------------------------------------------------------- backstop (rule 35)

BREAK_UP_FEE_MAX_PERCENT = 3
BID_PROTECTION_MAX_PERCENT = 5


class BackstopInvalid(RuleViolation):
    code = "backstop_invalid"
    title = "The backstop price must be positive and its fees non-negative"


class BreakUpFeeTooHigh(RuleViolation):
    code = "break_up_fee_too_high"
    title = "The break-up fee may not exceed 3 % of the backstop price"


class BidProtectionTooHigh(RuleViolation):
    code = "bid_protection_too_high"
    title = "Break-up fee plus expense reimbursement may not exceed 5 % of the backstop price"


_BACKSTOP_ERRORS: Mapping[str, type[RuleViolation]] = {
    cls.code: cls for cls in (BackstopInvalid, BreakUpFeeTooHigh, BidProtectionTooHigh)
}


def backstop_problems(price_fen: int, break_up_fee_fen: int, expense_fen: int) -> list[Problem]:
    """Every rule-35 problem with a backstop, compared exactly in integer fen.

    Raises:
        NotIntegerFen: an amount is not an ``int`` (floats and bools are refused).
    """
    _require_fen(price_fen=price_fen, break_up_fee_fen=break_up_fee_fen, expense_fen=expense_fen)
    if price_fen <= 0 or break_up_fee_fen < 0 or expense_fen < 0:
        return [Problem(BackstopInvalid.code, BackstopInvalid.title)]
    problems = []
    if break_up_fee_fen * 100 > price_fen * BREAK_UP_FEE_MAX_PERCENT:
        problems.append(Problem(BreakUpFeeTooHigh.code, BreakUpFeeTooHigh.title))
    if (break_up_fee_fen + expense_fen) * 100 > price_fen * BID_PROTECTION_MAX_PERCENT:
        problems.append(Problem(BidProtectionTooHigh.code, BidProtectionTooHigh.title))
    return problems


def validate_backstop(price_fen: int, break_up_fee_fen: int, expense_fen: int) -> None:
    """Check rule 35: fee <= 3 % of the price and fee + expenses <= 5 %.

    Raises:
        NotIntegerFen: an amount is not an integer.
        BackstopInvalid: price <= 0 or a negative fee or expense.
        BreakUpFeeTooHigh: fee above 3 % (reported first when both caps are broken).
        BidProtectionTooHigh: fee + expenses above 5 %.
    """
    problems = backstop_problems(price_fen, break_up_fee_fen, expense_fen)
    if problems:
        first = problems[0]
        raise _BACKSTOP_ERRORS[first.code](
            first.detail, price_fen=price_fen, break_up_fee_fen=break_up_fee_fen, expense_fen=expense_fen
        )


def minimum_qualifying_bid(backstop_price_fen: int, break_up_fee_fen: int, increment_fen: int) -> int:
    """The lowest competing bid that beats the backstop: price + break-up fee + one increment.

    Raises:
        NotIntegerFen: an amount is not an integer.
        BackstopInvalid: a negative price or fee, or an increment that is not positive.
    """
    _require_fen(
        backstop_price_fen=backstop_price_fen, break_up_fee_fen=break_up_fee_fen, increment_fen=increment_fen
    )
    if backstop_price_fen < 0 or break_up_fee_fen < 0 or increment_fen <= 0:
        raise BackstopInvalid("Amounts must be non-negative and the increment positive")
    return backstop_price_fen + break_up_fee_fen + increment_fen


# --------------------------------------------------------------------------- ranks, limitation, lots


def ranks(pledges: Iterable[Pledge]) -> list[list[Pledge]]:
    """Pledges on one asset grouped by payment rank (rule 24, CC 414).

    Registered pledges come first, earlier registration date first; registrations on the same
    date share a rank; all unregistered pledges share the rank after the last registered one.
    Input order is kept inside a rank. The declared ``Pledge.rank`` is ignored.

    Raises:
        ValueError: the pledges are on different assets (a programming error).
    """
    items = list(pledges)
    if len({p.asset_id for p in items}) > 1:
        raise ValueError("ranks() takes the pledges of one asset")
    registered = sorted({p.registered_on for p in items if p.registered_on is not None})
    groups = [[p for p in items if p.registered_on == day] for day in registered]
    unregistered = [p for p in items if p.registered_on is None]
    return groups + ([unregistered] if unregistered else [])


LIMITATION_YEARS = 3


class ClaimTimeBarred(RuleViolation):
    code = "claim_time_barred"
    title = "The claim's limitation period has run; the pledge cannot be enforced"


def limitation_ends_on(claim: Claim) -> date:
    """The last day of the 3-year limitation period, counted from default or the last interruption."""
    start = claim.defaulted_on
    if claim.limitation_interrupted_on is not None:
        start = max(start, claim.limitation_interrupted_on)
    return add_years(start, LIMITATION_YEARS)


def limitation_expired(claim: Claim, today: date) -> bool:
    """Whether the claim is time-barred on ``today`` (rule 31; CC 188, 担保解释 44)."""
    return today > limitation_ends_on(claim)


def check_can_start_disposal(claim: Claim, today: date) -> None:
    """Refuse to start a bank-led disposal of a time-barred claim.

    Raises:
        ClaimTimeBarred: the limitation period ended before ``today`` with no later interruption.
    """
    if limitation_expired(claim, today):
        ends = limitation_ends_on(claim).isoformat()
        raise ClaimTimeBarred(f"The limitation period ended on {ends}", limitation_ended_on=ends)


def lots_to_withdraw(
    claim_outstanding_total_fen: int,
    secured_proceeds_fen: int,
    remaining_lot_ids: Sequence[T],
    pledgor_opted_in: bool,
) -> list[T]:
    """The remaining lots to withdraw once secured proceeds cover the claim plus costs (rule 22).

    Returns every remaining lot when ``secured_proceeds_fen >= claim_outstanding_total_fen`` (the
    total includes costs) and the pledgor did not opt in to selling everything; otherwise none.

    Raises:
        NotIntegerFen: an amount is not an integer.
    """
    _require_fen(
        claim_outstanding_total_fen=claim_outstanding_total_fen, secured_proceeds_fen=secured_proceeds_fen
    )
    if pledgor_opted_in or secured_proceeds_fen < claim_outstanding_total_fen:
        return []
    return list(remaining_lot_ids)


# --------------------------------------------------------------------------- lifecycle


class ListingAction(enum.StrEnum):
    """What can happen to a listing; ``transition`` decides where it leads."""

    PUBLISH = "publish"  # draft -> published; failed -> published for a new round
    START_AUCTION = "start_auction"
    START_NEGOTIATION = "start_negotiation"
    REOPEN = "reopen"  # a round failed / a negotiation ended without a deal: back to published
    SELL = "sell"
    FAIL = "fail"
    WITHDRAW = "withdraw"
    BUYER_DEFAULT = "buyer_default"  # 悔拍: the winner did not pay; back for a new round


_S, _A = ListingStatus, ListingAction
EDGES: Mapping[tuple[ListingStatus, ListingAction], ListingStatus] = {
    (_S.DRAFT, _A.PUBLISH): _S.PUBLISHED,
    (_S.PUBLISHED, _A.START_AUCTION): _S.IN_AUCTION,
    (_S.PUBLISHED, _A.START_NEGOTIATION): _S.IN_NEGOTIATION,
    (_S.PUBLISHED, _A.WITHDRAW): _S.WITHDRAWN,
    (_S.IN_AUCTION, _A.SELL): _S.SOLD,
    (_S.IN_AUCTION, _A.FAIL): _S.FAILED,
    (_S.IN_AUCTION, _A.WITHDRAW): _S.WITHDRAWN,
    (_S.IN_AUCTION, _A.REOPEN): _S.PUBLISHED,
    (_S.IN_NEGOTIATION, _A.SELL): _S.SOLD,
    (_S.IN_NEGOTIATION, _A.FAIL): _S.FAILED,
    (_S.IN_NEGOTIATION, _A.WITHDRAW): _S.WITHDRAWN,
    (_S.IN_NEGOTIATION, _A.REOPEN): _S.PUBLISHED,
    (_S.FAILED, _A.PUBLISH): _S.PUBLISHED,
    (_S.FAILED, _A.WITHDRAW): _S.WITHDRAWN,
    (_S.FAILED, _A.SELL): _S.SOLD,  # rule 19: the backstop acquirer or the bank takes it at the reserve
    (_S.SOLD, _A.BUYER_DEFAULT): _S.PUBLISHED,
}
del _S, _A


class IllegalTransition(Conflict):
    code = "illegal_transition"
    title = "The listing cannot do that in its current state"


class WithdrawalReasonInvalid(RuleViolation):
    code = "withdrawal_reason_invalid"
    title = "Not a recognised withdrawal reason"


@dataclass(frozen=True, slots=True)
class Transition:
    """One audited state change of a listing."""

    listing_id: int
    action: ListingAction
    from_status: ListingStatus
    to_status: ListingStatus
    reason: str | None
    at: datetime


def allowed_actions(status: ListingStatus) -> frozenset[ListingAction]:
    """The actions ``transition`` accepts from ``status``."""
    return frozenset(action for (source, action) in EDGES if source is status)


def _action(listing: Listing, action: ListingAction | str) -> ListingAction:
    try:
        return ListingAction(action)
    except ValueError:
        raise IllegalTransition(f"Unknown action {action!r}", status=str(listing.status)) from None


def _withdrawal_reason(reason: str | None) -> WithdrawalReason:
    if reason is None or not str(reason).strip():
        raise ReasonRequired(allowed=[str(r) for r in WithdrawalReason])
    try:
        return WithdrawalReason(reason)
    except ValueError:
        raise WithdrawalReasonInvalid(
            f"Unknown withdrawal reason {reason!r}", allowed=[str(r) for r in WithdrawalReason]
        ) from None


def transition(
    listing: Listing, action: ListingAction | str, *, reason: str | None = None, now: datetime
) -> tuple[Listing, Transition]:
    """Apply ``action`` to ``listing``; return the new listing and the audit record.

    Graph: draft -> published -> in_auction | in_negotiation -> sold | failed | withdrawn;
    published -> withdrawn; in_auction | in_negotiation -> published (reopen); failed -> published
    (new round) | withdrawn; sold -> published (buyer default). Withdrawal needs a rule-21 reason;
    other actions may carry a free-text reason for the trail. Entering ``published`` sets
    ``published_at`` (each round's notice runs from its own publication).

    Raises:
        IllegalTransition: the action is unknown or not allowed from the current status.
        ReasonRequired: a withdrawal without a reason.
        WithdrawalReasonInvalid: a withdrawal reason that is not a ``WithdrawalReason``.
    """
    act = _action(listing, action)
    target = EDGES.get((listing.status, act))
    if target is None:
        detail = f"Cannot {act} a listing that is {listing.status}"
        raise IllegalTransition(detail, status=str(listing.status), action=str(act))
    withdrawal = _withdrawal_reason(reason) if act is ListingAction.WITHDRAW else None
    why = str(withdrawal) if withdrawal is not None else reason
    new = replace(
        listing,
        status=target,
        status_changed_at=now,
        published_at=now if target is ListingStatus.PUBLISHED else listing.published_at,
        withdrawal_reason=withdrawal or listing.withdrawal_reason,
    )
    return new, Transition(listing.id, act, listing.status, target, why, now)
