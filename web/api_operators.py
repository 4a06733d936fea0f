"""API: the operator console — live monitor, KPIs, two-operator bid cancellations."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from auctions import integrity, interventions, kpis as kpimod, monitor as monitormod
from market.clock import CST
from market.errors import NotFound
from market.parties import Role
from web.api import Call, api
from web.api_auctions import ReasonIn
from web.api_statements import Day

OPERATOR = (Role.OPERATOR,)
QueryId = Annotated[int, Field(ge=1, le=2**63 - 1)]
# the asset kinds of ``listings.model.AssetKind`` (a Literal: the query parser reads an enum
# annotation named ``listings.…`` as a list field)
KindName = Literal[
    "invention_patent",
    "utility_model",
    "design_patent",
    "trademark",
    "copyright",
    "software_copyright",
    "ic_layout",
    "geographical_indication",
]


# --------------------------------------------------------------------------- monitor


class MonitorQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bank: QueryId | None = None
    threshold: Annotated[int, Field(ge=0, le=100)] = integrity.SUSPECT_THRESHOLD


class AuctionCounts(BaseModel):
    by_status: dict[str, int]
    extensions_in_progress: int


class WatcherCounts(BaseModel):
    connected: int
    instances: int
    per_auction: dict[str, int]


class CloserLag(BaseModel):
    lag_seconds: float
    overdue: int
    p99_seconds: float | None
    recent_closes: int


class DisposalStages(BaseModel):
    listed: int
    in_auction: int
    in_negotiation: int
    awaiting_payment: int
    in_escrow: int
    settled: int
    licensed: int
    failed_rounds: int
    defaults: int


class MinuteBids(BaseModel):
    minute: datetime
    bids: int


class BankRecovery(BaseModel):
    bank_org_id: int
    bank_name: str
    claims: int
    opening_fen: int
    recovered_fen: int
    rate: float | None


class SignalOut(BaseModel):
    code: str
    ratio: float
    points: int
    weight: int


class SuspectOut(BaseModel):
    auction_id: int
    paddle_no: str | None
    bidder_org_id: int
    org_name: str
    credit_code: str
    score: int
    signals: list[SignalOut]


class MonitorOut(BaseModel):
    generated_at: datetime
    bank_org_id: int | None
    auctions: AuctionCounts
    bids_last_minute: int
    bids_per_minute: list[MinuteBids]
    watchers: WatcherCounts
    closer: CloserLag
    disposals: DisposalStages
    deposits_held_fen: int
    recovered_fen: int
    recovery_by_bank: list[BankRecovery]
    suspects: list[SuspectOut]
    suspect_threshold: int


@api.operation(
    "GET",
    "/api/v1/monitor",
    summary="Live counts: auctions, bids, watchers, closer lag, disposals by stage, money, suspects",
    tag="operators",
    roles=OPERATOR,
    query=MonitorQuery,
    response=MonitorOut,
)
async def monitor(call: Call) -> MonitorOut:
    q: MonitorQuery = call.query
    options = monitormod.Options(bank_org_id=q.bank, suspect_threshold=q.threshold)
    return MonitorOut.model_validate(await monitormod.snapshot(call.conn, options))


# --------------------------------------------------------------------------- KPIs


class KpiQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    bank: QueryId | None = None
    kind: KindName | None = None
    from_: Day | None = Field(default=None, alias="from")
    to: Day | None = None

    @model_validator(mode="after")
    def _ordered(self) -> KpiQuery:
        if self.from_ and self.to and self.to < self.from_:
            raise ValueError("`to` is before `from`")
        return self

    def filters(self) -> kpimod.Filters:
        """Dates are China Standard Time: ``from`` at 00:00, ``to`` inclusive (until 24:00)."""
        start = datetime.combine(self.from_, time(), CST) if self.from_ else None
        end = datetime.combine(self.to + timedelta(days=1), time(), CST) if self.to else None
        return kpimod.Filters(bank_org_id=self.bank, kind=self.kind, start=start, end=end)


class RecoveryFigures(BaseModel):
    claims: int
    opening_fen: int
    recovered_fen: int
    rate: float | None


class RecoveryOut(BaseModel):
    overall: RecoveryFigures
    by_bank: list[BankRecovery]


class TimeToDisposal(BaseModel):
    disposals: int
    mean_days: float | None
    median_days: float | None
    p90_days: float | None


class RoundFailures(BaseModel):
    round_no: int
    finished: int
    failed: int
    rate: float | None


class PriceToAppraisal(BaseModel):
    disposals: int
    mean: float | None
    median: float | None
    weighted: float | None


class KpisOut(BaseModel):
    filters: dict[str, Any]
    recovery: RecoveryOut
    time_to_disposal: TimeToDisposal
    failed_rounds: list[RoundFailures]
    price_to_appraisal: PriceToAppraisal


@api.operation(
    "GET",
    "/api/v1/kpis",
    summary="Disposal KPIs by bank, asset kind and period (dates in China Standard Time)",
    tag="operators",
    roles=OPERATOR,
    query=KpiQuery,
    response=KpisOut,
)
async def kpis(call: Call) -> KpisOut:
    q: KpiQuery = call.query
    figures = await kpimod.kpis(call.conn, q.filters())
    applied = {
        "bank": q.bank,
        "kind": q.kind,
        "from": q.from_.isoformat() if q.from_ else None,
        "to": q.to.isoformat() if q.to else None,
    }
    return KpisOut.model_validate({"filters": applied, **figures})


# --------------------------------------------------------------------------- bid cancellations


class BidCancellationOut(BaseModel):
    id: int
    auction_id: int
    seq: int
    reason: str
    status: Literal["pending", "approved", "rejected"]
    requested_by: int
    requested_at: datetime
    approved_by: int | None
    approved_at: datetime | None


class BidCancellationDecisionOut(BidCancellationOut):
    events: list[dict[str, Any]]


class BidCancellationList(BaseModel):
    items: list[BidCancellationOut]


class BidCancellationQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    auction_id: QueryId | None = None
    status: Literal["pending", "approved", "rejected"] | None = None
    limit: Annotated[int, Field(ge=1, le=500)] = 100


def cancellation_out(row: Any) -> BidCancellationOut:
    return BidCancellationOut.model_validate(row, from_attributes=True)


@api.operation(
    "POST",
    "/api/v1/auctions/{auction_id}/bids/{seq}/cancel",
    summary="Ask to cancel an accepted bid; a second operator must approve it",
    tag="operators",
    roles=OPERATOR,
    body=ReasonIn,
    response=BidCancellationOut,
    status=201,
)
async def request_bid_cancellation(call: Call) -> BidCancellationOut:
    b: ReasonIn = call.body
    seq = str(call.params["seq"])
    if not (seq.isascii() and seq.isdigit()) or len(seq) > 18:  # malformed: not found (not a 500)
        raise NotFound(f"No bid {seq[:20]!r}")
    row = await interventions.request_bid_cancellation(
        call.conn, call.need_actor(), int(call.params["auction_id"]), int(seq), b.reason
    )
    return cancellation_out(row)


async def _decide(call: Call, approve: bool) -> BidCancellationDecisionOut:
    row, feed = await interventions.decide(
        call.conn, call.need_actor(), int(call.params["cancellation_id"]), approve=approve
    )
    return BidCancellationDecisionOut(**cancellation_out(row).model_dump(), events=feed)


@api.operation(
    "POST",
    "/api/v1/bid-cancellations/{cancellation_id}/approve",
    summary="Approve a pending bid cancellation (not its requester): the bid is cancelled now",
    tag="operators",
    roles=OPERATOR,
    response=BidCancellationDecisionOut,
    extra_responses={403: "second_operator_required: the requester cannot decide"},
)
async def approve_bid_cancellation(call: Call) -> BidCancellationDecisionOut:
    return await _decide(call, approve=True)


@api.operation(
    "POST",
    "/api/v1/bid-cancellations/{cancellation_id}/reject",
    summary="Reject a pending bid cancellation (not its requester)",
    tag="operators",
    roles=OPERATOR,
    response=BidCancellationDecisionOut,
    extra_responses={403: "second_operator_required: the requester cannot decide"},
)
async def reject_bid_cancellation(call: Call) -> BidCancellationDecisionOut:
    return await _decide(call, approve=False)


@api.operation(
    "GET",
    "/api/v1/bid-cancellations",
    summary="Bid cancellations, newest first",
    tag="operators",
    roles=OPERATOR,
    query=BidCancellationQuery,
    response=BidCancellationList,
)
async def list_bid_cancellations(call: Call) -> BidCancellationList:
    q: BidCancellationQuery = call.query
    rows = await interventions.cancellations(
        call.conn, auction_id=q.auction_id, status=q.status, limit=q.limit
    )
    return BidCancellationList(items=[cancellation_out(r) for r in rows])
