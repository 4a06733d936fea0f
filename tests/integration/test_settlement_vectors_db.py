"""Every worked vector of SETTLEMENT.md through the real settlement service and PostgreSQL.

Each vector's claims, assets (pledgors, appraisals, ranks), lots and pools become database rows;
its events go through ``listings.settlement`` (holds, closes, defaults, costs), ``record_receipt``
(balances and licence receipts) and ``finalize``. The postings the database recorded, mapped back
to the vector's names, must equal the expected ones in order and to the fen; balances, per-claim
figures, surplus and pool compensation too; and ``reconcile`` finds nothing wrong afterwards.
"""

from __future__ import annotations

import json
import secrets
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from listings import disposals, settlement
from listings.tables import assets, claims, disposals as disposal_rows, listing_assets, listings, pledges
from market import identity, ledger_store
from market.config import Settings
from market.parties import Actor, Role
from tests.support.factories import credit_code

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "settlement_vectors.json"
COPY = ROOT / "tests" / "data" / "settlement_vectors.json"
VECTORS = json.loads((SHARED if SHARED.exists() else COPY).read_text())["vectors"]
GLOBAL = ("fee:platform", "fee:commission")


class World:
    """The vector's names and the database ids they became."""

    def __init__(self, run: str) -> None:
        self.run = run
        self.names: dict[str, str] = {}  # database account -> vector account
        self.orgs: dict[str, int] = {}
        self.claims: dict[str, int] = {}
        self.assets: dict[str, int] = {}
        self.lots: dict[str, int] = {}
        self.pools: dict[str, str] = {}
        self.disposal: dict[str, int] = {}

    def vector_name(self, account: str) -> str:
        return self.names.get(account, account)


async def _org(conn: AsyncConnection, kind: Role, name: str) -> int:
    org = await identity.create_org(conn, None, name=name, kind=kind, credit_code=credit_code())
    return org.id


async def _operator(conn: AsyncConnection) -> Actor:
    user = await identity.create_operator(
        conn, email=f"op-{secrets.token_hex(4)}@example.com", password="operator-pass-1"
    )
    return Actor(user.id, user.org_id, Role.OPERATOR, "op@example.com")


async def build(conn: AsyncConnection, vec: dict[str, Any]) -> World:
    world = World(secrets.token_hex(3))
    data = vec["input"]
    bidders = {e.get(k) for e in data["events"] for k in ("bidder", "winner", "payer") if e.get(k)}
    for b in sorted({c["bank"] for c in data["claims"].values()}):
        world.orgs[b] = await _org(conn, Role.BANK, f"bank {b} {world.run}")
    for x in sorted(bidders):
        world.orgs[x] = await _org(conn, Role.BUYER, f"buyer {x} {world.run}")
        world.names[f"buyer:{world.orgs[x]}"] = f"buyer:{x}"
    for cid, c in data["claims"].items():
        world.claims[cid] = await _claim(conn, world, c)
        for bucket in ("costs", "interest", "principal"):
            world.names[f"claim:{world.claims[cid]}:{bucket}"] = f"claim:{cid}:{bucket}"
        world.names[f"poolcomp:{world.claims[cid]}"] = f"poolcomp:{cid}"
    for aid, a in data["assets"].items():
        world.assets[aid] = await _asset(conn, world, data, aid, a)
        world.names[f"pledgor:{settlement.pledgor_of(world.assets[aid])}"] = f"pledgor:{a['pledgor']}"
    for lid, lot in data["lots"].items():
        world.lots[lid] = await _listing(conn, world, data, lot)
        lot_db = world.lots[lid]
        for prefix in ("escrow", "forfeit", "costs"):
            world.names[f"{prefix}:{lot_db}"] = f"{prefix}:{lid}"
        for x in bidders:
            world.names[f"hold:{lot_db}:{world.orgs[x]}"] = f"hold:{lid}:{x}"
    return world


