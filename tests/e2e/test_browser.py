"""A real Chromium signs in, switches language and sees the translated page."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from market import identity
from market.db import transaction
from market.parties import Role
from tests.e2e.conftest import Server
from tests.support.factories import PASSWORD, credit_code, email

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
CHROMIUM = os.environ.get("MARKET_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}; install Debian's chromium package (see .ci/run)")
    return CHROMIUM


async def test_sign_in_and_switch_language(
    live_server: Server, engine: AsyncEngine, chromium_path: str
) -> None:
    from playwright.async_api import async_playwright

    addr = email("browser")
    async with transaction(engine) as conn:
        org = await identity.create_org(
            conn, None, name="浏览器 银行", kind=Role.BANK, credit_code=credit_code()
        )
        await identity.create_user(conn, None, org_id=org.id, email=addr, password=PASSWORD)

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium_path, args=ARGS)
        try:
            page = await browser.new_page(locale="zh-CN")
            await page.goto(live_server.url + "/login")
            assert await page.title() == "登录"
            await page.fill("#email", addr)
            await page.fill("#password", PASSWORD)
            await page.click("#submit")
            await page.wait_for_url("**/")
            await page.goto(live_server.url + "/account")
            assert await page.text_content("#account-email") == addr
            assert await page.text_content("#account-role") == "银行"
            await page.click("#lang-switch")
            await page.wait_for_function("document.documentElement.lang === 'en'")
            assert await page.text_content("#account-role") == "Bank"
            assert "My account" in await page.content()
            await page.click("#logout")
            await page.wait_for_url(live_server.url + "/")
            assert await page.is_visible("#login-link")
        finally:
            await browser.close()
    await asyncio.sleep(0)
