"""API: auctions — set-up, registration with deposit, bids, interventions, public state and events."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import select

from auctions import services, store
from auctions.tables import auctions
from listings.schemas import Fen, Id, PositiveFen
from market.errors import MarketError
from market.metrics import BIDS
from market.parties import Role
from web.api import Call, api

BANK = (Role.BANK,)
BUYER = (Role.BUYER,)
OPERATOR = (Role.OPERATOR,)


class AuctionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    listing_id: Id
    start_price_fen: PositiveFen
    increment_fen: PositiveFen
    deposit_fen: Fen
    starts_at: Annotated[AwareDatetime, Field(strict=False)]
    ends_at: Annotated[AwareDatetime, Field(strict=False)]
    extension_seconds: Annotated[int, Field(ge=1, le=86400)] | None = None
    reserve_fen: PositiveFen | None = None
    priority_holder_org_ids: Annotated[list[Id], Field(max_length=20)] = []
    kind: Literal["auction", "fixed_price_sale"] = "auction"


class AuctionOut(BaseModel):
    id: int
    listing_id: int
    round_no: int
    kind: str
    status: Literal["scheduled", "live", "suspended", "closed", "failed", "cancelled"]
    start_price_fen: int
    increment_fen: int
    deposit_fen: int
    reserve_met: bool | None
    starts_at: datetime
    ends_at: datetime
    current_price_fen: int | None
    leader_paddle: str | None
    seq: int
    bid_count: int
    minimum_next_bid_fen: int | None
    extension_seconds: int
    server_time: datetime
    reason: str | None = None
    next_step: dict[str, Any] | None = None
    my_paddle: str | None = None
    my_deposit_status: str | None = None


class AuctionList(BaseModel):
    items: list[AuctionOut]


class AuctionQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    listing_id: Annotated[int, Field(ge=1, le=2**63 - 1)] | None = None
    status: Literal["scheduled", "live", "suspended", "closed", "failed", "cancelled"] | None = None
    limit: Annotated[int, Field(ge=1, le=200)] = 50


class RegistrationOut(BaseModel):
    auction_id: int
    paddle_no: str
    deposit_fen: int
    deposit_status: str
    priority_rank: int | None


class BidIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    amount_fen: PositiveFen
    max_fen: PositiveFen | None = None


class BidOut(BaseModel):
    seq: int
    amount_fen: int
    price_fen: int | None
    leading: bool
    ends_at: datetime


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class OptionalReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] = ""


class FeedOut(BaseModel):
    events: list[dict[str, Any]]


class EventsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    since: Annotated[int, Field(ge=0, le=2**62)] = 0
    limit: Annotated[int, Field(ge=1, le=5000)] = 1000


class IdentityOut(BaseModel):
    paddle_no: str
    org_id: int
    org_name: str
    credit_code: str
    deposit_fen: int
    deposit_status: str
    priority_rank: int | None


class IdentityList(BaseModel):
    items: list[IdentityOut]


def auction_out(v: services.View) -> AuctionOut:
    t, s = v.terms, v.state
    price = s.current_price_fen
    return AuctionOut(
        id=v.row.id,
        listing_id=v.row.listing_id,
        round_no=v.row.round_no,
        kind=v.row.kind,
        status=v.status,
        start_price_fen=t.start_price_fen,
        increment_fen=t.increment_fen,
        deposit_fen=t.deposit_fen,
        reserve_met=None if price is None else price >= t.reserve,
        starts_at=s.starts_at,
        ends_at=s.ends_at,
        current_price_fen=price,
        leader_paddle=s.leader.paddle_no if s.leader else None,
        seq=s.seq,
        bid_count=s.bid_count,
        minimum_next_bid_fen=v.minimum_next_bid_fen,
        extension_seconds=t.extension_seconds,
        server_time=v.now,
        reason=s.reason,
        next_step=v.row.next_step,
        my_paddle=v.mine.paddle_no if v.mine is not None else None,
        my_deposit_status=v.mine.deposit_status if v.mine is not None else None,
    )


@api.operation(
    "POST",
    "/api/v1/auctions",
    summary="Schedule an auction round for a published listing",
    tag="auctions",
    roles=BANK,
    body=AuctionIn,
    response=AuctionOut,
    status=201,
)
async def create_auction(call: Call) -> AuctionOut:
    b: AuctionIn = call.body
    spec = services.NewAuction(
        listing_id=b.listing_id,
        start_price_fen=b.start_price_fen,
        increment_fen=b.increment_fen,
        deposit_fen=b.deposit_fen,
        starts_at=b.starts_at,
        ends_at=b.ends_at,
        extension_seconds=b.extension_seconds,
        reserve_fen=b.reserve_fen,
        priority_holder_org_ids=tuple(b.priority_holder_org_ids),
        kind=b.kind,
    )
    row = await services.create_auction(call.conn, call.need_actor(), spec, call.settings)
    return auction_out(await services.view(call.conn, call.actor, row.id))


@api.operation(
    "GET",
    "/api/v1/auctions",
    summary="Auctions, newest first (public)",
    tag="auctions",
    roles=None,
    query=AuctionQuery,
    response=AuctionList,
)
async def list_auctions(call: Call) -> AuctionList:
    q: AuctionQuery = call.query
    stmt = select(auctions.c.id).order_by(auctions.c.id.desc()).limit(q.limit)
    if q.listing_id:
        stmt = stmt.where(auctions.c.listing_id == q.listing_id)
    if q.status:
        stmt = stmt.where(auctions.c.status == q.status)
    ids = [r.id for r in (await call.conn.execute(stmt)).all()]
    return AuctionList(items=[auction_out(await services.view(call.conn, call.actor, i)) for i in ids])


@api.operation(
    "GET",
    "/api/v1/auctions/{auction_id}",
    summary="An auction's live state (paddles only)",
    tag="auctions",
    roles=None,
    response=AuctionOut,
)
async def get_auction(call: Call) -> AuctionOut:
    return auction_out(await services.view(call.conn, call.actor, int(call.params["auction_id"])))


@api.operation(
    "GET",
    "/api/v1/auctions/{auction_id}/events",
    summary="The auction's events after `since`",
    tag="auctions",
    roles=None,
    query=EventsQuery,
    response=FeedOut,
)
async def auction_events(call: Call) -> FeedOut:
    q: EventsQuery = call.query
    aid = int(call.params["auction_id"])
    if await store.find(call.conn, aid) is None:
        raise store.AuctionNotFound(f"No auction {aid}")
    return FeedOut(events=await store.events_after(call.conn, aid, q.since, limit=q.limit))


@api.operation(
    "POST",
    "/api/v1/auctions/{auction_id}/registrations",
    summary="Register to bid: the deposit is held and an anonymous paddle number given",
    tag="auctions",
    roles=BUYER,
    response=RegistrationOut,
    status=201,
    extra_responses={200: "Already registered: the first registration, unchanged"},
)
async def register(call: Call) -> tuple[int, RegistrationOut]:
    row, created = await services.register(
        call.conn, call.need_actor(), int(call.params["auction_id"]), call.settings
    )
    out = RegistrationOut(
        auction_id=row.auction_id,
        paddle_no=row.paddle_no,
        deposit_fen=row.deposit_fen,
        deposit_status=row.deposit_status,
        priority_rank=row.priority_rank,
    )
    return (201 if created else 200), out


@api.operation(
    "POST",
    "/api/v1/auctions/{auction_id}/bids",
    summary="Place a bid (optionally a proxy maximum)",
    tag="auctions",
    roles=BUYER,
    body=BidIn,
    response=BidOut,
    status=201,
)
async def place_bid(call: Call) -> BidOut:
    b: BidIn = call.body
    try:
        ack = await services.place_bid(
            call.conn, call.need_actor(), int(call.params["auction_id"]), b.amount_fen, b.max_fen
        )
    except MarketError as exc:
        BIDS.labels("rejected", exc.code).inc()
        raise
    BIDS.labels("accepted", "").inc()
    return BidOut(
        seq=ack.seq,
        amount_fen=ack.amount_fen,
        price_fen=ack.price_fen,
        leading=ack.leading,
        ends_at=ack.ends_at,
    )


async def _intervene(call: Call, action: str) -> FeedOut:
    reason = getattr(call.body, "reason", None) if call.body is not None else None
    feed = await services.intervene(
        call.conn, call.need_actor(), int(call.params["auction_id"]), action, reason, call.settings
    )
    return FeedOut(events=feed)


@api.operation(
    "POST",
    "/api/v1/auctions/{auction_id}/suspend",
    summary="Suspend with a published reason",
    tag="operators",
    roles=OPERATOR,
    body=ReasonIn,
    response=FeedOut,
)
async def suspend_auction(call: Call) -> FeedOut:
    return await _intervene(call, "suspend")


@api.operation(
    "POST",
    "/api/v1/auctions/{auction_id}/resume",
    summary="Resume (remaining time re-based)",
    tag="operators",
    roles=OPERATOR,
    body=OptionalReasonIn,
    response=FeedOut,
)
async def resume_auction(call: Call) -> FeedOut:
    return await _intervene(call, "resume")


@api.operation(
    "POST",
    "/api/v1/auctions/{auction_id}/cancel",
    summary="Cancel with a published reason",
    tag="operators",
    roles=OPERATOR,
    body=ReasonIn,
    response=FeedOut,
)
async def cancel_auction(call: Call) -> FeedOut:
    return await _intervene(call, "cancel")


@api.operation(
    "GET",
    "/api/v1/auctions/{auction_id}/registrations",
    summary="Who is behind each paddle (operators only)",
    tag="operators",
    roles=OPERATOR,
    response=IdentityList,
)
async def auction_identities(call: Call) -> IdentityList:
    rows = await services.registrations(call.conn, call.need_actor(), int(call.params["auction_id"]))
    return IdentityList(
        items=[
            IdentityOut(
                paddle_no=r.paddle_no,
                org_id=r.bidder_org_id,
                org_name=r.org_name,
                credit_code=r.credit_code,
                deposit_fen=r.deposit_fen,
                deposit_status=r.deposit_status,
                priority_rank=r.priority_rank,
            )
            for r in rows
        ]
    )


class TakeOverIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    by: Literal["backstop", "bank"]


class TakeOverOut(BaseModel):
    disposal_id: int
    buyer_org_id: int | None
    price_fen: int


@api.operation(
    "POST",
    "/api/v1/listings/{listing_id}/take-over",
    summary="After a failed round: the backstop "
    "acquirer or the bank takes the asset at the reserve (rule 19)",
    tag="auctions",
    roles=BANK,
    body=TakeOverIn,
    response=TakeOverOut,
    status=201,
)
async def take_over(call: Call) -> TakeOverOut:
    b: TakeOverIn = call.body
    row = await services.take_over(
        call.conn, call.need_actor(), int(call.params["listing_id"]), b.by, call.settings
    )
    return TakeOverOut(disposal_id=row.id, buyer_org_id=row.buyer_org_id, price_fen=row.price_fen)


@api.operation(
    "POST",
    "/api/v1/listings/{listing_id}/purchase",
    summary="Fixed-price sale: register and bid the fixed price (rule 18)",
    tag="auctions",
    roles=BUYER,
    response=BidOut,
    status=201,
)
async def purchase(call: Call) -> BidOut:
    ack = await services.purchase(call.conn, call.need_actor(), int(call.params["listing_id"]), call.settings)
    return BidOut(
        seq=ack.seq,
        amount_fen=ack.amount_fen,
        price_fen=ack.price_fen,
        leading=ack.leading,
        ends_at=ack.ends_at,
    )
