"""9. Bad input.

Schemathesis over ``/api/v1/openapi.json``: every operation gets at least 100 generated examples
(schema-valid ones: schemathesis' positive mode) and 10 schema-breaking ones (negative mode), each
sent with the bearer token of a role the operation admits (a hook picks it from the operation's
declared roles; ``DELETE /session`` gets a fresh token each time). Checks: no 5xx, every status
documented, content type and body as documented, and schema-breaking input refused with a 4xx.
The fuzzing runs against its own database on the test server (created and dropped here): random
ids hit real objects there, so it must not cancel or reverse anything other tests rely on.

Then explicit amount attacks on every money field a caller can send (bids over HTTP and over the
websocket, receipts, costs, pool funding, offers, auction terms): negative, zero, fractional,
10^30, strings, NaN, Infinity, booleans, null — 0 accepted, every refusal problem+json with a code
(an error frame with a code on the websocket).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import date
from typing import Any

import httpx
import pytest
import requests
import schemathesis
import websockets
from hypothesis import HealthCheck, Phase, given, settings
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from market import migrate
from market.db import create_engine
from market.parties import Role
from tests.conftest import _admin
from tests.e2e.conftest import Server
from tests.reliability import helpers as h
from tests.support.live import ws_url

pytestmark = pytest.mark.reliability
POSITIVE, NEGATIVE = 100, 10
FUZZ_BUDGET = 330.0  # seconds for the whole schemathesis run (bounded; ~240 s measured under load)


@pytest.fixture(scope="module")
def fuzz_db(database_url: str) -> Iterator[str]:
    name = f"market_fuzz_{os.getpid()}_{secrets.token_hex(3)}"
    server = make_url(database_url).set(database="postgres").render_as_string(hide_password=False)
    asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
    url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(url)
    yield url
    asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def fuzz_server(fuzz_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    servers = h.start_servers(1, {"DATABASE_URL": fuzz_db}, tmp_path_factory.mktemp("fuzz"))
    yield servers[0]
    h.stop_servers(servers)


@pytest.fixture
async def fuzz_engine(fuzz_db: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(fuzz_db, pool_size=2)
    yield engine
    await engine.dispose()


@pytest.fixture
async def fuzz_tokens(fuzz_engine: AsyncEngine, fuzz_server: Server) -> dict[str, Any]:
    """A token per role, objects for the ids to sometimes hit, and fresh tokens for DELETE /session."""
    people = {r.value: await h.who(fuzz_engine, r) for r in (Role.BUYER, Role.BANK, Role.OPERATOR)}
    async with httpx.AsyncClient(base_url=fuzz_server.url, timeout=30) as c:
        await h.auction(c, people["bank"], [people["buyer"]], seconds=900)
    spare = [await h.token_for(fuzz_engine, people["buyer"].user_id) for _ in range(POSITIVE + NEGATIVE + 20)]
    return {"people": people, "spare": spare}


def role_token(op_roles: tuple[Role, ...] | None, tokens: dict[str, Any], name: str) -> str | None:
    if name == "delete_session":
        return str(tokens["spare"].pop()) if tokens["spare"] else None
    if op_roles is None:
        return str(tokens["people"]["buyer"].token)
    if op_roles == ():
        return str(tokens["people"]["buyer"].token)
    return str(tokens["people"][op_roles[0].value].token)


def runner(strategy: Any, mode: str, wanted: int, count: Counter[str], call: Any) -> Any:
    """A hypothesis test drawing cases of one operation in one mode until ``wanted`` were sent."""
    deadline = time.monotonic() + FUZZ_BUDGET

    @settings(
        max_examples=wanted,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate],
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        if time.monotonic() > deadline or count[mode] >= wanted:
            return
        count[mode] += 1
        call(case, mode)

    return run


@pytest.mark.timeout(FUZZ_BUDGET + 150)
def test_schemathesis_every_operation(fuzz_server: Server, fuzz_tokens: dict[str, Any]) -> None:
    from schemathesis.checks import CHECKS, load_all_checks

    import web.app  # noqa: F401  (registers every operation)
    from web.api import api

    load_all_checks()
    roles = {op.name: op.roles for op in api.operations}
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/api/v1/openapi.json")
    checks = [
        CHECKS.get_one(n)
        for n in (
            "not_a_server_error",
            "status_code_conformance",
            "content_type_conformance",
            "response_schema_conformance",
            "negative_data_rejection",
        )
    ]
    session = requests.Session()
    started = time.monotonic()
    per_op: dict[str, Counter[str]] = {}
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    lenient: Counter[str] = Counter()
    operations = [result.ok() for result in schema.get_all_operations()]

    def call(case: Any, mode: str) -> None:
        name = case.operation.definition.raw.get("operationId", case.operation.label)
        token = role_token(roles.get(name), fuzz_tokens, name)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        declared = {
            p["name"] for p in case.operation.definition.raw.get("parameters", []) if p["in"] == "query"
        }
        unknown = set(case.query or {}) - declared
        use = checks
        if mode == "negative" and unknown:  # the API ignores query parameters it does not know
            lenient[name] += 1
            use = [c for c in checks if c.__name__ != "negative_data_rejection"]
        try:
            response = case.call(session=session, headers=headers, timeout=30)
            statuses[response.status_code] += 1
            case.validate_response(response, checks=use, headers=headers)
        except (Exception, BaseExceptionGroup) as exc:  # collect; no shrinking (slow)
            lines = str(exc).strip().splitlines()
            curl = [x.strip() for x in lines if "curl " in x][:1]
            failures.append(f"{name} [{mode}]: " + " | ".join(lines[:6] + curl))

    for op in operations:
        name = op.definition.raw.get("operationId", op.label)
        count: Counter[str] = Counter()
        per_op[name] = count
        for mode, wanted in (
            (schemathesis.GenerationMode.POSITIVE, POSITIVE),
            (schemathesis.GenerationMode.NEGATIVE, NEGATIVE),
        ):
            run = runner(op.as_strategy(generation_mode=mode), mode.value, wanted, count, call)
            for _ in range(5):  # small input spaces run out of fresh examples: draw again
                if count[mode.value] >= wanted or time.monotonic() - started > FUZZ_BUDGET:
                    break
                run()
    elapsed = time.monotonic() - started
    short = {n: dict(c) for n, c in per_op.items() if c["positive"] < POSITIVE}
    server_errors = sum(n for s, n in statuses.items() if s >= 500)
    total = sum(sum(c.values()) for c in per_op.values())
    print(
        f"\n[fuzz] schemathesis: {len(operations)} operations, {total} requests in {elapsed:.0f}s "
        f"(>= {POSITIVE} schema-valid + {NEGATIVE} schema-breaking examples each; short: {short or 'none'}); "
        f"statuses {dict(sorted(statuses.items()))}; server errors {server_errors}; "
        f"check failures {len(failures)}; schema-breaking cases with unknown query parameters (ignored by "
        f"the API, not counted as accepted bad input): {sum(lenient.values())}"
    )
    for f in failures[:20]:
        print("   ", f[:400])
    assert not short, f"operations with fewer than {POSITIVE} examples (time bound hit?): {short}"
    assert server_errors == 0
    assert failures == []


ATTACKS: list[tuple[str, Any]] = [
    ("negative", -1),
    ("negative big", -(10**15)),
    ("zero", 0),
    ("fractional", 1.5),
    ("integral float", 70_000_000.0),
    ("10^30", 10**30),
    ("2^63", 2**63),
    ("string", "70000000"),
    ("string float", "7e7"),
    ("true", True),
    ("null", None),
    ("list", [70_000_000]),
    ("object", {"fen": 1}),
]
RAW_ATTACKS = [("NaN", "NaN"), ("Infinity", "Infinity"), ("-Infinity", "-Infinity"), ("1e400", "1e400")]


async def test_amount_attacks(
    pair: list[Server], clients: list[httpx.AsyncClient], engine: AsyncEngine
) -> None:
    c = clients[0]
    bank = await h.who(engine, Role.BANK)
    buyer = await h.who(engine, Role.BUYER)
    operator = await h.who(engine, Role.OPERATOR)
    a = await h.auction(c, bank, [buyer], seconds=900)
    disposal_id, _ = await h.licence_disposal(clients, engine)
    negotiable = await h.published_listing(c, bank)
    offer = await c.post(
        f"/api/v1/listings/{negotiable['listing_id']}/offers",
        headers=buyer.headers,
        json={"amount_fen": h.START},
    )
    assert offer.status_code == 201, offer.text
    other = await h.published_listing(c, bank)
    pool = str(800_000_000 + secrets.randbelow(99_999_999))
    created = await c.post(
        "/api/v1/pools", headers=operator.headers, json={"code": pool, "name": "attack pool", "share_bp": 100}
    )
    assert created.status_code == 201, created.text
    today = date.today().isoformat()
    auction_terms = {
        k: v for k, v in a.body.items() if k in ("increment_fen", "deposit_fen", "extension_seconds")
    }
    targets: list[tuple[str, str, h.Who, dict[str, Any], str]] = [
        ("bid", f"/api/v1/auctions/{a.id}/bids", buyer, {}, "amount_fen"),
        ("proxy max", f"/api/v1/auctions/{a.id}/bids", buyer, {"amount_fen": h.START}, "max_fen"),
        (
            "receipt",
            f"/api/v1/disposals/{disposal_id}/receipts",
            operator,
            {"received_on": today},
            "amount_fen",
        ),
        ("cost", f"/api/v1/listings/{a.listing_id}/costs", operator, {"memo": "attack"}, "amount_fen"),
        ("pool funding", f"/api/v1/pools/{pool}/fund", operator, {}, "amount_fen"),
        ("offer", f"/api/v1/listings/{negotiable['listing_id']}/offers", buyer, {}, "amount_fen"),
        ("counter", f"/api/v1/offers/{offer.json()['id']}/counter", bank, {}, "amount_fen"),
        (
            "auction start price",
            "/api/v1/auctions",
            bank,
            {
                "listing_id": other["listing_id"],
                "starts_at": h.soon(60).isoformat(),
                "ends_at": h.soon(3600).isoformat(),
                **auction_terms,
            },
            "start_price_fen",
        ),
    ]
    results: Counter[str] = Counter()
    accepted, bad_refusals = [], []
    for label, url, who, base, field in targets:
        for n, (name, value) in enumerate(ATTACKS + RAW_ATTACKS):
            if field == "max_fen" and value is None:
                continue  # no maximum is a plain bid: null is valid there
            extra = (
                {"reference": f"atk{n}{secrets.token_hex(3)}"}
                if label in ("receipt", "cost", "pool funding")
                else {}
            )
            if (name, value) in RAW_ATTACKS:
                body = (
                    json.dumps({**base, **extra})[:-1]
                    + (", " if base or extra else "")
                    + f'"{field}": {value}}}'
                )
                r = await c.post(
                    url, headers={**who.headers, "Content-Type": "application/json"}, content=body
                )
            else:
                r = await c.post(url, headers=who.headers, json={**base, **extra, field: value})
            results["sent"] += 1
            if r.status_code < 400:
                accepted.append(f"{label} {name}: {r.status_code} {r.text[:120]}")
                continue
            problem = r.headers.get("content-type", "").startswith("application/problem+json")
            code = r.json().get("code") if problem else None
            results[f"{r.status_code} {code}"] += 1
            if not problem or not code or r.status_code >= 500:
                bad_refusals.append(
                    f"{label} {name}: {r.status_code} {r.headers.get('content-type')} {r.text[:120]}"
                )
    # the websocket bid path parses its own frames
    ws_refused, ws_bad = 0, []
    async with websockets.connect(ws_url(pair[0].url, a.id), additional_headers=buyer.headers) as ws:
        await ws.recv()
        frames = [
            json.dumps({"type": "bid", "request_id": f"a{i}", "amount_fen": v})
            for i, (_, v) in enumerate(ATTACKS)
        ]
        frames += [
            f'{{"type": "bid", "request_id": "r{i}", "amount_fen": {v}}}'
            for i, (_, v) in enumerate(RAW_ATTACKS)
        ]
        for frame in frames:
            await ws.send(frame)
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if msg.get("type") in ("ack", "error"):
                    break
            results["sent"] += 1
            if msg["type"] == "error" and msg.get("code"):
                ws_refused += 1
            else:
                ws_bad.append(f"{frame}: {msg}")
            await asyncio.sleep(0.11)  # under the socket's rate limit
    state = (await c.get(f"/api/v1/auctions/{a.id}")).json()
    codes = {k: v for k, v in results.items() if k != "sent"}
    print(
        f"\n[amounts] {results['sent']} attacks ({len(ATTACKS) + len(RAW_ATTACKS)} values x {len(targets)} "
        "money "
        f"fields over HTTP + the websocket bid): {len(accepted) + len(ws_bad)} accepted; refusals {codes}, "
        f"websocket error frames with a code {ws_refused}; refusals not problem+json with a code: "
        f"{len(bad_refusals)}; "
        f"auction still without bids: {state['bid_count'] == 0}"
    )
    assert accepted == [] and ws_bad == [], accepted + ws_bad
    assert bad_refusals == [], bad_refusals
    assert state["bid_count"] == 0
