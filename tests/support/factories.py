"""Factories with defaults for everything: a test overrides only what it is about."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from market import identity
from market.db import transaction
from market.parties import Role

PASSWORD = "correct-horse-9"


def credit_code() -> str:
    return identity.make_credit_code(secrets.token_hex(8))


def email(prefix: str = "user") -> str:
    return f"{prefix}-{secrets.token_hex(5)}@example.com"


@dataclass
class Party:
    org_id: int
    user_id: int
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def make_party(
    engine: AsyncEngine,
    client: httpx.AsyncClient,
    kind: Role,
    *,
    verified: bool = True,
    name: str | None = None,
) -> Party:
    """An organisation of ``kind`` with one user, signed in through the API."""
    addr = email(kind.value)
    async with transaction(engine) as conn:
        if kind is Role.OPERATOR:
            user = await identity.create_operator(conn, email=addr, password=PASSWORD)
        else:
            org = await identity.create_org(
                conn,
                None,
                name=name or f"{kind.value} {secrets.token_hex(3)}",
                kind=kind,
                credit_code=credit_code(),
                verified=verified,
            )
            user = await identity.create_user(conn, None, org_id=org.id, email=addr, password=PASSWORD)
    resp = await client.post("/api/v1/session", json={"email": addr, "password": PASSWORD})
    assert resp.status_code == 201, resp.text
    return Party(user.org_id, user.id, addr, resp.json()["token"])
