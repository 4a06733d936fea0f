"""The operator console in-process: the monitor's counts on a known scenario, KPIs, interventions and
their audit rows, two-operator bid cancellation (the rebuilt state equals the replay), the pages.

Other tests share the database, so every figure is read for one fresh bank (``?bank=``).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from auctions import closer, monitor, rules, store
from market import audit, ledger_store
from market.clock import today_cst
from market.config import Settings
from market.db import transaction
from market.parties import Role
from tests.support.auctions import APPRAISAL, DEPOSIT, INCREMENT, START, published_listing, terms
from tests.support.factories import PASSWORD, Party, make_party

GRACE = timedelta(milliseconds=300)


# --------------------------------------------------------------------------- helpers


@dataclass
class Round:
    id: int
    listing_id: int
    buyers: dict[str, Party] = field(default_factory=dict)
    paddles: dict[str, str] = field(default_factory=dict)


async def open_round(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    bank: Party,
    buyers: dict[str, Party],
    *,
    seconds: float,
    **over: Any,
) -> Round:
    """A published listing of ``bank``, a round on it, and ``buyers`` registered (deposits held)."""
    listing_id = await published_listing(client, bank)
    r = await client.post(
        "/api/v1/auctions", headers=bank.headers, json=terms(listing_id, seconds=seconds, **over)
    )
    assert r.status_code == 201, r.text
    out = Round(int(r.json()["id"]), listing_id, dict(buyers))
    for name, buyer in buyers.items():
        reg = await client.post(f"/api/v1/auctions/{out.id}/registrations", headers=buyer.headers)
        assert reg.status_code == 201, reg.text
        out.paddles[name] = reg.json()["paddle_no"]
    return out


async def wait_open(client: httpx.AsyncClient, auction_id: int) -> None:
    state = (await client.get(f"/api/v1/auctions/{auction_id}")).json()
    opens = datetime.fromisoformat(state["starts_at"])
    await asyncio.sleep(max(0.0, (opens - datetime.now(UTC)).total_seconds()) + 0.05)


async def bid(client: httpx.AsyncClient, rnd: Round, who: str, amount: int) -> dict[str, Any]:
    r = await client.post(
        f"/api/v1/auctions/{rnd.id}/bids", headers=rnd.buyers[who].headers, json={"amount_fen": amount}
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def close_all(client: httpx.AsyncClient, engine: AsyncEngine, ids: list[int]) -> None:
    """Wait for the (possibly extended) ends, then run the closer until these rounds are finished."""
    for _ in range(100):
        states = [(await client.get(f"/api/v1/auctions/{i}")).json() for i in ids]
        if all(s["status"] in ("closed", "failed", "cancelled") for s in states):
            return
        latest = max(datetime.fromisoformat(s["ends_at"]) for s in states)
        await asyncio.sleep(max(0.0, (latest - datetime.now(UTC)).total_seconds()) + 0.4)
        while await closer.close_one(engine, GRACE, Settings()) is not None:
            pass
    raise AssertionError("the rounds never closed")


async def disposal_of(engine: AsyncEngine, auction_id: int) -> int:
    async with engine.connect() as conn:
        value = await conn.scalar(
            text("SELECT id FROM disposals WHERE source = 'auction' AND source_ref = :a"),
            {"a": str(auction_id)},
        )
    assert value is not None
    return int(value)


async def buyers(engine: AsyncEngine, client: httpx.AsyncClient, *names: str) -> dict[str, Party]:
    return {
        n: await make_party(engine, client, Role.BUYER, name=f"买方 {n} {time.time_ns() % 10**6}")
        for n in names
    }


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no csrf token in the page"
    return m.group(1)


async def signed_in_client(app: Any, party: Party) -> httpx.AsyncClient:
    c = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://testserver"
    )
    form = await c.get("/login")
    r = await c.post(
        "/login",
        data={"email": party.email, "password": PASSWORD, "csrf_token": csrf_of(form.text), "next": "/"},
    )
    assert r.status_code == 303, r.text
    return c


# --------------------------------------------------------------------------- the scenario


@dataclass
class Scenario:
    bank: Party
    operator: Party
    live: Round
    sold: list[Round]
    failed: Round
    cancelled: Round
    shill: Party
    disposals: dict[str, int]
    started: float


@pytest.fixture(scope="module")
async def http(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
        base_url="http://testserver",
        timeout=30,
    ) as c:
        yield c


@pytest.fixture(scope="module")
async def scenario(http: httpx.AsyncClient, engine: AsyncEngine) -> Scenario:
    """One fresh bank: a live round with an anti-sniping extension and 4 bids, 4 sold rounds (one
    awaiting payment, one in escrow, one settled, one defaulted), a failed round, a cancelled round,
    a listing published without a round. Bidder X bids first and loses in three of the bank's sold
    rounds, then nibbles in the live one: a shill pattern."""
    client = http
    bank = await make_party(engine, client, Role.BANK, name=f"监控银行 {time.time_ns() % 10**8}")
    operator = await make_party(engine, client, Role.OPERATOR)
    people = await buyers(engine, client, "x", "a", "b", "w1", "w2", "w3", "w4", "f", "c")
    x = people["x"]
    started = time.monotonic()
    sold = [
        await open_round(client, engine, bank, {"x": x, "w": people["w1"]}, seconds=6),
        await open_round(client, engine, bank, {"x": x, "w": people["w2"]}, seconds=6),
        await open_round(client, engine, bank, {"x": x, "w": people["w3"]}, seconds=6),
        await open_round(client, engine, bank, {"w": people["w4"]}, seconds=6),
    ]
    failed = await open_round(client, engine, bank, {"f": people["f"]}, seconds=6)
    live = await open_round(
        client, engine, bank, {"a": people["a"], "b": people["b"], "x": x}, seconds=600, extension_seconds=900
    )
    cancelled = await open_round(client, engine, bank, {"c": people["c"]}, seconds=600)
    await published_listing(client, bank)  # listed, no round yet
    await wait_open(client, cancelled.id)
    for rnd in sold[:3]:
        await bid(client, rnd, "x", START)
        await bid(client, rnd, "w", START + INCREMENT)
    await bid(client, sold[3], "w", START)
    await bid(client, live, "a", START)
    await bid(client, live, "x", START + INCREMENT)
    await bid(client, live, "b", START + 2 * INCREMENT)
    await bid(client, live, "x", START + 3 * INCREMENT)
    r = await client.post(
        f"/api/v1/auctions/{cancelled.id}/cancel", headers=operator.headers, json={"reason": "权属争议"}
    )
    assert r.status_code == 200, r.text
    await close_all(client, engine, [rnd.id for rnd in sold] + [failed.id])
    ids = {
        name: await disposal_of(engine, rnd.id)
        for name, rnd in zip(("awaiting", "escrow", "settled", "default"), sold, strict=True)
    }
    due = START + INCREMENT - DEPOSIT
    for name in ("escrow", "settled"):
        r = await client.post(
            f"/api/v1/disposals/{ids[name]}/receipts",
            headers=operator.headers,
            json={"amount_fen": due, "reference": f"BK{ids[name]}", "received_on": today_cst().isoformat()},
        )
        assert r.status_code == 201 and r.json()["stage"] == "in_escrow", r.text
    r = await client.post(f"/api/v1/disposals/{ids['settled']}/transfer-recorded", headers=operator.headers)
    assert r.status_code == 200, r.text
    r = await client.post(f"/api/v1/disposals/{ids['default']}/default", headers=operator.headers)
    assert r.status_code == 200, r.text
    return Scenario(bank, operator, live, sold, failed, cancelled, x, ids, started)


async def get_monitor(client: httpx.AsyncClient, s: Scenario, **params: Any) -> dict[str, Any]:
    r = await client.get(
        "/api/v1/monitor", params={"bank": s.bank.org_id, **params}, headers=s.operator.headers
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


# --------------------------------------------------------------------------- monitor


async def test_monitor_gives_exactly_the_scenarios_counts(
    http: httpx.AsyncClient, engine: AsyncEngine, scenario: Scenario
) -> None:
    s = scenario
    async with transaction(engine) as conn:  # two instances report; one of them went silent long ago
        await conn.execute(
            text(
                "INSERT INTO instance_presence "
                "(instance_id, host, pid, watchers, per_auction, started_at, seen_at) "
                "VALUES (:f, 'h', 1, 3, CAST(:pa AS jsonb), now(), now()), "
                "       (:g, 'h', 2, 5, CAST(:pb AS jsonb), now(), now() - interval '1 minute')"
            ),
            {
                "f": f"test-fresh-{s.live.id}",
                "g": f"test-stale-{s.live.id}",
                "pa": f'{{"{s.live.id}": 3}}',
                "pb": f'{{"{s.live.id}": 5}}',
            },
        )
    try:
        m = await get_monitor(http, s)
    finally:
        async with transaction(engine) as conn:
            await conn.execute(
                text("DELETE FROM instance_presence WHERE instance_id LIKE :p"), {"p": f"test-%-{s.live.id}"}
            )
    assert time.monotonic() - s.started < 55, "the scenario took too long for a one-minute window"
    assert m["bank_org_id"] == s.bank.org_id
    assert m["auctions"]["by_status"] == {
        "scheduled": 0,
        "live": 1,
        "suspended": 0,
        "closed": 4,
        "failed": 1,
        "cancelled": 1,
    }
    assert (
        m["auctions"]["extensions_in_progress"] == 1
    )  # the live round's end moved (extension 900 s > window)
    assert m["bids_last_minute"] == 11
    assert len(m["bids_per_minute"]) == 30 and sum(p["bids"] for p in m["bids_per_minute"]) == 11
    assert m["watchers"]["connected"] == 3 and m["watchers"]["per_auction"] == {str(s.live.id): 3}
    assert m["disposals"] == {
        "listed": 3,  # the listing without a round, the cancelled round's, the defaulted one's
        "in_auction": 1,
        "in_negotiation": 0,
        "awaiting_payment": 1,
        "in_escrow": 1,
        "settled": 1,
        "licensed": 0,
        "failed_rounds": 1,
        "defaults": 1,
    }
    # held: the live round's three bidders, the unpaid winner's, the escrowed winner's
    assert m["deposits_held_fen"] == 5 * DEPOSIT
    async with engine.connect() as conn:
        claim_ids = (
            (await conn.execute(text("SELECT id FROM claims WHERE bank_org_id = :b"), {"b": s.bank.org_id}))
            .scalars()
            .all()
        )
        recovered = [sum((await ledger_store.claim_recovered(conn, c)).values()) for c in claim_ids]
    assert m["recovered_fen"] == sum(recovered) > 0
    (bank_row,) = m["recovery_by_bank"]
    assert bank_row["bank_org_id"] == s.bank.org_id and bank_row["recovered_fen"] == sum(recovered)
    assert bank_row["claims"] == 8 and bank_row["opening_fen"] == 8 * (60_000_000 + 3_000_000 + 200_000)
    assert m["closer"]["overdue"] == 0 and m["closer"]["recent_closes"] == 5
    assert m["closer"]["p99_seconds"] is not None and m["closer"]["p99_seconds"] < 60


async def test_the_shill_pattern_shows_with_paddle_and_identity(
    http: httpx.AsyncClient, scenario: Scenario
) -> None:
    s = scenario
    m = await get_monitor(http, s)
    (suspect,) = m["suspects"]
    assert suspect["auction_id"] == s.live.id and suspect["paddle_no"] == s.live.paddles["x"]
    assert suspect["bidder_org_id"] == s.shill.org_id and suspect["org_name"].startswith("买方 x")
    assert suspect["score"] >= m["suspect_threshold"]
    codes = {sig["code"] for sig in suspect["signals"]}
    assert codes == {"early_bidding", "minimum_increments", "never_wins", "seller_concentration"}
    everyone = await get_monitor(http, s, threshold=0)
    paddles = {x["paddle_no"] for x in everyone["suspects"] if x["auction_id"] == s.live.id}
    assert paddles == set(s.live.paddles.values())
    r = await http.get("/api/v1/monitor", headers=s.bank.headers)
    assert r.status_code == 403  # identities behind paddles are for operators only (rule 14)


async def test_kpis_of_the_scenario(http: httpx.AsyncClient, engine: AsyncEngine, scenario: Scenario) -> None:
    s = scenario
    r = await http.get("/api/v1/kpis", params={"bank": s.bank.org_id}, headers=s.operator.headers)
    assert r.status_code == 200, r.text
    k = r.json()
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT c.id, "
                    "c.principal_fen + c.interest_fen + c.default_interest_fen + c.costs_fen AS opening "
                    "FROM claims c JOIN pledges p ON p.claim_id = c.id "
                    "JOIN listing_assets la ON la.asset_id = p.asset_id "
                    "JOIN disposals d ON d.listing_id = la.listing_id WHERE d.bank_org_id = :b"
                ),
                {"b": s.bank.org_id},
            )
        ).all()
        recovered = sum([sum((await ledger_store.claim_recovered(conn, r.id)).values()) for r in rows])
    opening = sum(r.opening for r in rows)
    assert len(rows) == 4
    assert k["recovery"]["overall"] == {
        "claims": 4,
        "opening_fen": opening,
        "recovered_fen": recovered,
        "rate": round(recovered / opening, 4),
    }
    assert [b["bank_org_id"] for b in k["recovery"]["by_bank"]] == [s.bank.org_id]
    assert k["time_to_disposal"]["disposals"] == 4 and 0 < k["time_to_disposal"]["mean_days"] < 1
    assert k["failed_rounds"] == [{"round_no": 1, "finished": 5, "failed": 1, "rate": 0.2}]
    prices = [START + INCREMENT] * 3 + [START]
    assert k["price_to_appraisal"] == {
        "disposals": 4,
        "mean": round(sum(prices) / 4 / APPRAISAL, 4),
        "median": round((START + INCREMENT) / APPRAISAL, 4),
        "weighted": round(sum(prices) / (4 * APPRAISAL), 4),
    }
    today = today_cst()
    same = await http.get(
        "/api/v1/kpis",
        params={
            "bank": s.bank.org_id,
            "kind": "invention_patent",
            "from": today.isoformat(),
            "to": today.isoformat(),
        },
        headers=s.operator.headers,
    )
    assert same.status_code == 200, same.text
    assert same.json()["recovery"] == k["recovery"] and same.json()["failed_rounds"] == k["failed_rounds"]
    other_kind = await http.get(
        "/api/v1/kpis", params={"bank": s.bank.org_id, "kind": "trademark"}, headers=s.operator.headers
    )
    assert (
        other_kind.json()["price_to_appraisal"]["disposals"] == 0 and other_kind.json()["failed_rounds"] == []
    )
    later = (today + timedelta(days=1)).isoformat()
    empty = await http.get(
        "/api/v1/kpis", params={"bank": s.bank.org_id, "from": later}, headers=s.operator.headers
    )
    assert (
        empty.json()["recovery"]["overall"]["claims"] == 0
        and empty.json()["recovery"]["overall"]["rate"] is None
    )
    backwards = await http.get(
        "/api/v1/kpis", params={"from": later, "to": today.isoformat()}, headers=s.operator.headers
    )
    assert backwards.status_code == 422
    for far in ({"from": "0001-01-01", "to": "0001-01-01"}, {"to": "9999-12-31"}):  # no datetime overflow
        out_of_range = await http.get("/api/v1/kpis", params=far, headers=s.operator.headers)
        assert out_of_range.status_code == 422, out_of_range.text


async def test_monitor_query_time_on_the_test_database(engine: AsyncEngine, scenario: Scenario) -> None:
    """Every figure for the whole database (no bank filter): printed, and bounded generously."""
    async with engine.connect() as conn:
        await monitor.snapshot(conn)  # warm
        started = time.perf_counter()
        for _ in range(5):
            await monitor.snapshot(conn)
        per_snapshot = (time.perf_counter() - started) / 5
        events = await conn.scalar(text("SELECT count(*) FROM auction_events"))
    print(
        f"\n[monitor] one full snapshot in {per_snapshot * 1000:.1f} ms "
        f"({events} auction events in the database)"
    )
    assert per_snapshot < 2.0


# --------------------------------------------------------------------------- interventions


async def test_interventions_publish_the_reason_and_are_audited(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    bank = await make_party(engine, client, Role.BANK)
    op = await make_party(engine, client, Role.OPERATOR)
    rnd = await open_round(client, engine, bank, await buyers(engine, client, "a"), seconds=600)
    url = f"/api/v1/auctions/{rnd.id}"
    r = await client.post(url + "/suspend", headers=op.headers, json={"reason": "核查竞买人资格"})
    assert r.status_code == 200 and r.json()["events"][0] == {
        **r.json()["events"][0],
        "type": "suspended",
        "reason": "核查竞买人资格",
    }
    m = (await client.get("/api/v1/monitor", params={"bank": bank.org_id}, headers=op.headers)).json()
    assert m["auctions"]["by_status"]["suspended"] == 1
    assert (
        await client.post(url + "/resume", headers=op.headers, json={"reason": "核查完毕"})
    ).status_code == 200
    assert (
        await client.post(url + "/cancel", headers=op.headers, json={"reason": "债务人已清偿"})
    ).status_code == 200
    events = (await client.get(url + "/events")).json()["events"]
    assert [(e["type"], e.get("reason")) for e in events] == [
        ("suspended", "核查竞买人资格"),
        ("resumed", None),
        ("cancelled", "债务人已清偿"),
    ]
    trail = (
        await client.get("/api/v1/audit", params={"entity": "auction", "id": str(rnd.id)}, headers=op.headers)
    ).json()
    mine = [
        (e["action"], e["after"].get("reason"), e["actor_user_id"])
        for e in trail["items"]
        if e["actor_user_id"] == op.user_id
    ]
    assert mine == [
        ("auction.cancel", "债务人已清偿", op.user_id),
        ("auction.resume", "核查完毕", op.user_id),
        ("auction.suspend", "核查竞买人资格", op.user_id),
    ]


async def test_bid_cancellation_needs_a_second_operator_and_rebuilds_the_state(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    bank = await make_party(engine, client, Role.BANK)
    first, second = (
        await make_party(engine, client, Role.OPERATOR),
        await make_party(engine, client, Role.OPERATOR),
    )
    rnd = await open_round(client, engine, bank, await buyers(engine, client, "a", "b", "c"), seconds=600)
    await wait_open(client, rnd.id)
    await bid(client, rnd, "a", START)
    await bid(client, rnd, "b", START + INCREMENT)
    leading = await bid(client, rnd, "c", START + 2 * INCREMENT)
    seq = leading["seq"]
    ask = await client.post(
        f"/api/v1/auctions/{rnd.id}/bids/{seq}/cancel", headers=first.headers, json={"reason": "疑似虚假竞价"}
    )
    assert ask.status_code == 201 and ask.json()["status"] == "pending", ask.text
    cid = ask.json()["id"]
    again = await client.post(
        f"/api/v1/auctions/{rnd.id}/bids/{seq}/cancel", headers=second.headers, json={"reason": "重复"}
    )
    assert again.status_code == 409 and again.json()["code"] == "bid_cancellation_pending"
    same = await client.post(f"/api/v1/bid-cancellations/{cid}/approve", headers=first.headers)
    assert same.status_code == 403 and same.json()["code"] == "second_operator_required"
    assert (
        await client.post(f"/api/v1/bid-cancellations/{cid}/reject", headers=first.headers)
    ).status_code == 403
    unchanged = (await client.get(f"/api/v1/auctions/{rnd.id}")).json()
    assert unchanged["leader_paddle"] == rnd.paddles["c"] and unchanged["seq"] == seq
    ok = await client.post(f"/api/v1/bid-cancellations/{cid}/approve", headers=second.headers)
    assert ok.status_code == 200, ok.text
    assert ok.json()["status"] == "approved" and ok.json()["approved_by"] == second.user_id
    (event,) = ok.json()["events"]
    assert (
        event["type"] == "bid_cancelled"
        and event["cancelled_seq"] == seq
        and event["reason"] == "疑似虚假竞价"
    )
    assert event["paddle_no"] == rnd.paddles["c"] and "bidder_id" not in event
    assert event["leader_paddle"] == rnd.paddles["b"] and event["price_fen"] == START + INCREMENT
    state = (await client.get(f"/api/v1/auctions/{rnd.id}")).json()
    assert state["leader_paddle"] == rnd.paddles["b"] and state["current_price_fen"] == START + INCREMENT
    assert (
        state["bid_count"] == 2
        and state["seq"] == seq + 1
        and state["minimum_next_bid_fen"] == START + 2 * INCREMENT
    )
    feed = (await client.get(f"/api/v1/auctions/{rnd.id}/events")).json()["events"]
    assert feed[-1]["type"] == "bid_cancelled" and feed[-1]["seq"] == seq + 1
    async with engine.connect() as conn:  # the stored state is exactly the replay of the stored events
        row = await store.find(conn, rnd.id)
        assert row is not None
        records = await store.all_records(conn, rnd.id)
    from auctions import events as ev

    replayed = rules.replay(store.terms_from_dict(row.terms), [ev.event_from_record(r) for r in records])
    assert replayed == rules.state_from_dict(row.state)
    assert (await client.post(f"/api/v1/bid-cancellations/{cid}/approve", headers=second.headers)).json()[
        "code"
    ] == "bid_cancellation_decided"
    gone = await client.post(
        f"/api/v1/auctions/{rnd.id}/bids/{seq}/cancel", headers=first.headers, json={"reason": "再次"}
    )
    assert gone.status_code == 409 and gone.json()["code"] == "bid_already_cancelled"
    nothing = await client.post(
        f"/api/v1/auctions/{rnd.id}/bids/{seq + 1}/cancel", headers=first.headers, json={"reason": "x"}
    )
    assert nothing.status_code == 409 and nothing.json()["code"] == "not_a_bid"
    rejected = await client.post(
        f"/api/v1/auctions/{rnd.id}/bids/2/cancel", headers=second.headers, json={"reason": "误报"}
    )
    no = await client.post(f"/api/v1/bid-cancellations/{rejected.json()['id']}/reject", headers=first.headers)
    assert no.status_code == 200 and no.json()["status"] == "rejected" and no.json()["events"] == []
    assert (await client.get(f"/api/v1/auctions/{rnd.id}")).json()["seq"] == seq + 1
    again_c = await bid(client, rnd, "c", START + 2 * INCREMENT)  # bidding goes on from the rebuilt price
    assert again_c["leading"] is True
    listed = await client.get(
        "/api/v1/bid-cancellations", params={"auction_id": rnd.id}, headers=first.headers
    )
    assert [(c["seq"], c["status"]) for c in listed.json()["items"]] == [(2, "rejected"), (seq, "approved")]
    trail = (
        await client.get(
            "/api/v1/audit", params={"entity": "auction", "id": str(rnd.id)}, headers=first.headers
        )
    ).json()
    actions = [(e["action"], e["actor_user_id"]) for e in trail["items"] if "bid_cancellation" in e["action"]]
    assert actions == [
        ("auction.bid_cancellation_rejected", first.user_id),
        ("auction.bid_cancellation_requested", second.user_id),
        ("auction.bid_cancellation_approved", second.user_id),
        ("auction.bid_cancellation_requested", first.user_id),
    ]
    with pytest.raises(IntegrityError, match="second_operator"):
        async with transaction(engine) as conn:
            await conn.execute(
                text(
                    "INSERT INTO bid_cancellations "
                    "(auction_id, seq, reason, requested_by, approved_by, approved_at, status) "
                    "VALUES (:a, 1, 'x', :u, :u, now(), 'approved')"
                ),
                {"a": rnd.id, "u": first.user_id},
            )


async def test_the_consigning_bank_and_its_related_parties_cannot_register(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """Rule 25 through the API: the bank's own user (403), and a buyer listed as a related party (403)."""
    bank = await make_party(engine, client, Role.BANK)
    related, stranger = (
        await make_party(engine, client, Role.BUYER),
        await make_party(engine, client, Role.BUYER),
    )
    async with transaction(engine) as conn:
        await conn.execute(
            text("UPDATE orgs SET related_org_ids = CAST(:ids AS jsonb) WHERE id = :b"),
            {"ids": f"[{related.org_id}]", "b": bank.org_id},
        )
    rnd = await open_round(client, engine, bank, {}, seconds=600)
    url = f"/api/v1/auctions/{rnd.id}/registrations"
    own = await client.post(url, headers=bank.headers)
    assert own.status_code == 403 and own.json()["code"] == "forbidden"
    party = await client.post(url, headers=related.headers)
    assert party.status_code == 403 and party.json()["code"] == "consignor_may_not_bid"
    assert (await client.post(url, headers=stranger.headers)).status_code == 201


