"""Pages of the operator console: the live monitor, auction interventions, the audit viewer, KPIs.

- ``/ops/monitor``: the monitor's figures rendered at one moment, then kept live without reload by
  ``web/static/monitor.js`` over ``/ws/monitor`` (``web.ws_monitor``); two charts (bids per minute,
  recovery by bank) drawn as inline SVG.
- ``/ops/auctions/{id}``: suspend / resume / cancel with a mandatory reason (published in the feed,
  rule 20), the identities behind the paddles (rule 14: operators only), every bid with a button to
  ask for its cancellation, and the pending cancellations for a second operator to approve or reject.
- ``/ops/audit``: the hash-chained trail searched by object and actor, newest first, with paging
  and a "verify chain" button (``market.audit.verify``).
- ``/ops/kpis``: recovery rate, time to disposal, failed rounds, price against appraisal, filtered
  by bank, asset kind and period (``auctions.kpis``).

Handlers stay thin like the other page modules: CSRF first, one service call in one transaction,
then 303 back to the page or the same page again with the refusal.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from pydantic import ValidationError
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from auctions import interventions, kpis as kpimod, rules, services, store
from auctions.monitor_tables import bid_cancellations
from auctions.tables import auction_events, auctions
from listings import store as lstore
from listings.model import AssetKind
from listings.tables import disposals, listings
from market import audit, clock
from market.db import transaction
from market.errors import MarketError, ReasonRequired
from market.money import format_cny
from market.parties import Actor, Role
from market.tables import orgs, users
from web.api_operators import KpiQuery
from web.digits import ascii_digits
from web.errors import status_of
from web.pages import render
from web.pages_listings import failure, read_form, signed_in
from web.ws_monitor import compute

ACTIONS = ("suspend", "resume", "cancel")
DECISIONS = ("approve", "reject")
AUDIT_PAGE = 50
OPEN_LIMIT = 100
FEED_LIMIT = 100
KINDS = [k.value for k in AssetKind]
SIGNALS = ("early_bidding", "minimum_increments", "never_wins", "seller_concentration")


def cny(fen: int | None) -> str:
    return "—" if fen is None else "¥" + format_cny(fen)


def moment(value: datetime | str | None) -> str:
    if value is None or value == "":
        return "—"
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return at.astimezone(clock.CST).strftime("%Y-%m-%d %H:%M:%S")


def percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.2f} %"


def compact(value: Any) -> str:
    return "" if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def page(request: Request, template: str, status_code: int = 200, **ctx: Any) -> Response:
    ctx.setdefault("failure", None)
    return render(
        request, template, status_code, cny=cny, moment=moment, percent=percent, compact=compact, **ctx
    )


def _engine(request: Request) -> Any:
    return request.app.state.engine


async def _operator(request: Request) -> Actor | Response:
    return await signed_in(request, Role.OPERATOR)


# --------------------------------------------------------------------------- monitor


async def monitor_page(request: Request) -> Response:
    actor = await _operator(request)
    if isinstance(actor, Response):
        return actor
    snapshot = await compute(_engine(request))
    q = (
        select(auctions.c.id, auctions.c.round_no, auctions.c.ends_at, listings.c.title)
        .join(listings, listings.c.id == auctions.c.listing_id)
        .where(auctions.c.status.in_(("scheduled", "live", "suspended")))
        .order_by(auctions.c.ends_at, auctions.c.id)
        .limit(OPEN_LIMIT)
    )
    async with transaction(_engine(request)) as conn:
        rows = (await conn.execute(q)).all()
        running = [(await services.view(conn, actor, r.id), r.title) for r in rows]
    return page(request, "operators/monitor.html", snapshot=snapshot, running=running, signals=SIGNALS)


# --------------------------------------------------------------------------- one auction


async def _auction_context(request: Request, actor: Actor, auction_id: int) -> dict[str, Any]:
    async with transaction(_engine(request)) as conn:
        v = await services.view(conn, actor, auction_id)
        listing = await lstore.find_listing_row(conn, v.row.listing_id)
        identities = await services.registrations(conn, actor, auction_id)
        bids = await interventions.bids_with_identities(conn, auction_id)
        voided = await interventions.voided_seqs(conn, auction_id)
        cancellations = await interventions.cancellations(conn, auction_id=auction_id, limit=200)
        feed = (
            await conn.execute(
                select(auction_events.c.public)
                .where(auction_events.c.auction_id == auction_id, auction_events.c.type != "bid")
                .order_by(auction_events.c.seq.desc())
                .limit(FEED_LIMIT)
            )
        ).all()
    terminal = v.status in rules.TERMINAL
    return {
        "v": v,
        "s": v.state,
        "auction": v.row,
        "title": listing.title if listing is not None else "",
        "identities": identities,
        "bids": bids,
        "voided": voided,
        "cancellations": cancellations,
        "pending_seqs": {c.seq for c in cancellations if c.status == "pending"},
        "feed": [r.public for r in feed],
        "terminal": terminal,
        "can_suspend": v.status in ("scheduled", "live") and v.now < v.state.ends_at,
        "can_resume": v.status == "suspended",
        "can_cancel": not terminal,
        "me": actor.user_id,
    }


async def auction_page(request: Request, status_code: int = 200, **extra: Any) -> Response:
    actor = await _operator(request)
    if isinstance(actor, Response):
        return actor
    auction_id = int(request.path_params["auction_id"])
    ctx = await _auction_context(request, actor, auction_id)
    return page(request, "operators/auction.html", status_code, **ctx, **extra)


async def _after_action(request: Request, actor: Actor, auction_id: int, work: Any) -> Response:
    """Run ``work(conn)`` in one transaction; 303 back to the auction, or the page with the refusal."""
    try:
        async with transaction(_engine(request)) as conn:
            await work(conn)
    except store.AuctionNotFound:
        raise
    except MarketError as exc:
        ctx = await _auction_context(request, actor, auction_id)
        return page(request, "operators/auction.html", status_of(exc), failure=failure(request, exc), **ctx)
    return RedirectResponse(f"/ops/auctions/{auction_id}", status_code=303)


async def intervene(request: Request) -> Response:
    actor = await _operator(request)
    if isinstance(actor, Response):
        return actor
    form = await read_form(request)
    auction_id = int(request.path_params["auction_id"])
    action = str(request.path_params["action"])
    if action not in ACTIONS:
        raise store.AuctionNotFound(f"No such intervention {action!r}")
    reason = form.text("reason") or ""

    async def work(conn: Any) -> None:
        if not reason:
            raise ReasonRequired("Give the reason; it is published in the auction feed")
        await services.intervene(conn, actor, auction_id, action, reason, request.app.state.settings)

    return await _after_action(request, actor, auction_id, work)


async def request_cancellation(request: Request) -> Response:
    actor = await _operator(request)
    if isinstance(actor, Response):
        return actor
    form = await read_form(request)
    auction_id, seq = int(request.path_params["auction_id"]), int(request.path_params["seq"])
    reason = form.text("reason") or ""

    async def work(conn: Any) -> None:
        await interventions.request_bid_cancellation(conn, actor, auction_id, seq, reason)

    return await _after_action(request, actor, auction_id, work)


async def decide_cancellation(request: Request) -> Response:
    actor = await _operator(request)
    if isinstance(actor, Response):
        return actor
    await read_form(request)
    cancellation_id = int(request.path_params["cancellation_id"])
    decision = str(request.path_params["decision"])
    if decision not in DECISIONS:
        raise interventions.CancellationNotFound(f"No such decision {decision!r}")
    async with transaction(_engine(request)) as conn:
        row = (
            await conn.execute(
                select(bid_cancellations.c.auction_id).where(bid_cancellations.c.id == cancellation_id)
            )
        ).first()
    if row is None:
        raise interventions.CancellationNotFound(f"No bid cancellation {cancellation_id}")

    async def work(conn: Any) -> None:
        await interventions.decide(conn, actor, cancellation_id, approve=decision == "approve")

    return await _after_action(request, actor, row.auction_id, work)


# --------------------------------------------------------------------------- audit


def _int_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name, "").strip()
    return int(raw) if ascii_digits(raw) and len(raw) <= 18 and int(raw) > 0 else None


async def audit_page(request: Request) -> Response:
    actor = await _operator(request)
    if isinstance(actor, Response):
        return actor
    entity = request.query_params.get("entity", "").strip()[:50] or None
    entity_id = request.query_params.get("id", "").strip()[:100] or None
    actor_id = _int_param(request, "actor")
    before = _int_param(request, "before")
    verify = request.query_params.get("verify") == "1"
    async with transaction(_engine(request)) as conn:
        entries = await audit.entries(
            conn,
            entity=entity,
            entity_id=entity_id,
            actor_user_id=actor_id,
            limit=AUDIT_PAGE + 1,
            before_seq=before,
        )
        ids = {e.actor_user_id for e in entries if e.actor_user_id is not None}
        emails = (
            {
                r.id: r.email
                for r in (
                    await conn.execute(select(users.c.id, users.c.email).where(users.c.id.in_(ids)))
                ).all()
            }
            if ids
            else {}
        )
        report = await audit.verify(conn) if verify else None
    more = len(entries) > AUDIT_PAGE
    entries = entries[:AUDIT_PAGE]
    filters = {"entity": entity or "", "id": entity_id or "", "actor": str(actor_id or "")}
    older = None
    if more and entries:
        older = "/ops/audit?" + urlencode(
            {**{k: v for k, v in filters.items() if v}, "before": entries[-1].seq}
        )
    return page(
        request,
        "operators/audit.html",
        entries=entries,
        emails=emails,
        filters=filters,
        older=older,
        newest="/ops/audit?" + urlencode({k: v for k, v in filters.items() if v}) if before else None,
        report=report,
    )


# --------------------------------------------------------------------------- KPIs


async def kpis_page(request: Request) -> Response:
    actor = await _operator(request)
    if isinstance(actor, Response):
        return actor
    raw = {k: v for k in ("bank", "kind", "from", "to") if (v := request.query_params.get(k, "").strip())}
    errors: list[str] = []
    try:
        query = KpiQuery.model_validate(raw)
    except ValidationError as exc:
        errors = sorted({str(e["loc"][0]) if e["loc"] else "filters" for e in exc.errors()})
        query = KpiQuery()
    banks_q = (
        select(orgs.c.id, orgs.c.name)
        .where(orgs.c.id.in_(select(disposals.c.bank_org_id).distinct()))
        .order_by(orgs.c.name, orgs.c.id)
        .limit(500)
    )
    async with transaction(_engine(request)) as conn:
        figures = await kpimod.kpis(conn, query.filters())
        banks = (await conn.execute(banks_q)).all()
    return page(
        request,
        "operators/kpis.html",
        422 if errors else 200,
        figures=figures,
        banks=banks,
        kinds=KINDS,
        values=raw,
        filter_errors=errors,
    )


async def ops_home(request: Request) -> Response:
    return RedirectResponse("/ops/monitor", status_code=303)


ROUTES = [
    Route("/ops", ops_home, methods=["GET"], name="ops_home"),
    Route("/ops/monitor", monitor_page, methods=["GET"], name="ops_monitor"),
    Route("/ops/auctions/{auction_id:int}", auction_page, methods=["GET"], name="ops_auction"),
    Route(
        "/ops/auctions/{auction_id:int}/bids/{seq:int}/cancel",
        request_cancellation,
        methods=["POST"],
        name="ops_bid_cancel",
    ),
    Route("/ops/auctions/{auction_id:int}/{action:str}", intervene, methods=["POST"], name="ops_intervene"),
    Route(
        "/ops/bid-cancellations/{cancellation_id:int}/{decision:str}",
        decide_cancellation,
        methods=["POST"],
        name="ops_bid_cancel_decide",
    ),
    Route("/ops/audit", audit_page, methods=["GET"], name="ops_audit"),
    Route("/ops/kpis", kpis_page, methods=["GET"], name="ops_kpis"),
]
