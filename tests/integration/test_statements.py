"""Statements and reports (SETTLEMENT.md §13) against the ledger they are computed from.

Settled disposals are built through the real settlement service with the worked vectors (the
machinery of ``test_settlement_vectors_db``): rows for the claims, assets, lots and pools, then
every event through ``listings.settlement``. Then:

- a claim statement's figures are the ledger's: recovered = ``claim_recovered``, the postings
  sum to it per bucket, opening = recovered + outstanding, status and pool compensation — and
  the hand-worked figures of the vector; "as of" replays only the entries effective by then;
- a bank reads only its own claim and bank statements (another bank: 404, same answer as a
  claim that does not exist); reports are for operators;
- the disposals report's totals equal the sums of the ledger lines of those lots (fee:platform,
  claim:*, pledgor:*, poolcomp:*, costs:*) and the vectors' own totals;
- the CSV has a BOM and escapes a listing title that starts with ``=``; the XLSX reopens with
  exact CNY amounts; the PDF embeds the CJK font; ``market report`` writes the file.
"""

from __future__ import annotations

import asyncio
import codecs
import copy
import csv
import io
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from listings import statements
from listings.tables import claims, listings
from market import identity, ledger_store
from market.clock import today_cst
from market.config import Settings
from market.db import transaction
from market.errors import NotFound
from market.parties import Actor, Role
from tests.integration import test_settlement_vectors_db as vectors
from tests.support.factories import PASSWORD, Party, email, make_party

ROOT = Path(__file__).resolve().parents[2]
FORMULA_TITLE = '=HYPERLINK("http://evil.example/","点我")'
BUCKETS = ("costs", "interest", "principal")
BY_NAME = {v["name"]: v for v in vectors.VECTORS}
USED = (
    "bundle_three_assets_rounding",
    "commission_across_2m",
    "winner_default_reauction",
    "licence_upfront_instalments",
    "risk_pool_cap_then_balance",
)


@dataclass
class Built:
    vec: dict[str, Any]
    world: vectors.World
    posted: list[dict[str, Any]]

    @property
    def lots(self) -> list[int]:
        return list(self.world.lots.values())

    def bank(self, name: str = "B1") -> int:
        return self.world.orgs[name]


async def _build(engine: AsyncEngine, settings: Settings, name: str, op: Actor) -> Built:
    vec = BY_NAME[name]
    async with engine.begin() as conn:
        world = await vectors.build(conn, vec)
    async with engine.begin() as conn:
        posted = await vectors.play(conn, world, vec, vectors.settings_for(settings, vec), op)
    return Built(vec, world, posted)


@pytest.fixture(scope="module")
async def operator_actor(engine: AsyncEngine) -> Actor:
    async with engine.begin() as conn:
        return await vectors._operator(conn)


@pytest.fixture(scope="module")
async def built(engine: AsyncEngine, settings: Settings, operator_actor: Actor) -> dict[str, Built]:
    out = {name: await _build(engine, settings, name, operator_actor) for name in USED}
    lot = out["winner_default_reauction"].world.lots["L1"]
    async with engine.begin() as conn:  # a title a spreadsheet would run as a formula
        await conn.execute(update(listings).where(listings.c.id == lot).values(title=FORMULA_TITLE))
    return out


def _actor(org_id: int, role: Role = Role.BANK) -> Actor:
    return Actor(0, org_id, role, "someone@example.com")


async def _user_of(engine: AsyncEngine, client: httpx.AsyncClient, org_id: int) -> Party:
    """A signed-in user of an existing organisation (the vectors' banks have none)."""
    addr = email("bank")
    async with transaction(engine) as conn:
        user = await identity.create_user(conn, None, org_id=org_id, email=addr, password=PASSWORD)
    r = await client.post("/api/v1/session", json={"email": addr, "password": PASSWORD})
    assert r.status_code == 201, r.text
    return Party(org_id, user.id, addr, r.json()["token"])


