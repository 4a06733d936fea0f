"""4. Exactly-once close: 500 auctions ending in the same second, closers in two instances — each
closed once, one disposal each; the close lag (closing transaction's time − ``ends_at``) p99 reported.

Every auction gets one bid, so each close is a sale: a disposal, the winner's deposit applied and
the other holds voided in the ledger, an audit entry — the heaviest close there is.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from market.parties import Role
from tests.e2e.conftest import Server
from tests.reliability import helpers as h
from tests.support.collateral import claim, patent

pytestmark = pytest.mark.reliability
AUCTIONS, BUYERS, CONCURRENCY = 500, 10, 24


async def test_five_hundred_auctions_close_exactly_once(
    pair: list[Server], clients: list[httpx.AsyncClient], engine: AsyncEngine
) -> None:
    bank = await h.who(engine, Role.BANK)
    buyers = await h.many(engine, Role.BUYER, BUYERS)
    gate = asyncio.Semaphore(CONCURRENCY)
    listings: list[int] = [0] * AUCTIONS
    made: list[dict[str, Any]] = []
    started = time.monotonic()

    async def listing(i: int) -> None:  # phase 1, untimed: collateral and a published listing
        c = clients[i % 2]
        async with gate:
            a = await c.post("/api/v1/assets", headers=bank.headers, json=patent())
            assert a.status_code == 201, a.text
            cl = await c.post("/api/v1/claims", headers=bank.headers, json=claim([a.json()["id"]]))
            assert cl.status_code == 201, cl.text
            body = {"title": f"批量 {i}", "mode": "transfer", "asset_ids": [a.json()["id"]]}
            created = await c.post("/api/v1/listings", headers=bank.headers, json=body)
            assert created.status_code == 201, created.text
            lid = created.json()["id"]
            pub = await c.post(f"/api/v1/listings/{lid}/publish", headers=bank.headers)
            assert pub.status_code == 200, pub.text
            listings[i] = lid

    await asyncio.gather(*(listing(i) for i in range(AUCTIONS)))
    phase1 = time.monotonic() - started
    # phase 2 (auction, registration, bid: 3 of the 7 requests) must end 2 s before the common end
    # (a later bid would extend it): give it the measured pace of phase 1, twice over, plus 7 s
    # (2 s of them: the opening lead)
    end_second = (datetime.now(UTC) + timedelta(seconds=phase1 * 3 / 4 * 2 + 7)).replace(microsecond=0)

    async def one(i: int) -> None:
        c, buyer = clients[i % 2], buyers[i % BUYERS]
        async with gate:
            # a POST may wait behind the other setups before its "opens in the past" check
            opens = datetime.now(UTC) + timedelta(seconds=2)
            ends = end_second + timedelta(microseconds=(i * 1999) % 1_000_000)
            terms = {
                "listing_id": listings[i],
                "start_price_fen": h.START,
                "increment_fen": h.INCREMENT,
                "deposit_fen": h.DEPOSIT,
                "starts_at": opens.isoformat(),
                "ends_at": ends.isoformat(),
                "extension_seconds": 2,
            }
            r = await c.post("/api/v1/auctions", headers=bank.headers, json=terms)
            assert r.status_code == 201, r.text
            aid = r.json()["id"]
            reg = await c.post(f"/api/v1/auctions/{aid}/registrations", headers=buyer.headers)
            assert reg.status_code == 201, reg.text
        await asyncio.sleep(max(0.0, (opens - datetime.now(UTC)).total_seconds()))  # not holding the gate
        async with gate:
            bid = await c.post(
                f"/api/v1/auctions/{aid}/bids", headers=buyer.headers, json={"amount_fen": h.START}
            )
            assert bid.status_code == 201, bid.text
            made.append({"id": aid, "ends_at": ends, "bid_ends": bid.json()["ends_at"]})

    await asyncio.gather(*(one(i) for i in range(AUCTIONS)))
    setup = time.monotonic() - started
    left = (end_second - datetime.now(UTC)).total_seconds()
    assert left > 0, f"setting up {AUCTIONS} auctions took {setup:.0f}s, past their common end"
    moved = [m for m in made if datetime.fromisoformat(m["bid_ends"]) != m["ends_at"]]
    assert moved == [], "a bid landed inside the extension window and moved an end"
    ids = [m["id"] for m in made]

    async def all_closed() -> bool:
        n = await h.scalar(
            engine, "SELECT count(*) FROM auctions WHERE id = ANY(:ids) AND status = 'closed'", ids=ids
        )
        return bool(n == AUCTIONS)

    await asyncio.sleep(max(0.0, left))
    t_end = time.monotonic()
    assert await h.wait_until(all_closed, 120, interval=0.25), "not every auction closed in 2 minutes"
    drained = time.monotonic() - t_end
    rows = await h.rows(
        engine,
        "SELECT a.id, a.terms->>'ends_at' AS ends_at, "
        "(SELECT count(*) FROM auction_events e "
        " WHERE e.auction_id = a.id AND e.type IN ('closed','failed')) AS ends, "
        "(SELECT min(e.at) FROM auction_events e "
        " WHERE e.auction_id = a.id AND e.type = 'closed') AS closed_at, "
        "(SELECT count(*) FROM disposals d "
        " WHERE d.source = 'auction' AND d.source_ref = a.id::text) AS disposals, "
        "(SELECT count(*) FROM ledger_entries l WHERE l.key = 'close:a' || a.id) AS close_entries, "
        "(SELECT count(*) FROM audit_log x WHERE x.entity = 'auction' AND x.entity_id = a.id::text "
        " AND x.action = 'auction.close') AS audits "
        "FROM auctions a WHERE a.id = ANY(:ids)",
        ids=ids,
    )
    not_once = [r.id for r in rows if (r.ends, r.disposals, r.close_entries, r.audits) != (1, 1, 1, 1)]
    ends = {datetime.fromisoformat(r.ends_at).replace(microsecond=0) for r in rows}
    lags = [(r.closed_at - datetime.fromisoformat(r.ends_at)).total_seconds() for r in rows]
    print(
        f"\n[close] {AUCTIONS} auctions (set up in {setup:.0f}s, listings {phase1:.0f}s) ending within "
        "the second "
        f"{end_second:%H:%M:%S}Z, "
        f"closers in 2 instances (4 workers each, grace 0.3s): closed in {drained:.1f}s after the end; "
        f"closed not exactly once (or not one disposal / ledger entry / audit entry): {len(not_once)}; "
        f"close lag p50 {h.percentile(lags, 50):.2f}s p99 {h.percentile(lags, 99):.2f}s max {max(lags):.2f}s"
    )
    assert len(rows) == AUCTIONS and ends == {end_second}
    assert not_once == [], not_once[:10]
