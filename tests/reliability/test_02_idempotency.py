"""2. Idempotency: the same bid and the same receipt, each sent 5 times at once, x200 — exactly
one effect each, identical answers.

Bids: 100 trials over HTTP (5 copies with one ``Idempotency-Key``, spread over both instances)
and 100 over websockets (5 copies with one ``request_id`` on 5 sockets of the same buyer, on
both instances). Receipts: 200 licence receipts of one disposal, each sent 5 times at once with
one ``Idempotency-Key`` over both instances; then each is sent once more without the key (the
bank reference alone is the idempotency key): a duplicate, the same postings, nothing posted.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import date
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from market.parties import Role
from tests.e2e.conftest import Server
from tests.reliability import helpers as h
from tests.reliability.conftest import WsBidder

pytestmark = pytest.mark.reliability
TRIALS, COPIES = 200, 5
WS_SPACING = 0.15  # seconds between two bids on one socket


async def test_same_bid_five_times_at_once(
    pair: list[Server], clients: list[httpx.AsyncClient], engine: AsyncEngine
) -> None:
    bank = await h.who(engine, Role.BANK)
    buyers = await h.many(engine, Role.BUYER, 4)
    a = await h.auction(clients[0], bank, buyers, seconds=900)
    sockets: dict[int, list[WsBidder]] = {}
    for b in buyers:  # each socket read all along (its reader matches answers by request_id)
        sockets[b.org_id] = [await WsBidder(pair[j % 2].url, a.id, b.token).open() for j in range(COPIES)]

    async def http_copy(j: int, b: h.Who, key: str, amount: int) -> tuple[int, bytes]:
        r = await clients[j % 2].post(
            f"/api/v1/auctions/{a.id}/bids",
            headers={**b.headers, "Idempotency-Key": key},
            json={"amount_fen": amount},
        )
        return r.status_code, r.content

    async def ws_copy(ws: WsBidder, request_id: str, amount: int) -> dict[str, Any]:
        return await ws.bid(request_id, amount, timeout=60)

    started = time.monotonic()
    differing, not_accepted = [], []
    last_ws: dict[int, float] = {}
    for i in range(TRIALS):
        b = buyers[i % len(buyers)]
        amount = h.START + i * h.INCREMENT
        key = uuid.uuid4().hex
        if i % 2 == 0:
            answers: list[Any] = list(
                await asyncio.gather(*(http_copy(j, b, key, amount) for j in range(COPIES)))
            )
            ok = answers[0][0] == 201
        else:  # each socket at most ~7 messages/s: under the per-socket rate limit (10/s)
            await asyncio.sleep(max(0.0, last_ws.get(b.org_id, 0.0) + WS_SPACING - time.monotonic()))
            last_ws[b.org_id] = time.monotonic()
            answers = list(await asyncio.gather(*(ws_copy(ws, key, amount) for ws in sockets[b.org_id])))
            ok = answers[0]["type"] == "ack"
        if any(x != answers[0] for x in answers):
            differing.append((i, answers))
        if not ok:
            not_accepted.append((i, answers[0]))
    elapsed = time.monotonic() - started
    for group in sockets.values():
        for bidder in group:
            await bidder.close()
    bids = await h.rows(
        engine,
        "SELECT seq, amount_fen, bidder_org_id FROM auction_events WHERE auction_id = :a AND type = 'bid' "
        "ORDER BY seq",
        a=a.id,
    )
    expected = [(h.START + i * h.INCREMENT, buyers[i % len(buyers)].org_id) for i in range(TRIALS)]
    print(
        f"\n[idempotency] bid: {TRIALS} bids x {COPIES} copies at once ({TRIALS // 2} HTTP with one "
        f"Idempotency-Key over 2 instances, {TRIALS // 2} websocket with one request_id over 5 sockets) "
        f"in {elapsed:.1f}s: {len(bids)} bids placed (expected {TRIALS}), "
        f"{len(differing)} trials with differing answers, {len(not_accepted)} not accepted"
    )
    assert not_accepted == [], not_accepted[:3]
    assert differing == [], differing[:2]
    assert [(r.amount_fen, r.bidder_org_id) for r in bids] == expected, "exactly one effect per bid"


async def test_same_receipt_five_times_at_once(
    pair: list[Server], clients: list[httpx.AsyncClient], engine: AsyncEngine
) -> None:
    disposal_id, _ = await h.licence_disposal(clients, engine)
    operator = await h.who(engine, Role.OPERATOR)
    url = f"/api/v1/disposals/{disposal_id}/receipts"
    today = date.today().isoformat()

    async def copy(j: int, body: dict[str, Any], key: str | None) -> tuple[int, bytes]:
        headers = {**operator.headers, **({"Idempotency-Key": key} if key else {})}
        r = await clients[j % 2].post(url, headers=headers, json=body)
        return r.status_code, r.content

    started = time.monotonic()
    differing, first_answers = [], []
    for i in range(TRIALS):
        body = {"amount_fen": 1_000 + i, "reference": f"R{disposal_id}x{i}", "received_on": today}
        key = uuid.uuid4().hex
        answers = await asyncio.gather(*(copy(j, body, key) for j in range(COPIES)))
        if any(x != answers[0] for x in answers):
            differing.append((i, answers))
        first_answers.append(answers[0])
    elapsed = time.monotonic() - started
    statuses = {s for s, _ in first_answers}
    # the bank reference alone is the idempotency key too: a repeat without the header is a duplicate
    repeats = []
    for i in range(TRIALS):
        body = {"amount_fen": 1_000 + i, "reference": f"R{disposal_id}x{i}", "received_on": today}
        r = await clients[i % 2].post(url, headers=operator.headers, json=body)
        first = json.loads(first_answers[i][1])
        repeats.append(
            r.status_code == 200
            and r.json()["duplicate"] is True
            and r.json()["key"] == first["key"]
            and r.json()["postings"] == first["postings"]
        )
    entries = await h.scalar(
        engine,
        "SELECT count(*) FROM ledger_entries WHERE key LIKE :k",
        k=f"receipt:{disposal_id}:%",
    )
    applied = await h.scalar(
        engine,
        "SELECT coalesce(sum((content->>'amount_fen')::bigint), 0) FROM ledger_entries WHERE key LIKE :k",
        k=f"receipt:{disposal_id}:%",
    )
    print(
        f"\n[idempotency] receipt: {TRIALS} receipts x {COPIES} copies at once over 2 instances in "
        f"{elapsed:.1f}s: {entries} ledger entries (expected {TRIALS}), {len(differing)} trials with "
        f"differing answers; {sum(repeats)}/{TRIALS} later repeats without the header answered as "
        f"duplicates with the same postings"
    )
    assert statuses == {201}, statuses
    assert differing == [], differing[:2]
    assert entries == TRIALS, "exactly one effect per receipt"
    assert all(repeats)
    assert applied == sum(1_000 + i for i in range(TRIALS)), "every receipt was recorded once"