def _period() -> tuple[date, date]:
    """A few days around today (CST): everything the fixtures posted, even across midnight."""
    today = today_cst()
    return today - timedelta(days=1), today + timedelta(days=1)


async def _ledger_sums(engine: AsyncEngine, lots: list[int], start: date, end: date) -> dict[str, int]:
    """Straight from the journal: Σ lines per account class over the lots' entries in the period."""
    sql = text(
        "SELECT "
        "coalesce(sum(l.amount_fen) FILTER (WHERE l.account = 'fee:platform'), 0) AS platform_fee_fen, "
        "coalesce(sum(l.amount_fen) FILTER (WHERE l.account = 'fee:commission'), 0) AS commission_fen, "
        "coalesce(sum(l.amount_fen) FILTER (WHERE l.account LIKE 'costs:%'), 0) AS disposal_costs_fen, "
        "coalesce(sum(l.amount_fen) FILTER (WHERE l.account LIKE 'claim:%'), 0) AS to_claims_fen, "
        "coalesce(sum(l.amount_fen) FILTER (WHERE l.account LIKE 'pledgor:%'), 0) AS surplus_fen, "
        "coalesce(sum(l.amount_fen) FILTER (WHERE l.account LIKE 'poolcomp:%'), 0) AS pool_compensation_fen "
        "FROM ledger_lines l JOIN ledger_entries e ON e.id = l.entry_id "
        "WHERE e.scope = ANY(:scopes) AND e.effective_at >= :start AND e.effective_at < :end"
    )
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sql,
                {
                    "scopes": [f"listing:{lot}" for lot in lots],
                    "start": statements.start_of_day(start),
                    "end": statements.start_of_day(end + timedelta(days=1)),
                },
            )
        ).one()
    return {k: int(v) for k, v in row._mapping.items()}


# --------------------------------------------------------------------------- claim statements


@pytest.mark.parametrize("name", USED)
async def test_claim_statement_figures_are_the_ledgers(
    name: str, built: dict[str, Built], engine: AsyncEngine
) -> None:
    b = built[name]
    expected = b.vec["expected"]["per_claim"]
    async with engine.connect() as conn:
        for cid, claim_id in b.world.claims.items():
            bank = b.world.orgs[b.vec["input"]["claims"][cid]["bank"]]
            st = await statements.claim_statement(conn, _actor(bank), claim_id)
            ledger = await ledger_store.claim_recovered(conn, claim_id)
            poolcomp = (await ledger_store.balances(conn, [f"poolcomp:{claim_id}"]))[f"poolcomp:{claim_id}"]
            assert st["check"] is True
            for row in st["buckets"]:
                bucket = row["bucket"]
                assert row["recovered_fen"] == ledger[f"{bucket}_fen"]
                assert row["recovered_fen"] == sum(
                    p["amount_fen"] for p in st["postings"] if p["bucket"] == bucket
                )
                assert row["opening_fen"] == row["recovered_fen"] + row["outstanding_fen"]
                assert row["recovered_fen"] == expected[cid]["recovered"][bucket], (cid, bucket)
                assert row["outstanding_fen"] == expected[cid]["outstanding"][bucket], (cid, bucket)
            assert st["recovered_fen"] == sum(ledger.values())
            assert st["pool_compensation_fen"] == poolcomp
            assert all(p["listing_id"] in b.lots for p in st["postings"])
            outstanding = sum(expected[cid]["outstanding"].values())
            finalized = any(e["type"] == "finalize" for e in b.vec["input"]["events"])
            want = "paid" if outstanding == 0 else ("finalized" if finalized else "open")
            assert st["status"] == want
            # the claim row's own status, kept by settlement as it applies each event
            stored = (
                await conn.execute(text("SELECT status FROM claims WHERE id = :id"), {"id": claim_id})
            ).scalar_one()
            assert stored == want or (want == "open" and stored not in ("paid", "finalized")), (cid, stored)
            assert st["shortfall_fen"] == (outstanding if want == "finalized" else 0)


