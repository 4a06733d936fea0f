"""Parties through the API, as a bank's system would use it."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from market.parties import Role
from tests.support.factories import PASSWORD, credit_code, email, make_party


async def test_operator_creates_bank_and_buyer_with_users(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    op = await make_party(engine, client, Role.OPERATOR)
    bank = await client.post(
        "/api/v1/orgs",
        headers=op.headers,
        json={"name": "工商银行 测试支行", "kind": "bank", "credit_code": credit_code()},
    )
    assert bank.status_code == 201, bank.text
    assert bank.json()["kind"] == "bank" and bank.json()["verified"] is True
    addr = email("bank")
    user = await client.post(
        "/api/v1/users",
        headers=op.headers,
        json={"org_id": bank.json()["id"], "email": addr, "password": PASSWORD},
    )
    assert user.status_code == 201, user.text
    assert user.json()["role"] == "bank"
    session = await client.post("/api/v1/session", json={"email": addr, "password": PASSWORD})
    assert session.status_code == 201
    assert session.json()["user"] == {
        "id": user.json()["id"],
        "org_id": bank.json()["id"],
        "role": "bank",
        "email": addr,
    }
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {session.json()['token']}"})
    assert me.json()["role"] == "bank"


async def test_other_banks_objects_answer_404(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    a = await make_party(engine, client, Role.BANK)
    b = await make_party(engine, client, Role.BANK)
    assert (await client.get(f"/api/v1/orgs/{a.org_id}", headers=a.headers)).status_code == 200
    r = await client.get(f"/api/v1/orgs/{b.org_id}", headers=a.headers)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    missing = await client.get("/api/v1/orgs/999999999", headers=a.headers)
    assert r.json() == missing.json()  # "not yours" and "does not exist" are indistinguishable


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", "application/json"),
        (b'{"name": "x", "kind": "bank"}', "application/json"),
        (b'{"name": 5, "kind": "bank", "credit_code": "913100000000000001"}', "application/json"),
        (b'{"name": "x", "kind": "pirate", "credit_code": "913100000000000001"}', "application/json"),
        (
            b'{"name": "x", "kind": "bank", "credit_code": "913100000000000001", "extra": 1}',
            "application/json",
        ),
        (b"[]", "application/json"),
        (b"null", "application/json"),
        (b"NaN", "application/json"),
        (b'{"name": "x"}', "text/plain"),
        (b"\xff\xfe", "application/json"),
    ],
)
async def test_bad_input_is_422_problem_json(
    client: httpx.AsyncClient, engine: AsyncEngine, body: bytes, content_type: str
) -> None:
    op = await make_party(engine, client, Role.OPERATOR)
    r = await client.post("/api/v1/orgs", content=body, headers={**op.headers, "content-type": content_type})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["code"] in {"validation_failed"}
    assert set(problem) >= {"type", "title", "status", "detail", "code"}
    assert "Traceback" not in r.text


async def test_validation_errors_list_every_field(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    op = await make_party(engine, client, Role.OPERATOR)
    r = await client.post("/api/v1/users", headers=op.headers, json={"org_id": "1", "email": 3})
    locs = {tuple(e["loc"]) for e in r.json()["errors"]}
    assert {("body", "org_id"), ("body", "email"), ("body", "password")} <= locs


async def test_signup_then_operator_verifies(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    op = await make_party(engine, client, Role.OPERATOR)
    addr = email("buyer")
    r = await client.post(
        "/api/v1/signup",
        json={"org_name": "买方 公司", "credit_code": credit_code(), "email": addr, "password": PASSWORD},
    )
    assert r.status_code == 201, r.text
    org_id = r.json()["org"]["id"]
    assert r.json()["org"]["verified"] is False and r.json()["user"]["role"] == "buyer"
    buyer = await client.post("/api/v1/session", json={"email": addr, "password": PASSWORD})
    token = {"Authorization": f"Bearer {buyer.json()['token']}"}
    assert (await client.post(f"/api/v1/orgs/{org_id}/verify", headers=token)).status_code == 403
    v = await client.post(f"/api/v1/orgs/{org_id}/verify", headers=op.headers)
    assert v.status_code == 200 and v.json()["verified"] is True
    again = await client.post(f"/api/v1/orgs/{org_id}/verify", headers=op.headers)
    assert again.status_code == 409 and again.json()["code"] == "already_verified"


async def test_duplicate_email_and_credit_code_conflict(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    op = await make_party(engine, client, Role.OPERATOR)
    code = credit_code()
    first = await client.post(
        "/api/v1/orgs", headers=op.headers, json={"name": "A", "kind": "bank", "credit_code": code}
    )
    assert first.status_code == 201
    dup = await client.post(
        "/api/v1/orgs", headers=op.headers, json={"name": "B", "kind": "bank", "credit_code": code}
    )
    assert dup.status_code == 409 and dup.json()["code"] == "credit_code_taken"
    user = {"org_id": first.json()["id"], "email": email(), "password": PASSWORD}
    assert (await client.post("/api/v1/users", headers=op.headers, json=user)).status_code == 201
    again = await client.post("/api/v1/users", headers=op.headers, json=user)
    assert again.status_code == 409 and again.json()["code"] == "email_taken"


async def test_weak_password_refused(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    op = await make_party(engine, client, Role.OPERATOR)
    org = await client.post(
        "/api/v1/orgs", headers=op.headers, json={"name": "A", "kind": "buyer", "credit_code": credit_code()}
    )
    r = await client.post(
        "/api/v1/users",
        headers=op.headers,
        json={"org_id": org.json()["id"], "email": email(), "password": "short"},
    )
    assert r.status_code == 422 and r.json()["code"] == "weak_password"


async def test_idempotency_key_returns_first_result_and_changes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    op = await make_party(engine, client, Role.OPERATOR)
    body = {"name": "幂等 银行", "kind": "bank", "credit_code": credit_code()}
    headers = {**op.headers, "Idempotency-Key": "create-bank-1"}
    results = await asyncio.gather(
        *(client.post("/api/v1/orgs", headers=headers, json=body) for _ in range(5))
    )
    assert {r.status_code for r in results} == {201}
    assert len({r.json()["id"] for r in results}) == 1
    other = await client.post("/api/v1/orgs", headers=headers, json={**body, "name": "different"})
    assert other.status_code == 409 and other.json()["code"] == "id_reused"


async def test_failed_logins_are_throttled_with_retry_after(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    party = await make_party(engine, client, Role.BUYER)
    for _ in range(5):
        r = await client.post("/api/v1/session", json={"email": party.email, "password": "wrong-password-1"})
        assert r.status_code == 401 and r.json()["code"] == "invalid_credentials"
    r = await client.post("/api/v1/session", json={"email": party.email, "password": PASSWORD})
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) > 0
    assert r.json()["code"] == "throttled"


async def test_unknown_email_and_wrong_password_look_the_same(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    party = await make_party(engine, client, Role.BUYER)
    a = await client.post(
        "/api/v1/session", json={"email": "nobody-x@example.com", "password": "whatever-123"}
    )
    b = await client.post("/api/v1/session", json={"email": party.email, "password": "whatever-123"})
    assert a.status_code == b.status_code == 401
    assert a.json()["detail"] == b.json()["detail"]


async def test_revoked_token_stops_working(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    party = await make_party(engine, client, Role.BANK)
    assert (await client.get("/api/v1/me", headers=party.headers)).status_code == 200
    assert (await client.delete("/api/v1/session", headers=party.headers)).status_code == 204
    r = await client.get("/api/v1/me", headers=party.headers)
    assert r.status_code == 401 and r.json()["code"] == "unauthenticated"


async def test_audit_records_and_verifies(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    op = await make_party(engine, client, Role.OPERATOR)
    org = await client.post(
        "/api/v1/orgs",
        headers=op.headers,
        json={"name": "审计 银行", "kind": "bank", "credit_code": credit_code()},
    )
    trail = await client.get(f"/api/v1/audit?entity=org&id={org.json()['id']}", headers=op.headers)
    assert trail.status_code == 200
    [entry] = trail.json()["items"]
    assert entry["action"] == "org.create" and entry["actor_user_id"] == op.user_id
    assert entry["after"]["name"] == "审计 银行"
    verify = await client.get("/api/v1/audit/verify", headers=op.headers)
    assert verify.json()["ok"] is True and verify.json()["entries"] > 0


async def test_openapi_documents_every_operation(client: httpx.AsyncClient, app: object) -> None:
    from web.api import api

    doc = (await client.get("/api/v1/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    for op in api.operations:
        assert op.method.lower() in doc["paths"][op.path], op.path
    body = doc["paths"]["/api/v1/orgs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].endswith("/OrgIn")
    assert "OrgIn" in doc["components"]["schemas"]


async def test_health_metrics_and_security_headers(client: httpx.AsyncClient) -> None:
    r = await client.get("/")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    m = await client.get("/metrics")
    assert "market_http_requests_total" in m.text
