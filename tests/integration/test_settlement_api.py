"""Settlement through the API: receipts, escrow until registry transfer, default and re-auction, licences."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from auctions import closer
from market import ledger_store
from market.config import Settings
from market.parties import Role
from tests.support.auctions import DEPOSIT, INCREMENT, START, auction_with_buyers, terms
from tests.support.collateral import claim, patent
from tests.support.factories import Party, make_party

GRACE = timedelta(milliseconds=300)


async def close_when_due(
    client: httpx.AsyncClient, engine: AsyncEngine, auction_id: int
) -> dict[str, object]:
    for _ in range(60):
        state = (await client.get(f"/api/v1/auctions/{auction_id}")).json()
        if state["status"] in ("closed", "failed", "cancelled"):
            return state
        ends = datetime.fromisoformat(state["ends_at"])
        await asyncio.sleep(max(0.0, (ends - datetime.now(UTC)).total_seconds()) + 0.4)
        while await closer.close_one(engine, GRACE, Settings()) is not None:
            pass
    raise AssertionError("never closed")


async def sold_auction(client: httpx.AsyncClient, engine: AsyncEngine) -> tuple[object, Party, int]:
    s = await auction_with_buyers(client, engine, buyers=2, seconds=4)
    winner = s.buyers[1]
    await client.post(
        f"/api/v1/auctions/{s.auction_id}/bids", headers=s.buyers[0].headers, json={"amount_fen": START}
    )
    await client.post(
        f"/api/v1/auctions/{s.auction_id}/bids",
        headers=winner.headers,
        json={"amount_fen": START + INCREMENT},
    )
    await close_when_due(client, engine, s.auction_id)
    async with engine.connect() as conn:
        from sqlalchemy import text

        disposal_id = (
            await conn.execute(
                text("SELECT id FROM disposals WHERE source = 'auction' AND source_ref = :a"),
                {"a": str(s.auction_id)},
            )
        ).scalar()
    return s, winner, int(disposal_id)


async def test_patent_sale_waits_in_escrow_until_the_registry_records_it(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    s, _winner, disposal_id = await sold_auction(client, engine)
    op = await make_party(engine, client, Role.OPERATOR)
    d = (await client.get(f"/api/v1/disposals/{disposal_id}", headers=op.headers)).json()
    price = START + INCREMENT
    assert d["price_fen"] == price and d["stage"] == "awaiting_payment"
    assert d["balance_due_fen"] == price - DEPOSIT
    wrong = await client.post(
        f"/api/v1/disposals/{disposal_id}/receipts",
        headers=op.headers,
        json={"amount_fen": 1, "reference": "BANK-REF-0", "received_on": "2026-11-25"},
    )
    assert wrong.status_code == 422 and wrong.json()["code"] == "wrong_amount"
    body = {"amount_fen": price - DEPOSIT, "reference": "BANK-REF-1", "received_on": "2026-11-25"}
    r = await client.post(f"/api/v1/disposals/{disposal_id}/receipts", headers=op.headers, json=body)
    assert r.status_code == 201, r.text
    assert r.json()["stage"] == "in_escrow"
    d = (await client.get(f"/api/v1/disposals/{disposal_id}", headers=op.headers)).json()
    assert d["escrow_pending_fen"] == price - DEPOSIT and d["allocations"] == []
    released = await client.post(f"/api/v1/disposals/{disposal_id}/transfer-recorded", headers=op.headers)
    assert released.status_code == 200, released.text
    d = released.json()
    assert d["stage"] == "settled" and d["escrow_pending_fen"] == 0
    assert (
        sum(a["costs_fen"] + a["interest_fen"] + a["principal_fen"] for a in d["allocations"])
        + d["surplus_to_pledgor_fen"]
        + d["fees_fen"]
        == price
    )
    tasks = (await client.get("/api/v1/me/tasks", headers=s.bank.headers)).json()["items"]
    mine = [t for t in tasks if t["disposal_id"] == disposal_id]
    assert mine and all(t["status"] == "open" for t in mine)
    done = await client.post(f"/api/v1/me/tasks/{mine[0]['id']}/done", headers=s.bank.headers)
    assert done.status_code == 200 and done.json()["status"] == "done"
    other_bank = await make_party(engine, client, Role.BANK)
    assert (
        await client.post(f"/api/v1/me/tasks/{mine[0]['id']}/done", headers=other_bank.headers)
    ).status_code == 404
    assert (
        await client.get(f"/api/v1/disposals/{disposal_id}", headers=other_bank.headers)
    ).status_code == 404


async def test_same_receipt_five_times_at_once_settles_once(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    _, _, disposal_id = await sold_auction(client, engine)
    op = await make_party(engine, client, Role.OPERATOR)
    body = {"amount_fen": START + INCREMENT - DEPOSIT, "reference": "DUP-1", "received_on": "2026-11-25"}
    results = await asyncio.gather(
        *(
            client.post(f"/api/v1/disposals/{disposal_id}/receipts", headers=op.headers, json=body)
            for _ in range(5)
        )
    )
    assert sorted(r.status_code for r in results) == [200, 200, 200, 200, 201]
    assert len({str(r.json()["postings"]) for r in results}) == 1
    other = await client.post(
        f"/api/v1/disposals/{disposal_id}/receipts",
        headers=op.headers,
        json={**body, "amount_fen": body["amount_fen"] + 1},
    )
    assert other.status_code == 409 and other.json()["code"] == "id_reused"
    async with engine.connect() as conn:
        assert await ledger_store.reconcile(conn) == []


async def test_default_forfeits_the_deposit_bars_the_bidder_and_pays_in_the_next_round(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    s, defaulter, disposal_id = await sold_auction(client, engine)
    op = await make_party(engine, client, Role.OPERATOR)
    r = await client.post(f"/api/v1/disposals/{disposal_id}/default", headers=op.headers)
    assert r.status_code == 200, r.text
    assert r.json()["stage"] == "defaulted" and r.json()["forfeit_reserve_fen"] == DEPOSIT
    assert (await client.get(f"/api/v1/listings/{s.listing_id}")).json()["status"] == "published"
    nxt = await client.post(
        "/api/v1/auctions",
        headers=s.bank.headers,
        json=terms(s.listing_id, seconds=1.5, start=START * 8 // 10, deposit_fen=5_000_000),
    )
    assert nxt.status_code == 201, nxt.text
    barred = await client.post(
        f"/api/v1/auctions/{nxt.json()['id']}/registrations", headers=defaulter.headers
    )
    assert barred.status_code == 403 and barred.json()["code"] == "bidder_barred"
    newcomer = await make_party(engine, client, Role.BUYER)
    reg = await client.post(f"/api/v1/auctions/{nxt.json()['id']}/registrations", headers=newcomer.headers)
    assert reg.status_code == 201
    await asyncio.sleep(0.6)
    new_price = START * 8 // 10
    bid = await client.post(
        f"/api/v1/auctions/{nxt.json()['id']}/bids", headers=newcomer.headers, json={"amount_fen": new_price}
    )
    assert bid.status_code == 201, bid.text
    await close_when_due(client, engine, nxt.json()["id"])
    async with engine.connect() as conn:
        from sqlalchemy import text

        second = int(
            (
                await conn.execute(
                    text("SELECT id FROM disposals WHERE source='auction' AND source_ref=:a"),
                    {"a": str(nxt.json()["id"])},
                )
            ).scalar()
        )
    pay = await client.post(
        f"/api/v1/disposals/{second}/receipts",
        headers=op.headers,
        json={"amount_fen": new_price - 5_000_000, "reference": "R2", "received_on": "2026-11-26"},
    )
    assert pay.status_code == 201
    await client.post(f"/api/v1/disposals/{second}/transfer-recorded", headers=op.headers)
    d = (await client.get(f"/api/v1/disposals/{second}", headers=op.headers)).json()
    memos = " ".join(p["memo"] for p in d["postings"])
    assert "re-auction shortfall vs defaulted price" in memos  # rule 17 (b)
    assert d["forfeit_reserve_fen"] == 0
    async with engine.connect() as conn:
        assert await ledger_store.reconcile(conn) == []


async def test_licence_receipts_settle_one_by_one_then_go_to_the_pledgor(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    bank = await make_party(engine, client, Role.BANK)
    licensee = await make_party(engine, client, Role.BUYER)
    op = await make_party(engine, client, Role.OPERATOR)
    a = (await client.post("/api/v1/assets", headers=bank.headers, json=patent())).json()["id"]
    c = (
        await client.post(
            "/api/v1/claims",
            headers=bank.headers,
            json=claim([a], principal_fen=1_000_000, interest_fen=100_000, costs_fen=0),
        )
    ).json()["id"]
    listing = (
        await client.post(
            "/api/v1/listings",
            headers=bank.headers,
            json={
                "title": "普通许可",
                "mode": "license",
                "asset_ids": [a],
                "license_terms": {
                    "type": "non_exclusive",
                    "term_months": 24,
                    "territory": "中国",
                    "field": "储能",
                },
            },
        )
    ).json()
    await client.post(f"/api/v1/listings/{listing['id']}/publish", headers=bank.headers)
    offer = (
        await client.post(
            f"/api/v1/listings/{listing['id']}/offers", headers=licensee.headers, json={"amount_fen": 500_000}
        )
    ).json()
    accepted = await client.post(f"/api/v1/offers/{offer['id']}/accept", headers=bank.headers)
    disposal_id = accepted.json()["disposal_id"]
    for i, amount in enumerate((600_000, 600_000, 300_000)):
        r = await client.post(
            f"/api/v1/disposals/{disposal_id}/receipts",
            headers=op.headers,
            json={"amount_fen": amount, "reference": f"LIC-{i}", "received_on": "2026-11-25"},
        )
        assert r.status_code == 201 and r.json()["stage"] == "licensed", r.text
    got = (await client.get(f"/api/v1/claims/{c}", headers=bank.headers)).json()
    assert got["outstanding"] == {"costs_fen": 0, "interest_fen": 0, "principal_fen": 0}
    assert got["status"] == "paid"
    d = (await client.get(f"/api/v1/disposals/{disposal_id}", headers=op.headers)).json()
    assert d["surplus_to_pledgor_fen"] == 1_500_000 - 1_100_000


async def test_pool_pays_its_share_of_the_principal_loss_at_finalize(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    import secrets

    op = await make_party(engine, client, Role.OPERATOR)
    code = f"GZ{secrets.token_hex(3)}"
    pool = await client.post(
        "/api/v1/pools",
        headers=op.headers,
        json={
            "code": code,
            "name": "广州知识产权风险补偿资金池",
            "share_bp": 5000,
            "per_loan_cap_fen": 10_000_000,
        },
    )
    assert pool.status_code == 201, pool.text
    funded = await client.post(
        f"/api/v1/pools/{code}/fund", headers=op.headers, json={"amount_fen": 50_000_000, "reference": "seed"}
    )
    assert funded.status_code == 200, funded.text
    assert funded.json()["balance_fen"] == 50_000_000
    bank = await make_party(engine, client, Role.BANK)
    buyer = await make_party(engine, client, Role.BUYER)
    a = (
        await client.post(
            "/api/v1/assets",
            headers=bank.headers,
            json=patent(kind="software_copyright", legal_status="registered", expires_on="2060-01-01"),
        )
    ).json()["id"]
    c = (
        await client.post(
            "/api/v1/claims",
            headers=bank.headers,
            json=claim([a], principal_fen=30_000_000, interest_fen=0, costs_fen=0, pool_code=code),
        )
    ).json()["id"]
    listing = (
        await client.post(
            "/api/v1/listings",
            headers=bank.headers,
            json={"title": "软件著作权转让", "mode": "transfer", "asset_ids": [a]},
        )
    ).json()
    await client.post(f"/api/v1/listings/{listing['id']}/publish", headers=bank.headers)
    offer = (
        await client.post(
            f"/api/v1/listings/{listing['id']}/offers", headers=buyer.headers, json={"amount_fen": 10_000_000}
        )
    ).json()
    disposal_id = (await client.post(f"/api/v1/offers/{offer['id']}/accept", headers=bank.headers)).json()[
        "disposal_id"
    ]
    pay = await client.post(
        f"/api/v1/disposals/{disposal_id}/receipts",
        headers=op.headers,
        json={"amount_fen": 10_000_000, "reference": "P1", "received_on": "2026-11-25"},
    )
    assert pay.json()["stage"] == "settled"  # a copyright transfer needs no registry wait
    fin = await client.post(f"/api/v1/listings/{listing['id']}/finalize", headers=op.headers)
    assert fin.status_code == 200, fin.text
    comp = [p for p in fin.json()["postings"] if p["credit"] == f"poolcomp:{c}"]
    assert comp and comp[0]["amount_fen"] == 10_000_000  # min(50 % of 20,000,000 loss, cap 10,000,000)
    again = await client.post(f"/api/v1/listings/{listing['id']}/finalize", headers=op.headers)
    assert again.json()["duplicate"] is True


async def test_a_wrong_receipt_is_reversed_not_edited(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    from sqlalchemy import text

    _, _, disposal_id = await sold_auction(client, engine)
    op = await make_party(engine, client, Role.OPERATOR)
    body = {"amount_fen": START + INCREMENT - DEPOSIT, "reference": "WRONG-1", "received_on": "2026-11-25"}
    r = await client.post(f"/api/v1/disposals/{disposal_id}/receipts", headers=op.headers, json=body)
    assert r.json()["stage"] == "in_escrow"
    async with engine.connect() as conn:
        entry_id = (
            await conn.execute(text("SELECT id FROM ledger_entries WHERE key = :k"), {"k": r.json()["key"]})
        ).scalar()
    rev = await client.post(
        f"/api/v1/ledger/entries/{entry_id}/reverse",
        headers=op.headers,
        json={"reason": "booked to the wrong disposal"},
    )
    assert rev.status_code == 201, rev.text
    assert [(p["debit"], p["credit"]) for p in rev.json()["postings"]] == [
        (p["credit"], p["debit"]) for p in reversed(r.json()["postings"])
    ]
    again = await client.post(
        f"/api/v1/ledger/entries/{entry_id}/reverse",
        headers=op.headers,
        json={"reason": "booked to the wrong disposal"},
    )
    assert again.status_code == 200 and again.json()["duplicate"] is True
    d = (await client.get(f"/api/v1/disposals/{disposal_id}", headers=op.headers)).json()
    assert d["stage"] == "awaiting_payment" and d["escrow_pending_fen"] == 0
    redo = await client.post(
        f"/api/v1/disposals/{disposal_id}/receipts", headers=op.headers, json={**body, "reference": "RIGHT-1"}
    )
    assert redo.status_code == 201 and redo.json()["stage"] == "in_escrow"
    blocked = await client.post(
        f"/api/v1/ledger/entries/{entry_id}/reverse", headers=op.headers, json={"reason": "again"}
    )
    assert blocked.status_code == 409
    async with engine.connect() as conn:
        assert await ledger_store.reconcile(conn) == []