async def test_claim_statement_names_asset_and_rank_of_each_posting(
    built: dict[str, Built], engine: AsyncEngine
) -> None:
    b = built["bundle_three_assets_rounding"]
    assets = set(b.world.assets.values())
    async with engine.connect() as conn:
        for claim_id in b.world.claims.values():
            st = await statements.claim_statement(conn, _actor(0, Role.OPERATOR), claim_id)
            for p in st["postings"]:
                assert p["asset_id"] in assets and p["rank"] >= 1, p


async def test_pool_compensation_and_shortfall_on_the_statement(
    built: dict[str, Built], engine: AsyncEngine
) -> None:
    b = built["risk_pool_cap_then_balance"]
    async with engine.connect() as conn:
        total = 0
        for claim_id in b.world.claims.values():
            st = await statements.claim_statement(conn, _actor(0, Role.OPERATOR), claim_id)
            assert st["status"] == "finalized" and st["shortfall_fen"] == st["outstanding_fen"] > 0
            assert st["finalized_lots"] and st["compensation_postings"]
            total += st["pool_compensation_fen"]
    assert total == b.vec["expected"]["pool_compensation_fen"]


async def test_claim_statement_as_of_replays_only_earlier_entries(
    engine: AsyncEngine, settings: Settings, operator_actor: Actor
) -> None:
    vec = BY_NAME["licence_upfront_instalments"]
    first_part = copy.deepcopy(vec)
    first_part["input"]["events"] = vec["input"]["events"][:2]
    async with engine.begin() as conn:
        world = await vectors.build(conn, vec)
    fees = vectors.settings_for(settings, vec)
    async with engine.begin() as conn:
        early = await vectors.play(conn, world, first_part, fees, operator_actor)
    async with engine.connect() as conn:
        between = (await conn.execute(text("SELECT clock_timestamp()"))).scalar_one()
    async with engine.begin() as conn:
        for event in vec["input"]["events"][2:]:
            await vectors._event(conn, world, event, vec["input"], fees, operator_actor)
    claim_id = world.claims["C1"]
    early_by_bucket = {
        b: sum(p["amount_fen"] for p in early if p["credit"] == f"claim:{claim_id}:{b}") for b in BUCKETS
    }
    assert sum(early_by_bucket.values()) > 0
    async with engine.connect() as conn:
        actor = _actor(world.orgs["B1"])
        then = await statements.claim_statement(conn, actor, claim_id, as_of=between)
        now = await statements.claim_statement(conn, actor, claim_id)
        before = await statements.claim_statement(
            conn, actor, claim_id, as_of=datetime(2000, 1, 1).astimezone()
        )
        for row in then["buckets"]:
            want = await ledger_store.balance_at(conn, f"claim:{claim_id}:{row['bucket']}", as_of=between)
            assert row["recovered_fen"] == want == early_by_bucket[row["bucket"]]
    assert then["check"] and now["check"] and before["check"]
    assert then["recovered_fen"] < now["recovered_fen"]
    assert sum(p["amount_fen"] for p in then["postings"]) == then["recovered_fen"]
    assert before["recovered_fen"] == 0 and before["postings"] == [] and before["status"] == "open"
    assert now["status"] == "paid"  # the claim closes inside the second instalment (vector 9)


async def test_a_bank_cannot_read_another_banks_claim_statement(
    built: dict[str, Built], engine: AsyncEngine
) -> None:
    b = built["commission_across_2m"]
    claim_id = b.world.claims["C1"]
    async with engine.connect() as conn:
        with pytest.raises(NotFound):
            await statements.claim_statement(conn, _actor(b.bank() + 10**9), claim_id)
        with pytest.raises(NotFound):
            await statements.bank_statement(conn, _actor(b.bank() + 10**9), b.bank())


