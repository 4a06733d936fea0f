"""1. Bid storm: 1,000 concurrent bids from 50 bidders on one auction, through two instances over
HTTP and websockets — 0 acknowledged bids lost, 0 duplicate accepted prices, accepted prices
strictly increasing with ``seq``, final price = highest valid bid; every watcher saw it all."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.reliability import helpers as h
from tests.reliability.conftest import Storm

pytestmark = pytest.mark.reliability


async def test_bid_storm(storm: Storm, clients: list[httpx.AsyncClient], engine: AsyncEngine) -> None:
    a = storm.auction
    rows = await h.rows(
        engine,
        "SELECT seq, type, amount_fen, bidder_org_id FROM auction_events WHERE auction_id = :a ORDER BY seq",
        a=a.id,
    )
    bids = [r for r in rows if r.type == "bid"]
    by_seq = {r.seq: r.amount_fen for r in bids}
    lost = [x for x in storm.acks if by_seq.get(x["seq"]) != x["amount_fen"]]
    amounts = [r.amount_fen for r in bids]
    duplicates = len(amounts) - len(set(amounts))
    codes = Counter(r.get("code") for r in storm.refusals)
    state = (await clients[0].get(f"/api/v1/auctions/{a.id}")).json()
    other = (await clients[1].get(f"/api/v1/auctions/{a.id}")).json()
    too_low = [r["amount_fen"] for r in storm.refusals if r.get("code") == "bid_too_low"]
    via = Counter(x["via"] for x in storm.acks)
    print(
        f"\n[storm] {storm.sent} bids from {len(a.buyers)} bidders over 2 instances in {storm.elapsed:.1f}s "
        f"({storm.sent / storm.elapsed:.0f}/s): {len(storm.acks)} accepted "
        f"(http {via['http']}, ws {via['ws']}), {len(storm.refusals)} refused {dict(codes)}; "
        f"acknowledged-but-lost {len(lost)}, duplicate accepted prices {duplicates}, "
        f"final price {state['current_price_fen']} fen at seq {state['seq']}"
    )
    assert storm.sent == 1000, "the storm was cut short by its time bound"
    assert len(storm.acks) + len(storm.refusals) == storm.sent, "every bid got an answer"
    assert set(codes) <= {"bid_too_low", "already_leading"}, codes
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1)), "no gap, no duplicate seq"
    assert lost == [], f"acknowledged but missing: {lost[:5]}"
    assert duplicates == 0
    assert amounts == sorted(amounts) and len(set(amounts)) == len(amounts), "prices strictly increase"
    assert len(bids) == len(storm.acks), "every accepted bid was acknowledged, no bid appeared unasked"
    assert state["current_price_fen"] == max(x["amount_fen"] for x in storm.acks) == amounts[-1]
    assert other["current_price_fen"] == state["current_price_fen"] and other["seq"] == state["seq"]
    assert max(too_low, default=0) <= state["current_price_fen"], "a valid higher bid was refused"
    last = rows[-1].seq
    await asyncio.gather(*(w.wait_for_seq(last, timeout=30) for w in storm.watchers))
    sequences = {tuple(e["seq"] for e in w.events) for w in storm.watchers}
    assert sequences == {tuple(range(1, last + 1))}, "every watcher saw every event once, in order"