async def _claim(conn: AsyncConnection, world: World, c: dict[str, Any]) -> int:
    row = (
        await conn.execute(
            insert(claims)
            .values(
                bank_org_id=world.orgs[c["bank"]],
                loan_no=f"V{world.run}{len(world.claims)}",
                borrower_name="借款人",
                borrower_credit_code=credit_code(),
                principal_fen=c["principal_fen"],
                interest_fen=c["interest_fen"],
                default_interest_fen=c.get("default_interest_fen", 0),
                costs_fen=c["costs_fen"],
                defaulted_on=date.today() - timedelta(days=30),
                bucket_order=c.get("order"),
                pool_code=f"{c['pool']}{world.run}" if c.get("pool") else None,
            )
            .returning(claims.c.id)
        )
    ).scalar_one()
    return int(row)


async def _asset(
    conn: AsyncConnection, world: World, data: dict[str, Any], aid: str, a: dict[str, Any]
) -> int:
    first_claim = data["claims"][a["secures"][0]["claim"]]
    row = (
        await conn.execute(
            insert(assets)
            .values(
                bank_org_id=world.orgs[first_claim["bank"]],
                kind="software_copyright",
                registration_no=f"{aid}-{world.run}",
                title_zh=f"软件 {aid}",
                holder=a["pledgor"],
                legal_status="registered",
                appraisal_fen=a["appraisal_fen"],
            )
            .returning(assets.c.id)
        )
    ).scalar_one()
    for p in a["secures"]:  # ranks by registration date: rank r registered on day r; equal ranks share a day
        await conn.execute(
            insert(pledges).values(
                claim_id=world.claims[p["claim"]],
                asset_id=row,
                registration_no=f"P{p['rank']}",
                registered_on=date(2020, 1, 1) + timedelta(days=p["rank"]),
            )
        )
    return int(row)


async def _listing(conn: AsyncConnection, world: World, data: dict[str, Any], lot: dict[str, Any]) -> int:
    first_asset = world.assets[lot["assets"][0]]
    bank = (await conn.execute(select(assets.c.bank_org_id).where(assets.c.id == first_asset))).scalar_one()
    mode = (
        "license"
        if lot.get("mode") in ("licence", "license")
        else ("bundle" if len(lot["assets"]) > 1 else "transfer")
    )
    row = (
        await conn.execute(
            insert(listings)
            .values(bank_org_id=bank, title=f"lot {world.run}", mode=mode, status="published")
            .returning(listings.c.id)
        )
    ).scalar_one()
    await conn.execute(
        insert(listing_assets),
        [
            {"listing_id": row, "asset_id": world.assets[a], "position": i}
            for i, a in enumerate(lot["assets"])
        ],
    )
    return int(row)


def settings_for(settings: Settings, vec: dict[str, Any]) -> Settings:
    lots = list(vec["input"]["lots"].values())
    bps = {lot.get("platform_fee_bp", 0) for lot in lots}
    commission = {bool(lot.get("buyer_commission")) for lot in lots}
    assert len(bps) == 1 and len(commission) == 1, "one fee schedule per vector"
    return settings.model_copy(
        update={"platform_fee_bp": bps.pop(), "buyer_commission": "slices" if commission.pop() else "off"}
    )


async def play(
    conn: AsyncConnection, world: World, vec: dict[str, Any], settings: Settings, op: Actor
) -> list[dict[str, Any]]:
    data = vec["input"]
    out: list[dict[str, Any]] = []
    for pid, pool in data.get("pools", {}).items():
        code = f"{pid}{world.run}"
        world.pools[pid] = code
        world.names[f"pool:{code}"], world.names[f"poolfund:{code}"] = f"pool:{pid}", f"poolfund:{pid}"
        await settlement.create_pool(
            conn,
            op,
            code=code,
            name=pid,
            share_bp=pool["share_bp"],
            per_loan_cap_fen=pool.get("per_loan_cap_fen"),
            per_enterprise_cap_fen=pool.get("per_enterprise_cap_fen"),
        )
        out.append({"debit": f"poolfund:{code}", "credit": f"pool:{code}", "amount_fen": pool["balance_fen"]})
        await settlement.fund_pool(conn, op, code, pool["balance_fen"], "opening")
    for lid, lot in data["lots"].items():
        if lot.get("disposal_costs_fen"):
            await settlement.record_cost(
                conn,
                op,
                world.lots[lid],
                lot["disposal_costs_fen"],
                "lot costs",
                f"{world.run}-opening",
                settings,
            )
        if lot.get("mode") in ("licence", "license"):
            first_payer = next(
                e["payer"] for e in data["events"] if e.get("lot") == lid and e["type"] == "receipt"
            )
            world.disposal[lid] = await _disposal(conn, world, lid, first_payer, 1, "negotiation")
    for event in data["events"]:
        out += await _event(conn, world, event, data, settings, op)
    return out


