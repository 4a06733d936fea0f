"""The per-process websocket bid queue: arrival order kept, each answer to its own bid, a queueful
decided together, nothing left behind (the database side is in the e2e and reliability suites)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from auctions import bidqueue, rules
from auctions.services import QueuedBid
from market.errors import MarketError
from market.parties import Actor, Role


def bid(amount: int, request: str = "") -> QueuedBid:
    actor = Actor(user_id=1, org_id=amount, role=Role.BUYER, email="b@example.com")
    return QueuedBid(actor, amount, None, ("wsbid:1", request or f"r{amount}", "h"))


class Recorder:
    """Accepts even amounts and refuses odd ones, after a pause that lets more bids queue up."""

    def __init__(self, fail_first: bool = False) -> None:
        self.calls: list[list[int]] = []
        self.fail_first = fail_first

    async def __call__(self, auction_id: int, bids: Sequence[QueuedBid]) -> list[bidqueue.Answer]:
        self.calls.append([b.amount_fen for b in bids])
        await asyncio.sleep(0.01)
        if self.fail_first and len(self.calls) == 1:
            raise ConnectionError("database went away")
        return [
            {"amount_fen": b.amount_fen}
            if b.amount_fen % 2 == 0
            else rules.BidTooLow("too low", minimum_fen=b.amount_fen + 1)
            for b in bids
        ]


async def test_a_lone_bid_is_decided_at_once_and_the_queue_goes_away() -> None:
    decide = Recorder()
    queues = bidqueue.BidQueues(decide)
    assert await queues.submit(7, bid(2)) == {"amount_fen": 2}
    assert decide.calls == [[2]]
    await asyncio.sleep(0)
    assert len(queues) == 0


async def test_bids_arriving_meanwhile_are_decided_together_in_order_each_answered() -> None:
    decide = Recorder()
    queues = bidqueue.BidQueues(decide)
    first = asyncio.create_task(queues.submit(7, bid(2)))
    await asyncio.sleep(0.001)  # the first queueful is being decided
    rest = [asyncio.create_task(queues.submit(7, bid(n))) for n in (4, 5, 6)]
    results = await asyncio.gather(first, *rest, return_exceptions=True)
    assert decide.calls == [[2], [4, 5, 6]]
    assert (
        results[0] == {"amount_fen": 2}
        and results[1] == {"amount_fen": 4}
        and results[3] == {"amount_fen": 6}
    )
    assert isinstance(results[2], MarketError) and results[2].code == "bid_too_low"


async def test_auctions_have_their_own_queues() -> None:
    decide = Recorder()
    queues = bidqueue.BidQueues(decide)
    await asyncio.gather(queues.submit(1, bid(2)), queues.submit(2, bid(4)))
    assert sorted(decide.calls) == [[2], [4]]


async def test_a_queueful_that_fails_fails_its_own_bids_only() -> None:
    decide = Recorder(fail_first=True)
    queues = bidqueue.BidQueues(decide)
    first = asyncio.create_task(queues.submit(7, bid(2)))
    await asyncio.sleep(0.001)
    later = asyncio.create_task(queues.submit(7, bid(4)))
    with pytest.raises(ConnectionError):
        await first
    assert await later == {"amount_fen": 4}


async def test_a_queueful_is_at_most_max_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bidqueue, "MAX_BATCH", 3)
    decide = Recorder()
    queues = bidqueue.BidQueues(decide)
    first = asyncio.create_task(queues.submit(7, bid(2)))
    await asyncio.sleep(0.001)
    await asyncio.gather(first, *(queues.submit(7, bid(2 * n)) for n in range(2, 9)))
    assert decide.calls == [[2], [4, 6, 8], [10, 12, 14], [16]]


async def test_a_bid_whose_socket_went_away_is_not_decided() -> None:
    decide = Recorder()
    queues = bidqueue.BidQueues(decide)
    first = asyncio.create_task(queues.submit(7, bid(2)))
    await asyncio.sleep(0.001)
    gone = asyncio.create_task(queues.submit(7, bid(4)))
    kept = asyncio.create_task(queues.submit(7, bid(6)))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.gather(first, kept)
    assert decide.calls == [[2], [6]]
