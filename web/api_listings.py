"""API: claims, assets, listings, search, interests and recommendations, negotiation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.engine import Row

from listings import disposals, model, offers, queries, recommend, schemas as ls, services, store
from listings.negotiation import Thread
from market import clock
from market.parties import Role
from web import schemas_listings as s
from web.api import Call, api

BANK = (Role.BANK,)
BANK_OR_OPERATOR = (Role.BANK, Role.OPERATOR)
BUYER = (Role.BUYER,)
SIGNED_IN: tuple[Role, ...] = ()


def eligibility_out(problems: list[model.Problem]) -> s.Eligibility:
    return s.Eligibility(ok=not problems, problems=[s.ProblemOut(**p.as_dict()) for p in problems])


def asset_out(view: services.AssetView) -> s.AssetOut:
    r = view.row
    return s.AssetOut(
        id=r.id,
        bank_org_id=r.bank_org_id,
        kind=r.kind,
        registration_no=r.registration_no,
        title=r.title_zh,
        title_en=r.title_en,
        holder=r.holder,
        legal_status=r.legal_status,
        filed_on=r.filed_on,
        granted_on=r.granted_on,
        expires_on=r.expires_on or model.term_ends_on(view.asset),
        classes=r.classes,
        appraisal_fen=r.appraisal_fen,
        appraised_on=r.appraised_on,
        appraiser=r.appraiser,
        co_owners=r.co_owners,
        licenses=r.licenses,
        annuity_paid_through=r.annuity_paid_through,
        preservation_order=r.preservation_order,
        ownership_dispute=r.ownership_dispute,
        similar_mark_group=r.similar_mark_group,
        pledgee_org_id=r.pledgee_org_id,
        remaining_term_months=model.remaining_term_months(view.asset, clock.today_cst()),
        eligibility=eligibility_out(view.problems),
    )


def claim_out(view: services.ClaimView) -> s.ClaimOut:
    r = view.row
    out = view.outstanding
    status = "paid" if not any(out.values()) else r.status
    return s.ClaimOut(
        id=r.id,
        bank_org_id=r.bank_org_id,
        loan_no=r.loan_no,
        borrower=s.BorrowerOut(name=r.borrower_name, credit_code=r.borrower_credit_code),
        principal_fen=r.principal_fen,
        interest_fen=r.interest_fen,
        default_interest_fen=r.default_interest_fen,
        costs_fen=r.costs_fen,
        defaulted_on=r.defaulted_on,
        bucket_order=r.bucket_order,
        pledges=[s.PledgeOut(**p) for p in view.pledges],
        outstanding=s.Buckets(**out),
        recovered=s.Buckets(**view.recovered),
        status=status,
        limitation_ends_on=view.limitation_ends_on,
        time_barred=view.time_barred,
    )


def summary(r: Row[Any]) -> s.ListingSummary:
    return s.ListingSummary(
        id=r.id,
        bank_org_id=r.bank_org_id,
        title=r.title,
        title_en=r.title_en,
        mode=r.mode,
        status=r.status,
        kinds=r.kinds,
        classes=r.classes,
        asking_price_fen=r.asking_price_fen,
        appraisal_fen=r.appraisal_fen,
        remaining_term_months=r.remaining_term_months,
        published_at=r.published_at,
    )


def listing_out(view: services.ListingView, *, owner: bool) -> s.ListingOut:
    r = view.row
    return s.ListingOut(
        **summary(r).model_dump(),
        description=r.description,
        asset_ids=[a.id for a in view.assets],
        assets=[
            s.ListingAssetOut(
                id=a.id,
                kind=a.kind,
                registration_no=a.registration_no,
                title=a.title_zh,
                title_en=a.title_en,
                holder=a.holder,
                classes=a.classes,
                appraisal_fen=a.appraisal_fen,
                expires_on=a.expires_on,
            )
            for a in view.assets
        ],
        license_terms=r.license_terms,
        backstop=r.backstop if owner else None,
        withdrawal_reason=r.withdrawal_reason,
        eligibility=eligibility_out(view.problems) if owner else None,
    )


def _owner(call: Call, row: Row[Any]) -> bool:
    return call.actor is not None and (call.actor.is_operator or call.actor.org_id == row.bank_org_id)


# --------------------------------------------------------------------------- assets


@api.operation(
    "POST",
    "/api/v1/assets",
    summary="Register a pledged IP asset; the answer lists every eligibility problem",
    tag="collateral",
    roles=BANK,
    body=ls.AssetIn,
    response=s.AssetOut,
    status=201,
)
async def create_asset(call: Call) -> s.AssetOut:
    return asset_out(await services.create_asset(call.conn, call.need_actor(), call.body))


@api.operation(
    "GET",
    "/api/v1/assets",
    summary="The bank's assets",
    tag="collateral",
    roles=BANK_OR_OPERATOR,
    query=s.PageQuery,
    response=s.AssetList,
)
async def list_assets(call: Call) -> s.AssetList:
    q: s.PageQuery = call.query
    views = await services.list_assets(call.conn, call.need_actor(), limit=q.limit, before_id=q.before_id)
    return s.AssetList(items=[asset_out(v) for v in views])


@api.operation(
    "GET",
    "/api/v1/assets/{asset_id}",
    summary="One asset with its eligibility",
    tag="collateral",
    roles=BANK_OR_OPERATOR,
    response=s.AssetOut,
)
async def get_asset(call: Call) -> s.AssetOut:
    return asset_out(await services.get_asset(call.conn, call.need_actor(), int(call.params["asset_id"])))


# --------------------------------------------------------------------------- claims


@api.operation(
    "POST",
    "/api/v1/claims",
    summary="Register a defaulted claim and its pledges",
    tag="collateral",
    roles=BANK,
    body=ls.ClaimIn,
    response=s.ClaimOut,
    status=201,
)
async def create_claim(call: Call) -> s.ClaimOut:
    return claim_out(await services.create_claim(call.conn, call.need_actor(), call.body))


@api.operation(
    "GET",
    "/api/v1/claims",
    summary="The bank's claims",
    tag="collateral",
    roles=BANK_OR_OPERATOR,
    query=s.PageQuery,
    response=s.ClaimList,
)
async def list_claims(call: Call) -> s.ClaimList:
    q: s.PageQuery = call.query
    views = await services.list_claims(call.conn, call.need_actor(), limit=q.limit, before_id=q.before_id)
    return s.ClaimList(items=[claim_out(v) for v in views])


@api.operation(
    "GET",
    "/api/v1/claims/{claim_id}",
    summary="A claim: outstanding and recovered by bucket",
    tag="collateral",
    roles=BANK_OR_OPERATOR,
    response=s.ClaimOut,
)
async def get_claim(call: Call) -> s.ClaimOut:
    return claim_out(await services.get_claim(call.conn, call.need_actor(), int(call.params["claim_id"])))


# --------------------------------------------------------------------------- listings


@api.operation(
    "POST",
    "/api/v1/listings",
    summary="Create a draft listing (licence, transfer, bundle or entrusted acquisition)",
    tag="listings",
    roles=BANK,
    body=ls.ListingIn,
    response=s.ListingOut,
    status=201,
)
async def create_listing(call: Call) -> s.ListingOut:
    return listing_out(await services.create_listing(call.conn, call.need_actor(), call.body), owner=True)


@api.operation(
    "POST",
    "/api/v1/listings/{listing_id}/publish",
    summary="Publish a draft listing",
    tag="listings",
    roles=BANK,
    response=s.ListingOut,
)
async def publish_listing(call: Call) -> s.ListingOut:
    view = await services.publish_listing(call.conn, call.need_actor(), int(call.params["listing_id"]))
    return listing_out(view, owner=True)


@api.operation(
    "POST",
    "/api/v1/listings/{listing_id}/withdraw",
    summary="Withdraw a listing with a rule-21 reason",
    tag="listings",
    roles=BANK_OR_OPERATOR,
    body=s.WithdrawIn,
    response=s.ListingOut,
)
async def withdraw_listing(call: Call) -> s.ListingOut:
    b: s.WithdrawIn = call.body
    view = await services.withdraw_listing(
        call.conn, call.need_actor(), int(call.params["listing_id"]), b.reason, b.note or None
    )
    return listing_out(view, owner=True)


@api.operation(
    "GET",
    "/api/v1/listings",
    summary="Search public listings (Chinese and English full text, filters, keyset pages)",
    tag="listings",
    roles=None,
    query=s.ListingQuery,
    response=s.ListingPage,
)
async def search_listings(call: Call) -> s.ListingPage:
    q: s.ListingQuery = call.query
    rows, cursor = await queries.search(
        call.conn,
        queries.Search(
            q=q.q,
            kind=q.kind,
            cls=q.cls,
            mode=q.mode,
            status=q.status,
            min_price_fen=q.min_price_fen,
            max_price_fen=q.max_price_fen,
            min_remaining_months=q.min_remaining_months,
            bank_org_id=q.bank,
            before_id=q.before_id,
            limit=q.limit,
        ),
    )
    return s.ListingPage(items=[summary(r) for r in rows], next_before_id=cursor)


@api.operation(
    "GET",
    "/api/v1/listings/{listing_id}",
    summary="One listing (drafts only to their bank)",
    tag="listings",
    roles=None,
    response=s.ListingOut,
)
async def get_listing(call: Call) -> s.ListingOut:
    view = await services.get_listing_for(call.conn, call.actor, int(call.params["listing_id"]))
    return listing_out(view, owner=_owner(call, view.row))


@api.operation(
    "GET",
    "/api/v1/me/listings",
    summary="The bank's own listings, every status",
    tag="listings",
    roles=BANK_OR_OPERATOR,
    response=s.ListingPage,
)
async def my_listings(call: Call) -> s.ListingPage:
    rows = await services.list_own_listings(call.conn, call.need_actor())
    return s.ListingPage(items=[summary(r) for r in rows], next_before_id=None)


# --------------------------------------------------------------------------- interests


@api.operation(
    "PUT",
    "/api/v1/me/interests",
    summary="Set the buyer's interest profile",
    tag="recommendations",
    roles=BUYER,
    body=s.InterestsIn,
    response=s.InterestsOut,
)
async def put_interests(call: Call) -> s.InterestsOut:
    b: s.InterestsIn = call.body
    p = await recommend.put_interests(call.conn, call.need_actor(), b.kinds, b.classes, b.keywords)
    return s.InterestsOut(kinds=list(p.kinds), classes=list(p.classes), keywords=list(p.keywords))


@api.operation(
    "GET",
    "/api/v1/me/interests",
    summary="The buyer's interest profile",
    tag="recommendations",
    roles=BUYER,
    response=s.InterestsOut,
)
async def get_interests(call: Call) -> s.InterestsOut:
    p = await recommend.get_interests(call.conn, call.need_actor())
    return s.InterestsOut(kinds=list(p.kinds), classes=list(p.classes), keywords=list(p.keywords))


@api.operation(
    "GET",
    "/api/v1/recommendations",
    summary="Published listings ranked for the buyer, with reasons",
    tag="recommendations",
    roles=BUYER,
    response=s.RecommendationList,
)
async def get_recommendations(call: Call) -> s.RecommendationList:
    recs = await recommend.recommendations(call.conn, call.need_actor())
    return s.RecommendationList(
        items=[
            s.RecommendationOut(
                listing=summary(r.listing),
                score=r.match.score,
                reasons=[s.ReasonOut(code=x.code, value=x.value) for x in r.match.reasons],
            )
            for r in recs
        ]
    )


@api.operation(
    "GET",
    "/api/v1/me/notifications",
    summary="In-app notifications of the caller's organisation",
    tag="recommendations",
    roles=SIGNED_IN,
    response=s.NotificationList,
)
async def list_notifications(call: Call) -> s.NotificationList:
    rows = await recommend.list_notifications(call.conn, call.need_actor())
    return s.NotificationList(items=[s.NotificationOut.model_validate(r, from_attributes=True) for r in rows])


@api.operation(
    "POST",
    "/api/v1/me/notifications/{notification_id}/read",
    summary="Mark a notification read",
    tag="recommendations",
    roles=SIGNED_IN,
    status=204,
)
async def read_notification(call: Call) -> Any:
    from starlette.responses import Response

    if not await recommend.mark_read(call.conn, call.need_actor(), int(call.params["notification_id"])):
        raise store.ListingNotFound("No such notification")
    return Response(status_code=204)


# --------------------------------------------------------------------------- negotiation


async def thread_out(call: Call, thread_id: int, t: Thread) -> s.ThreadOut:
    offers_out = [
        s.OfferOut(
            seq=o.seq,
            by=o.by.value,
            amount_fen=o.amount_fen,
            message=o.message,
            made_at=o.made_at,
            expires_at=o.expires_at,
        )
        for o in t.offers
    ]
    disposal_id = None
    if t.status.value == "accepted":
        found = [
            d
            for d in await disposals.for_listing(call.conn, t.listing_id)
            if d.source == "negotiation" and d.source_ref == str(thread_id)
        ]
        disposal_id = found[0].id if found else None
    return s.ThreadOut(
        id=thread_id,
        listing_id=t.listing_id,
        buyer_org_id=t.buyer_org_id,
        bank_org_id=t.bank_org_id,
        status=t.status.value,
        turn=t.turn.value if t.is_open and t.turn else None,
        current=offers_out[-1],
        offers=offers_out,
        agreed_price_fen=t.agreed_price_fen,
        disposal_id=disposal_id,
    )


def _validity(hours: int | None) -> timedelta | None:
    return timedelta(hours=hours) if hours else None


@api.operation(
    "POST",
    "/api/v1/listings/{listing_id}/offers",
    summary="Make an offer (opens a negotiation)",
    tag="negotiation",
    roles=BUYER,
    body=s.OfferIn,
    response=s.ThreadOut,
    status=201,
)
async def make_offer(call: Call) -> s.ThreadOut:
    b: s.OfferIn = call.body
    thread_id, t = await offers.make_offer(
        call.conn,
        call.need_actor(),
        int(call.params["listing_id"]),
        b.amount_fen,
        b.message,
        _validity(b.valid_hours),
    )
    return await thread_out(call, thread_id, t)


@api.operation(
    "GET",
    "/api/v1/offers",
    summary="Negotiations the caller takes part in",
    tag="negotiation",
    roles=SIGNED_IN,
    response=s.ThreadList,
)
async def list_offers(call: Call) -> s.ThreadList:
    actor = call.need_actor()
    items = []
    for tid in await offers.threads_for(call.conn, actor):
        _, t = await offers.get_thread(call.conn, actor, tid)
        items.append(await thread_out(call, tid, t))
    return s.ThreadList(items=items)


@api.operation(
    "GET",
    "/api/v1/offers/{offer_id}",
    summary="One negotiation (only its two sides)",
    tag="negotiation",
    roles=SIGNED_IN,
    response=s.ThreadOut,
)
async def get_offer(call: Call) -> s.ThreadOut:
    tid = int(call.params["offer_id"])
    _, t = await offers.get_thread(call.conn, call.need_actor(), tid)
    return await thread_out(call, tid, t)


@api.operation(
    "POST",
    "/api/v1/offers/{offer_id}/counter",
    summary="Counter the current offer",
    tag="negotiation",
    roles=(Role.BANK, Role.BUYER),
    body=s.CounterIn,
    response=s.ThreadOut,
)
async def counter_offer(call: Call) -> s.ThreadOut:
    b: s.CounterIn = call.body
    tid = int(call.params["offer_id"])
    t = await offers.act(
        call.conn,
        call.need_actor(),
        tid,
        "counter",
        amount_fen=b.amount_fen,
        message=b.message,
        validity=_validity(b.valid_hours),
    )
    return await thread_out(call, tid, t)


async def _simple_act(call: Call, action: str) -> s.ThreadOut:
    tid = int(call.params["offer_id"])
    t = await offers.act(call.conn, call.need_actor(), tid, action, settings=call.settings)
    return await thread_out(call, tid, t)


@api.operation(
    "POST",
    "/api/v1/offers/{offer_id}/accept",
    summary="Accept the current offer (sells the listing, creates its disposal)",
    tag="negotiation",
    roles=(Role.BANK, Role.BUYER),
    response=s.ThreadOut,
)
async def accept_offer(call: Call) -> s.ThreadOut:
    return await _simple_act(call, "accept")


@api.operation(
    "POST",
    "/api/v1/offers/{offer_id}/reject",
    summary="Reject the current offer",
    tag="negotiation",
    roles=(Role.BANK, Role.BUYER),
    response=s.ThreadOut,
)
async def reject_offer(call: Call) -> s.ThreadOut:
    return await _simple_act(call, "reject")


@api.operation(
    "POST",
    "/api/v1/offers/{offer_id}/withdraw",
    summary="Withdraw one's own current offer",
    tag="negotiation",
    roles=(Role.BANK, Role.BUYER),
    response=s.ThreadOut,
)
async def withdraw_offer(call: Call) -> s.ThreadOut:
    return await _simple_act(call, "withdraw")
