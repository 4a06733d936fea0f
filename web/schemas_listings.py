"""Response bodies and query strings of the collateral, listings and negotiation API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from listings.schemas import Kind, Mode, PositiveFen


class ProblemOut(BaseModel):
    code: str
    detail: str
    asset_id: int | None = None


class Eligibility(BaseModel):
    ok: bool
    problems: list[ProblemOut]


class AssetOut(BaseModel):
    id: int
    bank_org_id: int
    kind: str
    registration_no: str
    title: str
    title_en: str
    holder: str
    legal_status: str
    filed_on: date | None
    granted_on: date | None
    expires_on: date | None
    classes: list[str]
    appraisal_fen: int | None
    appraised_on: date | None
    appraiser: str
    co_owners: list[dict[str, Any]]
    licenses: list[dict[str, Any]]
    annuity_paid_through: date | None
    preservation_order: bool
    ownership_dispute: bool
    similar_mark_group: str | None
    pledgee_org_id: int | None
    remaining_term_months: int | None
    eligibility: Eligibility


class AssetList(BaseModel):
    items: list[AssetOut]


class Buckets(BaseModel):
    costs_fen: int
    interest_fen: int
    principal_fen: int


class PledgeOut(BaseModel):
    asset_id: int
    rank: int
    declared_rank: int | None
    registration_no: str | None
    registered_on: date | None


class BorrowerOut(BaseModel):
    name: str
    credit_code: str


class ClaimOut(BaseModel):
    id: int
    bank_org_id: int
    loan_no: str
    borrower: BorrowerOut
    principal_fen: int
    interest_fen: int
    default_interest_fen: int
    costs_fen: int
    defaulted_on: date
    bucket_order: list[str] | None
    pledges: list[PledgeOut]
    outstanding: Buckets
    recovered: Buckets
    status: str
    limitation_ends_on: date
    time_barred: bool


class ClaimList(BaseModel):
    items: list[ClaimOut]


class ListingAssetOut(BaseModel):
    id: int
    kind: str
    registration_no: str
    title: str
    title_en: str
    holder: str
    classes: list[str]
    appraisal_fen: int | None
    expires_on: date | None


class ListingOut(BaseModel):
    id: int
    bank_org_id: int
    title: str
    title_en: str
    description: str
    mode: str
    status: str
    asset_ids: list[int]
    assets: list[ListingAssetOut]
    license_terms: dict[str, Any] | None
    backstop: dict[str, Any] | None
    asking_price_fen: int | None
    appraisal_fen: int | None
    remaining_term_months: int | None
    kinds: list[str]
    classes: list[str]
    published_at: datetime | None
    withdrawal_reason: str | None
    eligibility: Eligibility | None = None


class ListingSummary(BaseModel):
    id: int
    bank_org_id: int
    title: str
    title_en: str
    mode: str
    status: str
    kinds: list[str]
    classes: list[str]
    asking_price_fen: int | None
    appraisal_fen: int | None
    remaining_term_months: int | None
    published_at: datetime | None


class ListingPage(BaseModel):
    items: list[ListingSummary]
    next_before_id: int | None


class ListingQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    q: Annotated[str, StringConstraints(max_length=200)] = ""
    kind: Kind | None = None
    cls: Annotated[str, StringConstraints(max_length=32)] | None = Field(default=None, alias="class")
    mode: Mode | None = None
    status: Literal["published", "in_auction", "in_negotiation", "sold"] | None = None
    min_price_fen: Annotated[int, Field(ge=0, le=9_000_000_000_000_000)] | None = None
    max_price_fen: Annotated[int, Field(ge=0, le=9_000_000_000_000_000)] | None = None
    min_remaining_months: Annotated[int, Field(ge=0, le=2400)] | None = None
    bank: Annotated[int, Field(ge=1, le=2**63 - 1)] | None = None
    before_id: Annotated[int, Field(ge=1, le=2**63 - 1)] | None = None
    limit: Annotated[int, Field(ge=1, le=100)] = 20


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    before_id: Annotated[int, Field(ge=1, le=2**63 - 1)] | None = None
    limit: Annotated[int, Field(ge=1, le=500)] = 100


class WithdrawIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    reason: Literal[
        "claim_repaid",
        "bank_withdraws",
        "parties_settled",
        "third_party_objection",
        "title_set_aside",
        "auctioneer_collusion",
        "claim_covered",
    ]
    note: Annotated[str, StringConstraints(max_length=2000)] = ""


class InterestsIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    kinds: Annotated[list[Kind], Field(max_length=8)] = []
    classes: Annotated[
        list[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]],
        Field(max_length=100),
    ] = []
    keywords: Annotated[
        list[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]],
        Field(max_length=100),
    ] = []


class InterestsOut(BaseModel):
    kinds: list[str]
    classes: list[str]
    keywords: list[str]


class ReasonOut(BaseModel):
    code: str
    value: str


class RecommendationOut(BaseModel):
    listing: ListingSummary
    score: int
    reasons: list[ReasonOut]


class RecommendationList(BaseModel):
    items: list[RecommendationOut]


class NotificationOut(BaseModel):
    id: int
    kind: str
    listing_id: int | None
    payload: dict[str, Any]
    created_at: datetime
    read_at: datetime | None


class NotificationList(BaseModel):
    items: list[NotificationOut]


class OfferIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    amount_fen: PositiveFen
    message: Annotated[str, StringConstraints(max_length=2000)] = ""
    valid_hours: Annotated[int, Field(ge=1, le=24 * 90)] | None = None


class CounterIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    amount_fen: PositiveFen
    message: Annotated[str, StringConstraints(max_length=2000)] = ""
    valid_hours: Annotated[int, Field(ge=1, le=24 * 90)] | None = None


class OfferOut(BaseModel):
    seq: int
    by: str
    amount_fen: int
    message: str
    made_at: datetime
    expires_at: datetime


class ThreadOut(BaseModel):
    id: int
    listing_id: int
    buyer_org_id: int
    bank_org_id: int
    status: str
    turn: str | None
    current: OfferOut
    offers: list[OfferOut]
    agreed_price_fen: int | None
    disposal_id: int | None = None


class ThreadList(BaseModel):
    items: list[ThreadOut]


class DisposalBrief(BaseModel):
    id: int
    listing_id: int
    buyer_org_id: int | None
    source: str
    price_fen: int
    stage: str
