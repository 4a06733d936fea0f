"""This process's queue of websocket bids, one per auction, decided a queueful at a time.

On a hot auction many bids arrive while one is being decided. Deciding them one by one means a
database read per bid, and, across processes, a write that fails the ``seq`` guard for most of
them; a queue of them is decided in two round trips (``services.decide_bids``): one read, every
bid judged by the rules in arrival order against the state the previous ones left, one guarded
write. The queue is what makes it cheap, not what makes it correct: the database's ``seq`` guard
decides across processes and machines, and a queue whose write is refused is decided again.

A bid that finds no queue for its auction starts one and is decided at once; the queue lives
while bids keep arriving and is gone when it runs dry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from auctions.services import QueuedBid
from market.errors import MarketError

MAX_BATCH = 64  # bids decided together at most

Answer = dict[str, Any] | MarketError
Decide = Callable[[int, Sequence[QueuedBid]], Awaitable[list[Answer]]]


class BidQueues:
    """The queues of one process; ``decide`` runs one queueful (its own database round trips)."""

    def __init__(self, decide: Decide) -> None:
        self._decide = decide
        self._queues: dict[int, list[tuple[QueuedBid, asyncio.Future[Answer]]]] = {}
        self._drains: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._queues)

    async def submit(self, auction_id: int, bid: QueuedBid) -> dict[str, Any]:
        """The bid's ack (the stored answer of its request).

        Raises:
            MarketError: the bid's refusal, or the auction's (not found, busy).
        """
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        queue = self._queues.get(auction_id)
        if queue is None:
            queue = self._queues[auction_id] = []
            drain = asyncio.create_task(self._drain(auction_id, queue))
            self._drains.add(drain)
            drain.add_done_callback(self._drains.discard)
        queue.append((bid, future))
        answer = await future
        if isinstance(answer, MarketError):
            raise answer
        return answer

    async def _drain(self, auction_id: int, queue: list[tuple[QueuedBid, asyncio.Future[Answer]]]) -> None:
        try:
            await asyncio.sleep(0)  # let bids already read off other sockets join this first queueful
            while queue:
                batch = [item for item in queue[:MAX_BATCH] if not item[1].done()]
                del queue[:MAX_BATCH]
                if not batch:
                    continue
                try:
                    answers = await self._decide(auction_id, [bid for bid, _ in batch])
                except asyncio.CancelledError:
                    for _, future in batch:
                        future.cancel()
                    raise
                except Exception as exc:  # the whole queueful failed (database down, auction busy …)
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                answered = list(zip(batch, answers, strict=True))
                # acks first: a bidder whose bid was taken hears it before the others hear theirs
                # was not (each waiting socket sends in the order its answer is set)
                answered.sort(key=lambda pair: isinstance(pair[1], MarketError))
                for (_, future), answer in answered:
                    if not future.done():  # its socket may have gone meanwhile
                        future.set_result(answer)
        finally:
            if self._queues.get(auction_id) is queue:
                del self._queues[auction_id]
            for _, future in queue:  # only if the drain itself was cancelled
                if not future.done():
                    future.cancel()
