"""Collateral, listings, search, recommendations and negotiation through the API, as a bank's system would."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from market.clock import today_cst
from market.parties import Role
from tests.support.collateral import claim, patent, reg_no, trademark
from tests.support.factories import Party, make_party


async def post(
    client: httpx.AsyncClient, who: Party, path: str, body: object | None = None
) -> httpx.Response:
    return await client.post(path, headers=who.headers, json=body)


async def asset(client: httpx.AsyncClient, bank: Party, body: dict[str, object]) -> dict[str, object]:
    r = await post(client, bank, "/api/v1/assets", body)
    assert r.status_code == 201, r.text
    return r.json()


async def test_eligible_asset_has_no_problems(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    bank = await make_party(engine, client, Role.BANK)
    a = await asset(client, bank, patent())
    assert a["eligibility"] == {"ok": True, "problems": []}
    assert a["registration_no"].startswith("ZL0")  # text: leading zeros survive


async def test_every_eligibility_problem_is_reported(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    bank = await make_party(engine, client, Role.BANK)
    today = today_cst()
    a = await asset(
        client,
        bank,
        patent(
            legal_status="lapsed",
            annuity_paid_through=(today - timedelta(days=400)).isoformat(),
            appraised_on=(today - timedelta(days=500)).isoformat(),
            preservation_order=True,
            ownership_dispute=True,
            co_owners=[{"name": "另一共有人", "consented": False}],
            pledgee_credit_code="91110000000000000X",
        ),
    )
    codes = {p["code"] for p in a["eligibility"]["problems"]}
    assert a["eligibility"]["ok"] is False
    assert {
        "lapsed",
        "annuity_unpaid",
        "appraisal_stale",
        "preservation_order",
        "ownership_dispute",
        "co_owner_consent_missing",
        "pledgee_mismatch",
    } <= codes


async def test_claims_rank_pledges_on_one_asset(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    bank = await make_party(engine, client, Role.BANK)
    a = (await asset(client, bank, patent()))["id"]
    first = await post(client, bank, "/api/v1/claims", claim([a]))
    second_body = claim([a])
    second_body["pledges"][0]["registered_on"] = "2024-02-01"
    second = await post(client, bank, "/api/v1/claims", second_body)
    third_body = claim([a])
    third_body["pledges"][0]["registered_on"] = "2024-02-01"
    third = await post(client, bank, "/api/v1/claims", third_body)
    unregistered_body = claim([a])
    unregistered_body["pledges"][0]["registered_on"] = None
    unregistered = await post(client, bank, "/api/v1/claims", unregistered_body)
    ranks = {}
    for r in (first, second, third, unregistered):
        assert r.status_code == 201, r.text
        got = await client.get(f"/api/v1/claims/{r.json()['id']}", headers=bank.headers)
        ranks[r.json()["id"]] = got.json()["pledges"][0]["rank"]
        assert got.json()["outstanding"] == {
            "costs_fen": 200_000,
            "interest_fen": 3_000_000,
            "principal_fen": 60_000_000,
        }
        assert got.json()["recovered"] == {"costs_fen": 0, "interest_fen": 0, "principal_fen": 0}
    ids = [r.json()["id"] for r in (first, second, third, unregistered)]
    assert [ranks[i] for i in ids] == [1, 2, 2, 3]  # equal rank on the same date; unregistered last


async def test_other_banks_collateral_is_404(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    a_bank = await make_party(engine, client, Role.BANK)
    b_bank = await make_party(engine, client, Role.BANK)
    a_asset = (await asset(client, a_bank, patent()))["id"]
    a_claim = (await post(client, a_bank, "/api/v1/claims", claim([a_asset]))).json()["id"]
    draft = await post(
        client, a_bank, "/api/v1/listings", {"title": "草稿", "mode": "transfer", "asset_ids": [a_asset]}
    )
    for path in (
        f"/api/v1/assets/{a_asset}",
        f"/api/v1/claims/{a_claim}",
        f"/api/v1/listings/{draft.json()['id']}",
    ):
        r = await client.get(path, headers=b_bank.headers)
        assert r.status_code == 404, path
    assert all(
        c["id"] != a_claim
        for c in (await client.get("/api/v1/claims", headers=b_bank.headers)).json()["items"]
    )
    pledge_on_foreign = await post(client, b_bank, "/api/v1/claims", claim([a_asset]))
    assert pledge_on_foreign.status_code == 404
    steal = await post(
        client, b_bank, "/api/v1/listings", {"title": "x", "mode": "transfer", "asset_ids": [a_asset]}
    )
    assert steal.status_code == 404
    assert (await post(client, b_bank, f"/api/v1/listings/{draft.json()['id']}/publish")).status_code == 404


async def test_bundle_across_two_claims_publishes_and_is_found_by_chinese_word(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    bank = await make_party(engine, client, Role.BANK)
    a1 = (await asset(client, bank, patent(title="石墨烯散热膜的制造工艺", title_en="Graphene heat film")))[
        "id"
    ]
    a2 = (await asset(client, bank, patent(title="散热模组结构", title_en="Heat sink module")))["id"]
    c1 = await post(client, bank, "/api/v1/claims", claim([a1]))
    c2 = await post(client, bank, "/api/v1/claims", claim([a2]))
    assert c1.status_code == c2.status_code == 201
    r = await post(
        client,
        bank,
        "/api/v1/listings",
        {
            "title": "石墨烯散热专利包",
            "title_en": "Graphene thermal patent bundle",
            "mode": "bundle",
            "asset_ids": [a1, a2],
            "description": "两项发明专利打包转让",
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["eligibility"]["ok"] is True and r.json()["status"] == "draft"
    draft_hits = (await client.get("/api/v1/listings", params={"q": "石墨烯散热"})).json()["items"]
    assert r.json()["id"] not in [i["id"] for i in draft_hits]  # drafts are never public
    pub = await post(client, bank, f"/api/v1/listings/{r.json()['id']}/publish")
    assert pub.status_code == 200, pub.text
    assert pub.json()["status"] == "published"
    for q in ("石墨", "散热", "graphene", "GRAPH", "石墨烯 专利"):
        found = await client.get("/api/v1/listings", params={"q": q})
        assert r.json()["id"] in [i["id"] for i in found.json()["items"]], q
    miss = await client.get("/api/v1/listings", params={"q": "石墨 商标"})
    assert r.json()["id"] not in [i["id"] for i in miss.json()["items"]]
    by_kind = await client.get("/api/v1/listings", params={"kind": "trademark", "q": "石墨"})
    assert by_kind.json()["items"] == []
    by_class = await client.get("/api/v1/listings", params={"class": "H01M 4/505", "q": "散热"})
    assert r.json()["id"] in [i["id"] for i in by_class.json()["items"]]


async def test_licence_listing_conflicting_with_an_exclusive_licence(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    bank = await make_party(engine, client, Role.BANK)
    licensed = (
        await asset(
            client,
            bank,
            patent(
                licenses=[
                    {
                        "type": "exclusive",
                        "field": "动力电池",
                        "territory": "中国",
                        "starts_on": "2024-01-01",
                        "ends_on": "2030-12-31",
                    }
                ]
            ),
        )
    )["id"]
    await post(client, bank, "/api/v1/claims", claim([licensed]))
    terms = {"type": "sole", "term_months": 24, "territory": "中国", "field": "动力电池"}
    bad = await post(
        client,
        bank,
        "/api/v1/listings",
        {"title": "许可", "mode": "license", "asset_ids": [licensed], "license_terms": terms},
    )
    assert "exclusive_license_conflict" in {p["code"] for p in bad.json()["eligibility"]["problems"]}
    refused = await post(client, bank, f"/api/v1/listings/{bad.json()['id']}/publish")
    assert refused.status_code == 422 and refused.json()["code"] == "listing_invalid"
    assert "exclusive_license_conflict" in {p["code"] for p in refused.json()["problems"]}
    long_term = await post(
        client,
        bank,
        "/api/v1/listings",
        {
            "title": "许可",
            "mode": "license",
            "asset_ids": [licensed],
            "license_terms": {**terms, "type": "non_exclusive", "field": "储能", "term_months": 600},
        },
    )
    assert "license_term_exceeds_remaining" in {
        p["code"] for p in long_term.json()["eligibility"]["problems"]
    }
    ok_asset = (await asset(client, bank, patent()))["id"]
    await post(client, bank, "/api/v1/claims", claim([ok_asset]))
    good = await post(
        client,
        bank,
        "/api/v1/listings",
        {
            "title": "锂电池专利独占许可",
            "mode": "license",
            "asset_ids": [ok_asset],
            "license_terms": {
                "type": "exclusive",
                "term_months": 36,
                "territory": "中国",
                "field": "动力电池",
                "upfront_fen": 5_000_000,
                "royalty_bp": 300,
            },
        },
    )
    assert good.json()["eligibility"]["ok"] is True
    assert (await post(client, bank, f"/api/v1/listings/{good.json()['id']}/publish")).status_code == 200


async def test_entrusted_acquisition_with_backstop(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    bank = await make_party(engine, client, Role.BANK)
    acquirer = await make_party(engine, client, Role.BUYER)
    a = (await asset(client, bank, patent()))["id"]
    await post(client, bank, "/api/v1/claims", claim([a]))
    too_high = await post(
        client,
        bank,
        "/api/v1/listings",
        {
            "title": "委托收储",
            "mode": "entrusted_acquisition",
            "asset_ids": [a],
            "backstop": {
                "acquirer_org_id": acquirer.org_id,
                "price_fen": 10_000_000,
                "break_up_fee_fen": 400_000,
            },
        },
    )
    assert {"break_up_fee_too_high"} <= {p["code"] for p in too_high.json()["eligibility"]["problems"]}
    ok = await post(
        client,
        bank,
        "/api/v1/listings",
        {
            "title": "委托收储",
            "mode": "entrusted_acquisition",
            "asset_ids": [a],
            "backstop": {
                "acquirer_org_id": acquirer.org_id,
                "price_fen": 10_000_000,
                "break_up_fee_fen": 300_000,
                "expense_fen": 200_000,
            },
        },
    )
    assert ok.json()["eligibility"]["ok"] is True, ok.json()
    assert (await post(client, bank, f"/api/v1/listings/{ok.json()['id']}/publish")).status_code == 200
    public = await client.get(f"/api/v1/listings/{ok.json()['id']}")
    assert public.json()["backstop"] is None  # the backstop's terms stay with the bank


async def test_trademark_without_its_similar_marks_is_refused(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    bank = await make_party(engine, client, Role.BANK)
    t1 = (await asset(client, bank, trademark(similar_mark_group="eagle")))["id"]
    t2 = (await asset(client, bank, trademark(similar_mark_group="eagle", title="飞鹰图形")))["id"]
    await post(client, bank, "/api/v1/claims", claim([t1, t2]))
    alone = await post(
        client, bank, "/api/v1/listings", {"title": "飞鹰商标", "mode": "transfer", "asset_ids": [t1]}
    )
    assert "similar_marks_missing" in {p["code"] for p in alone.json()["eligibility"]["problems"]}
    both = await post(
        client, bank, "/api/v1/listings", {"title": "飞鹰商标", "mode": "bundle", "asset_ids": [t1, t2]}
    )
    assert both.json()["eligibility"]["ok"] is True


async def test_time_barred_claim_cannot_start_a_disposal(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    bank = await make_party(engine, client, Role.BANK)
    a = (await asset(client, bank, patent()))["id"]
    old = (today_cst() - timedelta(days=4 * 365)).isoformat()
    await post(client, bank, "/api/v1/claims", claim([a], defaulted_on=old))
    draft = await post(
        client, bank, "/api/v1/listings", {"title": "过期", "mode": "transfer", "asset_ids": [a]}
    )
    r = await post(client, bank, f"/api/v1/listings/{draft.json()['id']}/publish")
    assert r.status_code == 422 and r.json()["code"] == "claim_time_barred"
    assert "limitation" in r.json()["detail"]


async def test_interests_recommendations_and_notification(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    bank = await make_party(engine, client, Role.BANK)
    buyer = await make_party(engine, client, Role.BUYER)
    other = await make_party(engine, client, Role.BUYER)
    word = "钙钛矿" + reg_no("")[-4:]
    r = await client.put(
        "/api/v1/me/interests",
        headers=buyer.headers,
        json={"kinds": ["utility_model"], "classes": ["H01L"], "keywords": [word]},
    )
    assert r.status_code == 200, r.text
    await client.put(
        "/api/v1/me/interests", headers=other.headers, json={"kinds": [], "keywords": ["无关词汇"]}
    )
    a = (await asset(client, bank, patent(title=f"{word}太阳能电池", classes=["H01L 31/04"])))["id"]
    await post(client, bank, "/api/v1/claims", claim([a]))
    listing = await post(
        client,
        bank,
        "/api/v1/listings",
        {"title": f"{word}电池专利转让", "mode": "transfer", "asset_ids": [a]},
    )
    await post(client, bank, f"/api/v1/listings/{listing.json()['id']}/publish")
    recs = (await client.get("/api/v1/recommendations", headers=buyer.headers)).json()["items"]
    mine = [x for x in recs if x["listing"]["id"] == listing.json()["id"]]
    assert mine and {r["code"] for r in mine[0]["reasons"]} == {"class", "keyword"}
    notes = (await client.get("/api/v1/me/notifications", headers=buyer.headers)).json()["items"]
    assert any(n["listing_id"] == listing.json()["id"] for n in notes)
    others = (await client.get("/api/v1/me/notifications", headers=other.headers)).json()["items"]
    assert not any(n["listing_id"] == listing.json()["id"] for n in others)


async def test_negotiation_ends_with_a_disposal(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    bank = await make_party(engine, client, Role.BANK)
    buyer = await make_party(engine, client, Role.BUYER)
    rival = await make_party(engine, client, Role.BUYER)
    stranger = await make_party(engine, client, Role.BANK)
    a = (await asset(client, bank, patent()))["id"]
    await post(client, bank, "/api/v1/claims", claim([a]))
    listing = (
        await post(
            client, bank, "/api/v1/listings", {"title": "协议转让", "mode": "transfer", "asset_ids": [a]}
        )
    ).json()
    await post(client, bank, f"/api/v1/listings/{listing['id']}/publish")
    offer = await post(
        client,
        buyer,
        f"/api/v1/listings/{listing['id']}/offers",
        {"amount_fen": 80_000_000, "message": "诚意收购"},
    )
    assert offer.status_code == 201, offer.text
    rival_offer = await post(
        client, rival, f"/api/v1/listings/{listing['id']}/offers", {"amount_fen": 70_000_000}
    )
    assert rival_offer.status_code == 201
    tid = offer.json()["id"]
    assert (await client.get(f"/api/v1/offers/{tid}", headers=stranger.headers)).status_code == 404
    assert (await client.get(f"/api/v1/offers/{tid}", headers=rival.headers)).status_code == 404
    not_turn = await post(client, buyer, f"/api/v1/offers/{tid}/accept")
    assert not_turn.status_code == 409 and not_turn.json()["code"] == "not_your_turn"
    counter = await post(client, bank, f"/api/v1/offers/{tid}/counter", {"amount_fen": 90_000_000})
    assert counter.status_code == 200 and counter.json()["turn"] == "buyer"
    accepted = await post(client, buyer, f"/api/v1/offers/{tid}/accept")
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "accepted" and accepted.json()["agreed_price_fen"] == 90_000_000
    assert accepted.json()["disposal_id"]
    sold = await client.get(f"/api/v1/listings/{listing['id']}")
    assert sold.json()["status"] == "sold"
    closed = await client.get(f"/api/v1/offers/{rival_offer.json()['id']}", headers=rival.headers)
    assert closed.json()["status"] == "rejected"
    late = await post(client, rival, f"/api/v1/listings/{listing['id']}/offers", {"amount_fen": 99_000_000})
    assert late.status_code == 409


async def test_withdrawal_needs_a_rule_21_reason(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    bank = await make_party(engine, client, Role.BANK)
    a = (await asset(client, bank, patent()))["id"]
    await post(client, bank, "/api/v1/claims", claim([a]))
    listing = (
        await post(client, bank, "/api/v1/listings", {"title": "撤回", "mode": "transfer", "asset_ids": [a]})
    ).json()
    await post(client, bank, f"/api/v1/listings/{listing['id']}/publish")
    assert (await post(client, bank, f"/api/v1/listings/{listing['id']}/withdraw", {})).status_code == 422
    bad = await post(client, bank, f"/api/v1/listings/{listing['id']}/withdraw", {"reason": "bored"})
    assert bad.status_code == 422
    ok = await post(
        client,
        bank,
        f"/api/v1/listings/{listing['id']}/withdraw",
        {"reason": "claim_repaid", "note": "借款人已全额还款"},
    )
    assert ok.status_code == 200 and ok.json()["status"] == "withdrawn"
    again = await post(client, bank, f"/api/v1/listings/{listing['id']}/withdraw", {"reason": "claim_repaid"})
    assert again.status_code == 409 and again.json()["code"] == "illegal_transition"


async def test_amounts_must_be_integer_fen(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    bank = await make_party(engine, client, Role.BANK)
    for bad in (-1, 1.5, 100.0, "100", 10**30, True):
        r = await post(client, bank, "/api/v1/assets", patent(appraisal_fen=bad))
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["code"] == "validation_failed"
    nan = await client.post(
        "/api/v1/assets",
        headers={**bank.headers, "content-type": "application/json"},
        content=b'{"appraisal_fen": NaN}',
    )
    assert nan.status_code == 422
    huge = await post(client, bank, "/api/v1/claims", claim([], principal_fen=10**30))
    assert huge.status_code == 422


async def test_lapsed_offer_is_expired_and_the_listing_reopens(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    from sqlalchemy import text

    from listings import offers
    from market.db import run_in_transaction

    bank = await make_party(engine, client, Role.BANK)
    buyer = await make_party(engine, client, Role.BUYER)
    a = (await asset(client, bank, patent()))["id"]
    await post(client, bank, "/api/v1/claims", claim([a]))
    listing = (
        await post(
            client, bank, "/api/v1/listings", {"title": "过期报价", "mode": "transfer", "asset_ids": [a]}
        )
    ).json()
    await post(client, bank, f"/api/v1/listings/{listing['id']}/publish")
    offer = await post(client, buyer, f"/api/v1/listings/{listing['id']}/offers", {"amount_fen": 1_000_000})
    tid = offer.json()["id"]
    async with engine.begin() as conn:  # let the offer lapse
        await conn.execute(
            text("UPDATE offers SET expires_at = now() - interval '1 second' WHERE thread_id = :t"),
            {"t": tid},
        )
    late = await post(client, bank, f"/api/v1/offers/{tid}/accept")
    assert late.status_code == 409 and late.json()["code"] == "offer_expired"
    assert await run_in_transaction(engine, offers.expire_due_threads) >= 1
    assert (await client.get(f"/api/v1/offers/{tid}", headers=buyer.headers)).json()["status"] == "expired"
    assert (await client.get(f"/api/v1/listings/{listing['id']}")).json()["status"] == "published"
    again = await post(client, buyer, f"/api/v1/listings/{listing['id']}/offers", {"amount_fen": 1_200_000})
    assert again.status_code == 201


async def test_rule_22_other_lots_withdrawn_once_the_claim_is_covered(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    bank = await make_party(engine, client, Role.BANK)
    buyer = await make_party(engine, client, Role.BUYER)
    a1, a2, a3 = [(await asset(client, bank, patent()))["id"] for _ in range(3)]
    await post(
        client,
        bank,
        "/api/v1/claims",
        claim([a1, a2, a3], principal_fen=5_000_000, interest_fen=0, costs_fen=0),
    )
    lots = []
    for a, opt_in in ((a1, False), (a2, False), (a3, True)):
        listing = (
            await post(
                client,
                bank,
                "/api/v1/listings",
                {"title": "多批次", "mode": "transfer", "asset_ids": [a], "pledgor_opt_in": opt_in},
            )
        ).json()
        await post(client, bank, f"/api/v1/listings/{listing['id']}/publish")
        lots.append(listing["id"])
    offer = (
        await post(client, buyer, f"/api/v1/listings/{lots[0]}/offers", {"amount_fen": 6_000_000})
    ).json()
    accepted = await post(client, bank, f"/api/v1/offers/{offer['id']}/accept")
    assert accepted.status_code == 200, accepted.text
    second = (await client.get(f"/api/v1/listings/{lots[1]}", headers=bank.headers)).json()
    assert second["status"] == "withdrawn" and second["withdrawal_reason"] == "claim_covered"
    third = (await client.get(f"/api/v1/listings/{lots[2]}", headers=bank.headers)).json()
    assert third["status"] == "published"  # the pledgor opted in to selling every lot