async def test_the_check_line_catches_a_register_that_disagrees_with_the_ledger(
    built: dict[str, Built], engine: AsyncEngine
) -> None:
    """Claims stay ``open`` in the register, so an import may still change their amounts after
    settlement; the ledger's bucket ceilings do not follow. The statement's check line says so."""
    b = built["winner_default_reauction"]
    claim_id = b.world.claims["C1"]
    async with engine.connect() as conn:
        outer = await conn.begin()
        try:
            await conn.execute(update(claims).where(claims.c.id == claim_id).values(principal_fen=1))
            st = await statements.claim_statement(conn, _actor(0, Role.OPERATOR), claim_id)
        finally:
            await outer.rollback()
    principal = next(row for row in st["buckets"] if row["bucket"] == "principal")
    assert principal["outstanding_fen"] < 0 and principal["check"] is False and st["check"] is False


# --------------------------------------------------------------------------- bank statement


async def test_bank_statement_payout_due_is_claim_balances_plus_pool_compensation(
    built: dict[str, Built], engine: AsyncEngine
) -> None:
    b = built["risk_pool_cap_then_balance"]
    async with engine.connect() as conn:
        for bank_name in ("B1", "B2"):
            bank = b.bank(bank_name)
            st = await statements.bank_statement(conn, _actor(bank), bank)
            mine = [cid for cid, c in b.vec["input"]["claims"].items() if c["bank"] == bank_name]
            names = [a for cid in mine for a in ledger_store.claim_accounts(b.world.claims[cid])]
            names += [f"poolcomp:{b.world.claims[cid]}" for cid in mine]
            balances = await ledger_store.balances(conn, names)
            assert st["check"] is True
            assert st["payout_due_fen"] == sum(balances.values())
            assert {c["claim_id"] for c in st["claims"]} == {b.world.claims[cid] for cid in mine}
            for c in st["claims"]:
                assert c["status"] == "finalized"
                rec = await ledger_store.claim_recovered(conn, c["claim_id"])
                assert c["recovered_fen"] == sum(rec.values())


# --------------------------------------------------------------------------- disposals report


async def test_report_totals_equal_the_ledger_lines_of_those_lots(
    built: dict[str, Built], engine: AsyncEngine
) -> None:
    start, end = _period()
    lots = [lot for b in built.values() for lot in b.lots]
    async with engine.connect() as conn:
        report = await statements.disposals_report(conn, start, end)
    assert report["check"] is True
    assert report["totals"] == {
        k: sum(r[k] for r in report["rows"]) for k in report["totals"] if k != "disposals"
    } | {"disposals": report["totals"]["disposals"]}
    ours = [r for r in report["rows"] if r["listing_id"] in lots]
    assert {r["listing_id"] for r in ours} == set(lots)
    assert all(r["check"] for r in ours)
    ledger = await _ledger_sums(engine, lots, start, end)
    for key, value in ledger.items():
        assert sum(r[key] for r in ours) == value, key
    # and the vectors' hand-worked figures
    assert ledger["surplus_fen"] == sum(b.vec["expected"]["surplus_to_pledgor_fen"] for b in built.values())
    assert ledger["pool_compensation_fen"] == sum(
        b.vec["expected"]["pool_compensation_fen"] for b in built.values()
    )
    assert ledger["to_claims_fen"] == sum(
        sum(c["recovered"].values()) for b in built.values() for c in b.vec["expected"]["per_claim"].values()
    )


async def test_report_per_bank_subtotals_and_bank_filter(
    built: dict[str, Built], engine: AsyncEngine
) -> None:
    start, end = _period()
    b = built["winner_default_reauction"]
    async with engine.connect() as conn:
        everything = await statements.disposals_report(conn, start, end)
        mine = await statements.disposals_report(conn, start, end, bank_org_id=b.bank())
    assert mine["check"] is True
    assert {r["bank_org_id"] for r in mine["rows"]} == {b.bank()}
    assert [s["bank_org_id"] for s in mine["banks"]] == [b.bank()]
    subtotal = next(s for s in everything["banks"] if s["bank_org_id"] == b.bank())
    assert {k: v for k, v in subtotal.items() if k.endswith("_fen")} == {
        k: v for k, v in mine["totals"].items() if k.endswith("_fen")
    }
    ledger = await _ledger_sums(engine, b.lots, start, end)
    assert {k: mine["totals"][k] for k in ledger} == ledger
    # a defaulted round and its re-auction: two disposals of one lot, the forfeit paid costs
    assert len({r["disposal_id"] for r in mine["rows"]}) == 2
    assert mine["totals"]["disposal_costs_fen"] > 0
    assert mine["totals"]["received_fen"] == sum(mine["totals"][k] for k in statements.RECEIVED_GOES_TO)


