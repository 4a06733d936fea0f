"""Access rules as a table over every API route: who may call what.

Every registered operation must appear in ``EXPECTED``; a new route without a row fails
the test, so nobody adds an endpoint without deciding who may use it. "Allowed" means the
request got past authentication and the role check (any status but 401/403); object
ownership (another organisation's object -> 404) is checked per object in the API tests.
"""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

import web.app  # noqa: F401  (registers every operation)
from market.parties import Role
from tests.support.factories import Party, make_party
from web.api import api

ANON, BUYER, BANK, OPERATOR = "anonymous", "buyer", "bank", "operator"
EVERYONE = {ANON, BUYER, BANK, OPERATOR}
SIGNED_IN = {BUYER, BANK, OPERATOR}

EXPECTED: dict[str, set[str]] = {
    "create_session": EVERYONE,
    "delete_session": SIGNED_IN,
    "me": SIGNED_IN,
    "create_org": {OPERATOR},
    "list_orgs": {OPERATOR},
    "get_org": SIGNED_IN,
    "verify_org": {OPERATOR},
    "create_user": {OPERATOR},
    "signup": EVERYONE,
    "list_audit": {OPERATOR},
    "verify_audit": {OPERATOR},
    "create_asset": {BANK},
    "list_assets": {BANK, OPERATOR},
    "get_asset": {BANK, OPERATOR},
    "create_claim": {BANK},
    "list_claims": {BANK, OPERATOR},
    "get_claim": {BANK, OPERATOR},
    "create_listing": {BANK},
    "publish_listing": {BANK},
    "withdraw_listing": {BANK, OPERATOR},
    "search_listings": EVERYONE,
    "get_listing": EVERYONE,
    "my_listings": {BANK, OPERATOR},
    "put_interests": {BUYER},
    "get_interests": {BUYER},
    "get_recommendations": {BUYER},
    "list_notifications": SIGNED_IN,
    "read_notification": SIGNED_IN,
    "make_offer": {BUYER},
    "list_offers": SIGNED_IN,
    "get_offer": SIGNED_IN,
    "counter_offer": {BANK, BUYER},
    "accept_offer": {BANK, BUYER},
    "reject_offer": {BANK, BUYER},
    "withdraw_offer": {BANK, BUYER},
    "import_template_csv": {BANK},
    "import_template_xlsx": {BANK},
    "import_file": {BANK},
    "create_auction": {BANK},
    "list_auctions": EVERYONE,
    "get_auction": EVERYONE,
    "auction_events": EVERYONE,
    "register": {BUYER},
    "place_bid": {BUYER},
    "suspend_auction": {OPERATOR},
    "resume_auction": {OPERATOR},
    "cancel_auction": {OPERATOR},
    "auction_identities": {OPERATOR},
    "monitor": {OPERATOR},
    "kpis": {OPERATOR},
    "request_bid_cancellation": {OPERATOR},
    "approve_bid_cancellation": {OPERATOR},
    "reject_bid_cancellation": {OPERATOR},
    "list_bid_cancellations": {OPERATOR},
    "take_over": {BANK},
    "purchase": {BUYER},
    "get_disposal": SIGNED_IN,
    "record_receipt": {OPERATOR},
    "transfer_recorded": {OPERATOR},
    "record_default": {OPERATOR},
    "record_cost": {OPERATOR},
    "finalize_lot": {OPERATOR},
    "create_pool": {OPERATOR},
    "fund_pool": {OPERATOR},
    "list_tasks": {BANK, OPERATOR},
    "complete_task": {BANK},
    "reverse_entry": {OPERATOR},
    "claim_statement": {BANK, OPERATOR},
    "claim_statement_csv": {BANK, OPERATOR},
    "claim_statement_xlsx": {BANK, OPERATOR},
    "claim_statement_pdf": {BANK, OPERATOR},
    "bank_statement": {BANK, OPERATOR},
    "disposals_report": {OPERATOR},
    "disposals_report_csv": {OPERATOR},
    "disposals_report_xlsx": {OPERATOR},
    "disposals_report_pdf": {OPERATOR},
}


def test_every_route_has_a_row() -> None:
    names = {op.name for op in api.operations}
    assert names == set(EXPECTED), f"unclassified: {names - set(EXPECTED)}; stale: {set(EXPECTED) - names}"


def test_declared_roles_match_the_table() -> None:
    for op in api.operations:
        if op.roles is None:
            declared = EVERYONE
        elif op.roles == ():
            declared = SIGNED_IN
        else:
            declared = {r.value for r in op.roles}
        assert declared == EXPECTED[op.name], op.name


@pytest.fixture
async def identities(client: httpx.AsyncClient, engine: AsyncEngine) -> dict[str, Party | None]:
    return {
        ANON: None,
        BUYER: await make_party(engine, client, Role.BUYER),
        BANK: await make_party(engine, client, Role.BANK),
        OPERATOR: await make_party(engine, client, Role.OPERATOR),
    }


@pytest.mark.parametrize("op", api.operations, ids=lambda op: op.name)
async def test_route_allows_exactly_the_expected_callers(
    op: object, client: httpx.AsyncClient, identities: dict[str, Party | None]
) -> None:
    from web.api import Operation

    assert isinstance(op, Operation)
    for who, party in identities.items():
        if op.name == "delete_session" and party is not None:
            continue  # would revoke the token the other checks use; covered in test_parties_api
        own_org = party.org_id if party else 1
        path = re.sub(r"\{[a-z_]+\}", str(own_org), op.path)
        headers = party.headers if party else {}
        kwargs = {"json": {}} if op.body is not None else {}
        r = await client.request(op.method, path, headers=headers, **kwargs)
        allowed = r.status_code not in (401, 403)
        assert allowed == (who in EXPECTED[op.name]), f"{op.name} as {who}: {r.status_code} {r.text[:200]}"
        if not allowed:
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["code"] in {"unauthenticated", "forbidden"}
