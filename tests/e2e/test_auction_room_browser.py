"""A real Chromium in the live auction room: two buyers register and bid against each other.

Two browser contexts (two buyers, each signed in through the /login page) register on the
room page and bid through it; each sees the other's bid within a second. Buyer A's socket is
dropped once and must come back with ``?since=<last seq>`` showing every event exactly once.
A third context whose clock runs an hour fast still shows the server's remaining time, and
switching language changes the labels.
"""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from market.parties import Role
from tests.e2e.conftest import Server
from tests.support.auctions import INCREMENT, START, published_listing, terms
from tests.support.factories import PASSWORD, make_party

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
CHROMIUM = os.environ.get("MARKET_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]
SKEW_MS = 3_600_000
FAST_CLOCK = f"(() => {{ const real = Date.now.bind(Date); Date.now = () => real() + {SKEW_MS}; }})();"
SECOND = 1000  # ms: how soon the other side must see a bid


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}; install Debian's chromium package (see .ci/run)")
    return CHROMIUM


async def sign_in(context: Any, server: Server, addr: str, room: str) -> Any:
    """A page of ``context`` signed in through /login and sent on to the room."""
    page = await context.new_page()
    await page.goto(f"{server.url}/login?next={room}")
    await page.fill("#email", addr)
    await page.fill("#password", PASSWORD)
    await page.click("#submit")
    await page.wait_for_url(server.url + room)
    return page


async def live(page: Any) -> None:
    await page.wait_for_selector('#connection[data-state="open"]', timeout=5000)


async def register(page: Any) -> str:
    await page.click("#register")
    await page.wait_for_selector("#my-paddle")
    await live(page)
    return str(await page.text_content("#my-paddle")).strip()


def cny(fen: int) -> str:
    yuan, cents = divmod(fen, 100)
    return f"¥{yuan:,}.{cents:02d}"


