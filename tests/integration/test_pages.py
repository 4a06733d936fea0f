"""Pages: sign-in with CSRF, session rotation, cookie flags, language switch, logout."""

from __future__ import annotations

import re

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from market.parties import Role
from tests.support.factories import PASSWORD, make_party


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no csrf token in form"
    return m.group(1)


async def sign_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    form = await client.get("/login")
    return await client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": csrf_of(form.text), "next": "/account"},
    )


async def test_login_sets_httponly_session_and_reaches_account(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    party = await make_party(engine, client, Role.BANK)
    r = await sign_in(client, party.email)
    assert r.status_code == 303 and r.headers["location"] == "/account"
    cookie = r.headers["set-cookie"]
    assert "market_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    page = await client.get("/account")
    assert page.status_code == 200 and party.email in page.text


async def test_session_id_changes_on_login(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    party = await make_party(engine, client, Role.BANK)
    await sign_in(client, party.email)
    first = client.cookies.get("market_session")
    await sign_in(client, party.email)
    assert client.cookies.get("market_session") not in (None, first)


async def test_login_without_or_with_foreign_csrf_token_is_refused(
    client: httpx.AsyncClient, engine: AsyncEngine, app: object
) -> None:
    party = await make_party(engine, client, Role.BANK)
    await client.get("/login")
    no_token = await client.post("/login", data={"email": party.email, "password": PASSWORD})
    assert no_token.status_code == 403
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        foreign = csrf_of((await other.get("/login")).text)
    r = await client.post("/login", data={"email": party.email, "password": PASSWORD, "csrf_token": foreign})
    assert r.status_code == 403


async def test_cross_site_post_is_refused_even_with_a_token(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    party = await make_party(engine, client, Role.BANK)
    token = csrf_of((await client.get("/login")).text)
    r = await client.post(
        "/login",
        data={"email": party.email, "password": PASSWORD, "csrf_token": token},
        headers={"origin": "https://evil.example"},
    )
    assert r.status_code == 403


async def test_logout_revokes_the_session(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    party = await make_party(engine, client, Role.BUYER)
    await sign_in(client, party.email)
    stolen = client.cookies.get("market_session")
    page = await client.get("/account")
    r = await client.post("/logout", data={"csrf_token": csrf_of(page.text)})
    assert r.status_code == 303
    client.cookies.set("market_session", stolen or "")
    assert (await client.get("/account")).status_code == 303  # the old cookie no longer signs in


async def test_language_switch_translates_the_page(client: httpx.AsyncClient) -> None:
    zh = await client.get("/", headers={"accept-language": "zh-CN"})
    assert "知识产权质押处置平台" in zh.text and 'lang="zh-CN"' in zh.text
    r = await client.get("/lang/en?next=/login")
    assert r.status_code == 303 and r.headers["location"] == "/login"
    en = await client.get("/login")
    assert "IP Disposal Marketplace" in en.text and 'lang="en"' in en.text


async def test_language_switch_never_redirects_off_site(client: httpx.AsyncClient) -> None:
    for target in ("https://evil.example/", "//evil.example", "/\\evil.example"):
        r = await client.get("/lang/en", params={"next": target})
        assert r.headers["location"] == "/"


async def test_wrong_password_page_is_translated(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    party = await make_party(engine, client, Role.BUYER)
    client.cookies.set("lang", "zh_CN")
    r = await sign_in(client, party.email, "wrong-password-0")
    assert r.status_code == 401 and "邮箱或密码错误" in r.text


async def test_unknown_page_is_html_404_for_browsers(client: httpx.AsyncClient) -> None:
    r = await client.get("/no/such/page", headers={"accept": "text/html"})
    assert r.status_code == 404 and "<html" in r.text
    api = await client.get("/api/v1/no-such")
    assert api.status_code == 404 and api.headers["content-type"].startswith("application/problem+json")
