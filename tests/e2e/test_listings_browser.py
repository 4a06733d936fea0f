"""A real Chromium through the collateral and listings pages: bank, public catalogue, buyer.

Each test drives one page family end to end against a real ``market serve`` process and
switches the language once to check a translated label. Setup that is not what a test is
about goes through the public API of the same server.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from market import identity
from market.clock import today_cst
from market.db import transaction
from market.parties import Role
from tests.e2e.conftest import Server
from tests.support.collateral import patent, reg_no
from tests.support.factories import PASSWORD, credit_code, email

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
CHROMIUM = os.environ.get("MARKET_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}; install Debian's chromium package (see .ci/run)")
    return CHROMIUM


@pytest.fixture
async def browser(chromium_path: str) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=chromium_path, args=ARGS)
        try:
            yield launched
        finally:
            await launched.close()


async def make_user(engine: AsyncEngine, kind: Role) -> str:
    addr = email(f"browser-{kind.value}")
    async with transaction(engine) as conn:
        org = await identity.create_org(
            conn,
            None,
            name=f"浏览器 {kind.value} {secrets.token_hex(2)}",
            kind=kind,
            credit_code=credit_code(),
        )
        await identity.create_user(conn, None, org_id=org.id, email=addr, password=PASSWORD)
    return addr


@asynccontextmanager
async def api(server: Server, addr: str) -> AsyncIterator[httpx.AsyncClient]:
    """An API client of the live server signed in as ``addr`` (bearer token)."""
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        r = await client.post("/api/v1/session", json={"email": addr, "password": PASSWORD})
        assert r.status_code == 201, r.text
        client.headers["Authorization"] = f"Bearer {r.json()['token']}"
        yield client


async def published_listing(server: Server, bank: str, title: str, asset_title: str) -> int:
    async with api(server, bank) as client:
        asset = await client.post("/api/v1/assets", json=patent(title=asset_title))
        assert asset.status_code == 201, asset.text
        body = {"title": title, "mode": "transfer", "asset_ids": [asset.json()["id"]]}
        listing = await client.post("/api/v1/listings", json=body)
        assert listing.status_code == 201, listing.text
        published = await client.post(f"/api/v1/listings/{listing.json()['id']}/publish")
        assert published.status_code == 200, published.text
        return int(listing.json()["id"])


def word() -> str:
    return "".join(chr(0x4E00 + secrets.randbelow(0x51A5)) for _ in range(4))


async def sign_in(page: Any, server: Server, addr: str) -> None:
    await page.goto(server.url + "/login")
    await page.fill("#email", addr)
    await page.fill("#password", PASSWORD)
    await page.click("#submit")
    await page.wait_for_url(server.url + "/")


async def switch_to_english(page: Any) -> None:
    await page.click("#lang-switch")
    await page.wait_for_function("document.documentElement.lang === 'en'")


async def test_bank_registers_an_asset_and_a_claim(
    live_server: Server, engine: AsyncEngine, browser: Any
) -> None:
    bank = await make_user(engine, Role.BANK)
    today = today_cst()
    page = await browser.new_page(locale="zh-CN")
    await sign_in(page, live_server, bank)
    await page.click("#nav-assets")
    await page.click("#new-asset")
    assert await page.title() == "登记资产"
    number = reg_no()
    await page.select_option("#f-kind", "invention_patent")
    await page.fill("#f-registration_no", number)
    await page.fill("#f-title", "一种柔性显示基板")
    await page.fill("#f-holder", "某某显示技术有限公司")
    await page.select_option("#f-legal_status", "granted")
    await page.fill("#f-filed_on", "2019-05-20")
    await page.fill("#f-classes", "H01L 27/32")
    await page.fill("#f-appraisal_cny", "2,500,000")
    await page.fill("#f-appraised_on", (today - timedelta(days=20)).isoformat())
    await page.click("#submit-asset")
    await page.wait_for_url("**/bank/assets/*")
    assert await page.text_content("#eligibility") == "可处置"
    assert await page.text_content("#registration-no") == number

    await page.click("#nav-claims")
    await page.click("#new-claim")
    await page.fill("#f-loan_no", f"LN-{secrets.token_hex(4)}")
    await page.fill("#f-borrower-name", "某某显示技术有限公司")
    await page.fill("#f-borrower-credit_code", "91440300MA5DXXXX1Y")
    await page.fill("#f-defaulted_on", (today - timedelta(days=60)).isoformat())
    await page.fill("#f-principal_cny", "1,000,000")
    await page.fill("#f-interest_cny", "12345.67")
    await page.fill("#f-costs_cny", "")
    await page.click("#submit-claim")  # costs missing: the form comes back with the error
    assert await page.is_visible("#err-costs_cny")
    assert await page.input_value("#f-interest_cny") == "12345.67"
    await page.fill("#f-costs_cny", "500")
    await page.select_option("#f-pledges-0-asset_id", label=f"{number} 一种柔性显示基板")
    await page.fill("#f-pledges-0-registered_on", "2023-02-01")
    await page.click("#submit-claim")
    await page.wait_for_url("**/bank/claims/*")
    assert await page.text_content("#outstanding-total") == "1,012,845.67"
    assert (await page.text_content("#pledge-table .rank") or "").strip() == "1"
    await switch_to_english(page)
    assert await page.text_content("#pledge-table th:nth-child(2)") == "Legal rank"
    assert await page.text_content("#claim-status") == "Open"


async def test_bank_creates_and_publishes_a_listing(
    live_server: Server, engine: AsyncEngine, browser: Any
) -> None:
    bank = await make_user(engine, Role.BANK)
    async with api(live_server, bank) as client:
        asset = (await client.post("/api/v1/assets", json=patent(title="高导热石墨片"))).json()
    page = await browser.new_page(locale="zh-CN")
    await sign_in(page, live_server, bank)
    await page.click("#nav-new-listing")
    await page.fill("#f-title", "高导热石墨片专利转让")
    await page.select_option("#f-mode", "license")
    await page.select_option("#f-asset_ids", [str(asset["id"])])
    await page.click("#submit-listing")  # licence mode without terms: refused, field by field
    assert await page.is_visible("#err-license_terms-territory")
    await page.select_option("#f-mode", "transfer")
    await page.fill("#f-asking_price_cny", "960000.5")
    await page.click("#submit-listing")
    await page.wait_for_url("**/bank/listings/*")
    assert await page.get_attribute("#listing-status", "data-status") == "draft"
    assert await page.text_content("#listing-status") == "草稿"
    await page.click("#publish")
    await page.wait_for_selector("#listing-status[data-status='published']")
    assert await page.text_content("#listing-status") == "已发布"
    assert await page.is_visible("#withdraw-form")
    await switch_to_english(page)
    assert await page.text_content("#listing-status") == "Published"
    await page.click("#nav-listings")
    assert "960,000.50" in await page.inner_text("#listings")


async def test_public_search_and_listing_detail(
    live_server: Server, engine: AsyncEngine, browser: Any
) -> None:
    bank = await make_user(engine, Role.BANK)
    w = word()
    listing = await published_listing(live_server, bank, f"{w}传感器专利转让", f"{w}压力传感器")
    page = await browser.new_page(locale="zh-CN")
    await page.goto(live_server.url + "/")
    await page.click("#nav-search")
    await page.fill("#f-q", w[1:3])
    await page.select_option("#f-kind", "invention_patent")
    await page.click("#search-submit")
    await page.wait_for_url("**/listings?*")
    await page.click(f"#results a[href='/listings/{listing}']")
    await page.wait_for_url(f"**/listings/{listing}")
    assert await page.text_content("#listing-title") == f"{w}传感器专利转让"
    assert await page.text_content("#listing-mode") == "转让"
    assert await page.is_visible("#sign-in-to-offer")
    await switch_to_english(page)
    assert await page.text_content("#listing-mode") == "Transfer"
    assert "Disposal mode" in await page.inner_text("dl.facts")
    await page.goto(live_server.url + f"/listings?q={w[:2]}&kind=trademark")
    assert await page.is_visible("#no-results")


async def test_buyer_interests_recommendations_and_offer(
    live_server: Server, engine: AsyncEngine, browser: Any
) -> None:
    bank = await make_user(engine, Role.BANK)
    buyer = await make_user(engine, Role.BUYER)
    w = word()
    listing = await published_listing(live_server, bank, f"{w}储能专利转让", f"{w}储能电池")
    page = await browser.new_page(locale="zh-CN")
    await sign_in(page, live_server, buyer)
    await page.click("#nav-interests")
    await page.check("#kind-invention_patent")
    await page.fill("#f-keywords", w)
    await page.click("#save-interests")
    await page.wait_for_url("**/buyer/recommendations")
    card = page.locator(f"#recommendations li[data-id='{listing}']")
    assert f"关键词：{w}" in await card.inner_text()
    assert "类型：发明专利" in await card.inner_text()
    await card.locator("h2 a").click()
    await page.wait_for_url(f"**/listings/{listing}")
    await page.fill("#f-amount_cny", "800000.123")
    await page.click("#offer-submit")
    assert await page.is_visible("#err-amount_cny")
    await page.fill("#f-amount_cny", "800,000")
    await page.fill("#f-message", "诚意收购")
    await page.click("#offer-submit")
    await page.wait_for_url("**/offers#thread-*")
    thread = page.locator("section.thread").first
    assert "800,000.00" in await thread.inner_text()
    assert "等待对方答复。" in await thread.inner_text()
    await switch_to_english(page)
    assert "Waiting for the other side to answer." in await page.locator("section.thread").first.inner_text()
    assert await page.is_visible("button.withdraw")
