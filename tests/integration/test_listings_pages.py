"""Pages of collateral and listings, in-process over HTTP: banks, the public catalogue, buyers.

Each test signs in through the /login form like a browser, then reads and posts the pages'
forms (with their CSRF tokens). Setup that is not what a test is about goes through the API.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from market.clock import today_cst
from market.parties import Role
from tests.support.collateral import claim, patent, reg_no
from tests.support.factories import PASSWORD, Party, make_party
from web.pages_listings import parse_cny

HTML = {"accept": "text/html"}


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no csrf token in form"
    return m.group(1)


async def sign_in(client: httpx.AsyncClient, party: Party, lang: str = "zh_CN") -> None:
    client.headers.update(HTML)
    client.cookies.set("lang", lang)
    form = await client.get("/login")
    r = await client.post(
        "/login",
        data={"email": party.email, "password": PASSWORD, "csrf_token": csrf_of(form.text), "next": "/"},
    )
    assert r.status_code == 303, r.text


async def submit(
    client: httpx.AsyncClient, form_page: str, action: str, data: dict[str, Any]
) -> httpx.Response:
    """Post ``data`` to ``action`` with the CSRF token of the page at ``form_page``."""
    page = await client.get(form_page)
    assert page.status_code == 200, page.text
    return await client.post(action, data={**data, "csrf_token": csrf_of(page.text)})


@pytest.fixture
async def second(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A second browser (its own cookies) for the other side of a negotiation."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def api_asset(client: httpx.AsyncClient, bank: Party, **over: Any) -> int:
    r = await client.post("/api/v1/assets", headers=bank.headers, json=patent(**over))
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def api_listing(
    client: httpx.AsyncClient, bank: Party, body: dict[str, Any], publish: bool = True
) -> int:
    r = await client.post("/api/v1/listings", headers=bank.headers, json=body)
    assert r.status_code == 201, r.text
    listing_id = int(r.json()["id"])
    if publish:
        pub = await client.post(f"/api/v1/listings/{listing_id}/publish", headers=bank.headers)
        assert pub.status_code == 200, pub.text
    return listing_id


def word() -> str:
    """A Chinese word no other test uses, so searches and recommendations are not disturbed."""
    return "".join(chr(0x4E00 + secrets.randbelow(0x51A5)) for _ in range(4))


# --------------------------------------------------------------------------- amounts


def test_yuan_are_converted_exactly_to_fen() -> None:
    assert parse_cny("0.1") == 10
    assert parse_cny("19.99") == 1999  # a float would give 1998.9999…
    assert parse_cny("1,234,567.89") == 123_456_789
    assert parse_cny(" ¥600000 ") == 60_000_000
    assert parse_cny("１２.３") == 1230  # full-width digits and point
    assert parse_cny("9000000000000000.00") == 900_000_000_000_000_000
    for bad in ("1.234", "-1", "1e3", "abc", "1,23", "", "1.", ".5", "NaN", "1_000"):
        with pytest.raises(ValueError):
            parse_cny(bad)


# --------------------------------------------------------------------------- access


async def test_bank_pages_need_a_signed_in_bank(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    client.headers.update(HTML)
    anonymous = await client.get("/bank/claims")
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login?next=/bank/claims"
    home = await client.get("/")
    assert 'id="nav-search"' in home.text and 'id="nav-claims"' not in home.text
    buyer = await make_party(engine, client, Role.BUYER)
    await sign_in(client, buyer)
    for path in ("/bank/claims", "/bank/assets/new", "/bank/listings"):
        r = await client.get(path)
        assert r.status_code == 403, path
    nav = (await client.get("/")).text
    assert 'id="nav-recommendations"' in nav and 'id="nav-claims"' not in nav
    bank = await make_party(engine, client, Role.BANK)
    await sign_in(client, bank)
    nav = (await client.get("/")).text
    assert 'id="nav-claims"' in nav and 'id="nav-new-listing"' in nav and 'id="nav-interests"' not in nav
    assert (await client.get("/buyer/interests")).status_code == 403


async def test_a_bank_sees_only_its_own_collateral_and_listings(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    a_bank = await make_party(engine, client, Role.BANK)
    b_bank = await make_party(engine, client, Role.BANK)
    a_asset = await api_asset(client, a_bank)
    a_claim = (await client.post("/api/v1/claims", headers=a_bank.headers, json=claim([a_asset]))).json()
    draft = await api_listing(
        client, a_bank, {"title": "草稿", "mode": "transfer", "asset_ids": [a_asset]}, False
    )
    other = await api_asset(client, a_bank)
    published = await api_listing(
        client, a_bank, {"title": "已发布", "mode": "transfer", "asset_ids": [other]}
    )
    await sign_in(client, b_bank)
    for path in (
        f"/bank/claims/{a_claim['id']}",
        f"/bank/assets/{a_asset}",
        f"/bank/listings/{draft}",
        f"/bank/listings/{published}",  # public, but not this bank's to manage
        f"/listings/{draft}",
    ):
        r = await client.get(path)
        assert r.status_code == 404, path
        assert "<html" in r.text
    for path, needle in (
        ("/bank/claims", a_claim["loan_no"]),
        ("/bank/assets", f'data-id="{a_asset}"'),
        ("/bank/listings", f'data-id="{draft}"'),
    ):
        page = await client.get(path)
        assert page.status_code == 200 and needle not in page.text, path
    publish = await client.post(
        f"/bank/listings/{draft}/publish", data={"csrf_token": csrf_of((await client.get("/")).text)}
    )
    assert publish.status_code == 404
    await sign_in(client, a_bank)
    assert a_claim["loan_no"] in (await client.get("/bank/claims")).text
    assert (await client.get(f"/bank/listings/{draft}")).status_code == 200


async def test_forms_refuse_a_missing_csrf_token(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    bank = await make_party(engine, client, Role.BANK)
    asset = await api_asset(client, bank)
    listing = await api_listing(
        client, bank, {"title": "令牌", "mode": "transfer", "asset_ids": [asset]}, False
    )
    await sign_in(client, bank)
    for path, data in (
        ("/bank/assets", {"kind": "trademark"}),
        ("/bank/claims", {"loan_no": "X"}),
        ("/bank/listings", {"title": "x", "mode": "transfer", "asset_ids": str(asset)}),
        (f"/bank/listings/{listing}/publish", {}),
        (f"/bank/listings/{listing}/withdraw", {"reason": "claim_repaid"}),
    ):
        r = await client.post(path, data=data)
        assert r.status_code == 403, path
        r = await client.post(path, data={**data, "csrf_token": "forged"})
        assert r.status_code == 403, path
    assert 'data-status="draft"' in (await client.get(f"/bank/listings/{listing}")).text
    buyer = await make_party(engine, client, Role.BUYER)
    await sign_in(client, buyer)
    for path, data in (
        ("/buyer/interests", {"keywords": "x"}),
        (f"/listings/{listing}/offers", {"amount_cny": "1"}),
        ("/offers/1/accept", {}),
    ):
        assert (await client.post(path, data=data)).status_code == 403, path


# --------------------------------------------------------------------------- collateral


async def test_asset_and_claim_forms_register_collateral(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    bank = await make_party(engine, client, Role.BANK)
    await sign_in(client, bank)
    today = today_cst()
    number = reg_no()
    r = await submit(
        client,
        "/bank/assets/new",
        "/bank/assets",
        {
            "kind": "invention_patent",
            "registration_no": number,
            "title": "一种固态电池电解质",
            "holder": "某某新能源有限公司",
            "legal_status": "granted",
            "filed_on": "2020-01-15",
            "granted_on": "2022-03-01",
            "classes": "H01M 10/0562, H01M 10/052",
            "appraisal_cny": "1,200,000.50",
            "appraised_on": (today - timedelta(days=10)).isoformat(),
            "annuity_paid_through": (today + timedelta(days=100)).isoformat(),
            "co_owners.0.name": "",
            "licenses.0.type": "non_exclusive",
        },
    )
    assert r.status_code == 303, r.text
    asset_url = r.headers["location"]
    asset_id = int(asset_url.rsplit("/", 1)[1])
    page = await client.get(asset_url)
    assert number in page.text and "1,200,000.50" in page.text and "可处置" in page.text
    assert 'class="problems"' not in page.text
    r = await submit(
        client,
        "/bank/claims/new",
        "/bank/claims",
        {
            "loan_no": f"LN-{secrets.token_hex(4)}",
            "borrower.name": "某某新能源有限公司",
            "borrower.credit_code": "91440300ma5dxxxx1y",
            "principal_cny": "600,000",
            "interest_cny": "30000.5",
            "costs_cny": "0.01",
            "defaulted_on": (today - timedelta(days=30)).isoformat(),
            "pledges.0.asset_id": str(asset_id),
            "pledges.0.registration_no": "ZX2023-001",
            "pledges.0.registered_on": "2023-01-10",
            "pledges.1.asset_id": "",
            "pledges.1.registration_no": "",
            "pledges.1.registered_on": "",
        },
    )
    assert r.status_code == 303, r.text
    detail = await client.get(r.headers["location"])
    text = detail.text
    assert "600,000.00" in text and "30,000.50" in text and "0.01" in text
    assert 'id="outstanding-total">630,000.51<' in text
    assert re.search(rf'data-asset="{asset_id}">.*?class="num rank">1<', text, re.S)
    assert "ZX2023-001" in text and "诉讼时效届满日" in text and 'id="time-barred"' not in text
    listing = await client.get("/bank/claims")
    assert "630,000.51" in listing.text


async def test_time_barred_claim_is_flagged(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    bank = await make_party(engine, client, Role.BANK)
    asset = await api_asset(client, bank)
    old = (today_cst() - timedelta(days=4 * 365)).isoformat()
    body = claim([asset], defaulted_on=old)
    body["pledges"][0]["registered_on"] = None
    created = await client.post("/api/v1/claims", headers=bank.headers, json=body)
    await sign_in(client, bank, lang="en")
    page = await client.get(f"/bank/claims/{created.json()['id']}")
    assert 'id="time-barred"' in page.text and "time-barred" in page.text
    assert "Unregistered" in page.text
    assert "Time-barred" in (await client.get("/bank/claims")).text


async def test_invalid_forms_are_shown_again_with_their_errors(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    bank = await make_party(engine, client, Role.BANK)
    asset = await api_asset(client, bank)
    await sign_in(client, bank)
    r = await submit(
        client,
        "/bank/claims/new",
        "/bank/claims",
        {
            "loan_no": "",
            "borrower.name": "某公司",
            "borrower.credit_code": "123",
            "principal_cny": "12.345",
            "interest_cny": "1e3",
            "costs_cny": "",
            "defaulted_on": "2024-13-01",
            "pledges.0.asset_id": str(asset),
            "pledges.0.registered_on": "not a date",
        },
    )
    assert r.status_code == 422
    for field in (
        "loan_no",
        "borrower-credit_code",
        "principal_cny",
        "interest_cny",
        "costs_cny",
        "defaulted_on",
    ):
        assert f'id="err-{field}"' in r.text, field
    assert 'id="err-pledges-0-registered_on"' in r.text
    assert "请输入以元为单位、最多两位小数的金额。" in r.text and "此项为必填项。" in r.text
    assert 'value="12.345"' in r.text and 'value="某公司"' in r.text  # what was typed stays
    no_pledge = await submit(
        client, "/bank/claims/new", "/bank/claims", {"loan_no": "L1", "pledges.0.asset_id": ""}
    )
    assert no_pledge.status_code == 422 and "请至少选择一项质押资产。" in no_pledge.text
    foreign_asset = await submit(
        client,
        "/bank/claims/new",
        "/bank/claims",
        {
            "loan_no": "L2",
            "borrower.name": "某公司",
            "borrower.credit_code": "91440300MA5DXXXX1Y",
            "principal_cny": "1",
            "interest_cny": "0",
            "costs_cny": "0",
            "defaulted_on": "2024-01-01",
            "pledges.0.asset_id": "999999999",
        },
    )
    assert foreign_asset.status_code == 404
    no_title = await submit(
        client,
        "/bank/assets/new",
        "/bank/assets",
        {"kind": "trademark", "registration_no": "TM1", "holder": "某公司", "legal_status": "bogus"},
    )
    assert no_title.status_code == 422
    assert 'id="err-title"' in no_title.text and 'id="err-legal_status"' in no_title.text
    no_assets = await submit(
        client, "/bank/listings/new", "/bank/listings", {"title": "无资产", "mode": "transfer"}
    )
    assert no_assets.status_code == 422 and 'id="err-asset_ids"' in no_assets.text
    no_terms = await submit(
        client,
        "/bank/listings/new",
        "/bank/listings",
        {"title": "许可", "mode": "license", "asset_ids": str(asset), "license_terms.term_months": "12个月"},
    )
    assert no_terms.status_code == 422
    for field in ("license_terms-term_months", "license_terms-territory", "license_terms-field"):
        assert f'id="err-{field}"' in no_terms.text, field
    assert re.search(rf'<option value="{asset}" selected>', no_terms.text)  # the chosen asset stays chosen
    unknown_acquirer = await submit(
        client,
        "/bank/listings/new",
        "/bank/listings",
        {
            "title": "收储",
            "mode": "entrusted_acquisition",
            "asset_ids": str(asset),
            "backstop.acquirer_credit_code": "91000000000000000X",
            "backstop.price_cny": "100000",
        },
    )
    assert unknown_acquirer.status_code == 422
    assert "平台上没有使用该统一社会信用代码的银行或买方机构。" in unknown_acquirer.text


async def test_asset_pages_show_every_eligibility_problem(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    bank = await make_party(engine, client, Role.BANK)
    today = today_cst()
    good = await api_asset(client, bank)
    bad = await api_asset(
        client,
        bank,
        legal_status="lapsed",
        annuity_paid_through=(today - timedelta(days=400)).isoformat(),
        appraised_on=(today - timedelta(days=500)).isoformat(),
        preservation_order=True,
        ownership_dispute=True,
        co_owners=[{"name": "另一共有人", "consented": False}],
        pledgee_credit_code="91110000000000000X",
    )
    await sign_in(client, bank)
    page = await client.get(f"/bank/assets/{bad}")
    codes = set(re.findall(r'<li data-code="([a-z_]+)"', page.text))
    assert codes == {
        "lapsed",
        "annuity_unpaid",
        "appraisal_stale",
        "pledgee_mismatch",
        "preservation_order",
        "ownership_dispute",
        "co_owner_consent_missing",
    }
    for zh in (
        "权利已失效",
        "存在法院保全措施",
        "有共有人未同意处置",
        "登记的质权人不是本行",
        "评估报告已超过一年有效期",
    ):
        assert zh in page.text, zh
    assert "不可处置" in page.text
    ok = await client.get(f"/bank/assets/{good}")
    assert "可处置" in ok.text and "data-code=" not in ok.text
    listing = await client.get("/bank/assets")
    assert "7 个问题" in listing.text
    client.cookies.set("lang", "en")
    en = await client.get(f"/bank/assets/{bad}")
    assert "A court preservation order is recorded" in en.text and "Not eligible" in en.text


# --------------------------------------------------------------------------- listings


async def test_listing_is_created_published_and_withdrawn_through_the_pages(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    bank = await make_party(engine, client, Role.BANK)
    asset = await api_asset(client, bank, title="石墨烯导热膜")
    await sign_in(client, bank)
    form = await client.get(f"/bank/listings/new?asset={asset}")
    assert re.search(rf'<option value="{asset}" selected>', form.text)
    r = await submit(
        client,
        "/bank/listings/new",
        "/bank/listings",
        {
            "title": "石墨烯导热膜专利转让",
            "title_en": "Graphene film patent",
            "mode": "transfer",
            "asset_ids": str(asset),
            "asking_price_cny": "880,000.00",
            "license_terms.territory": "ignored outside licence mode",
        },
    )
    assert r.status_code == 303, r.text
    url = r.headers["location"]
    listing_id = int(url.rsplit("/", 1)[1])
    draft = await client.get(url)
    assert 'data-status="draft"' in draft.text and 'id="publish"' in draft.text
    assert "未发现问题：该项目可以发布。" in draft.text and "880,000.00" in draft.text
    assert 'id="withdraw-form"' not in draft.text  # a draft is not withdrawn, only published
    assert (await client.get(f"/listings/{listing_id}", headers={"cookie": ""})).status_code == 404
    published = await client.post(
        f"/bank/listings/{listing_id}/publish", data={"csrf_token": csrf_of(draft.text)}
    )
    assert published.status_code == 303
    page = await client.get(url)
    assert 'data-status="published"' in page.text and 'id="withdraw-form"' in page.text
    assert 'id="publish"' not in page.text
    again = await client.post(f"/bank/listings/{listing_id}/publish", data={"csrf_token": csrf_of(page.text)})
    assert again.status_code == 409 and 'data-code="illegal_transition"' in again.text
    no_reason = await client.post(
        f"/bank/listings/{listing_id}/withdraw", data={"csrf_token": csrf_of(page.text), "reason": ""}
    )
    assert no_reason.status_code == 422 and 'id="err-reason"' in no_reason.text
    bad_reason = await client.post(
        f"/bank/listings/{listing_id}/withdraw", data={"csrf_token": csrf_of(page.text), "reason": "bored"}
    )
    assert bad_reason.status_code == 422
    withdrawn = await client.post(
        f"/bank/listings/{listing_id}/withdraw",
        data={"csrf_token": csrf_of(page.text), "reason": "claim_repaid", "note": "借款人已全额还款"},
    )
    assert withdrawn.status_code == 303
    final = await client.get(url)
    assert 'data-status="withdrawn"' in final.text and "债务人已清偿债务" in final.text
    assert "借款人已全额还款" in final.text
    mine = await client.get("/bank/listings")
    assert f'data-id="{listing_id}"' in mine.text and "已撤回" in mine.text
    async with httpx.AsyncClient(transport=client._transport, base_url="http://testserver") as anon:
        assert (await anon.get(f"/listings/{listing_id}", headers=HTML)).status_code == 404


async def test_a_listing_with_problems_shows_them_and_cannot_be_published(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    bank = await make_party(engine, client, Role.BANK)
    licensed = await api_asset(
        client,
        bank,
        licenses=[
            {"type": "exclusive", "field": "动力电池", "territory": "中国", "starts_on": "2024-01-01"},
        ],
    )
    await sign_in(client, bank)
    r = await submit(
        client,
        "/bank/listings/new",
        "/bank/listings",
        {
            "title": "独占许可",
            "mode": "license",
            "asset_ids": str(licensed),
            "license_terms.type": "sole",
            "license_terms.term_months": "24",
            "license_terms.territory": "中国",
            "license_terms.field": "动力电池",
            "license_terms.upfront_cny": "50000",
            "license_terms.royalty_bp": "350",
        },
    )
    assert r.status_code == 303, r.text
    page = await client.get(r.headers["location"])
    assert 'data-code="exclusive_license_conflict"' in page.text
    assert "已有独占或排他许可在领域、地域和期限上与本次许可重叠" in page.text
    assert "排他许可" in page.text and "3.50" in page.text and "50,000.00" in page.text
    refused = await client.post(r.headers["location"] + "/publish", data={"csrf_token": csrf_of(page.text)})
    assert refused.status_code == 422
    assert 'id="failure" data-code="listing_invalid"' in refused.text
    assert 'data-status="draft"' in refused.text


async def test_search_finds_a_published_listing_by_a_two_character_chinese_word(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    bank = await make_party(engine, client, Role.BANK)
    w = word()
    ids = []
    for i in range(3):
        asset = await api_asset(client, bank, title=f"{w}散热膜{i}", classes=["H05K 7/20"])
        body = {
            "title": f"{w}散热专利{i}",
            "mode": "transfer",
            "asset_ids": [asset],
            "asking_price_fen": 100_000_00,
        }
        ids.append(await api_listing(client, bank, body))
    draft_asset = await api_asset(client, bank, title=f"{w}草稿")
    draft = await api_listing(
        client, bank, {"title": f"{w}草稿", "mode": "transfer", "asset_ids": [draft_asset]}, False
    )
    client.headers.update(HTML)
    found = await client.get("/listings", params={"q": w[1:3]})
    assert found.status_code == 200
    for listing_id in ids:
        assert f'href="/listings/{listing_id}"' in found.text
    assert f'href="/listings/{draft}"' not in found.text  # drafts are never public
    page1 = await client.get("/listings", params={"q": w[:2], "kind": "invention_patent", "limit": "2"})
    assert f'href="/listings/{ids[2]}"' in page1.text and f'href="/listings/{ids[0]}"' not in page1.text
    next_url = re.search(r'href="([^"]+)" id="next-page"', page1.text)
    assert next_url, "no next page link"
    page2 = await client.get(next_url.group(1).replace("&amp;", "&"))
    assert f'href="/listings/{ids[0]}"' in page2.text and f'href="/listings/{ids[2]}"' not in page2.text
    assert 'id="next-page"' not in page2.text
    for params in (
        {"q": w[:2], "kind": "trademark"},
        {"q": w[:2], "min_price": "100,000.01"},
        {"q": w[:2], "mode": "license"},
        {"q": w[:2], "min_months": "600"},
        {"q": w[:2] + " 商标"},
    ):
        miss = await client.get("/listings", params=params)
        assert miss.status_code == 200 and 'id="no-results"' in miss.text, params
    hit = await client.get(
        "/listings",
        params={"q": w[:2], "min_price": "100000", "max_price": "100000.00", "class": "H05K 7/20"},
    )
    assert f'href="/listings/{ids[0]}"' in hit.text
    bad = await client.get("/listings", params={"q": w[:2], "min_price": "1.001", "min_months": "x"})
    assert bad.status_code == 422 and 'id="err-min_price"' in bad.text and 'id="err-min_months"' in bad.text
    detail = await client.get(f"/listings/{ids[0]}")
    assert detail.status_code == 200 and f"{w}散热专利0" in detail.text and "100,000.00" in detail.text
    assert 'id="sign-in-to-offer"' in detail.text and 'id="offer-form"' not in detail.text
    client.cookies.set("lang", "en")
    english = await client.get("/listings", params={"q": w[:2]})
    assert "Search listings" in english.text and "Invention patent" in english.text


# --------------------------------------------------------------------------- buyers


async def test_buyer_interests_recommendations_notifications_and_offers(
    client: httpx.AsyncClient, second: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    bank = await make_party(engine, client, Role.BANK)
    buyer = await make_party(engine, client, Role.BUYER)
    w = word()
    await sign_in(client, buyer)
    empty = await client.get("/buyer/recommendations")
    assert 'id="no-interests"' in empty.text
    r = await submit(
        client,
        "/buyer/interests",
        "/buyer/interests",
        {"kinds": ["utility_model", "trademark"], "classes": "H01L", "keywords": f"{w}，钙钛矿电池"},
    )
    assert r.status_code == 303 and r.headers["location"] == "/buyer/recommendations"
    saved = await client.get("/buyer/interests")
    assert 'value="utility_model" id="kind-utility_model" checked' in saved.text
    assert f"{w}, 钙钛矿电池" in saved.text
    bad = await submit(client, "/buyer/interests", "/buyer/interests", {"kinds": "spaceship"})
    assert bad.status_code == 422 and 'id="err-kinds"' in bad.text

    asset = await api_asset(client, bank, title=f"{w}太阳能电池", classes=["H01L 31/04"])
    listing = await api_listing(
        client, bank, {"title": f"{w}电池专利转让", "mode": "transfer", "asset_ids": [asset]}
    )
    recs = await client.get("/buyer/recommendations")
    item = re.search(rf'<li class="card" data-id="{listing}">(.*?)</li>\s*</ul>', recs.text, re.S)
    assert item, "listing not recommended"
    assert f"关键词：{w}" in item.group(1) and "分类号：H01L" in item.group(1)
    assert 'data-reason="kind"' not in item.group(1)  # an invention patent, not a wanted kind
    notes = await client.get("/notifications")
    note = re.search(
        rf'<li class="unread" data-id="(\d+)">\s*<span class="when">[^<]*</span>\s*'
        rf'有新的挂牌项目符合您的关注条件：\s*<a href="/listings/{listing}">',
        notes.text,
    )
    assert note, notes.text
    read = await client.post(f"/notifications/{note.group(1)}/read", data={"csrf_token": csrf_of(notes.text)})
    assert read.status_code == 303
    assert f'<li class="read" data-id="{note.group(1)}">' in (await client.get("/notifications")).text

    detail = await client.get(f"/listings/{listing}")
    assert 'id="offer-form"' in detail.text
    invalid = await client.post(
        f"/listings/{listing}/offers", data={"csrf_token": csrf_of(detail.text), "amount_cny": "800000.001"}
    )
    assert invalid.status_code == 422 and 'id="err-amount_cny"' in invalid.text
    r = await client.post(
        f"/listings/{listing}/offers",
        data={
            "csrf_token": csrf_of(detail.text),
            "amount_cny": "800,000",
            "valid_days": "3",
            "message": "诚意收购",
        },
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/offers#thread-")
    thread = int(r.headers["location"].rsplit("-", 1)[1])
    twice = await client.post(
        f"/listings/{listing}/offers", data={"csrf_token": csrf_of(detail.text), "amount_cny": "1"}
    )
    assert twice.status_code == 409 and 'data-code="negotiation_open"' in twice.text
    mine = await client.get("/offers")
    assert "800,000.00" in mine.text and "等待对方答复。" in mine.text and "诚意收购" in mine.text

    await sign_in(second, bank)
    theirs = await second.get("/offers")
    assert f'id="thread-{thread}"' in theirs.text and "轮到您答复" in theirs.text
    bad_counter = await second.post(
        f"/offers/{thread}/counter", data={"csrf_token": csrf_of(theirs.text), "amount_cny": "0"}
    )
    assert bad_counter.status_code == 422 and 'id="err-amount_cny"' in bad_counter.text
    countered = await second.post(
        f"/offers/{thread}/counter", data={"csrf_token": csrf_of(theirs.text), "amount_cny": "900000.50"}
    )
    assert countered.status_code == 303
    not_turn = await second.post(f"/offers/{thread}/accept", data={"csrf_token": csrf_of(theirs.text)})
    assert not_turn.status_code == 409 and 'data-code="not_your_turn"' in not_turn.text

    answer = await client.get("/offers")
    assert "900,000.50" in answer.text and "轮到您答复" in answer.text
    accepted = await client.post(f"/offers/{thread}/accept", data={"csrf_token": csrf_of(answer.text)})
    assert accepted.status_code == 303
    done = await client.get("/offers")
    assert "成交价：900,000.50" in done.text and 'data-status="accepted"' in done.text
    assert 'data-status="sold"' in (await client.get(f"/listings/{listing}")).text


async def test_unverified_buyer_sees_why_the_offer_is_refused(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    bank = await make_party(engine, client, Role.BANK)
    buyer = await make_party(engine, client, Role.BUYER, verified=False)
    asset = await api_asset(client, bank)
    listing = await api_listing(client, bank, {"title": "待认证", "mode": "transfer", "asset_ids": [asset]})
    await sign_in(client, buyer, lang="en")
    detail = await client.get(f"/listings/{listing}")
    r = await client.post(
        f"/listings/{listing}/offers", data={"csrf_token": csrf_of(detail.text), "amount_cny": "10"}
    )
    assert r.status_code == 403 and 'data-code="buyer_not_verified"' in r.text
    assert "an operator must verify your organisation first" in r.text


async def test_offers_can_be_withdrawn_and_rejected_from_the_offers_page(
    client: httpx.AsyncClient, second: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    bank = await make_party(engine, client, Role.BANK)
    buyer = await make_party(engine, client, Role.BUYER)
    asset = await api_asset(client, bank)
    listing = await api_listing(
        client, bank, {"title": "撤回与拒绝", "mode": "transfer", "asset_ids": [asset]}
    )
    await sign_in(client, buyer)
    await sign_in(second, bank)

    async def offer(amount: str) -> int:
        detail = await client.get(f"/listings/{listing}")
        r = await client.post(
            f"/listings/{listing}/offers", data={"csrf_token": csrf_of(detail.text), "amount_cny": amount}
        )
        assert r.status_code == 303, r.text
        return int(r.headers["location"].rsplit("-", 1)[1])

    first = await offer("500000")
    page = await client.get("/offers")
    assert (
        await client.post(f"/offers/{first}/haggle", data={"csrf_token": csrf_of(page.text)})
    ).status_code == 404
    withdrawn = await client.post(f"/offers/{first}/withdraw", data={"csrf_token": csrf_of(page.text)})
    assert withdrawn.status_code == 303
    page = await client.get("/offers")
    assert re.search(rf'id="thread-{first}" data-status="withdrawn"', page.text)
    assert 'data-status="published"' in (await client.get(f"/listings/{listing}")).text  # back on the market
    again = await offer("550000")
    theirs = await second.get("/offers")
    rejected = await second.post(f"/offers/{again}/reject", data={"csrf_token": csrf_of(theirs.text)})
    assert rejected.status_code == 303
    page = await client.get("/offers")
    assert re.search(rf'id="thread-{again}" data-status="rejected"', page.text) and "已拒绝" in page.text
    late = await client.post(f"/offers/{again}/withdraw", data={"csrf_token": csrf_of(page.text)})
    assert late.status_code == 409 and 'data-code="negotiation_closed"' in late.text
