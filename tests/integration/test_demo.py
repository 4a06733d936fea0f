"""The demo of ``market serve --demo``: an idempotent seed through the services, and the bidder loop."""

from __future__ import annotations

import asyncio
import random

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from auctions import demo
from auctions.tables import auction_events, auctions
from listings.tables import assets, buyer_interests, claims, listings, pledges
from market import audit
from market.config import Settings
from market.tables import audit_log, orgs, users

ALL_KINDS = {
    "invention_patent",
    "utility_model",
    "design_patent",
    "trademark",
    "copyright",
    "software_copyright",
    "ic_layout",
    "geographical_indication",
}


@pytest.fixture(scope="module")
def demo_settings(settings: Settings) -> Settings:
    """The shared test settings with the demo's timing (what `market serve --demo` sets)."""
    return settings.model_copy(update={**demo.TIMING, "demo": True})


async def _footprint(engine: AsyncEngine, banks: list[int]) -> dict[str, int]:
    emails = [demo.OPERATOR_EMAIL, *(s.email for s in demo.BANKS + demo.BUYERS)]
    counts = {
        "users": select(func.count()).select_from(users).where(users.c.email.in_(emails)),
        "orgs": select(func.count()).select_from(orgs).where(orgs.c.id.in_(banks)),
        "assets": select(func.count()).select_from(assets).where(assets.c.bank_org_id.in_(banks)),
        "claims": select(func.count()).select_from(claims).where(claims.c.bank_org_id.in_(banks)),
        "listings": select(func.count()).select_from(listings).where(listings.c.bank_org_id.in_(banks)),
        "audit": select(func.count()).select_from(audit_log),
    }
    async with engine.connect() as conn:
        return {name: int((await conn.execute(q)).scalar_one()) for name, q in counts.items()}


async def test_seed_builds_a_realistic_market_once(engine: AsyncEngine, demo_settings: Settings) -> None:
    info = await demo.seed(engine, demo_settings)
    parties = info.parties
    banks = parties.bank_org_ids
    assert len(banks) == 3 and len(parties.buyers) == 8
    assert all(b.org_verified for b in parties.buyers.values())
    async with engine.connect() as conn:
        rows = (await conn.execute(select(assets).where(assets.c.bank_org_id.in_(banks)))).all()
        assert len(rows) >= 20
        assert {r.kind for r in rows} == ALL_KINDS
        assert all(r.title_zh and r.title_en and r.appraisal_fen > 0 for r in rows)
        groups = [r.similar_mark_group for r in rows if r.kind == "trademark" and r.similar_mark_group]
        assert max(groups.count(g) for g in groups) >= 2
        modes = (await conn.execute(select(listings).where(listings.c.bank_org_id.in_(banks)))).all()
        assert {m.mode for m in modes} == {"license", "transfer", "bundle", "entrusted_acquisition"}
        assert all(m.status != "draft" for m in modes)
        assert all(m.license_terms for m in modes if m.mode == "license")
        assert all(m.backstop for m in modes if m.mode == "entrusted_acquisition")
        shared = (
            await conn.execute(
                select(pledges.c.asset_id)
                .join(claims, claims.c.id == pledges.c.claim_id)
                .where(claims.c.bank_org_id.in_(banks))
                .group_by(pledges.c.asset_id)
                .having(func.count() >= 2)
            )
        ).all()
        assert len(shared) >= 2  # assets pledged to two claims, ranked by registration date
        buyer_orgs = [b.org_id for b in parties.buyers.values()]
        interests = select(func.count()).where(buyer_interests.c.org_id.in_(buyer_orgs))
        assert (await conn.execute(interests)).scalar_one() == 8
        publishes = select(func.count()).where(
            audit_log.c.action == "listing.publish", audit_log.c.actor_org_id.in_(banks)
        )
        assert (await conn.execute(publishes)).scalar_one() >= len(demo.LISTINGS)
        assert (await audit.verify(conn)).ok

    before = await _footprint(engine, banks)
    again = await demo.seed(engine, demo_settings)
    assert not again.created and again.parties == parties
    assert await _footprint(engine, banks) == before


async def test_bidders_keep_three_auctions_moving(engine: AsyncEngine, demo_settings: Settings) -> None:
    parties = (await demo.seed(engine, demo_settings)).parties
    async with engine.connect() as conn:
        started = (await conn.execute(select(func.now()))).scalar_one()
    stop = asyncio.Event()
    loop = asyncio.create_task(
        demo.run_bidders(
            engine, demo_settings, stop, pace=(0.2, 0.6), retry_seconds=0.5, rng=random.Random(7)
        )
    )
    await asyncio.sleep(8)
    stop.set()
    await asyncio.wait_for(loop, 15)

    async with engine.connect() as conn:
        mine = select(auctions).where(auctions.c.bank_org_id.in_(parties.bank_org_ids))
        rows = (await conn.execute(mine)).all()
        running = [r for r in rows if r.status in ("scheduled", "live") and r.ends_at > started]
        assert len(running) >= demo.LIVE_TARGET
        bids = select(func.count()).where(
            auction_events.c.auction_id.in_([r.id for r in rows]),
            auction_events.c.type == "bid",
            auction_events.c.at >= started,
        )
        assert (await conn.execute(bids)).scalar_one() >= 3
        assert any(r.status == "live" for r in running)
        for r in rows:
            seqs = select(auction_events.c.seq).where(auction_events.c.auction_id == r.id)
            found = sorted((await conn.execute(seqs)).scalars())
            assert found == list(range(1, r.seq + 1)), f"auction {r.id} has a gap: {found}"
        assert (await audit.verify(conn)).ok


async def _holders(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as conn:
        return await demo.lock_holders(conn)


async def _wait_for_holder(engine: AsyncEngine, *, other_than: int | None = None) -> int:
    for _ in range(100):
        held = await _holders(engine)
        if held and held[0] != other_than:
            return held[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no new holder of the bidder lock (held: {await _holders(engine)})")


async def test_only_one_bidder_loop_drives_and_another_takes_over(
    engine: AsyncEngine, demo_settings: Settings
) -> None:
    await demo.seed(engine, demo_settings)
    stops = asyncio.Event(), asyncio.Event()

    def start(stop: asyncio.Event) -> asyncio.Task[None]:
        return asyncio.create_task(
            demo.run_bidders(engine, demo_settings, stop, pace=(0.5, 1.0), retry_seconds=0.3)
        )

    first = start(stops[0])
    holder = await _wait_for_holder(engine)
    second = start(stops[1])
    await asyncio.sleep(1.5)
    assert await _holders(engine) == [holder]  # the second loop waits its turn

    stops[0].set()
    await asyncio.wait_for(first, 15)
    successor = await _wait_for_holder(engine, other_than=holder)
    assert await _holders(engine) == [successor]

    stops[1].set()
    await asyncio.wait_for(second, 15)
    assert await _holders(engine) == []
