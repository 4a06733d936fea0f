"""The per-process bid gate: one queue per auction, gone when no bid holds or awaits it."""

from __future__ import annotations

import asyncio
import gc

from auctions import services


async def test_bids_on_one_auction_pass_the_gate_one_at_a_time() -> None:
    inside, most = 0, 0

    async def bid() -> None:
        nonlocal inside, most
        async with services.bid_gate(7):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.001)
            inside -= 1

    await asyncio.gather(*(bid() for _ in range(20)))
    assert most == 1


async def test_different_auctions_do_not_wait_for_each_other() -> None:
    async with services.bid_gate(1):
        other = services.bid_gate(2)
        assert not other.locked()
        async with other:
            pass


def test_a_gate_is_forgotten_once_nothing_holds_it() -> None:
    gate = services.bid_gate(99)
    assert services.bid_gate(99) is gate
    del gate
    gc.collect()
    assert 99 not in services._gates