async def test_an_empty_period_reports_zeros(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        report = await statements.disposals_report(conn, date(1999, 1, 1), date(1999, 3, 31))
    assert report["rows"] == [] and report["check"] is True and report["period"] == "1999Q1"
    assert all(v == 0 for v in report["totals"].values())


# --------------------------------------------------------------------------- API and files


async def test_api_claim_statement_access(
    built: dict[str, Built], engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    b = built["commission_across_2m"]
    claim_id = b.world.claims["C1"]
    owner = await _user_of(engine, client, b.bank())
    other = await make_party(engine, client, Role.BANK)
    buyer = await make_party(engine, client, Role.BUYER)
    operator = await make_party(engine, client, Role.OPERATOR)
    path = f"/api/v1/claims/{claim_id}/statement"
    mine = await client.get(path, headers=owner.headers)
    assert mine.status_code == 200, mine.text
    assert mine.json()["claim_id"] == claim_id and mine.json()["check"] is True
    assert (await client.get(path, headers=operator.headers)).status_code == 200
    theirs = await client.get(path, headers=other.headers)
    missing = await client.get("/api/v1/claims/999999999999/statement", headers=other.headers)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["code"] == missing.json()["code"]  # nothing tells "not yours" from "none"
    assert (await client.get(path, headers=buyer.headers)).status_code == 403
    for fmt in ("csv", "xlsx", "pdf"):
        r = await client.get(f"{path}.{fmt}", headers=other.headers)
        assert r.status_code == 404, (fmt, r.text)
    bank_path = f"/api/v1/banks/{b.bank()}/statement"
    assert (await client.get(bank_path, headers=owner.headers)).status_code == 200
    assert (await client.get(bank_path, headers=other.headers)).status_code == 404
    assert (await client.get(bank_path, headers=operator.headers)).status_code == 200
    bad = await client.get(path, params={"as_of": "yesterday"}, headers=owner.headers)
    assert bad.status_code == 422
    old = await client.get(path, params={"as_of": "2000-01-01"}, headers=owner.headers)
    assert old.status_code == 200 and old.json()["recovered_fen"] == 0


async def test_api_claim_statement_files(
    built: dict[str, Built], engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    b = built["winner_default_reauction"]
    claim_id = b.world.claims["C1"]
    owner = await _user_of(engine, client, b.bank())
    st = (await client.get(f"/api/v1/claims/{claim_id}/statement", headers=owner.headers)).json()
    r = await client.get(f"/api/v1/claims/{claim_id}/statement.csv", headers=owner.headers)
    assert r.status_code == 200
    assert r.headers["content-disposition"] == f'attachment; filename="claim-{claim_id}-statement.csv"'
    assert r.content.startswith(codecs.BOM_UTF8) and b"\r\n" in r.content
    rows = list(csv.reader(io.StringIO(r.content[3:].decode("utf-8"))))
    total = next(row for row in rows if row and row[0] == "合计" and len(row) == 4)
    assert [int(x) for x in total[1:]] == [st["opening_fen"], st["recovered_fen"], st["outstanding_fen"]]
    x = await client.get(
        f"/api/v1/claims/{claim_id}/statement.xlsx", params={"lang": "en"}, headers=owner.headers
    )
    assert x.status_code == 200 and x.headers["content-type"].startswith("application/vnd.openxmlformats")
    book = openpyxl.load_workbook(io.BytesIO(x.content))
    sheet = book.worksheets[0]
    totals = next(r for r in sheet.iter_rows(values_only=True) if r[0] == "Total")
    assert [Decimal(str(v)) for v in totals[1:4]] == [
        Decimal(st[k]) / 100 for k in ("opening_fen", "recovered_fen", "outstanding_fen")
    ]
    p = await client.get(f"/api/v1/claims/{claim_id}/statement.pdf", headers=owner.headers)
    assert p.status_code == 200 and p.content.startswith(b"%PDF")
    assert re.search(rb"/BaseFont\s*/[A-Z]{6}\+NotoSansCJK", p.content)


async def test_api_report_json_and_files(
    built: dict[str, Built], engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    b = built["winner_default_reauction"]
    start, end = _period()
    operator = await make_party(engine, client, Role.OPERATOR)
    bank = await _user_of(engine, client, b.bank())
    params = {"from": start.isoformat(), "to": end.isoformat(), "bank": str(b.bank())}
    assert (await client.get("/api/v1/reports/disposals", headers=bank.headers)).status_code == 403
    r = await client.get("/api/v1/reports/disposals", params=params, headers=operator.headers)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["from"] == start.isoformat() and report["check"] is True
    assert {k: report["totals"][k] for k in report["ledger"]} == report["ledger"]
    default = await client.get("/api/v1/reports/disposals", headers=operator.headers)
    assert re.fullmatch(r"\d{4}Q[1-4]", default.json()["period"])
    backwards = await client.get(
        "/api/v1/reports/disposals",
        params={"from": "2026-02-01", "to": "2026-01-01"},
        headers=operator.headers,
    )
    assert backwards.status_code == 422
    huge = await client.get("/api/v1/reports/disposals", params={"bank": "9" * 20}, headers=operator.headers)
    assert huge.status_code == 422

    c = await client.get("/api/v1/reports/disposals.csv", params=params, headers=operator.headers)
    assert c.status_code == 200 and c.headers["content-type"].startswith("text/csv")
    assert c.headers["content-disposition"].startswith('attachment; filename="disposals-')
    assert c.content.startswith(codecs.BOM_UTF8)
    body = c.content[3:].decode("utf-8")
    assert "\r\n" in body and "\n" not in body.replace("\r\n", "")
    cells = [cell for row in csv.reader(io.StringIO(body)) for cell in row]
    assert "'" + FORMULA_TITLE in cells
    assert not any(cell.startswith(("=", "+", "@")) for cell in cells)
    rows = list(csv.reader(io.StringIO(body)))
    total_rows = [row for row in rows if row and row[0] == "合计"]
    assert total_rows, rows
    assert int(total_rows[-1][-1]) == report["totals"]["pool_compensation_fen"]
    assert int(total_rows[-1][-3]) == report["totals"]["to_claims_fen"]

    x = await client.get("/api/v1/reports/disposals.xlsx", params=params, headers=operator.headers)
    assert x.status_code == 200
    book = openpyxl.load_workbook(io.BytesIO(x.content))
    detail = book.worksheets[0]
    titles = [c.value for row in detail.iter_rows() for c in row if c.value == FORMULA_TITLE]
    assert titles, "the title is kept as text"
    assert all(c.data_type != "f" for row in detail.iter_rows() for c in row)
    per_bank = book.worksheets[1]
    totals = [r for r in per_bank.iter_rows(values_only=True) if r[0] == "合计"][-1]
    assert Decimal(str(totals[-3])) == Decimal(report["totals"]["to_claims_fen"]) / 100

    p = await client.get("/api/v1/reports/disposals.pdf", params=params, headers=operator.headers)
    assert p.status_code == 200 and p.content.startswith(b"%PDF-")
    assert p.headers["content-type"] == "application/pdf"
    assert re.search(rb"/BaseFont\s*/[A-Z]{6}\+NotoSansCJK", p.content)


# --------------------------------------------------------------------------- pages


async def _sign_in(client: httpx.AsyncClient, party: Party, lang: str = "zh_CN") -> None:
    client.headers.update({"accept": "text/html"})
    client.cookies.set("lang", lang)
    form = await client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token
    r = await client.post(
        "/login", data={"email": party.email, "password": PASSWORD, "csrf_token": token.group(1), "next": "/"}
    )
    assert r.status_code == 303, r.text


async def test_statement_pages(built: dict[str, Built], engine: AsyncEngine, app: Any) -> None:
    b = built["risk_pool_cap_then_balance"]
    claim_id = b.world.claims["C1"]
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as bank_client:
        owner = await _user_of(engine, bank_client, b.bank("B1"))
        await _sign_in(bank_client, owner)
        page = await bank_client.get(f"/bank/claims/{claim_id}/statement")
        assert page.status_code == 200, page.text
        assert 'data-status="finalized"' in page.text and "下载 CSV" in page.text
        assert f"/api/v1/claims/{claim_id}/statement.pdf" in page.text
        dl = await bank_client.get(f"/api/v1/claims/{claim_id}/statement.csv")  # the page's cookie is enough
        assert dl.status_code == 200 and dl.content.startswith(codecs.BOM_UTF8)
        other = await bank_client.get(f"/bank/claims/{b.world.claims['C2']}/statement")
        assert other.status_code == 404
        assert (await bank_client.get("/bank/claims/99999999999999999999/statement")).status_code == 404
        assert (await bank_client.get(f"/bank/claims/{claim_id}/statement?as_of=soon")).status_code == 422
        statement = await bank_client.get("/bank/statement")
        assert statement.status_code == 200 and f'data-id="{claim_id}"' in statement.text
        assert (await bank_client.get("/ops/reports")).status_code == 403
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as ops_client:
        operator = await make_party(engine, ops_client, Role.OPERATOR)
        await _sign_in(ops_client, operator, lang="en")
        start, end = _period()
        reports = await ops_client.get(f"/ops/reports?from={start}&to={end}")
        assert reports.status_code == 200, reports.text
        assert "Download XLSX" in reports.text and f'data-bank="{b.bank("B1")}"' in reports.text
        assert "Totals agree with the ledger" in reports.text
        bad = await ops_client.get("/ops/reports?from=2026-02-01&to=2026-01-01")
        assert bad.status_code == 422
        assert (await ops_client.get(f"/ops/banks/{b.bank('B2')}/statement")).status_code == 200


# --------------------------------------------------------------------------- CLI


async def test_market_report_writes_the_file(
    built: dict[str, Built], database_url: str, tmp_path: Path
) -> None:
    bank = built["winner_default_reauction"].bank()
    await asyncio.to_thread(_market_report_checks, bank, database_url, tmp_path)


def _market_report_checks(bank: int, database_url: str, tmp_path: Path) -> None:
    start, end = _period()
    env = {**os.environ, "DATABASE_URL": database_url, "MARKET_DATA_DIR": str(tmp_path / "data")}

    def market(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "market", *args]
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)

    args = ["report", "--from", start.isoformat(), "--to", end.isoformat(), "--bank", str(bank)]
    done = market(*args, "--format", "xlsx")
    assert done.returncode == 0, done.stderr + done.stdout
    written = tmp_path / f"disposals-{start.isoformat()}_{end.isoformat()}-bank{bank}.xlsx"
    assert written.is_file(), done.stdout
    assert str(written.resolve()) in done.stdout
    assert "to claims" in done.stdout and "Check:" in done.stdout
    assert len(openpyxl.load_workbook(written).worksheets) == 2
    out = tmp_path / "r.csv"
    done = market(*args, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert out.read_bytes().startswith(codecs.BOM_UTF8)
    default = market("report", "--format", "pdf", "--bank", str(bank))  # this quarter, named for it
    assert default.returncode == 0, default.stderr
    pdfs = list(tmp_path.glob(f"disposals-*Q*-bank{bank}.pdf"))
    assert len(pdfs) == 1 and re.fullmatch(rf"disposals-\d{{4}}Q[1-4]-bank{bank}\.pdf", pdfs[0].name)
    assert pdfs[0].read_bytes().startswith(b"%PDF")
    bad = market("report", "--format", "doc")
    assert bad.returncode == 2 and "--format" in bad.stderr