# --------------------------------------------------------------------------- pages


async def test_operator_pages(
    app: Any, client: httpx.AsyncClient, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    bank = await make_party(engine, client, Role.BANK)
    first, second = (
        await make_party(engine, client, Role.OPERATOR),
        await make_party(engine, client, Role.OPERATOR),
    )
    rnd = await open_round(client, engine, bank, await buyers(engine, client, "a", "b"), seconds=600)
    await wait_open(client, rnd.id)
    await bid(client, rnd, "a", START)
    second_bid = await bid(client, rnd, "b", START + INCREMENT)
    one, two = await signed_in_client(app, first), await signed_in_client(app, second)
    banker = await signed_in_client(app, bank)
    try:
        page = await one.get("/ops/monitor")
        assert (
            page.status_code == 200 and 'id="monitor-data"' in page.text and "/static/monitor.js" in page.text
        )
        assert f'href="/ops/auctions/{rnd.id}"' in page.text
        assert (await banker.get("/ops/monitor")).status_code == 403
        anonymous = await client.get("/ops/monitor")
        assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")

        room = await one.get(f"/ops/auctions/{rnd.id}")
        assert room.status_code == 200 and rnd.paddles["a"] in room.text and "买方 a" in room.text
        token = csrf_of(room.text)
        blank = await one.post(f"/ops/auctions/{rnd.id}/suspend", data={"csrf_token": token, "reason": "  "})
        assert blank.status_code == 422 and 'data-code="reason_required"' in blank.text
        done = await one.post(
            f"/ops/auctions/{rnd.id}/suspend", data={"csrf_token": token, "reason": "系统维护"}
        )
        assert done.status_code == 303
        assert (await client.get(f"/api/v1/auctions/{rnd.id}")).json()["status"] == "suspended"
        assert (
            await one.post(f"/ops/auctions/{rnd.id}/resume", data={"csrf_token": token, "reason": "维护完成"})
        ).status_code == 303
        asked = await one.post(
            f"/ops/auctions/{rnd.id}/bids/{second_bid['seq']}/cancel",
            data={"csrf_token": token, "reason": "关联竞买"},
        )
        assert asked.status_code == 303
        page = await one.get(f"/ops/auctions/{rnd.id}")
        cid = int(re.findall(r'<tr data-id="(\d+)" data-status="pending"', page.text)[0])
        assert f'id="needs-second-{cid}"' in page.text and f'id="approve-{cid}"' not in page.text
        refused = await one.post(f"/ops/bid-cancellations/{cid}/approve", data={"csrf_token": token})
        assert refused.status_code == 403
        other = await two.get(f"/ops/auctions/{rnd.id}")
        assert f'id="approve-{cid}"' in other.text
        approved = await two.post(
            f"/ops/bid-cancellations/{cid}/approve", data={"csrf_token": csrf_of(other.text)}
        )
        assert approved.status_code == 303 and approved.headers["location"] == f"/ops/auctions/{rnd.id}"
        state = (await client.get(f"/api/v1/auctions/{rnd.id}")).json()
        assert state["leader_paddle"] == rnd.paddles["a"] and state["current_price_fen"] == START

        trail = await one.get("/ops/audit", params={"entity": "auction", "id": str(rnd.id)})
        assert trail.status_code == 200
        actions = re.findall(r'data-action="([^"]+)"', trail.text)
        assert actions[:5] == [
            "auction.bid_cancellation_approved",
            "auction.bid_cancellation_requested",
            "auction.resume",
            "auction.suspend",
            "auction.register",
        ]
        by_actor = await one.get("/ops/audit", params={"actor": str(second.user_id)})
        mine = re.findall(r'data-action="([^"]+)"', by_actor.text)
        assert mine[0] == "auction.bid_cancellation_approved" and all(
            a == mine[0] or a.startswith("session.") for a in mine
        )
        verified = await one.get("/ops/audit", params={"verify": "1"})
        assert 'id="verify-result" data-ok="1"' in verified.text

        async def broken(conn: Any) -> audit.ChainReport:  # the database refuses to break the real chain
            return audit.ChainReport(False, 10, 7, "hash does not match the entry's content")

        monkeypatch.setattr(audit, "verify", broken)
        shown = await one.get("/ops/audit", params={"verify": "1"})
        assert 'data-ok="0" data-seq="7"' in shown.text and "/ops/audit?before=8" in shown.text
        monkeypatch.undo()
        paged = await one.get("/ops/audit")
        seqs = [int(x) for x in re.findall(r'<tr data-seq="(\d+)"', paged.text)]
        assert seqs == sorted(seqs, reverse=True) and 0 < len(seqs) <= 50  # newest first, one page
        older = re.search(r'href="([^"]+)" id="audit-older"', paged.text)
        assert (older is not None) == (seqs[-1] > 1)
        if older is not None:
            following = await one.get(older.group(1).replace("&amp;", "&"))
            assert int(re.findall(r'<tr data-seq="(\d+)"', following.text)[0]) == seqs[-1] - 1

        kpis = await one.get("/ops/kpis", params={"bank": str(bank.org_id), "kind": "invention_patent"})
        assert kpis.status_code == 200 and 'id="kpi-recovery-rate"' in kpis.text
        bad = await one.get("/ops/kpis", params={"from": "yesterday"})
        assert bad.status_code == 422 and 'id="filter-errors"' in bad.text
        one.cookies.set("lang", "en")
        english = await one.get("/ops/monitor")
        assert "Live monitor" in english.text
    finally:
        for c in (one, two, banker):
            await c.aclose()


def test_the_kpi_kind_filter_names_every_asset_kind() -> None:
    from typing import get_args

    from listings.model import AssetKind
    from web.api_operators import KindName

    assert set(get_args(KindName)) == {k.value for k in AssetKind}


@pytest.mark.parametrize("digit", ["²", "١٢", "１"])  # str.isdigit() is true for each; int() fails on "²"
async def test_pages_ignore_numeric_parameters_that_are_not_ascii_digits(
    app: Any, client: httpx.AsyncClient, engine: AsyncEngine, digit: str
) -> None:
    op = await signed_in_client(app, await make_party(engine, client, Role.OPERATOR))
    bank = await signed_in_client(app, await make_party(engine, client, Role.BANK))
    try:
        for c, path, params in [
            (op, "/ops/audit", {"actor": digit, "before": digit}),
            (op, "/ops/reports", {"bank": digit}),
            (bank, "/bank/claims/new", {"rows": digit}),
        ]:
            r = await c.get(path, params=params)
            assert r.status_code == 200, (path, r.status_code)
    finally:
        await op.aclose()
        await bank.aclose()
