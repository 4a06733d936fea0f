"""6. Replay determinism: every auction — the storm's and every other one in the database — rebuilt
with ``auctions.rules.replay`` from its stored event records equals its live state row."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from auctions import events as ev, rules, store
from tests.reliability.conftest import Storm

pytestmark = pytest.mark.reliability


async def test_every_auction_replays_to_its_live_state(storm: Storm, engine: AsyncEngine) -> None:
    started = time.monotonic()
    async with engine.connect() as conn:
        # one snapshot: the states and the events are read as of the same moment
        await conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        auctions = (await conn.execute(text("SELECT id, terms, state, seq, status FROM auctions"))).all()
        records: dict[int, list[dict[str, object]]] = {}
        for r in (
            await conn.execute(text("SELECT auction_id, record FROM auction_events ORDER BY auction_id, seq"))
        ).all():
            records.setdefault(r.auction_id, []).append(r.record)
    mismatched, events = [], 0
    for row in auctions:
        terms = store.terms_from_dict(row.terms)
        stored = [ev.event_from_record(rec) for rec in records.get(row.id, [])]
        events += len(stored)
        rebuilt = rules.replay(terms, stored)
        live = rules.state_from_dict(row.state)
        if rebuilt != live or rebuilt.seq != row.seq or rebuilt.status != row.status:
            mismatched.append(row.id)
    storm_events = len(records.get(storm.auction.id, []))
    print(
        f"\n[replay] {len(auctions)} auctions ({events} events; the storm's {storm_events}) rebuilt from "
        f"their records in {time.monotonic() - started:.1f}s: {len(mismatched)} differ from the live state"
    )
    assert storm_events >= len(storm.acks)
    assert mismatched == [], f"replay differs for auctions {mismatched[:10]}"
