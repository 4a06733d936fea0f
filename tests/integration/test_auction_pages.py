"""Auction pages in-process over HTTP: the index, the room for each role, registration, set-up.

Each test signs in through the /login form like a browser and posts the pages' forms with
their CSRF tokens. Setup that is not what a test is about goes through the API.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from auctions import closer
from market.clock import CST
from market.config import Settings
from market.parties import Role
from tests.support.auctions import APPRAISAL, INCREMENT, START, auction_with_buyers, published_listing, terms
from tests.support.factories import PASSWORD, Party, make_party

HTML = {"accept": "text/html"}


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no csrf token in the page"
    return m.group(1)


def text_of(html: str, element_id: str) -> str:
    m = re.search(rf'id="{element_id}"[^>]*>(.*?)</', html, re.S)
    assert m, f"no #{element_id} in the page"
    return re.sub(r"\s+", " ", m.group(1)).strip()


@pytest.fixture
async def browser(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client with its own cookies, like one browser."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=HTML) as c:
        yield c


async def sign_in(client: httpx.AsyncClient, party: Party, lang: str = "zh_CN") -> None:
    client.cookies.set("lang", lang)
    form = await client.get("/login")
    r = await client.post(
        "/login",
        data={"email": party.email, "password": PASSWORD, "csrf_token": csrf_of(form.text), "next": "/"},
    )
    assert r.status_code == 303, r.text


def local(moment: datetime) -> str:
    return moment.astimezone(CST).strftime("%Y-%m-%dT%H:%M")


def form_terms(**over: str) -> dict[str, str]:
    opens = datetime.now(UTC) + timedelta(minutes=3)
    body = {
        "start_price_cny": "700000.00",
        "increment_cny": "5000",
        "deposit_cny": "70,000.00",
        "starts_at": local(opens),
        "ends_at": local(opens + timedelta(days=1)),
        "extension_seconds": "300",
        "reserve_cny": "",
        "priority_holder_org_ids": "",
        "kind": "auction",
    }
    body.update(over)
    return body


# --------------------------------------------------------------------------- index and room


async def test_index_lists_live_and_upcoming_auctions(
    client: httpx.AsyncClient, engine: AsyncEngine, browser: httpx.AsyncClient
) -> None:
    live = await auction_with_buyers(client, engine, buyers=0, seconds=60)
    bank = await make_party(engine, client, Role.BANK)
    listing_id = await published_listing(client, bank)
    later = datetime.now(UTC) + timedelta(hours=1)
    upcoming = await client.post(
        "/api/v1/auctions",
        headers=bank.headers,
        json=terms(listing_id, starts_at=later.isoformat(), ends_at=(later + timedelta(days=1)).isoformat()),
    )
    assert upcoming.status_code == 201, upcoming.text
    page = await browser.get("/auctions")
    assert page.status_code == 200
    assert re.search(rf'data-id="{live.auction_id}" data-status="live"', page.text)
    assert re.search(rf'data-id="{upcoming.json()["id"]}" data-status="scheduled"', page.text)
    assert f'href="/auctions/{live.auction_id}"' in page.text


async def test_room_renders_for_each_role(
    client: httpx.AsyncClient, engine: AsyncEngine, app: Any, browser: httpx.AsyncClient
) -> None:
    s = await auction_with_buyers(client, engine, buyers=1, seconds=120)
    room = f"/auctions/{s.auction_id}"

    anonymous = await browser.get(room)
    assert anonymous.status_code == 200
    assert 'id="sign-in-to-bid"' in anonymous.text and 'data-live="0"' in anonymous.text
    assert 'id="bid-form"' not in anonymous.text
    assert text_of(anonymous.text, "start-price") == "¥700,000.00"

    registered = s.buyers[0]
    await sign_in(browser, registered)
    page = await browser.get(room)
    assert page.status_code == 200 and 'data-live="1"' in page.text
    assert text_of(page.text, "my-paddle") == s.paddles[registered.org_id]
    assert text_of(page.text, "my-deposit-status") == "已冻结"
    assert re.search(r'id="bid-amount" name="amount" value="700000\.00"', page.text)
    assert 'src="/static/auction.js"' in page.text and 'id="i18n"' in page.text
    assert text_of(page.text, "auction-status") == "正在进行"

    roles: list[tuple[Role, str, bool]] = [
        (Role.BUYER, "register", True),
        (Role.BUYER, "not-verified", False),
        (Role.BANK, "buyers-only", True),
        (Role.OPERATOR, "buyers-only", True),
    ]
    for role, marker, verified in roles:
        party = await make_party(engine, client, role, verified=verified)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers=HTML
        ) as other:
            await sign_in(other, party, lang="en")
            r = await other.get(room)
            assert r.status_code == 200, (role, r.text)
            assert f'id="{marker}"' in r.text, (role, marker)
            assert 'id="bid-form"' not in r.text
            assert text_of(r.text, "price-label") == "Current price"

    missing = await browser.get("/auctions/999999999")
    assert missing.status_code == 404


async def test_room_shows_the_history_newest_first_and_who_was_outbid(
    client: httpx.AsyncClient, engine: AsyncEngine, browser: httpx.AsyncClient
) -> None:
    s = await auction_with_buyers(client, engine, buyers=2, seconds=120)
    a, b = s.buyers
    url = f"/api/v1/auctions/{s.auction_id}/bids"
    for bidder, amount in ((a, START), (b, START + INCREMENT)):
        r = await client.post(url, headers=bidder.headers, json={"amount_fen": amount})
        assert r.status_code == 201, r.text
    await sign_in(browser, a, lang="en")
    page = await browser.get(f"/auctions/{s.auction_id}")
    assert re.findall(r'<tr data-seq="(\d+)">', page.text) == ["2", "1"]
    assert text_of(page.text, "price-now") == "¥705,000.00"
    assert text_of(page.text, "leader-paddle") == s.paddles[b.org_id]
    assert 'id="outbid-notice" class="notice notice-warn" role="alert">' in page.text
    assert f"paddle {s.paddles[b.org_id]} leads at ¥705,000.00" in page.text
    assert re.search(r'id="bid-amount" name="amount" value="710000\.00"', page.text)
    assert 'data-seq="2"' in page.text and 'data-min-next="710000"' not in page.text
    assert 'data-min-next="71000000"' in page.text


async def test_register_needs_csrf_and_gives_a_paddle(
    client: httpx.AsyncClient, engine: AsyncEngine, browser: httpx.AsyncClient
) -> None:
    s = await auction_with_buyers(client, engine, buyers=0, seconds=120)
    room, action = f"/auctions/{s.auction_id}", f"/auctions/{s.auction_id}/register"
    buyer = await make_party(engine, client, Role.BUYER)
    await sign_in(browser, buyer)
    page = await browser.get(room)
    assert 'id="register"' in page.text
    assert (await browser.post(action)).status_code == 403
    assert (await browser.post(action, data={"csrf_token": "forged"})).status_code == 403
    done = await browser.post(action, data={"csrf_token": csrf_of(page.text)})
    assert done.status_code == 303 and done.headers["location"] == room
    after = await browser.get(room)
    paddle = text_of(after.text, "my-paddle")
    assert re.fullmatch(r"\d{6}", paddle) and 'id="bid-form"' in after.text
    again = await browser.post(action, data={"csrf_token": csrf_of(after.text)})
    assert again.status_code == 303
    assert text_of((await browser.get(room)).text, "my-paddle") == paddle
    state = (await client.get(f"/api/v1/auctions/{s.auction_id}", headers=buyer.headers)).json()
    assert state["my_paddle"] == paddle and state["my_deposit_status"] == "held"


async def test_the_consigning_bank_cannot_register(
    client: httpx.AsyncClient, engine: AsyncEngine, browser: httpx.AsyncClient
) -> None:
    s = await auction_with_buyers(client, engine, buyers=0, seconds=120)
    await sign_in(browser, s.bank, lang="en")
    page = await browser.get(f"/auctions/{s.auction_id}")
    r = await browser.post(f"/auctions/{s.auction_id}/register", data={"csrf_token": csrf_of(page.text)})
    assert r.status_code == 403 and 'data-code="forbidden"' in r.text


# --------------------------------------------------------------------------- bank: set-up


async def test_setup_shows_the_floors_and_every_rule_problem_then_schedules(
    client: httpx.AsyncClient, engine: AsyncEngine, browser: httpx.AsyncClient
) -> None:
    bank = await make_party(engine, client, Role.BANK)
    listing_id = await published_listing(client, bank)
    url = f"/bank/listings/{listing_id}/auction"
    await sign_in(browser, bank)
    page = await browser.get(url)
    assert page.status_code == 200
    assert text_of(page.text, "round-no") == "1"
    assert text_of(page.text, "start-floor") == "¥700,000.00"  # 70 % of the appraisal (rule 2)
    assert text_of(page.text, "deposit-range") == "¥35,000.00 – ¥140,000.00"  # 5-20 % of it
    assert APPRAISAL == 100_000_000

    bad = await browser.post(
        url,
        data={**form_terms(start_price_cny="600000", deposit_cny="200000"), "csrf_token": csrf_of(page.text)},
    )
    assert bad.status_code == 422
    codes = set(re.findall(r'<li data-code="([a-z_]+)"', bad.text))
    assert {"start_below_appraisal_floor", "deposit_out_of_range"} <= codes, codes
    assert "第一次拍卖的起拍价不得低于评估价的 70%" in bad.text
    assert 'value="600000"' in bad.text  # the form keeps what was typed

    malformed = await browser.post(
        url,
        data={
            **form_terms(start_price_cny="1.234", starts_at="tomorrow", priority_holder_org_ids="x"),
            "csrf_token": csrf_of(page.text),
        },
    )
    assert malformed.status_code == 422
    for field in ("start_price_cny", "starts_at", "priority_holder_org_ids"):
        assert f'data-field="{field}"' in malformed.text, field

    legal = form_terms()
    ok = await browser.post(url, data={**legal, "csrf_token": csrf_of(page.text)})
    assert ok.status_code == 303, ok.text
    room = ok.headers["location"]
    assert re.fullmatch(r"/auctions/\d+", room)
    auction = (await client.get(f"/api/v1{room}")).json()
    assert auction["start_price_fen"] == START and auction["deposit_fen"] == 7_000_000
    assert auction["increment_fen"] == 500_000 and auction["status"] == "scheduled"
    assert local(datetime.fromisoformat(auction["starts_at"])) == legal["starts_at"]  # read as UTC+8
    assert (await browser.get(room)).status_code == 200
    again = await browser.get(url)
    assert 'id="cannot-schedule"' in again.text and f'href="{room}"' in again.text


async def test_setup_is_for_the_listing_bank_only(
    client: httpx.AsyncClient, engine: AsyncEngine, browser: httpx.AsyncClient, app: Any
) -> None:
    bank = await make_party(engine, client, Role.BANK)
    listing_id = await published_listing(client, bank)
    url = f"/bank/listings/{listing_id}/auction"
    assert (await browser.get(url)).status_code == 303  # anonymous: to the sign-in page
    other_bank = await make_party(engine, client, Role.BANK)
    await sign_in(browser, other_bank)
    assert (await browser.get(url)).status_code == 404
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=HTML) as buyer:
        await sign_in(buyer, await make_party(engine, client, Role.BUYER))
        assert (await buyer.get(url)).status_code == 403


async def test_after_a_failed_round_the_recorded_next_step_is_shown(
    client: httpx.AsyncClient, engine: AsyncEngine, browser: httpx.AsyncClient, settings: Settings
) -> None:
    s = await auction_with_buyers(client, engine, buyers=0, seconds=1)
    await asyncio.sleep(1.5)
    for _ in range(20):
        if await closer.close_one(engine, timedelta(milliseconds=0), settings) is None:
            state = (await client.get(f"/api/v1/auctions/{s.auction_id}")).json()
            if state["status"] == "failed":
                break
        await asyncio.sleep(0.2)
    await sign_in(browser, s.bank, lang="en")
    page = await browser.get(f"/bank/listings/{s.listing_id}/auction")
    assert page.status_code == 200
    assert re.search(r'id="next-step" class="card" data-kind="auction"', page.text)
    assert text_of(page.text, "round-no") == "2"
    assert text_of(page.text, "start-floor") == "¥560,000.00"  # 80 % of round 1's start (rule 3)
    assert text_of(page.text, "next-step-floor") == "¥560,000.00"
    assert "Re-auction" in page.text
