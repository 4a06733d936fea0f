"""The operator monitor in a real Chromium, on two real instances sharing one database.

The page is served by one instance and kept live over ``/ws/monitor`` without a reload while a bid
is placed through the API of the other; an operator's suspension with a reason reaches websocket
watchers of the auction on both instances.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from market.parties import Role
from tests.e2e.conftest import Server, start_server, stop_server
from tests.support.auctions import INCREMENT, START, auction_with_buyers
from tests.support.factories import PASSWORD
from tests.support.live import Watcher, party

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
CHROMIUM = os.environ.get("MARKET_CHROMIUM", "/usr/bin/chromium")
# a function, not an expression: the page's CSP (script-src 'self') forbids evaluating strings
AT_LEAST = "([id, n]) => Number(document.getElementById(id).textContent) >= n"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}; install Debian's chromium package (see .ci/run)")
    return CHROMIUM


@pytest.fixture(scope="module")
def monitor_server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A second instance on the same database (like test_auction_live's second_server)."""
    server = start_server(
        {"DATABASE_URL": database_url, "MARKET_SECRET_KEY": "e2e-secret-" + "y" * 32},
        tmp_path_factory.mktemp("monitor"),
    )
    yield server
    stop_server(server)


@pytest.fixture
async def http(live_server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as c:
        yield c


async def test_the_monitor_updates_live_and_a_suspension_reaches_both_instances(
    live_server: Server,
    monitor_server: Server,
    http: httpx.AsyncClient,
    engine: AsyncEngine,
    chromium_path: str,
) -> None:
    from playwright.async_api import async_playwright

    operator = await party(engine, live_server.url, Role.OPERATOR)
    s = await auction_with_buyers(http, engine, buyers=2, seconds=600)
    a, b = s.buyers
    watchers = [Watcher(url, s.auction_id, a.token).start() for url in (live_server.url, monitor_server.url)]
    await asyncio.gather(*(asyncio.wait_for(w.connected.wait(), 10) for w in watchers))

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium_path, args=ARGS)
        try:
            page = await browser.new_page(locale="en-US")
            await page.goto(monitor_server.url + "/login")
            await page.fill("#email", operator.email)
            await page.fill("#password", PASSWORD)
            await page.click("#submit")
            await page.wait_for_url("**/")
            await page.goto(monitor_server.url + "/ops/monitor")
            await page.wait_for_selector('#monitor-connection[data-state="open"]', timeout=15_000)
            await page.wait_for_function(
                "Number(document.getElementById('monitor').dataset.updates || 0) >= 1"
            )
            before = int(await page.text_content("#m-bids-last-minute") or "0")
            suspended_before = int(await page.text_content("#m-status-suspended") or "0")
            await page.evaluate("window.__notReloaded = true")

            r = await http.post(
                f"/api/v1/auctions/{s.auction_id}/bids",
                headers=b.headers,
                json={"amount_fen": START + INCREMENT},
            )
            assert r.status_code == 201, r.text
            await page.wait_for_function(AT_LEAST, arg=["m-bids-last-minute", before + 1], timeout=10_000)
            total = await page.get_attribute("#chart-bids", "data-total")
            assert total is not None and int(total) >= 1
            assert await page.evaluate("window.__notReloaded === true"), "the page was reloaded"

            reason = "核查竞买人身份 / checking a bidder"
            r = await http.post(
                f"/api/v1/auctions/{s.auction_id}/suspend", headers=operator.headers, json={"reason": reason}
            )
            assert r.status_code == 200, r.text
            seq = r.json()["events"][0]["seq"]
            for w in watchers:  # the instance that served the request and the other one
                await w.wait_for_seq(seq)
                (event,) = [e for e in w.events if e["seq"] == seq]
                assert event["type"] == "suspended" and event["reason"] == reason
            await page.wait_for_function(
                AT_LEAST, arg=["m-status-suspended", suspended_before + 1], timeout=10_000
            )
            assert await page.evaluate("window.__notReloaded === true")
        finally:
            await browser.close()
            for w in watchers:
                await w.stop()


async def test_the_monitor_socket_is_for_operators_only(
    live_server: Server, engine: AsyncEngine, monitor_server: Server
) -> None:
    import websockets

    buyer = await party(engine, live_server.url, Role.BUYER)
    url = monitor_server.url.replace("http://", "ws://") + "/ws/monitor"
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {buyer.token}"}):
            pass
    assert refused.value.response.status_code == 403
    operator = await party(engine, live_server.url, Role.OPERATOR)
    async with websockets.connect(
        url, additional_headers={"Authorization": f"Bearer {operator.token}"}
    ) as ws:
        import json

        first = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert first["type"] == "monitor" and "auctions" in first and first["watchers"]["instances"] >= 2
        second = json.loads(await asyncio.wait_for(ws.recv(), 5))  # pushed again within about a second
        assert second["type"] == "monitor"
