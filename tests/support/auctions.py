"""Set up an auction through the API: a bank, a published listing, a round, registered buyers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from market.parties import Role
from tests.support.collateral import claim, patent
from tests.support.factories import Party, make_party

APPRAISAL = 100_000_000
START = 70_000_000  # 70 % of the appraisal (rule 2)
INCREMENT = 500_000
DEPOSIT = 7_000_000  # 10 % of the start (rule 6)
OPENS_IN = 0.5  # seconds: bidding cannot open in the past


@dataclass
class Setup:
    bank: Party
    listing_id: int
    auction: dict[str, Any]
    buyers: list[Party] = field(default_factory=list)
    paddles: dict[int, str] = field(default_factory=dict)

    @property
    def auction_id(self) -> int:
        return int(self.auction["id"])


async def published_listing(
    client: httpx.AsyncClient, bank: Party, *, listing_over: dict[str, Any] | None = None, **asset_over: Any
) -> int:
    a = await client.post(
        "/api/v1/assets", headers=bank.headers, json=patent(appraisal_fen=APPRAISAL, **asset_over)
    )
    assert a.status_code == 201, a.text
    c = await client.post("/api/v1/claims", headers=bank.headers, json=claim([a.json()["id"]]))
    assert c.status_code == 201, c.text
    listing = await client.post(
        "/api/v1/listings",
        headers=bank.headers,
        json={
            "title": "锂电池专利拍卖",
            "mode": "transfer",
            "asset_ids": [a.json()["id"]],
            **(listing_over or {}),
        },
    )
    assert listing.status_code == 201, listing.text
    pub = await client.post(f"/api/v1/listings/{listing.json()['id']}/publish", headers=bank.headers)
    assert pub.status_code == 200, pub.text
    return int(listing.json()["id"])


def terms(
    listing_id: int, *, seconds: float = 3.0, start: int = START, opens_in: float = OPENS_IN, **over: Any
) -> dict[str, Any]:
    now = datetime.now(UTC) + timedelta(seconds=opens_in)
    body: dict[str, Any] = {
        "listing_id": listing_id,
        "start_price_fen": start,
        "increment_fen": INCREMENT,
        "deposit_fen": DEPOSIT,
        "starts_at": now.isoformat(),
        "ends_at": (now + timedelta(seconds=seconds)).isoformat(),
        "extension_seconds": 2,
    }
    body.update(over)
    return body


async def auction_with_buyers(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    buyers: int = 2,
    *,
    seconds: float = 3.0,
    opens_in: float = OPENS_IN,
    **over: Any,
) -> Setup:
    bank = await make_party(engine, client, Role.BANK)
    listing_id = await published_listing(client, bank)
    r = await client.post(
        "/api/v1/auctions",
        headers=bank.headers,
        json=terms(listing_id, seconds=seconds, opens_in=opens_in, **over),
    )
    assert r.status_code == 201, r.text
    setup = Setup(bank, listing_id, r.json())
    for _ in range(buyers):
        buyer = await make_party(engine, client, Role.BUYER)
        reg = await client.post(f"/api/v1/auctions/{setup.auction_id}/registrations", headers=buyer.headers)
        assert reg.status_code == 201, reg.text
        setup.buyers.append(buyer)
        setup.paddles[buyer.org_id] = reg.json()["paddle_no"]
    opens = datetime.fromisoformat(setup.auction["starts_at"])
    await asyncio.sleep(max(0.0, (opens - datetime.now(UTC)).total_seconds()) + 0.05)
    return setup