def seconds_of(countdown: str) -> int:
    m = re.fullmatch(r"(?:(\d+)\D+)?(\d\d):(\d\d):(\d\d)", countdown.strip())
    assert m, countdown
    days, hours, minutes, seconds = (int(g or 0) for g in m.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


async def test_two_buyers_bid_live_in_the_room(
    live_server: Server, engine: AsyncEngine, chromium_path: str
) -> None:
    from playwright.async_api import WebSocketRoute, async_playwright, expect

    async with httpx.AsyncClient(base_url=live_server.url, timeout=10) as client:
        bank = await make_party(engine, client, Role.BANK)
        a = await make_party(engine, client, Role.BUYER)
        b = await make_party(engine, client, Role.BUYER)
        listing_id = await published_listing(client, bank)
        created = await client.post(
            "/api/v1/auctions", headers=bank.headers, json=terms(listing_id, seconds=150)
        )
        assert created.status_code == 201, created.text
        auction_id = created.json()["id"]
        room = f"/auctions/{auction_id}"

        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=chromium_path, args=ARGS)
            try:
                ctx_a = await browser.new_context(locale="zh-CN")
                ctx_b = await browser.new_context(locale="zh-CN")
                sockets: list[WebSocketRoute] = []

                def through(ws: WebSocketRoute) -> None:  # A's socket, proxied so the test can drop it
                    ws.connect_to_server()
                    sockets.append(ws)

                await ctx_a.route_web_socket(re.compile(r".*/ws/auctions/.*"), through)
                page_a = await sign_in(ctx_a, live_server, a.email, room)
                page_b = await sign_in(ctx_b, live_server, b.email, room)
                paddle_a, paddle_b = await register(page_a), await register(page_b)
                assert paddle_a != paddle_b

                # Yuan are converted exactly: a third decimal is refused before anything is sent.
                assert await page_a.input_value("#bid-amount") == "700000.00"
                await page_a.fill("#bid-amount", "700000.001")
                await page_a.click("#bid-submit")
                await expect(page_a.locator("#bid-message")).to_have_attribute(
                    "data-code", "client_too_many_decimals"
                )
                # A bids the start price as typed; B's page shows it within a second.
                await page_a.fill("#bid-amount", "７0,000０.0")
                started = time.monotonic()
                await page_a.click("#bid-submit")
                await expect(page_b.locator("#price-now")).to_have_text(cny(START), timeout=SECOND)
                assert time.monotonic() - started < 1.5
                await page_a.wait_for_selector('#bid-message[data-kind="ack"]', timeout=5000)
                assert await page_b.text_content("#leader-paddle") == paddle_a

                # B's box now holds the next valid amount; B outbids and A is told within a second.
                assert await page_b.input_value("#bid-amount") == "705000.00"
                await page_b.click("#bid-submit")
                await expect(page_a.locator("#outbid-notice")).to_be_visible(timeout=SECOND)
                assert paddle_b in str(await page_a.text_content("#outbid-notice"))
                assert await page_a.input_value("#bid-amount") == "710000.00"

                # A's socket drops; a bid lands meanwhile; A comes back with since=2, no duplicates.
                await sockets[-1].close(code=4000, reason="test drop")
                third = await client.post(
                    f"/api/v1/auctions/{auction_id}/bids",
                    headers=a.headers,
                    json={"amount_fen": START + 2 * INCREMENT},
                )
                assert third.status_code == 201, third.text
                await expect(page_a.locator("#price-now")).to_have_text(
                    cny(START + 2 * INCREMENT), timeout=10_000
                )
                await live(page_a)
                assert len(sockets) >= 2 and sockets[-1].url.endswith(f"{room}?since=2"), [
                    s.url for s in sockets
                ]
                seqs = await page_a.eval_on_selector_all(
                    "#bid-history tr", "rows => rows.map(r => r.dataset.seq)"
                )
                assert seqs == ["3", "2", "1"]
                await expect(page_a.locator("#outbid-notice")).to_be_hidden()
                await expect(page_b.locator("#price-now")).to_have_text(
                    cny(START + 2 * INCREMENT), timeout=SECOND
                )
                assert await page_b.eval_on_selector_all("#bid-history tr", "rows => rows.length") == 3

                # Two operators void A's third bid: both rooms strike it and fall back to B's price.
                op1 = await make_party(engine, client, Role.OPERATOR)
                op2 = await make_party(engine, client, Role.OPERATOR)
                asked = await client.post(
                    f"/api/v1/auctions/{auction_id}/bids/3/cancel",
                    headers=op1.headers,
                    json={"reason": "核查"},
                )
                assert asked.status_code == 201, asked.text
                approved = await client.post(
                    f"/api/v1/bid-cancellations/{asked.json()['id']}/approve", headers=op2.headers
                )
                assert approved.status_code == 200, approved.text
                third_row = '#bid-history tr[data-seq="3"]'
                for pg_ in (page_a, page_b):
                    await expect(pg_.locator("#price-now")).to_have_text(
                        cny(START + INCREMENT), timeout=SECOND
                    )
                    await expect(pg_.locator(third_row)).to_have_class(re.compile("voided"))
                assert await page_b.text_content("#leader-paddle") == paddle_b
                assert await page_a.input_value("#bid-amount") == "710000.00"
                reloaded = await page_b.reload()
                assert reloaded is not None and reloaded.ok
                await expect(page_b.locator(third_row)).to_have_class(re.compile("voided"))

                # A viewer whose clock is an hour fast sees the server's remaining time.
                ctx_c = await browser.new_context(locale="en")
                await ctx_c.add_init_script(FAST_CLOCK)
                page_c = await sign_in(ctx_c, live_server, bank.email, room)
                await live(page_c)
                skew = await page_c.evaluate("Date.now()") - time.time() * 1000
                assert abs(skew - SKEW_MS) < 5000, skew
                state = (await client.get(f"/api/v1/auctions/{auction_id}")).json()
                expected = (datetime.fromisoformat(state["ends_at"]) - datetime.now(UTC)).total_seconds()
                shown = seconds_of(str(await page_c.text_content("#countdown")))
                assert abs(shown - expected) <= 2, (shown, expected)
                assert await page_c.text_content("#countdown-label") == "Time left"

                # Switching language changes the labels, the script's ones included.
                assert await page_a.text_content("#price-label") == "当前价"
                assert await page_a.text_content("#auction-status") == "正在进行"
                await page_a.click("#lang-switch")
                await expect(page_a.locator("html")).to_have_attribute("lang", "en")
                assert await page_a.text_content("#price-label") == "Current price"
                await expect(page_a.locator("#connection")).to_have_text("Live updates on")
                assert await page_a.text_content("#auction-status") == "Live"
                assert await page_a.text_content("#my-deposit-status") == "Held"
            finally:
                await browser.close()
