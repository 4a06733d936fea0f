"""7. Access matrix: every route enumerated from the Starlette router (API, pages, websocket, static)
x (anonymous, buyer, buyer of another auction, bank A, bank B, operator) against real objects —
0 unexpected allows, 0 unexpected denies; identities behind paddle numbers reach operators only.

"Denied" means 401, 403, 404 (another organisation's object answers 404) or, for a page, a redirect
to ``/login``; anything else got past the access rules (a 409 or 422 about the object's state or
the input counts as allowed). A route of the router without a row here fails the test: nobody
adds an endpoint without deciding who may use it.

The world: bank A's live auction X with the buyer and two hidden bidders (H1, H2) registered and
bidding; bank B's auction Y with the other buyer; bank A's auction R nobody registered for; bank
A's sold auction Z (winner W) with its disposal D and a pledge task; bank A's listings LN (a
negotiation T with the buyer) and LW (to withdraw); a notification of the buyer; an unverified
buyer organisation U; a risk pool. Unsafe requests carry valid input, so a refusal can only come
from the access rules; within a route the callers expected to be refused go first, so a state
change by an allowed caller cannot hide a wrong refusal.

Paddle identities: every response body and websocket frame any non-operator received in the whole
matrix is searched for H1's and H2's names, credit codes and organisation ids (and for the buyer's
name and credit code, in what bank B and the other buyer received).
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.routing import Mount, Route, WebSocketRoute

from market.config import Settings
from market.db import transaction
from market.parties import Role
from tests.e2e.conftest import Server
from tests.reliability import helpers as h
from tests.support.factories import PASSWORD
from tests.support.live import ws_url

pytestmark = pytest.mark.reliability

ANON, BUYER, OTHER, BANK_A, BANK_B, OPS = "anonymous", "buyer", "other_buyer", "bank_a", "bank_b", "operator"
WHO = (ANON, BUYER, OTHER, BANK_A, BANK_B, OPS)
ALL = set(WHO)
SIGNED = ALL - {ANON}
BUYERS = {BUYER, OTHER}
BANKS = {BANK_A, BANK_B}
BANKS_OPS = {BANK_A, BANK_B, OPS}


@dataclass
class World:
    ids: dict[str, Any]
    people: dict[str, h.Who | None]
    hidden: list[h.Who]
    spare: h.Who  # a user whose password sign-in the /login row uses


@dataclass
class Row:
    key: str  # "METHOD /path/template" as the router has it
    allowed: set[str]
    path: str = ""  # concrete path ({...} filled from the world)
    body: Callable[[World, str], Any] | None = None  # JSON (API) or form (pages)
    page: bool = False
    fresh_session: bool = False  # the request ends the session: use a throwaway one
    content: bytes | None = None
    ctype: str | None = None


def rows() -> list[Row]:
    """Every route, in the order they are exercised (reads first, destructive last)."""
    today = date.today().isoformat()
    empty: Callable[[World, str], Any] = lambda w, who: {}  # noqa: E731
    return [
        # --- infrastructure
        Row("GET /healthz", ALL),
        Row("GET /readyz", ALL),
        Row("GET /metrics", ALL),
        Row("GET /api/v1/openapi.json", ALL),
        Row("MOUNT /static", ALL, "/static/auction.js"),
        # --- API reads
        Row("GET /api/v1/auctions", ALL),
        Row("GET /api/v1/auctions/{auction_id}", ALL, "/api/v1/auctions/{X}"),
        Row("GET /api/v1/auctions/{auction_id}/events", ALL, "/api/v1/auctions/{X}/events"),
        Row("GET /api/v1/auctions/{auction_id}/registrations", {OPS}, "/api/v1/auctions/{X}/registrations"),
        Row("GET /api/v1/imports/template.csv", BANKS),
        Row("GET /api/v1/imports/template.xlsx", BANKS),
        Row("GET /api/v1/assets", BANKS_OPS),
        Row("GET /api/v1/assets/{asset_id}", {BANK_A, OPS}, "/api/v1/assets/{AX}"),
        Row("GET /api/v1/claims", BANKS_OPS),
        Row("GET /api/v1/claims/{claim_id}", {BANK_A, OPS}, "/api/v1/claims/{CX}"),
        Row("GET /api/v1/listings", ALL),
        Row("GET /api/v1/listings/{listing_id}", ALL, "/api/v1/listings/{LX}"),
        Row("GET /api/v1/me/listings", BANKS_OPS),
        Row("GET /api/v1/me/interests", BUYERS),
        Row("GET /api/v1/recommendations", BUYERS),
        Row("GET /api/v1/me/notifications", SIGNED),
        Row("GET /api/v1/offers", SIGNED),
        Row("GET /api/v1/offers/{offer_id}", {BUYER, BANK_A, OPS}, "/api/v1/offers/{T}"),
        Row("GET /api/v1/me", SIGNED),
        Row("GET /api/v1/orgs", {OPS}),
        Row("GET /api/v1/orgs/{org_id}", {BANK_A, OPS}, "/api/v1/orgs/{BANK_A_ORG}"),
        Row("GET /api/v1/audit", {OPS}),
        Row("GET /api/v1/audit/verify", {OPS}),
        Row("GET /api/v1/disposals/{disposal_id}", {BANK_A, OPS}, "/api/v1/disposals/{D}"),
        Row("GET /api/v1/me/tasks", BANKS_OPS),
        Row("GET /api/v1/monitor", {OPS}),
        Row("GET /api/v1/kpis", {OPS}),
        Row("GET /api/v1/bid-cancellations", {OPS}),
        Row("GET /api/v1/claims/{claim_id}/statement", {BANK_A, OPS}, "/api/v1/claims/{CX}/statement"),
        Row(
            "GET /api/v1/claims/{claim_id}/statement.csv", {BANK_A, OPS}, "/api/v1/claims/{CX}/statement.csv"
        ),
        Row(
            "GET /api/v1/claims/{claim_id}/statement.xlsx",
            {BANK_A, OPS},
            "/api/v1/claims/{CX}/statement.xlsx",
        ),
        Row(
            "GET /api/v1/claims/{claim_id}/statement.pdf", {BANK_A, OPS}, "/api/v1/claims/{CX}/statement.pdf"
        ),
        Row("GET /api/v1/banks/{org_id}/statement", {BANK_A, OPS}, "/api/v1/banks/{BANK_A_ORG}/statement"),
        Row("GET /api/v1/reports/disposals", {OPS}),
        Row("GET /api/v1/reports/disposals.csv", {OPS}),
        Row("GET /api/v1/reports/disposals.xlsx", {OPS}),
        Row("GET /api/v1/reports/disposals.pdf", {OPS}),
        # --- pages (cookie session)
        Row("GET /", ALL, page=True),
        Row("GET /login", ALL, page=True),
        Row("GET /lang/{code}", ALL, "/lang/en", page=True),
        Row("GET /account", SIGNED, page=True),
        Row("GET /auctions", ALL, page=True),
        Row("GET /auctions/{auction_id:int}", ALL, "/auctions/{X}", page=True),
        Row(
            "GET /bank/listings/{listing_id:int}/auction", {BANK_A}, "/bank/listings/{LR2}/auction", page=True
        ),
        Row("GET /bank/import", BANKS, page=True),
        Row("GET /bank/claims", BANKS, page=True),
        Row("GET /bank/claims/new", BANKS, page=True),
        Row("GET /bank/claims/{claim_id:int}", {BANK_A}, "/bank/claims/{CX}", page=True),
        Row("GET /bank/assets", BANKS, page=True),
        Row("GET /bank/assets/new", BANKS, page=True),
        Row("GET /bank/assets/{asset_id:int}", {BANK_A}, "/bank/assets/{AX}", page=True),
        Row("GET /bank/listings", BANKS, page=True),
        Row("GET /bank/listings/new", BANKS, page=True),
        Row("GET /bank/listings/{listing_id:int}", {BANK_A}, "/bank/listings/{LX}", page=True),
        Row("GET /listings", ALL, page=True),
        Row("GET /listings/{listing_id:int}", ALL, "/listings/{LX}", page=True),
        Row("GET /buyer/interests", BUYERS, page=True),
        Row("GET /buyer/recommendations", BUYERS, page=True),
        Row("GET /notifications", SIGNED, page=True),
        Row("GET /offers", BUYERS | BANKS, page=True),
        Row("GET /bank/statement", BANKS, page=True),
        Row(
            "GET /bank/claims/{claim_id:int}/statement",
            {BANK_A, OPS},
            "/bank/claims/{CX}/statement",
            page=True,
        ),
        Row(
            "GET /ops/banks/{org_id:int}/statement",
            {BANK_A, OPS},
            "/ops/banks/{BANK_A_ORG}/statement",
            page=True,
        ),
        Row("GET /ops/reports", {OPS}, page=True),
        Row("GET /ops", ALL, page=True),  # a bare redirect to /ops/monitor, which checks
        Row("GET /ops/monitor", {OPS}, page=True),
        Row("GET /ops/auctions/{auction_id:int}", {OPS}, "/ops/auctions/{X}", page=True),
        Row("GET /ops/audit", {OPS}, page=True),
        Row("GET /ops/kpis", {OPS}, page=True),
        Row("WS /ws/monitor", {OPS}),
        Row("WS /ws/auctions/{auction_id}", SIGNED, "/ws/auctions/{X}"),
        # --- API writes: input refused after the role check (no object involved)
        Row("POST /api/v1/session", ALL, body=empty),
        Row("POST /api/v1/signup", ALL, body=empty),
        Row("POST /api/v1/auctions", BANKS, body=empty),
        Row("POST /api/v1/assets", BANKS, body=empty),
        Row("POST /api/v1/claims", BANKS, body=empty),
        Row("POST /api/v1/listings", BANKS, body=empty),
        Row("POST /api/v1/orgs", {OPS}, body=empty),
        Row("POST /api/v1/users", {OPS}, body=empty),
        Row("POST /api/v1/pools", {OPS}, body=empty),
        Row("PUT /api/v1/me/interests", BUYERS, body=lambda w, who: {"kinds": ["trademark"]}),
        Row(
            "POST /api/v1/imports",
            BANKS,
            "/api/v1/imports?dry_run=true",
            content=b"sheet,row\n",
            ctype="text/csv",
        ),
        # --- API writes on objects (valid input)
        Row("POST /api/v1/auctions/{auction_id}/registrations", BUYERS, "/api/v1/auctions/{R}/registrations"),
        Row(
            "POST /api/v1/auctions/{auction_id}/bids",
            {BUYER},
            "/api/v1/auctions/{X}/bids",
            body=lambda w, who: {"amount_fen": w.ids["next_bid"]},
        ),
        Row("POST /api/v1/listings/{listing_id}/publish", {BANK_A}, "/api/v1/listings/{LX}/publish"),
        Row(
            "POST /api/v1/listings/{listing_id}/take-over",
            {BANK_A},
            "/api/v1/listings/{LX}/take-over",
            body=lambda w, who: {"by": "bank"},
        ),
        Row("POST /api/v1/listings/{listing_id}/purchase", BUYERS, "/api/v1/listings/{LX}/purchase"),
        Row(
            "POST /api/v1/me/notifications/{notification_id}/read",
            {BUYER},
            "/api/v1/me/notifications/{N}/read",
        ),
        Row(
            "POST /api/v1/listings/{listing_id}/offers",
            BUYERS,
            "/api/v1/listings/{LN}/offers",
            body=lambda w, who: {"amount_fen": h.START},
        ),
        Row(
            "POST /api/v1/offers/{offer_id}/counter",
            {BUYER, BANK_A},
            "/api/v1/offers/{T}/counter",
            body=lambda w, who: {"amount_fen": h.START + h.INCREMENT},
        ),
        Row("POST /api/v1/offers/{offer_id}/withdraw", {BUYER, BANK_A}, "/api/v1/offers/{T}/withdraw"),
        Row("POST /api/v1/offers/{offer_id}/reject", {BUYER, BANK_A}, "/api/v1/offers/{T}/reject"),
        Row("POST /api/v1/offers/{offer_id}/accept", {BUYER, BANK_A}, "/api/v1/offers/{T}/accept"),
        Row("POST /api/v1/orgs/{org_id}/verify", {OPS}, "/api/v1/orgs/{U}/verify"),
        Row(
            "POST /api/v1/disposals/{disposal_id}/receipts",
            {OPS},
            "/api/v1/disposals/{D}/receipts",
            body=lambda w, who: {"amount_fen": 1, "reference": f"M{who}", "received_on": today},
        ),
        Row(
            "POST /api/v1/disposals/{disposal_id}/transfer-recorded",
            {OPS},
            "/api/v1/disposals/{D}/transfer-recorded",
        ),
        Row(
            "POST /api/v1/listings/{listing_id}/costs",
            {OPS},
            "/api/v1/listings/{LX}/costs",
            body=lambda w, who: {"amount_fen": 100, "memo": "matrix", "reference": f"cost{who}"},
        ),
        Row(
            "POST /api/v1/pools/{pool_code}/fund",
            {OPS},
            "/api/v1/pools/{POOL}/fund",
            body=lambda w, who: {"amount_fen": 100, "reference": f"fund{who}"},
        ),
        Row("POST /api/v1/me/tasks/{task_id}/done", {BANK_A}, "/api/v1/me/tasks/{TASK}/done"),
        Row(
            "POST /api/v1/auctions/{auction_id}/suspend",
            {OPS},
            "/api/v1/auctions/{X}/suspend",
            body=lambda w, who: {"reason": "access matrix"},
        ),
        Row("POST /api/v1/auctions/{auction_id}/resume", {OPS}, "/api/v1/auctions/{X}/resume", body=empty),
        Row(
            "POST /api/v1/auctions/{auction_id}/bids/{seq}/cancel",
            {OPS},
            "/api/v1/auctions/{X}/bids/1/cancel",
            body=lambda w, who: {"reason": "access matrix"},
        ),
        Row(
            "POST /api/v1/bid-cancellations/{cancellation_id}/reject",
            {OPS},
            "/api/v1/bid-cancellations/{C1}/reject",
        ),
        Row(
            "POST /api/v1/bid-cancellations/{cancellation_id}/approve",
            {OPS},
            "/api/v1/bid-cancellations/{C1}/approve",
        ),
        # --- pages: unsafe, with the session's CSRF token and our own Origin
        Row(
            "POST /login",
            ALL,
            page=True,
            body=lambda w, who: {"email": w.spare.email, "password": PASSWORD, "next": "/"},
        ),
        Row("POST /logout", ALL, page=True, body=empty, fresh_session=True),
        Row(
            "POST /auctions/{auction_id:int}/register",
            BUYERS,
            "/auctions/{R}/register",
            page=True,
            body=empty,
        ),
        Row(
            "POST /bank/listings/{listing_id:int}/auction",
            {BANK_A},
            "/bank/listings/{LR2}/auction",
            page=True,
            body=empty,
        ),
        Row("POST /bank/import", BANKS, page=True, body=empty),
        Row("POST /bank/claims", BANKS, page=True, body=empty),
        Row("POST /bank/assets", BANKS, page=True, body=empty),
        Row("POST /bank/listings", BANKS, page=True, body=empty),
        Row(
            "POST /bank/listings/{listing_id:int}/publish",
            {BANK_A},
            "/bank/listings/{LX}/publish",
            page=True,
            body=empty,
        ),
        Row(
            "POST /listings/{listing_id:int}/offers",
            BUYERS,
            "/listings/{LN}/offers",
            page=True,
            body=lambda w, who: {"amount_cny": "700000"},
        ),
        Row("POST /buyer/interests", BUYERS, page=True, body=lambda w, who: {"kinds": "trademark"}),
        Row(
            "POST /notifications/{notification_id:int}/read",
            {BUYER},
            "/notifications/{N}/read",
            page=True,
            body=empty,
        ),
        Row(
            "POST /offers/{thread_id:int}/{action}",
            {BUYER, BANK_A},
            "/offers/{T}/withdraw",
            page=True,
            body=empty,
        ),
        Row(
            "POST /bank/listings/{listing_id:int}/withdraw",
            {BANK_A},
            "/bank/listings/{LW}/withdraw",
            page=True,
            body=lambda w, who: {"reason": "bank_withdraws", "note": "matrix"},
        ),
        Row(
            "POST /ops/auctions/{auction_id:int}/bids/{seq:int}/cancel",
            {OPS},
            "/ops/auctions/{X}/bids/2/cancel",
            page=True,
            body=lambda w, who: {"reason": "access matrix"},
        ),
        Row(
            "POST /ops/auctions/{auction_id:int}/{action:str}",
            {OPS},
            "/ops/auctions/{X}/resume",
            page=True,
            body=lambda w, who: {"reason": "access matrix"},
        ),
        Row(
            "POST /ops/bid-cancellations/{cancellation_id:int}/{decision:str}",
            {OPS},
            "/ops/bid-cancellations/{C2}/reject",
            page=True,
            body=empty,
        ),
        # --- destructive last
        Row(
            "POST /api/v1/listings/{listing_id}/withdraw",
            {BANK_A, OPS},
            "/api/v1/listings/{LW2}/withdraw",
            body=lambda w, who: {"reason": "bank_withdraws"},
        ),
        Row("POST /api/v1/disposals/{disposal_id}/default", {OPS}, "/api/v1/disposals/{D}/default"),
        Row(
            "POST /api/v1/ledger/entries/{entry_id}/reverse",
            {OPS},
            "/api/v1/ledger/entries/{ENTRY}/reverse",
            body=lambda w, who: {"reason": "access matrix"},
        ),
        Row("POST /api/v1/listings/{listing_id}/finalize", {OPS}, "/api/v1/listings/{LZ}/finalize"),
        Row(
            "POST /api/v1/auctions/{auction_id}/cancel",
            {OPS},
            "/api/v1/auctions/{Y}/cancel",
            body=lambda w, who: {"reason": "access matrix"},
        ),
        Row("DELETE /api/v1/session", SIGNED, fresh_session=True),
    ]


def router_keys() -> set[str]:
    from web.app import create_app

    app = create_app(Settings(DATABASE_URL="postgresql+asyncpg://unused/unused", MARKET_SECRET_KEY=h.SECRET))
    keys = set()
    for r in app.routes:
        if isinstance(r, Route):
            keys |= {f"{m} {r.path}" for m in (r.methods or set()) - {"HEAD"}}
        elif isinstance(r, WebSocketRoute):
            keys.add(f"WS {r.path}")
        elif isinstance(r, Mount):
            keys.add(f"MOUNT {r.path}")
    return keys


async def build_world(c: httpx.AsyncClient, engine: AsyncEngine) -> World:
    tag = secrets.token_hex(3)
    bank_a, bank_b = await h.who(engine, Role.BANK), await h.who(engine, Role.BANK)
    buyer = await h.who(engine, Role.BUYER, name=f"竞买人甲-{tag}")
    other = await h.who(engine, Role.BUYER, name=f"竞买人乙-{tag}")
    hidden = [await h.who(engine, Role.BUYER, name=f"隐名竞买人{n}-{tag}") for n in (1, 2)]
    winner = await h.who(engine, Role.BUYER)
    operator = await h.who(engine, Role.OPERATOR)
    second_operator = await h.who(engine, Role.OPERATOR)
    spare = await h.who(engine, Role.BUYER)
    unverified = await h.who(engine, Role.BUYER, verified=False)
    x = await h.auction(c, bank_a, [buyer, *hidden], seconds=900)
    for i, b in enumerate([hidden[0], hidden[1], buyer]):
        r = await c.post(
            f"/api/v1/auctions/{x.id}/bids", headers=b.headers, json={"amount_fen": h.START + i * h.INCREMENT}
        )
        assert r.status_code == 201, r.text
    cancellations = []
    for seq in (1, 2):
        r = await c.post(
            f"/api/v1/auctions/{x.id}/bids/{seq}/cancel",
            headers=second_operator.headers,
            json={"reason": "a cancellation another operator decides"},
        )
        assert r.status_code == 201, r.text
        cancellations.append(r.json()["id"])
    y = await h.auction(c, bank_b, [other], seconds=900)
    r_auction = await h.auction(c, bank_a, [], seconds=900, wait_open=False)
    z = await h.auction(c, bank_a, [winner], seconds=1.2)
    r = await c.post(f"/api/v1/auctions/{z.id}/bids", headers=winner.headers, json={"amount_fen": h.START})
    assert r.status_code == 201, r.text
    ln = await h.published_listing(c, bank_a)
    lw = await h.published_listing(c, bank_a)
    lw2 = await h.published_listing(c, bank_a)
    lr2 = await h.published_listing(c, bank_a)  # the set-up page of an auction for it
    offer = await c.post(
        f"/api/v1/listings/{ln['listing_id']}/offers", headers=buyer.headers, json={"amount_fen": h.START}
    )
    assert offer.status_code == 201, offer.text

    async def disposal() -> Any:
        return await h.scalar(
            engine, "SELECT id FROM disposals WHERE source = 'auction' AND source_ref = :a", a=str(z.id)
        )

    assert await h.wait_until(disposal, 30)
    d = int(await disposal())
    pool = str(900_000_000 + secrets.randbelow(99_999_999))
    p = await c.post(
        "/api/v1/pools",
        headers=operator.headers,
        json={"code": pool, "name": "matrix pool", "share_bp": 1000},
    )
    assert p.status_code == 201, p.text
    f = await c.post(
        f"/api/v1/pools/{pool}/fund", headers=operator.headers, json={"amount_fen": 500, "reference": "setup"}
    )
    assert f.status_code == 200, f.text
    entry = await h.scalar(engine, "SELECT id FROM ledger_entries WHERE key = :k", k=f"poolfund:{pool}:setup")
    async with transaction(engine) as conn:
        n = (
            await conn.execute(
                text(
                    "INSERT INTO notifications (org_id, kind, listing_id) "
                    "VALUES (:o, 'match', :l) RETURNING id"
                ),
                {"o": buyer.org_id, "l": ln["listing_id"]},
            )
        ).scalar_one()
        task = (
            await conn.execute(
                text(
                    "INSERT INTO pledge_tasks (bank_org_id, disposal_id, asset_id, claim_id) "
                    "VALUES (:b, :d, :a, :c) RETURNING id"
                ),
                {"b": bank_a.org_id, "d": d, "a": z.asset_id, "c": z.claim_id},
            )
        ).scalar_one()
    ids = {
        "X": x.id,
        "Y": y.id,
        "R": r_auction.id,
        "LX": x.listing_id,
        "AX": x.asset_id,
        "CX": x.claim_id,
        "LZ": z.listing_id,
        "LN": ln["listing_id"],
        "LW": lw["listing_id"],
        "LW2": lw2["listing_id"],
        "LR2": lr2["listing_id"],
        "T": offer.json()["id"],
        "ENTRY": entry,
        "C1": cancellations[0],
        "C2": cancellations[1],
        "D": d,
        "N": n,
        "TASK": task,
        "U": unverified.org_id,
        "POOL": pool,
        "BANK_A_ORG": bank_a.org_id,
        "next_bid": h.START + 10 * h.INCREMENT,
    }
    people: dict[str, h.Who | None] = {
        ANON: None,
        BUYER: buyer,
        OTHER: other,
        BANK_A: bank_a,
        BANK_B: bank_b,
        OPS: operator,
    }
    return World(ids, people, hidden, spare)


def concrete(path: str, w: World) -> str:
    return re.sub(r"\{([A-Z_0-9]+)\}", lambda m: str(w.ids[m.group(1)]), path)


def denied(status: int, location: str) -> bool:
    return status in (401, 403, 404) or (status in (302, 303, 307) and location.startswith("/login"))


@dataclass
class Seen:
    bodies: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # who -> [(route, body)]

    def add(self, who: str, route: str, body: str) -> None:
        self.bodies.setdefault(who, []).append((route, body))


async def call(
    c: httpx.AsyncClient, base: str, row: Row, who: str, w: World, engine: AsyncEngine, seen: Seen
) -> tuple[int, str]:
    party = w.people[who]
    method, template = row.key.split(" ", 1)
    path = concrete(row.path or template, w)
    token = party.token if party else None
    cookie = party.cookie if party else None
    if party is not None and row.fresh_session:
        token = await h.token_for(engine, party.user_id, "bearer")
        cookie = await h.token_for(engine, party.user_id, "cookie")
    if method == "WS":
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = ws_url(base, w.ids["X"]) if "auctions" in template else base.replace("http", "ws", 1) + path
        try:
            async with websockets.connect(url, additional_headers=headers) as ws:
                seen.add(who, row.key, await asyncio.wait_for(ws.recv(), 10))
                return 101, ""
        except websockets.InvalidStatus as exc:
            return int(exc.response.status_code), ""
    headers: dict[str, str] = {}
    if row.page:
        headers["Accept"] = "text/html"
        anon = f"anon{secrets.token_hex(8)}"
        jar = f"market_session={cookie}" if cookie else f"market_anon={anon}"
        headers["Cookie"] = jar
        if method != "GET":
            headers["Origin"] = base
            data = dict(row.body(w, who) if row.body else {})
            data["csrf_token"] = h.csrf_for(cookie or anon)
            r = await c.request(method, path, headers=headers, data=data)
        else:
            r = await c.request(method, path, headers=headers)
    else:
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if row.content is not None:
            headers["Content-Type"] = row.ctype or "application/octet-stream"
            r = await c.request(method, path, headers=headers, content=row.content)
        elif row.body is not None:
            r = await c.request(method, path, headers=headers, json=row.body(w, who))
        elif method in ("POST", "PUT", "DELETE"):
            r = await c.request(method, path, headers=headers)
        else:
            r = await c.request(method, path, headers=headers)
        if r.status_code in (401, 403, 404):
            ctype = r.headers.get("content-type", "")
            assert ctype.startswith("application/problem+json") and r.json().get("code"), (
                row.key,
                who,
                r.text[:200],
            )
    if "xlsx" not in path:
        seen.add(who, row.key, r.text)
    return r.status_code, r.headers.get("location", "")


def leaks(seen: Seen, w: World) -> list[str]:
    found = []
    secret_ids = {hid.org_id for hid in w.hidden}
    buyer = w.people[BUYER]
    assert buyer is not None
    for who, bodies in seen.bodies.items():
        if who == OPS:
            continue
        needles = [x for hid in w.hidden for x in (hid.org_name, hid.credit_code)]
        if who in (OTHER, BANK_B, ANON):
            needles += [buyer.org_name, buyer.credit_code]
        for route, body in bodies:
            hits = [n for n in needles if n and n in body]
            hits += [f"org id {i}" for i in _org_ids(body) & secret_ids]
            if hits:
                found.append(f"{who} {route}: {hits}")
    return found


def _org_ids(body: str) -> set[int]:
    """Values of every JSON key that names an organisation or a bidder."""
    try:
        data = json.loads(body)
    except ValueError:
        return set()
    out: set[int] = set()

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                if (
                    ("org" in k or "bidder" in k or k == "winner")
                    and isinstance(x, int)
                    and not isinstance(x, bool)
                ):
                    out.add(x)
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(data)
    return out


async def test_access_matrix(pair: list[Server], engine: AsyncEngine) -> None:
    table = rows()
    keys = [r.key for r in table]
    router = router_keys()
    assert len(keys) == len(set(keys)), "a route has two rows"
    assert set(keys) == router, (
        f"unclassified: {sorted(router - set(keys))}; stale: {sorted(set(keys) - router)}"
    )
    base = pair[0].url
    async with httpx.AsyncClient(base_url=base, timeout=60) as c:
        w = await build_world(c, engine)
        seen = Seen()
        unexpected_allow, unexpected_deny, cells, refusals = [], [], 0, 0
        for row in table:
            order = sorted(WHO, key=lambda who: who in row.allowed)  # the refused first
            for who in order:
                status, location = await call(c, base, row, who, w, engine, seen)
                cells += 1
                refused = denied(status, location)
                refusals += refused
                if who in row.allowed and refused:
                    unexpected_deny.append(f"{row.key} as {who}: {status} {location}")
                if who not in row.allowed and not refused:
                    unexpected_allow.append(f"{row.key} as {who}: {status}")
    leaked = leaks(seen, w)
    ops_bodies = " ".join(b for _, b in seen.bodies.get(OPS, []))
    ops_see = all(hid.org_name in ops_bodies for hid in w.hidden)
    checked = sum(len(v) for k, v in seen.bodies.items() if k != OPS)
    print(
        f"\n[access] {len(table)} routes from the router x {len(WHO)} callers = {cells} requests "
        f"({cells - refusals} allowed, {refusals} refused): "
        f"{len(unexpected_allow)} unexpected allows, {len(unexpected_deny)} unexpected denies; "
        f"{checked} non-operator bodies and frames searched for the identities behind paddles: "
        f"{len(leaked)} leaks; operators see them: {ops_see}"
    )
    assert unexpected_allow == [], unexpected_allow
    assert unexpected_deny == [], unexpected_deny
    assert leaked == [], leaked
    assert ops_see, "the positive control failed: operators should see who is behind each paddle"