async def _disposal(
    conn: AsyncConnection, world: World, lid: str, buyer: str, price: int, source: str
) -> int:
    listing = world.lots[lid]
    bank = (await conn.execute(select(listings.c.bank_org_id).where(listings.c.id == listing))).scalar_one()
    row = await disposals.create(
        conn,
        None,
        listing_id=listing,
        bank_org_id=bank,
        buyer_org_id=world.orgs[buyer],
        source=source,
        source_ref=f"{world.run}-{lid}-{secrets.token_hex(2)}",
        price_fen=price,
    )
    return int(row.id)


async def _event(
    conn: AsyncConnection,
    world: World,
    e: dict[str, Any],
    data: dict[str, Any],
    settings: Settings,
    op: Actor,
) -> list[dict[str, Any]]:
    kind, eid = e["type"], f"{world.run}:{e['id']}"
    if kind in ("pay", "receipt"):
        r = await settlement.record_receipt(
            conn,
            op,
            world.disposal[e["lot"]],
            e["amount_fen"],
            f"{world.run}-{e['id']}",
            "2026-01-01",
            settings,
        )
        return [] if r.duplicate else r.postings  # a replay answers with the original postings
    if kind == "cost":
        return (
            await settlement.record_cost(
                conn, op, world.lots[e["lot"]], e["amount_fen"], e["memo"], eid, settings
            )
        ).postings
    if kind == "finalize":
        posted: list[dict[str, Any]] = []
        for lid in data["lots"]:
            posted += (await settlement.finalize(conn, op, world.lots[lid], settings)).postings
        return posted
    event: dict[str, Any] = {"id": eid, "type": kind, "lot": str(world.lots[e["lot"]])}
    if kind == "hold":
        event |= {"bidder": str(world.orgs[e["bidder"]]), "amount_fen": e["amount_fen"]}
    if kind == "close":
        event |= {"winner": str(world.orgs[e["winner"]]), "price_fen": e["price_fen"]}
        world.disposal[e["lot"]] = await _disposal(
            conn, world, e["lot"], e["winner"], e["price_fen"], "auction"
        )
    result = await settlement.apply(conn, world.lots[e["lot"]], event, settings)
    if kind == "default":
        await conn.execute(
            update(disposal_rows)
            .where(disposal_rows.c.id == world.disposal[e["lot"]])
            .values(stage="defaulted")
        )
    return result.postings


@pytest.mark.parametrize("vec", VECTORS, ids=[v["name"] for v in VECTORS])
async def test_vector_through_the_database(
    vec: dict[str, Any], engine: AsyncEngine, settings: Settings
) -> None:
    expected = vec["expected"]
    async with engine.begin() as conn:
        op = await _operator(conn)
        world = await build(conn, vec)
        before = await ledger_store.balances(conn, GLOBAL)
    async with engine.begin() as conn:
        posted = await play(conn, world, vec, settings_for(settings, vec), op)
    got = [(world.vector_name(p["debit"]), world.vector_name(p["credit"]), p["amount_fen"]) for p in posted]
    want = [(p["debit"], p["credit"], p["amount_fen"]) for p in expected["postings"]]
    assert got == want
    async with engine.connect() as conn:
        accounts = list(world.names) + list(GLOBAL)
        now = await ledger_store.balances(conn, accounts)
        for acct, value in now.items():
            name = world.vector_name(acct)
            if name in expected["balances"]:
                delta = value - before.get(acct, 0) if acct in GLOBAL else value
                assert delta == expected["balances"][name], name
        for cid, figures in expected["per_claim"].items():
            recovered = await ledger_store.claim_recovered(conn, world.claims[cid])
            assert {k.removesuffix("_fen"): v for k, v in recovered.items()} == figures["recovered"], cid
        surplus = sum(v for a, v in now.items() if a.startswith("pledgor:"))
        assert surplus == expected["surplus_to_pledgor_fen"]
        compensation = sum(v for a, v in now.items() if a.startswith("poolcomp:"))
        assert compensation == expected["pool_compensation_fen"]
        assert await ledger_store.reconcile(conn) == []
