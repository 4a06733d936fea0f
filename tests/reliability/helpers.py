"""Helpers of the reliability suite: fast parties, auctions with many buyers, servers, figures.

Parties are created straight in the database (organisation, user, session) instead of
signing in through the API: the suite needs hundreds of them and the API's sign-in is
deliberately slow (argon2) and throttled per client address.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import os
import secrets
import subprocess
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from market import identity
from market.db import transaction
from market.parties import Role
from tests.e2e.conftest import Server, start_server, stop_server
from tests.support.auctions import APPRAISAL, DEPOSIT, INCREMENT, START, terms
from tests.support.collateral import claim, patent
from tests.support.factories import PASSWORD, credit_code

SECRET = "reliability-secret-" + "z" * 32
ROOT = Path(__file__).resolve().parents[2]

__all__ = ["APPRAISAL", "DEPOSIT", "INCREMENT", "START"]


@dataclass
class Who:
    """One signed-in user: a bearer token for the API and a cookie session for pages."""

    role: str
    org_id: int
    user_id: int
    email: str
    org_name: str
    credit_code: str
    token: str
    cookie: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


_HASH: list[str] = []


def password_hash() -> str:
    """One argon2 hash of ``PASSWORD`` shared by every user the suite creates (hashing is slow)."""
    if not _HASH:
        _HASH.append(identity.hash_password(PASSWORD))
    return _HASH[0]


async def who(
    engine: AsyncEngine, kind: Role, *, verified: bool = True, name: str | None = None, ttl: int = 3600
) -> Who:
    """An organisation of ``kind`` with one user and live bearer and cookie sessions."""
    from market.parties import User
    from market.tables import users

    addr = f"{kind.value}-{secrets.token_hex(6)}@example.com"
    code = credit_code()
    org_name = name or f"{kind.value}-org-{secrets.token_hex(4)}"
    async with transaction(engine) as conn:
        if kind is Role.OPERATOR:
            org_id = (
                await conn.execute(text("SELECT id FROM orgs WHERE kind = 'operator' ORDER BY id LIMIT 1"))
            ).scalar()
            if org_id is None:
                org_id = (
                    await identity.create_org(
                        conn,
                        None,
                        name="Platform operator",
                        kind=Role.OPERATOR,
                        credit_code=identity.make_credit_code("operator"),
                    )
                ).id
            org_name, code = "", ""
        else:
            org = await identity.create_org(
                conn, None, name=org_name, kind=kind, credit_code=code, verified=verified
            )
            org_id = org.id
        row = (
            await conn.execute(
                users.insert()
                .values(org_id=org_id, email=addr, password_hash=password_hash(), role=kind.value)
                .returning(users.c.id)
            )
        ).one()
        user = User(row.id, org_id, addr, kind)
        bearer = await identity.issue_session(conn, user, kind="bearer", ttl_seconds=ttl)
        cookie = await identity.issue_session(conn, user, kind="cookie", ttl_seconds=ttl)
    return Who(kind.value, user.org_id, user.id, addr, org_name, code, bearer.token, cookie.token)


async def many(engine: AsyncEngine, kind: Role, n: int, **kw: Any) -> list[Who]:
    out: list[Who] = []
    for start in range(0, n, 10):  # argon2 per user: a few at a time
        out += await asyncio.gather(*(who(engine, kind, **kw) for _ in range(start, min(n, start + 10))))
    return out


async def token_for(engine: AsyncEngine, user_id: int, kind: str = "bearer", ttl: int = 3600) -> str:
    """Another live session of an existing user (no password check)."""
    from market.parties import User

    async with transaction(engine) as conn:
        row = (
            await conn.execute(
                text("SELECT id, org_id, email, role FROM users WHERE id = :u"), {"u": user_id}
            )
        ).one()
        issued = await identity.issue_session(
            conn, User(row.id, row.org_id, row.email, Role(row.role)), kind=kind, ttl_seconds=ttl
        )
    return issued.token


def csrf_for(cookie_value: str, secret: str = SECRET) -> str:
    """The CSRF token the service expects for a session (or anonymous) cookie value."""
    return hmac.new(secret.encode(), b"csrf:" + cookie_value.encode(), hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------- listings and auctions


async def published_listing(
    client: httpx.AsyncClient, bank: Who, *, mode: str = "transfer", appraisal: int = APPRAISAL
) -> dict[str, Any]:
    a = await client.post("/api/v1/assets", headers=bank.headers, json=patent(appraisal_fen=appraisal))
    assert a.status_code == 201, a.text
    c = await client.post("/api/v1/claims", headers=bank.headers, json=claim([a.json()["id"]]))
    assert c.status_code == 201, c.text
    body = {"title": "锂电池专利拍卖", "mode": mode, "asset_ids": [a.json()["id"]]}
    if mode == "license":
        body["license_terms"] = {
            "type": "non_exclusive",
            "term_months": 24,
            "territory": "中国",
            "field": "储能",
        }
    listing = await client.post("/api/v1/listings", headers=bank.headers, json=body)
    assert listing.status_code == 201, listing.text
    pub = await client.post(f"/api/v1/listings/{listing.json()['id']}/publish", headers=bank.headers)
    assert pub.status_code == 200, pub.text
    return {"listing_id": listing.json()["id"], "asset_id": a.json()["id"], "claim_id": c.json()["id"]}


@dataclass
class Auction:
    id: int
    listing_id: int
    bank: Who
    body: dict[str, Any]
    buyers: list[Who] = field(default_factory=list)
    paddles: dict[int, str] = field(default_factory=dict)
    asset_id: int = 0
    claim_id: int = 0

    @property
    def ends_at(self) -> datetime:
        return datetime.fromisoformat(self.body["ends_at"])

    @property
    def starts_at(self) -> datetime:
        return datetime.fromisoformat(self.body["starts_at"])


async def auction(
    client: httpx.AsyncClient,
    bank: Who,
    buyers: Sequence[Who] = (),
    *,
    seconds: float = 600,
    ends_at: datetime | None = None,
    wait_open: bool = True,
    mode: str = "transfer",
    **over: Any,
) -> Auction:
    """A published listing of ``bank``, an auction round on it, and ``buyers`` registered."""
    made = await published_listing(client, bank, mode=mode)
    body = terms(made["listing_id"], seconds=seconds, **over)
    if ends_at is not None:
        body["ends_at"] = ends_at.isoformat()
    r = await client.post("/api/v1/auctions", headers=bank.headers, json=body)
    assert r.status_code == 201, r.text
    a = Auction(
        r.json()["id"], made["listing_id"], bank, r.json(), [], {}, made["asset_id"], made["claim_id"]
    )
    await register(client, a, buyers)
    if wait_open:
        await asyncio.sleep(max(0.0, (a.starts_at - datetime.now(UTC)).total_seconds()) + 0.05)
    return a


async def register(client: httpx.AsyncClient, a: Auction, buyers: Iterable[Who]) -> None:
    async def one(b: Who) -> None:
        reg = await client.post(f"/api/v1/auctions/{a.id}/registrations", headers=b.headers)
        assert reg.status_code in (200, 201), reg.text
        a.buyers.append(b)
        a.paddles[b.org_id] = reg.json()["paddle_no"]

    buyers = list(buyers)
    for start in range(0, len(buyers), 10):
        await asyncio.gather(*(one(b) for b in buyers[start : start + 10]))


async def licence_disposal(clients: Sequence[httpx.AsyncClient], engine: AsyncEngine) -> tuple[int, Who]:
    """A licence listing sold by negotiation: its disposal takes any number of receipts."""
    bank = await who(engine, Role.BANK)
    buyer = await who(engine, Role.BUYER)
    made = await published_listing(clients[0], bank, mode="license")
    offer = await clients[0].post(
        f"/api/v1/listings/{made['listing_id']}/offers", headers=buyer.headers, json={"amount_fen": START}
    )
    assert offer.status_code == 201, offer.text
    accepted = await clients[0].post(f"/api/v1/offers/{offer.json()['id']}/accept", headers=bank.headers)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["disposal_id"], accepted.text
    return int(accepted.json()["disposal_id"]), bank


# --------------------------------------------------------------------------- servers


def start_servers(n: int, env: dict[str, str], data_dir: Path, *args: str) -> list[Server]:
    """``n`` ``market serve`` processes started in parallel."""
    full = {"MARKET_SECRET_KEY": SECRET, **env}
    dirs = []
    for i in range(n):
        d = data_dir / f"instance{i}"
        d.mkdir(parents=True, exist_ok=True)
        dirs.append(d)
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda d: start_server(full, d, *args), dirs))


def stop_servers(servers: Iterable[Server]) -> None:
    for s in servers:
        if s.process.poll() is None:
            stop_server(s)


def market_cli(database_url: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "market", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


async def wait_until(predicate: Any, timeout: float, interval: float = 0.1) -> bool:
    """Poll an async predicate until it is true or ``timeout`` seconds passed."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(interval)
    return bool(await predicate())


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))
    return ordered[k]


def soon(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


async def scalar(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar()


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())
