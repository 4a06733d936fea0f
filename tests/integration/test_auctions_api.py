"""Auctions through the API in-process: terms, registration and deposits, bids, closing, rounds."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from auctions import closer
from market import ledger_store
from market.config import Settings
from market.db import transaction
from market.parties import Actor, Role
from tests.support.auctions import DEPOSIT, INCREMENT, START, auction_with_buyers, published_listing, terms
from tests.support.factories import make_party

GRACE = timedelta(milliseconds=300)


async def wait_and_close(
    engine: AsyncEngine, client: httpx.AsyncClient, auction_id: int, settings: Settings | None = None
) -> list[object]:
    """Wait for the (possibly extended) end, then run the closer until nothing is due."""
    results: list[object] = []
    for _ in range(50):
        state = (await client.get(f"/api/v1/auctions/{auction_id}")).json()
        if state["status"] in ("closed", "failed", "cancelled"):
            return results
        ends = datetime.fromisoformat(state["ends_at"])
        await asyncio.sleep(max(0.0, (ends - datetime.now(UTC)).total_seconds()) + 0.4)
        while (r := await closer.close_one(engine, GRACE, settings or Settings())) is not None:
            results.append(r)
    raise AssertionError("auction never closed")


async def test_terms_are_checked_against_every_money_rule(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    bank = await make_party(engine, client, Role.BANK)
    listing_id = await published_listing(client, bank)
    bad = await client.post(
        "/api/v1/auctions",
        headers=bank.headers,
        json=terms(listing_id, start=60_000_000, deposit_fen=20_000_000),
    )
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_terms"
    codes = {p["code"] for p in bad.json()["problems"]}
    assert len(codes) >= 2, codes
    ok = await client.post("/api/v1/auctions", headers=bank.headers, json=terms(listing_id))
    assert ok.status_code == 201, ok.text
    assert ok.json()["status"] in ("scheduled", "live") and ok.json()["start_price_fen"] == START
    listing = await client.get(f"/api/v1/listings/{listing_id}")
    assert listing.json()["status"] == "in_auction"


async def test_a_licence_listing_is_not_auctioned(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    """Its fees settle receipt by receipt; a round would have no close the ledger could take."""
    bank = await make_party(engine, client, Role.BANK)
    licence = {"type": "non_exclusive", "term_months": 12, "territory": "中国", "field": "电池"}
    listing_id = await published_listing(
        client, bank, listing_over={"mode": "license", "license_terms": licence}
    )
    refused = await client.post("/api/v1/auctions", headers=bank.headers, json=terms(listing_id))
    assert refused.status_code == 409 and refused.json()["code"] == "licence_by_negotiation", refused.text
    listing = await client.get(f"/api/v1/listings/{listing_id}")
    assert listing.json()["status"] == "published"


async def test_registration_holds_the_deposit_and_gives_a_paddle(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    s = await auction_with_buyers(client, engine, buyers=1)
    buyer = s.buyers[0]
    again = await client.post(f"/api/v1/auctions/{s.auction_id}/registrations", headers=buyer.headers)
    assert again.status_code == 200 and again.json()["paddle_no"] == s.paddles[buyer.org_id]
    async with engine.connect() as conn:
        held = await ledger_store.balances(conn, [f"hold:{s.listing_id}:{buyer.org_id}"])
    assert held == {f"hold:{s.listing_id}:{buyer.org_id}": DEPOSIT}
    unverified = await make_party(engine, client, Role.BUYER, verified=False)
    r = await client.post(f"/api/v1/auctions/{s.auction_id}/registrations", headers=unverified.headers)
    assert r.status_code == 403 and r.json()["code"] == "buyer_not_verified"
    assert (
        await client.post(f"/api/v1/auctions/{s.auction_id}/registrations", headers=s.bank.headers)
    ).status_code == 403


async def test_bidding_rules_over_http(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    s = await auction_with_buyers(client, engine, buyers=2, seconds=30)
    a, b = s.buyers
    url = f"/api/v1/auctions/{s.auction_id}/bids"
    low = await client.post(url, headers=a.headers, json={"amount_fen": START - 1})
    assert low.status_code == 409 and low.json()["code"] == "bid_too_low"
    first = await client.post(url, headers=a.headers, json={"amount_fen": START})
    assert first.status_code == 201, first.text
    assert first.json()["seq"] == 1 and first.json()["leading"] is True
    self_outbid = await client.post(url, headers=a.headers, json={"amount_fen": START + INCREMENT})
    assert self_outbid.status_code == 409 and self_outbid.json()["code"] == "already_leading"
    not_enough = await client.post(url, headers=b.headers, json={"amount_fen": START + INCREMENT - 1})
    assert not_enough.status_code == 409 and not_enough.json()["minimum_fen"] == START + INCREMENT
    second = await client.post(url, headers=b.headers, json={"amount_fen": START + INCREMENT})
    assert second.status_code == 201
    stranger = await make_party(engine, client, Role.BUYER)
    r = await client.post(url, headers=stranger.headers, json={"amount_fen": START + 5 * INCREMENT})
    assert r.status_code == 403 and r.json()["code"] == "deposit_required"
    for bad in (1.5, "100", -5, 10**30, True):
        r = await client.post(url, headers=b.headers, json={"amount_fen": bad})
        assert r.status_code == 422, bad
    state = (await client.get(f"/api/v1/auctions/{s.auction_id}")).json()
    assert state["current_price_fen"] == START + INCREMENT
    assert state["leader_paddle"] == s.paddles[b.org_id] and state["bid_count"] == 2
    events = (await client.get(f"/api/v1/auctions/{s.auction_id}/events")).json()["events"]
    assert [e["seq"] for e in events] == [1, 2]
    assert all("bidder_id" not in e and "org" not in str(e) for e in events)


async def test_proxy_bid_answers_automatically(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    s = await auction_with_buyers(client, engine, buyers=2, seconds=30)
    a, b = s.buyers
    url = f"/api/v1/auctions/{s.auction_id}/bids"
    await client.post(url, headers=a.headers, json={"amount_fen": START, "max_fen": START + 10 * INCREMENT})
    r = await client.post(url, headers=b.headers, json={"amount_fen": START + INCREMENT})
    assert r.status_code == 201 and r.json()["leading"] is False
    state = (await client.get(f"/api/v1/auctions/{s.auction_id}")).json()
    assert state["leader_paddle"] == s.paddles[a.org_id]
    assert state["current_price_fen"] == START + 2 * INCREMENT


async def test_same_idempotency_key_places_one_bid(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    s = await auction_with_buyers(client, engine, buyers=1, seconds=30)
    buyer = s.buyers[0]
    headers = {**buyer.headers, "Idempotency-Key": "bid-once"}
    url = f"/api/v1/auctions/{s.auction_id}/bids"
    results = await asyncio.gather(
        *(client.post(url, headers=headers, json={"amount_fen": START}) for _ in range(5))
    )
    assert {r.status_code for r in results} == {201}
    assert len({r.text for r in results}) == 1
    assert (await client.get(f"/api/v1/auctions/{s.auction_id}")).json()["bid_count"] == 1


async def test_close_with_winner_creates_disposal_and_releases_losers(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    s = await auction_with_buyers(client, engine, buyers=3, seconds=2)
    a, b, c = s.buyers
    url = f"/api/v1/auctions/{s.auction_id}/bids"
    assert (await client.post(url, headers=a.headers, json={"amount_fen": START})).status_code == 201
    assert (
        await client.post(url, headers=b.headers, json={"amount_fen": START + INCREMENT})
    ).status_code == 201
    await wait_and_close(engine, client, s.auction_id)  # a live server's closer may close it first: fine
    async with engine.connect() as conn:
        from sqlalchemy import text

        closes = (
            await conn.execute(
                text("SELECT count(*) FROM auction_events WHERE auction_id = :a AND type = 'closed'"),
                {"a": s.auction_id},
            )
        ).scalar()
        made = (
            await conn.execute(
                text("SELECT count(*) FROM disposals WHERE source = 'auction' AND source_ref = :a"),
                {"a": str(s.auction_id)},
            )
        ).scalar()
    assert closes == 1 and made == 1
    state = (await client.get(f"/api/v1/auctions/{s.auction_id}")).json()
    assert state["status"] == "closed" and state["current_price_fen"] == START + INCREMENT
    assert (await client.get(f"/api/v1/listings/{s.listing_id}")).json()["status"] == "sold"
    async with engine.connect() as conn:
        holds = await ledger_store.balances(conn, [f"hold:{s.listing_id}:{p.org_id}" for p in (a, b, c)])
    assert list(holds.values()) == [0, DEPOSIT, 0]  # losers released, the winner's deposit still held
    late = await client.post(url, headers=c.headers, json={"amount_fen": START + 5 * INCREMENT})
    assert late.status_code == 409 and late.json()["code"] in ("auction_closed", "auction_not_open")
    events = (await client.get(f"/api/v1/auctions/{s.auction_id}/events")).json()["events"]
    assert [e["type"] for e in events].count("closed") == 1


async def test_failed_round_rolls_into_a_legal_second_round(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    s = await auction_with_buyers(client, engine, buyers=1, seconds=1.5)
    await wait_and_close(engine, client, s.auction_id)
    state = (await client.get(f"/api/v1/auctions/{s.auction_id}")).json()
    assert state["status"] == "failed"
    assert (
        state["next_step"]["kind"] == "auction"
        and state["next_step"]["start_price_floor_fen"] == START * 8 // 10
    )
    async with engine.connect() as conn:
        held = await ledger_store.balances(conn, [f"hold:{s.listing_id}:{s.buyers[0].org_id}"])
    assert list(held.values()) == [0]
    assert (await client.get(f"/api/v1/listings/{s.listing_id}")).json()["status"] == "failed"
    too_low = await client.post(
        "/api/v1/auctions",
        headers=s.bank.headers,
        json=terms(s.listing_id, start=START * 8 // 10 - 1, deposit_fen=5_000_000),
    )
    assert too_low.status_code == 422 and too_low.json()["code"] == "invalid_terms"
    ok = await client.post(
        "/api/v1/auctions",
        headers=s.bank.headers,
        json=terms(s.listing_id, start=START * 8 // 10, deposit_fen=5_000_000),
    )
    assert ok.status_code == 201, ok.text
    assert ok.json()["round_no"] == 2


async def test_operator_suspends_with_reason_and_sees_identities(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    s = await auction_with_buyers(client, engine, buyers=1, seconds=60)
    op = await make_party(engine, client, Role.OPERATOR)
    url = f"/api/v1/auctions/{s.auction_id}"
    no_reason = await client.post(url + "/suspend", headers=op.headers, json={"reason": " "})
    assert no_reason.status_code == 422
    r = await client.post(url + "/suspend", headers=op.headers, json={"reason": "系统故障排查"})
    assert r.status_code == 200 and r.json()["events"][0]["reason"] == "系统故障排查"
    bid = await client.post(url + "/bids", headers=s.buyers[0].headers, json={"amount_fen": START})
    assert bid.status_code == 409 and bid.json()["code"] == "auction_suspended"
    assert (await client.post(url + "/resume", headers=op.headers, json={})).status_code == 200
    who = await client.get(url + "/registrations", headers=op.headers)
    assert who.json()["items"][0]["org_id"] == s.buyers[0].org_id
    assert (await client.get(url + "/registrations", headers=s.bank.headers)).status_code == 403
    cancel = await client.post(url + "/cancel", headers=op.headers, json={"reason": "权属异议成立"})
    assert cancel.status_code == 200
    assert (await client.get(url)).json()["status"] == "cancelled"
    assert (await client.get(f"/api/v1/listings/{s.listing_id}")).json()["status"] == "published"


async def test_bank_takes_over_after_a_failed_round(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    s = await auction_with_buyers(client, engine, buyers=0, seconds=1.5)
    too_early = await client.post(
        f"/api/v1/listings/{s.listing_id}/take-over", headers=s.bank.headers, json={"by": "bank"}
    )
    assert too_early.status_code == 409
    await wait_and_close(engine, client, s.auction_id)
    r = await client.post(
        f"/api/v1/listings/{s.listing_id}/take-over", headers=s.bank.headers, json={"by": "bank"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["price_fen"] == START and r.json()["buyer_org_id"] == s.bank.org_id
    assert (await client.get(f"/api/v1/listings/{s.listing_id}")).json()["status"] == "sold"
    backstop = await client.post(
        f"/api/v1/listings/{s.listing_id}/take-over", headers=s.bank.headers, json={"by": "backstop"}
    )
    assert backstop.status_code == 409


async def test_ladder_round_two_then_fixed_price_sale_with_purchase(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    s = await auction_with_buyers(client, engine, buyers=0, seconds=1.5)
    await wait_and_close(engine, client, s.auction_id)
    second_start = START * 8 // 10
    r2 = await client.post(
        "/api/v1/auctions",
        headers=s.bank.headers,
        json=terms(s.listing_id, seconds=1.5, start=second_start, deposit_fen=5_000_000),
    )
    assert r2.status_code == 201, r2.text
    await wait_and_close(engine, client, r2.json()["id"])
    step = (await client.get(f"/api/v1/auctions/{r2.json()['id']}")).json()["next_step"]
    assert step["kind"] == "fixed_price_sale" and step["price_fen"] == second_start
    sale = await client.post(
        "/api/v1/auctions",
        headers=s.bank.headers,
        json=terms(
            s.listing_id, seconds=30, start=second_start, deposit_fen=5_000_000, kind="fixed_price_sale"
        ),
    )
    assert sale.status_code == 201, sale.text
    buyer = await make_party(engine, client, Role.BUYER)
    await asyncio.sleep(0.6)
    bought = await client.post(f"/api/v1/listings/{s.listing_id}/purchase", headers=buyer.headers)
    assert bought.status_code == 201, bought.text
    assert bought.json()["amount_fen"] == second_start and bought.json()["leading"] is True


async def test_an_auction_that_cannot_be_closed_does_not_hold_up_the_others(
    client: httpx.AsyncClient, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    bank = await make_party(engine, client, Role.BANK)
    ids, listings = [], []
    for seconds in (1.0, 1.5):  # the broken one is due first: the closer always meets it first
        listing_id = await published_listing(client, bank)
        body = terms(listing_id, seconds=seconds)
        made = await client.post("/api/v1/auctions", headers=bank.headers, json=body)
        assert made.status_code == 201, made.text
        ids.append(made.json()["id"])
        listings.append(listing_id)
    broken, healthy = ids
    # a settlement record no closer can read (any closer on this database: other tests' servers too)
    async with transaction(engine) as conn:
        await conn.execute(
            text("INSERT INTO settlement_lots (listing_id, state) VALUES (:l, '{}')"), {"l": listings[0]}
        )
    monkeypatch.setattr(closer, "QUARANTINE_FIRST", 0.6)
    one_worker = Settings().model_copy(update={"closer_workers": 1})  # no second worker to get around it
    stop = asyncio.Event()
    running = asyncio.create_task(closer.run(engine, stop, one_worker, interval=0.05))

    async def status(aid: int) -> str:
        return str((await client.get(f"/api/v1/auctions/{aid}")).json()["status"])

    try:
        for _ in range(100):
            if await status(healthy) == "failed":
                break
            await asyncio.sleep(0.1)
        assert await status(healthy) == "failed"  # closed (no bids: 流拍) while the other kept failing
        assert await status(broken) == "live"
        async with transaction(engine) as conn:  # repaired
            await conn.execute(text("DELETE FROM settlement_lots WHERE listing_id = :l"), {"l": listings[0]})
        for _ in range(100):
            if await status(broken) == "failed":
                break
            await asyncio.sleep(0.1)
        assert await status(broken) == "failed"  # retried after its back-off, and closed once
    finally:
        stop.set()
        await running


async def test_a_queueful_of_bids_is_decided_in_order_and_written_once(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    from auctions import services, store
    from market.db import run_autocommit
    from market.errors import IdempotencyKeyReused

    s = await auction_with_buyers(client, engine, buyers=3, seconds=60)
    a, b, c = (Actor(p.user_id, p.org_id, Role.BUYER, p.email) for p in s.buyers)

    def queued(actor: Actor, amount: int, request: str, digest: str = "h") -> services.QueuedBid:
        return services.QueuedBid(
            actor, amount, None, (f"wsbid:{actor.org_id}", f"{s.auction_id}:{request}", digest)
        )

    async def decide(bids: list[services.QueuedBid]) -> list[Any]:
        return await run_autocommit(engine, lambda conn: services.decide_bids(conn, s.auction_id, bids))

    first = await decide(
        [
            queued(a, START, "a1"),
            queued(b, START, "b1"),  # the same amount after A's: too low
            queued(c, START + INCREMENT, "c1"),  # above A's: accepted, in the same write
            queued(a, START, "a1"),  # A's request again: A's answer, nothing placed
            queued(b, START + 2 * INCREMENT, "a1"),  # B's own request named like A's
        ]
    )
    assert first[0]["seq"] == 1 and first[0]["amount_fen"] == START
    # judged after A's bid, answered after C's: the minimum as of the write, not START + INCREMENT
    assert first[1].code == "bid_too_low" and first[1].minimum_fen == START + 3 * INCREMENT
    assert first[2]["seq"] == 2 and first[2]["leading"] is True
    assert first[3] == first[0]
    assert first[4]["seq"] == 3  # another bidder's request id of the same name is its own
    again = await decide([queued(a, START + 5 * INCREMENT, "a1", digest="other")])  # reused, other bid
    assert isinstance(again[0], IdempotencyKeyReused)
    async with transaction(engine) as conn:
        events = await store.events_after(conn, s.auction_id, 0)
    assert [(e["type"], e.get("amount_fen")) for e in events] == [
        ("bid", START),
        ("bid", START + INCREMENT),
        ("bid", START + 2 * INCREMENT),
    ]
