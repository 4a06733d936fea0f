"""Bulk import of assets, claims and pledges: API, page and CLI against PostgreSQL.

The acceptance case: a 1,000-row file with exactly 10 bad rows reports exactly those 10
row numbers (with reasons) and writes nothing; the clean file imports in one transaction.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from listings import importer
from listings.tables import assets, claims, pledges
from market import identity
from market.parties import Role
from market.tables import audit_log, orgs
from tests.support.factories import PASSWORD, Party, make_party

ROOT = Path(__file__).resolve().parents[2]
CSV = {"content-type": "text/csv"}
N_ASSETS, N_CLAIMS, N_PLEDGES = 400, 300, 300


# --------------------------------------------------------------------------- files


def asset(i: int, **over: str) -> dict[str, str]:
    return {
        "record": "asset",
        "kind": "trademark",
        "registration_no": f"{i:08d}",  # leading zeros
        "title": f"商标{i}",
        "holder": f"出质人{i % 37}有限公司",
        "legal_status": "registered",
        "granted_on": "2019-08-07",
        "classes": "09;42",
        "appraisal_fen": str(1_000_000 + i),
        "appraised_on": "2024-01-15",
        **over,
    }


def claim(i: int, **over: str) -> dict[str, str]:
    return {
        "record": "claim",
        "loan_no": f"{i:010d}",
        "borrower_name": f"借款人{i}有限公司",
        "borrower_credit_code": identity.make_credit_code(f"borrower-{i}"),
        "principal_fen": str(50_000_000 + i),
        "interest_fen": "125000",
        "costs_fen": "0",
        "defaulted_on": "2024-03-31",
        **over,
    }


def pledge(claim_i: int, asset_i: int, **over: str) -> dict[str, str]:
    return {
        "record": "pledge",
        "loan_no": f"{claim_i:010d}",
        "kind": "trademark",
        "registration_no": f"{asset_i:08d}",
        "rank": "1",
        "registered_on": "2023-06-30",
        **over,
    }


def portfolio() -> list[dict[str, str]]:
    rows = [asset(i) for i in range(N_ASSETS)]
    rows += [claim(i) for i in range(N_CLAIMS)]
    rows += [pledge(i, i) for i in range(N_PLEDGES)]
    assert len(rows) == 1000
    return rows


def to_csv(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[c.key for c in importer.CSV_COLUMNS])
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def row_of(index: int) -> int:
    return index + 2  # the header is row 1


OTHER_BANKS_ASSET = "OTHER0001"


def with_ten_bad_rows(rows: list[dict[str, str]]) -> tuple[list[dict[str, str]], list[int]]:
    """Ten bad rows of ten kinds; bad claims are pledged by good rows (no cascade expected)."""
    bad = [dict(r) for r in rows]
    changes: dict[int, dict[str, str]] = {
        350: {"appraisal_fen": "1.5"},
        351: {"appraisal_fen": "1e3"},
        352: {"kind": "patent"},
        353: {"holder": ""},
        354: {"granted_on": "2024-02-30"},
        N_ASSETS + 10: {"principal_fen": "-100"},
        N_ASSETS + 20: {"borrower_credit_code": "123"},
        N_ASSETS + 30: {"defaulted_on": ""},
        N_ASSETS + N_CLAIMS + 5: {"registration_no": "99999999"},  # no such asset anywhere
        N_ASSETS + N_CLAIMS + 6: {"registration_no": OTHER_BANKS_ASSET},  # another bank's asset
    }
    for index, change in changes.items():
        bad[index] = {**bad[index], **change}
    return bad, sorted(row_of(i) for i in changes)


# --------------------------------------------------------------------------- helpers


async def post_import(
    client: httpx.AsyncClient,
    bank: Party,
    data: bytes,
    *,
    dry_run: bool,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return await client.post(
        f"/api/v1/imports?dry_run={'true' if dry_run else 'false'}",
        content=data,
        headers={**bank.headers, **CSV, **(headers or {})},
    )


async def stored(engine: AsyncEngine, org_id: int) -> tuple[int, int, int]:
    async with engine.connect() as conn:
        n_assets = await conn.scalar(
            select(func.count()).select_from(assets).where(assets.c.bank_org_id == org_id)
        )
        n_claims = await conn.scalar(
            select(func.count()).select_from(claims).where(claims.c.bank_org_id == org_id)
        )
        n_pledges = await conn.scalar(
            select(func.count())
            .select_from(pledges.join(claims, claims.c.id == pledges.c.claim_id))
            .where(claims.c.bank_org_id == org_id)
        )
    return int(n_assets or 0), int(n_claims or 0), int(n_pledges or 0)


async def import_audits(engine: AsyncEngine, org_id: int) -> list[Any]:
    async with engine.connect() as conn:
        q = select(audit_log).where(audit_log.c.entity == "import", audit_log.c.actor_org_id == org_id)
        return list((await conn.execute(q.order_by(audit_log.c.seq))).all())


def problem_rows(report: dict[str, Any]) -> list[int]:
    return sorted({p["row"] for p in report["problems"]})


async def other_bank_with_asset(client: httpx.AsyncClient, engine: AsyncEngine) -> Party:
    other = await make_party(engine, client, Role.BANK)
    r = await post_import(client, other, to_csv([asset(1, registration_no=OTHER_BANKS_ASSET)]), dry_run=False)
    assert r.status_code == 200, r.text
    return other


# --------------------------------------------------------------------------- the acceptance case


async def test_thousand_rows_with_ten_bad_ones_reports_exactly_those_ten_and_writes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await other_bank_with_asset(client, engine)
    bank = await make_party(engine, client, Role.BANK)
    rows, expected = with_ten_bad_rows(portfolio())
    data = to_csv(rows)

    dry = await post_import(client, bank, data, dry_run=True)
    assert dry.status_code == 200, dry.text
    report = dry.json()
    assert report["ok"] is False and report["applied"] is False and report["rows"] == 1000
    assert problem_rows(report) == expected
    assert report["bad_rows"] == 10
    assert all(p["reason"] and p["column"] and p["sheet"] == "csv" for p in report["problems"])
    by_row = {p["row"]: p for p in report["problems"]}
    assert by_row[row_of(350)]["code"] == "not_integer" and by_row[row_of(350)]["column"] == "appraisal_fen"
    assert by_row[row_of(N_ASSETS + 10)]["code"] == "negative"
    assert by_row[row_of(N_ASSETS + N_CLAIMS + 5)]["code"] == "unknown_asset"
    leaked = by_row[row_of(N_ASSETS + N_CLAIMS + 6)]
    assert leaked["code"] == "unknown_asset"
    assert leaked["reason"] == f"no trademark {OTHER_BANKS_ASSET} in this file or among your assets"

    real = await post_import(client, bank, data, dry_run=False)
    assert real.status_code == 422, real.text
    assert real.headers["content-type"].startswith("application/problem+json")
    body = real.json()
    assert body["code"] == "import_has_errors" and body["applied"] is False
    assert problem_rows(body) == expected
    assert await stored(engine, bank.org_id) == (0, 0, 0)
    assert await import_audits(engine, bank.org_id) == []


async def test_clean_file_imports_in_one_transaction_then_reimport_upserts(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    bank = await make_party(engine, client, Role.BANK)
    rows = portfolio()
    data = to_csv(rows)

    started = time.perf_counter()
    dry = await post_import(client, bank, data, dry_run=True)
    dry_seconds = time.perf_counter() - started
    assert dry.status_code == 200 and dry.json()["ok"] is True
    started = time.perf_counter()
    r = await post_import(client, bank, data, dry_run=False)
    import_seconds = time.perf_counter() - started
    print(f"\n1,000-row CSV through the API: dry run {dry_seconds:.2f}s, import {import_seconds:.2f}s")
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["ok"] is True and report["applied"] is True and report["problems"] == []
    assert report["counts"] == {
        "assets": {"created": N_ASSETS, "updated": 0, "unchanged": 0, "removed": 0},
        "claims": {"created": N_CLAIMS, "updated": 0, "unchanged": 0, "removed": 0},
        "pledges": {"created": N_PLEDGES, "updated": 0, "unchanged": 0, "removed": 0},
    }
    assert await stored(engine, bank.org_id) == (N_ASSETS, N_CLAIMS, N_PLEDGES)
    async with engine.connect() as conn:
        stamps = set(
            (
                await conn.execute(select(assets.c.created_at).where(assets.c.bank_org_id == bank.org_id))
            ).scalars()
        ) | set(
            (
                await conn.execute(select(claims.c.created_at).where(claims.c.bank_org_id == bank.org_id))
            ).scalars()
        )
        regs = set(
            (
                await conn.execute(
                    select(assets.c.registration_no).where(assets.c.bank_org_id == bank.org_id)
                )
            ).scalars()
        )
    assert len(stamps) == 1  # now() is the transaction's start: everything was written in one transaction
    assert "00000007" in regs and "7" not in regs
    audits = await import_audits(engine, bank.org_id)
    assert len(audits) == 1  # one entry per import, not per row
    assert audits[0].action == "import.apply" and audits[0].actor_user_id == bank.user_id
    assert audits[0].after["assets"]["created"] == N_ASSETS and audits[0].after["rows"] == 1000

    same = (await post_import(client, bank, data, dry_run=False)).json()
    assert same["counts"]["assets"] == {"created": 0, "updated": 0, "unchanged": N_ASSETS, "removed": 0}
    assert same["counts"]["claims"]["unchanged"] == N_CLAIMS
    assert same["counts"]["pledges"]["unchanged"] == N_PLEDGES

    changed = [dict(r) for r in rows]
    changed[0]["appraisal_fen"] = "2000000"  # asset 0
    changed[N_ASSETS]["principal_fen"] = "1"  # claim 0
    changed[N_ASSETS + N_CLAIMS + 1]["rank"] = "2"  # pledge of claim 1
    changed[N_ASSETS + N_CLAIMS + 2]["registration_no"] = f"{350:08d}"  # claim 2 now pledges asset 350
    r = await post_import(client, bank, to_csv(changed), dry_run=False)
    assert r.status_code == 200, r.text
    counts = r.json()["counts"]
    assert counts["assets"] == {"created": 0, "updated": 1, "unchanged": N_ASSETS - 1, "removed": 0}
    assert counts["claims"] == {"created": 0, "updated": 1, "unchanged": N_CLAIMS - 1, "removed": 0}
    assert counts["pledges"] == {"created": 1, "updated": 1, "unchanged": N_PLEDGES - 2, "removed": 1}
    assert await stored(engine, bank.org_id) == (N_ASSETS, N_CLAIMS, N_PLEDGES)  # no duplicates
    async with engine.connect() as conn:
        appraisal = await conn.scalar(
            select(assets.c.appraisal_fen).where(
                assets.c.bank_org_id == bank.org_id, assets.c.registration_no == "00000000"
            )
        )
        pledged = (
            await conn.execute(
                select(assets.c.registration_no)
                .join(pledges, pledges.c.asset_id == assets.c.id)
                .join(claims, claims.c.id == pledges.c.claim_id)
                .where(claims.c.bank_org_id == bank.org_id, claims.c.loan_no == f"{2:010d}")
            )
        ).scalars()
        assert list(pledged) == [f"{350:08d}"]
    assert appraisal == 2_000_000
    assert len(await import_audits(engine, bank.org_id)) == 3


async def test_dry_run_reports_what_would_happen_and_writes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    bank = await make_party(engine, client, Role.BANK)
    r = await post_import(client, bank, to_csv(portfolio()), dry_run=True)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["ok"] is True and report["dry_run"] is True and report["applied"] is False
    assert report["counts"]["assets"]["created"] == N_ASSETS
    assert report["counts"]["pledges"]["created"] == N_PLEDGES
    assert await stored(engine, bank.org_id) == (0, 0, 0)
    assert await import_audits(engine, bank.org_id) == []


async def test_another_banks_assets_cannot_be_referenced(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    other = await other_bank_with_asset(client, engine)
    bank = await make_party(engine, client, Role.BANK)
    rows = [claim(1), pledge(1, 0, registration_no=OTHER_BANKS_ASSET)]
    r = await post_import(client, bank, to_csv(rows), dry_run=True)
    report = r.json()
    assert [(p["row"], p["column"], p["code"]) for p in report["problems"]] == [
        (3, "registration_no", "unknown_asset")
    ]
    assert str(other.org_id) not in report["problems"][0]["reason"]
    # its own asset of the same kind and number is a different asset: no clash, no leak
    rows.insert(0, asset(0, registration_no=OTHER_BANKS_ASSET, title="我的"))
    r = await post_import(client, bank, to_csv(rows), dry_run=False)
    assert r.status_code == 200, r.text
    assert r.json()["counts"]["assets"]["created"] == 1
    assert await stored(engine, bank.org_id) == (1, 1, 1)
    async with engine.connect() as conn:
        titles = (
            await conn.execute(
                select(assets.c.bank_org_id, assets.c.title_zh).where(
                    assets.c.registration_no == OTHER_BANKS_ASSET,
                    assets.c.bank_org_id.in_([bank.org_id, other.org_id]),
                )
            )
        ).all()
    assert sorted(titles) == sorted([(bank.org_id, "我的"), (other.org_id, "商标1")])


async def test_a_claim_no_longer_open_cannot_change(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    bank = await make_party(engine, client, Role.BANK)
    rows = [asset(0), claim(0), pledge(0, 0)]
    assert (await post_import(client, bank, to_csv(rows), dry_run=False)).status_code == 200
    async with engine.begin() as conn:
        await conn.execute(
            update(claims).where(claims.c.bank_org_id == bank.org_id).values(status="in_disposal")
        )
    unchanged = await post_import(client, bank, to_csv(rows), dry_run=False)
    assert unchanged.status_code == 200, unchanged.text
    rows[1] = claim(0, principal_fen="1")
    r = await post_import(client, bank, to_csv(rows), dry_run=False)
    assert r.status_code == 422
    assert [(p["row"], p["code"]) for p in r.json()["problems"]] == [(3, "claim_not_open")]


async def test_xlsx_upload_templates_and_refusals(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    bank = await make_party(engine, client, Role.BANK)
    t = await client.get("/api/v1/imports/template.xlsx", headers=bank.headers)
    assert t.status_code == 200 and t.headers["content-type"] == importer.XLSX_MIME
    assert "attachment" in t.headers["content-disposition"]
    c = await client.get("/api/v1/imports/template.csv", headers=bank.headers)
    assert c.status_code == 200 and c.headers["content-type"].startswith("text/csv")

    r = await post_import(client, bank, t.content, dry_run=True, headers={"content-type": importer.XLSX_MIME})
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is True and r.json()["format"] == "xlsx" and r.json()["rows"] == 3
    r = await post_import(
        client, bank, b"record\n", dry_run=True, headers={"content-type": importer.XLSX_MIME}
    )
    assert [p["code"] for p in r.json()["problems"]] == ["unreadable"]

    wrong_type = await post_import(
        client, bank, c.content, dry_run=True, headers={"content-type": "application/json"}
    )
    assert wrong_type.status_code == 415
    too_big = await post_import(client, bank, b"x" * (importer.MAX_FILE_BYTES + 1), dry_run=True)
    assert too_big.status_code == 413 and too_big.json()["code"] == "payload_too_large"
    keyed = await post_import(client, bank, c.content, dry_run=False, headers={"idempotency-key": "k1"})
    assert keyed.status_code == 422 and keyed.json()["code"] == "validation_failed"
    assert await stored(engine, bank.org_id) == (0, 0, 0)


# --------------------------------------------------------------------------- CLI


def run_cli(database_url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "MARKET_DATA_DIR": str(tmp_path / "data"),
        "PYTHONPATH": str(ROOT),
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "market", "import", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


async def test_cli_dry_run_then_real_import_then_bad_rows(
    client: httpx.AsyncClient, engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    bank = await make_party(engine, client, Role.BANK)
    async with engine.connect() as conn:
        credit_code = await conn.scalar(select(orgs.c.credit_code).where(orgs.c.id == bank.org_id))
    good = tmp_path / "portfolio.csv"
    good.write_bytes(to_csv(portfolio()))

    dry = await asyncio.to_thread(
        run_cli, database_url, tmp_path, str(good), "--bank", str(bank.org_id), "--dry-run"
    )
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "would be created" in dry.stdout and "Dry run" in dry.stdout
    assert re.search(r"assets\s*│\s*400\b", dry.stdout), dry.stdout
    assert await stored(engine, bank.org_id) == (0, 0, 0)

    real = await asyncio.to_thread(run_cli, database_url, tmp_path, str(good), "--bank", str(credit_code))
    assert real.returncode == 0, real.stdout + real.stderr
    assert "Imported in one transaction" in real.stdout
    assert await stored(engine, bank.org_id) == (N_ASSETS, N_CLAIMS, N_PLEDGES)
    audits = await import_audits(engine, bank.org_id)
    assert len(audits) == 1 and audits[0].actor_user_id is None

    rows, expected = with_ten_bad_rows(portfolio())
    bad = tmp_path / "bad.csv"
    bad.write_bytes(to_csv(rows))
    failed = await asyncio.to_thread(run_cli, database_url, tmp_path, str(bad), "--bank", str(bank.org_id))
    assert failed.returncode == 1, failed.stdout + failed.stderr
    printed = {int(m) for m in re.findall(r"^│\s*csv\s*│\s*(\d+)\s*│", failed.stdout, flags=re.M)}
    assert sorted(printed) == expected
    assert "nothing was imported" in failed.stdout
    assert await stored(engine, bank.org_id) == (N_ASSETS, N_CLAIMS, N_PLEDGES)
    assert len(await import_audits(engine, bank.org_id)) == 1

    buyer = await make_party(engine, client, Role.BUYER)
    refused = await asyncio.to_thread(run_cli, database_url, tmp_path, str(good), "--bank", str(buyer.org_id))
    assert refused.returncode == 2 and "not a bank" in refused.stderr


# --------------------------------------------------------------------------- page


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no csrf token in the page"
    return m.group(1)


async def sign_in(client: httpx.AsyncClient, email: str) -> None:
    form = await client.get("/login")
    r = await client.post(
        "/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf_of(form.text), "next": "/"}
    )
    assert r.status_code == 303


async def upload(client: httpx.AsyncClient, data: bytes, *, dry_run: bool, token: str) -> httpx.Response:
    fields = {"csrf_token": token, **({"dry_run": "1"} if dry_run else {})}
    return await client.post("/bank/import", data=fields, files={"file": ("portfolio.csv", data, "text/csv")})


@pytest.mark.parametrize("lang", ["zh_CN", "en"])
async def test_import_page(client: httpx.AsyncClient, engine: AsyncEngine, lang: str) -> None:
    anonymous = await client.get("/bank/import")
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login?next=/bank/import"
    bank = await make_party(engine, client, Role.BANK)
    await sign_in(client, bank.email)
    client.cookies.set("lang", lang)
    page = await client.get("/bank/import")
    assert page.status_code == 200
    assert 'href="/api/v1/imports/template.xlsx"' in page.text and 'id="dry-run"' in page.text
    assert ("试运行" in page.text) == (lang == "zh_CN")
    template = await client.get("/api/v1/imports/template.csv")  # the page's link works with the session
    assert template.status_code == 200
    token = csrf_of(page.text)

    rows = [asset(i) for i in range(10)] + [claim(i) for i in range(5)] + [pledge(i, i) for i in range(5)]
    bad_rows = [dict(r) for r in rows]
    bad_rows[3]["appraisal_fen"] = "12.50"
    bad_rows[12]["defaulted_on"] = "yesterday"
    checked = await upload(client, to_csv(bad_rows), dry_run=True, token=token)
    assert checked.status_code == 200
    assert sorted(int(n) for n in re.findall(r'<tr data-row="(\d+)"', checked.text)) == [5, 14]
    assert 'data-ok="false"' in checked.text

    refused = await upload(client, to_csv(bad_rows), dry_run=False, token=token)
    assert refused.status_code == 422 and 'data-applied="false"' in refused.text
    assert await stored(engine, bank.org_id) == (0, 0, 0)

    done = await upload(client, to_csv(rows), dry_run=False, token=token)
    assert done.status_code == 200 and 'data-applied="true"' in done.text
    assert await stored(engine, bank.org_id) == (10, 5, 5)

    forged = await upload(client, to_csv(rows), dry_run=True, token="forged")
    assert forged.status_code == 403
    empty = await client.post("/bank/import", data={"csrf_token": token})
    assert empty.status_code == 422 and 'id="import-error"' in empty.text


async def test_import_page_is_for_banks_only(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    buyer = await make_party(engine, client, Role.BUYER)
    await sign_in(client, buyer.email)
    assert (await client.get("/bank/import")).status_code == 403
    r = await client.post("/api/v1/imports?dry_run=true", content=b"record\n", headers=CSV)
    assert r.status_code == 403
