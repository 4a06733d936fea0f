"""Pages of live auctions: the index, the auction room, registration, and the bank's set-up form.

The room is rendered with the auction's state and bid history at one ``seq``; its script
(``web/static/auction.js``) then opens ``/ws/auctions/{id}?since=<seq>`` and applies what
follows, so the page never misses or repeats an event. Every time the page shows is counted
from the server's clock (``server_time``), never the browser's.

Handlers stay thin like those of ``web.pages_listings``: CSRF first, one service call in one
transaction, then 303 or the same page again with the refusal (its rule problems listed).
Set-up times are typed as China Standard Time (``datetime-local`` inputs, UTC+8).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from sqlalchemy import func, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from auctions import events as ev, interventions, rules, services
from auctions.tables import auction_events, auctions
from listings import services as lservices, store as lstore
from listings.tables import listings
from market import clock
from market.db import transaction
from market.errors import Conflict, Forbidden, RuleViolation
from market.money import format_cny
from market.parties import Actor, Role
from web.api_auctions import AuctionIn
from web.digits import ascii_digits
from web.errors import status_of
from web.pages import load_actor, render
from web.pages_listings import FormInput, failure, read_form, signed_in, validate

OPEN_STATUSES = ("scheduled", "live", "suspended")
INDEX_LIMIT = 100
HISTORY_LIMIT = 200
KINDS: tuple[rules.Kind, ...] = ("auction", "fixed_price_sale")

# Form messages: English source text, translated in the template with ``_``.
REQUIRED = "This field is required."
MOMENT = "Enter a date and time."
ORG_IDS = "Enter organisation numbers separated by commas."
_LOCAL = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?")
_SPLIT = re.compile(r"[\s,;，；、]+")


# --------------------------------------------------------------------------- formatting


def cny(fen: int | None) -> str:
    return "—" if fen is None else format_cny(fen)


def yuan(fen: int | None) -> str:
    """Fen as a yuan amount to type in again: ``70000000`` -> ``"700000.00"`` (no separators)."""
    return "" if fen is None else f"{fen // 100}.{fen % 100:02d}"


def moment(value: datetime | str | None, seconds: bool = False) -> str:
    """An instant in China Standard Time."""
    if value is None or value == "":
        return "—"
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return at.astimezone(clock.CST).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def local_input(value: datetime) -> str:
    """An instant as a ``datetime-local`` value in China Standard Time."""
    return value.astimezone(clock.CST).strftime("%Y-%m-%dT%H:%M")


def countdown(delta: timedelta) -> tuple[int, str]:
    """Whole days and ``HH:MM:SS`` left (never negative)."""
    total = max(0, int(delta.total_seconds()))
    days, rest = divmod(total, 86400)
    return days, f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"


def page(request: Request, template: str, status_code: int = 200, **ctx: Any) -> Response:
    ctx.setdefault("errors", {})
    ctx.setdefault("values", {})
    ctx.setdefault("failure", None)
    return render(request, template, status_code, cny=cny, moment=moment, **ctx)


def _engine(request: Request) -> Any:
    return request.app.state.engine


# --------------------------------------------------------------------------- index


async def index_page(request: Request) -> Response:
    """Live and upcoming auctions (anyone), soonest end first."""
    actor = await load_actor(request)
    q = (
        select(auctions.c.id, listings.c.title)
        .join(listings, listings.c.id == auctions.c.listing_id)
        .where(auctions.c.status.in_(OPEN_STATUSES))
        .order_by(auctions.c.ends_at, auctions.c.id)
        .limit(INDEX_LIMIT)
    )
    async with transaction(_engine(request)) as conn:
        rows = (await conn.execute(q)).all()
        items = [(await services.view(conn, actor, r.id), r.title) for r in rows]
    return page(request, "auctions/index.html", items=items)


# --------------------------------------------------------------------------- the room


@dataclass(frozen=True, slots=True)
class Room:
    view: services.View
    title: str
    bids: list[dict[str, Any]]
    voided: set[int]  # seqs of bids (and their automatic answers) an operator cancelled


async def _bid_history(conn: AsyncConnection, auction_id: int, upto_seq: int) -> list[dict[str, Any]]:
    """The public bid events up to ``upto_seq``, newest first."""
    q = (
        select(auction_events.c.public)
        .where(
            auction_events.c.auction_id == auction_id,
            auction_events.c.type == "bid",
            auction_events.c.seq <= upto_seq,
        )
        .order_by(auction_events.c.seq.desc())
        .limit(HISTORY_LIMIT)
    )
    return [r.public for r in (await conn.execute(q)).all()]


async def _load_room(request: Request, actor: Actor | None, auction_id: int) -> Room:
    async with transaction(_engine(request)) as conn:
        v = await services.view(conn, actor, auction_id)
        listing = await lstore.find_listing_row(conn, v.row.listing_id)
        bids = await _bid_history(conn, auction_id, v.state.seq)
        voided = await interventions.voided_seqs(conn, auction_id)
    return Room(v, listing.title if listing is not None else "", bids, voided)


def _room_context(room: Room, actor: Actor | None) -> dict[str, Any]:
    v, s = room.view, room.view.state
    terminal = v.status in rules.TERMINAL
    mine = v.mine
    target = s.starts_at if v.status == "scheduled" else s.ends_at
    days, clock_text = countdown(target - v.now)
    paused_ms = None
    if v.status == "suspended" and s.suspended_at is not None:
        paused = s.ends_at - max(s.suspended_at, s.starts_at)
        days, clock_text = countdown(paused)
        paused_ms = int(paused.total_seconds() * 1000)
    is_buyer = actor is not None and actor.role is Role.BUYER
    leader = s.leader.paddle_no if s.leader else None
    my_paddle = mine.paddle_no if mine is not None else None
    bid_before = any(b.get("paddle_no") == my_paddle for b in room.bids)
    open_for_registration = not terminal and v.now < s.ends_at
    return {
        "auction": v.row,
        "v": v,
        "s": s,
        "title": room.title,
        "bids": room.bids,
        "voided": room.voided,
        "mine": mine,
        "days_left": 0 if terminal else days,
        "clock_text": "—" if terminal else clock_text,
        "paused_ms": paused_ms,
        "moved": s.ends_at != v.terms.ends_at,
        "leader": leader,
        "outbid": my_paddle is not None and leader not in (None, my_paddle) and bid_before,
        "can_register": is_buyer and mine is None and open_for_registration,
        "can_bid": mine is not None and mine.deposit_status == "held" and not terminal,
        "rfc3339": ev.rfc3339,
        "yuan": yuan,
    }


async def room_page(request: Request) -> Response:
    actor = await load_actor(request)
    auction_id = int(request.path_params["auction_id"])
    room = await _load_room(request, actor, auction_id)
    return page(request, "auctions/room.html", **_room_context(room, actor))


async def register(request: Request) -> Response:
    """Register the signed-in buyer: deposit held, paddle given; then back to the room."""
    auction_id = int(request.path_params["auction_id"])
    actor = await load_actor(request)
    if actor is None:
        return RedirectResponse(f"/login?next={quote(f'/auctions/{auction_id}')}", status_code=303)
    await read_form(request)
    try:
        async with transaction(_engine(request)) as conn:
            await services.register(conn, actor, auction_id, request.app.state.settings)
    except (Conflict, Forbidden, RuleViolation) as exc:
        room = await _load_room(request, actor, auction_id)
        return page(
            request,
            "auctions/room.html",
            status_of(exc),
            failure=failure(request, exc),
            **_room_context(room, actor),
        )
    return RedirectResponse(f"/auctions/{auction_id}", status_code=303)


# --------------------------------------------------------------------------- bank: set-up


@dataclass(frozen=True, slots=True)
class Floors:
    """The legal price floors of the next round (rules 2, 3, 6) and the earliest opening."""

    round_no: int
    appraisal_fen: int | None
    previous_start_fen: int | None
    start_floor_fen: int | None
    earliest_start: datetime


async def _rounds(conn: AsyncConnection, listing_id: int) -> list[Row[Any]]:
    q = select(auctions).where(auctions.c.listing_id == listing_id).order_by(auctions.c.round_no.desc())
    return list((await conn.execute(q)).all())


def _floors(listing: Row[Any], rounds: list[Row[Any]], settings: Any, now: datetime) -> Floors:
    previous = rounds[0] if rounds else None
    appraisal = listing.appraisal_fen
    if previous is None:
        start_floor = rules.percent_of(appraisal, rules.FIRST_ROUND_FLOOR_PERCENT) if appraisal else None
        published = listing.published_at or now
        earliest = max(now, published + timedelta(seconds=settings.min_notice_seconds))
        return Floors(1, appraisal, None, start_floor, earliest)
    prev_start: int = previous.terms["start_price_fen"]
    earliest = now + timedelta(seconds=settings.min_reauction_notice_seconds)
    start_floor = rules.percent_of(prev_start, rules.LATER_ROUND_FLOOR_PERCENT)
    return Floors(previous.round_no + 1, appraisal, prev_start, start_floor, earliest)


def _deposit_range(start_fen: int | None) -> tuple[int, int] | None:
    if not start_fen:
        return None
    low = rules.percent_of(start_fen, rules.DEPOSIT_MIN_PERCENT)
    return low, start_fen * rules.DEPOSIT_MAX_PERCENT // 100


def _defaults(floors: Floors, rounds: list[Row[Any]], settings: Any) -> dict[str, str]:
    """A legal starting point for the form: the floor, a 10 % deposit, the earliest window."""
    start = floors.start_floor_fen
    step = (rounds[0].next_step or {}) if rounds else {}
    if step.get("kind") == "fixed_price_sale" and step.get("price_fen"):
        start = step["price_fen"]
    opens = floors.earliest_start + timedelta(minutes=5)
    opens = opens.replace(second=0, microsecond=0) + timedelta(minutes=1)
    window = timedelta(seconds=max(settings.min_auction_seconds, 86400))
    return {
        "start_price_cny": yuan(start),
        "deposit_cny": yuan(rules.percent_of(start, 10) if start else None),
        "starts_at": local_input(opens),
        "ends_at": local_input(opens + window),
        "extension_seconds": str(settings.extension_seconds),
        "kind": "fixed_price_sale" if step.get("kind") == "fixed_price_sale" else "auction",
    }


async def _setup_page(
    request: Request, actor: Actor, form: FormInput | None = None, *, status: int = 200, **ctx: Any
) -> Response:
    listing_id = int(request.path_params["listing_id"])
    settings = request.app.state.settings
    async with transaction(_engine(request)) as conn:
        view = await lservices.get_listing_for(conn, actor, listing_id)
        if view.row.bank_org_id != actor.org_id:  # another bank's published listing: not this page
            raise lstore.ListingNotFound(f"No listing {listing_id}")
        rounds = await _rounds(conn, listing_id)
        now: datetime = (await conn.execute(select(func.now()))).scalar_one()
    floors = _floors(view.row, rounds, settings, now)
    values = form.values if form else _defaults(floors, rounds, settings)
    typed_start = form.fen("start_price_cny") if form else None
    previous = rounds[0] if rounds else None
    return page(
        request,
        "auctions/setup.html",
        status,
        listing=view.row,
        rounds=rounds,
        previous=previous,
        next_step=previous.next_step if previous is not None else None,
        floors=floors,
        deposit_range=_deposit_range(typed_start or floors.start_floor_fen),
        can_schedule=view.row.status in ("published", "failed") and view.row.mode != "license",
        kinds=KINDS,
        values=values,
        errors=form.errors if form else {},
        min_extension=settings.min_extension_seconds,
        **ctx,
    )


async def setup_form(request: Request) -> Response:
    actor = await signed_in(request, Role.BANK)
    if isinstance(actor, Response):
        return actor
    return await _setup_page(request, actor)


def parse_local(form: FormInput, name: str) -> datetime | None:
    """A ``datetime-local`` value read as China Standard Time."""
    raw = form.text(name)
    if raw is None:
        return None
    if not _LOCAL.fullmatch(raw):
        form.errors[name] = MOMENT
        return None
    try:
        return datetime.fromisoformat(raw).replace(tzinfo=clock.CST)
    except ValueError:
        form.errors[name] = MOMENT
        return None


def _org_ids(form: FormInput) -> list[int]:
    raw = form.text("priority_holder_org_ids") or ""
    parts = [p for p in _SPLIT.split(raw) if p]
    if not all(ascii_digits(p) and len(p) <= 18 for p in parts):
        form.errors["priority_holder_org_ids"] = ORG_IDS
        return []
    return [int(p) for p in parts]


def setup_data(form: FormInput, listing_id: int) -> dict[str, Any]:
    """AuctionIn fields from the form (amounts in yuan, times in CST)."""
    data = {
        "listing_id": listing_id,
        "start_price_fen": form.fen("start_price_cny"),
        "increment_fen": form.fen("increment_cny"),
        "deposit_fen": form.fen("deposit_cny"),
        "starts_at": parse_local(form, "starts_at"),
        "ends_at": parse_local(form, "ends_at"),
        "extension_seconds": form.integer("extension_seconds"),
        "reserve_fen": form.fen("reserve_cny"),
        "priority_holder_org_ids": _org_ids(form),
        "kind": form.text("kind") or "auction",
    }
    for name in ("starts_at", "ends_at"):
        if data[name] is None and name not in form.errors:
            form.errors[name] = REQUIRED
    return data


async def setup_submit(request: Request) -> Response:
    actor = await signed_in(request, Role.BANK)
    if isinstance(actor, Response):
        return actor
    form = await read_form(request)
    listing_id = int(request.path_params["listing_id"])
    body = validate(AuctionIn, setup_data(form, listing_id), form, lists=["priority_holder_org_ids"])
    if body is None:
        return await _setup_page(request, actor, form, status=422)
    spec = services.NewAuction(
        listing_id=body.listing_id,
        start_price_fen=body.start_price_fen,
        increment_fen=body.increment_fen,
        deposit_fen=body.deposit_fen,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        extension_seconds=body.extension_seconds,
        reserve_fen=body.reserve_fen,
        priority_holder_org_ids=tuple(body.priority_holder_org_ids),
        kind=body.kind,
    )
    try:
        async with transaction(_engine(request)) as conn:
            row = await services.create_auction(conn, actor, spec, request.app.state.settings)
    except (RuleViolation, Conflict) as exc:
        return await _setup_page(request, actor, form, status=status_of(exc), failure=failure(request, exc))
    return RedirectResponse(f"/auctions/{row.id}", status_code=303)


ROUTES = [
    Route("/auctions", index_page, methods=["GET"], name="auctions_index"),
    Route("/auctions/{auction_id:int}", room_page, methods=["GET"], name="auction_room"),
    Route("/auctions/{auction_id:int}/register", register, methods=["POST"], name="auction_register"),
    Route("/bank/listings/{listing_id:int}/auction", setup_form, methods=["GET"], name="auction_setup"),
    Route(
        "/bank/listings/{listing_id:int}/auction",
        setup_submit,
        methods=["POST"],
        name="auction_setup_submit",
    ),
]
