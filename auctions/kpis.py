"""Disposal KPIs for operators: recovery rate, time to disposal, failed rounds, price against appraisal.

Filters: the consigning bank, an asset kind (the listing holds an asset of that kind) and a period
``[start, end)`` (instants; the API turns dates in China Standard Time into them). Definitions:

- the **disposal cohort**: disposals created in the period (any source, defaults included);
- **recovery rate**: what the ledger applied to the claims secured by the cohort's listings (the
  ``claim:*`` balances, to date) divided by those claims' opening amounts (costs + interest, default
  interest included, + principal), per bank and overall;
- **time to disposal**: listing ``published_at`` to disposal ``created_at`` over the cohort, in days
  (mean, median, p90);
- **failed-round rate by round number**: rounds finished in the period (``closed_at``; closed or
  failed, cancellations excluded), failed ÷ finished per ``round_no``;
- **price ÷ appraisal**: the cohort's prices against the listing's appraisal (mean, median, and the
  price-weighted ratio Σprice ÷ Σappraisal).

Every figure is one SQL aggregate; rates are rounded to 4 decimals, ``None`` when undefined.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True, slots=True)
class Filters:
    bank_org_id: int | None = None
    kind: str | None = None
    start: datetime | None = None
    end: datetime | None = None

    def params(self) -> dict[str, Any]:
        return {"bank": self.bank_org_id, "kind": self.kind, "start": self.start, "end": self.end}


_COHORT = """
    SELECT d.id, d.listing_id, d.bank_org_id, d.price_fen, d.created_at, l.published_at, l.appraisal_fen
    FROM disposals d JOIN listings l ON l.id = d.listing_id
    WHERE (CAST(:bank AS bigint) IS NULL OR d.bank_org_id = CAST(:bank AS bigint))
      AND (CAST(:kind AS text) IS NULL OR l.kinds @> jsonb_build_array(CAST(:kind AS text)))
      AND (CAST(:start AS timestamptz) IS NULL OR d.created_at >= CAST(:start AS timestamptz))
      AND (CAST(:end AS timestamptz) IS NULL OR d.created_at < CAST(:end AS timestamptz))
"""


def _rate(part: int, whole: int) -> float | None:
    return None if whole <= 0 else round(part / whole, 4)


def _round(value: Any, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


async def recovery(conn: AsyncConnection, f: Filters) -> dict[str, Any]:
    rows = (
        await conn.execute(
            text(
                f"""
                WITH cohort AS ({_COHORT}),
                cohort_claims AS (
                    SELECT DISTINCT p.claim_id FROM cohort
                    JOIN listing_assets la ON la.listing_id = cohort.listing_id
                    JOIN pledges p ON p.asset_id = la.asset_id
                ),
                rec AS (
                    SELECT split_part(a.name, ':', 2)::bigint AS claim_id, sum(a.balance) AS recovered
                    FROM ledger_accounts a
                    WHERE a.name LIKE 'claim:%' AND split_part(a.name, ':', 2) IN
                          (SELECT claim_id::text FROM cohort_claims)
                    GROUP BY 1
                )
                SELECT c.bank_org_id, o.name AS bank_name, count(*) AS claims,
                       sum(c.principal_fen + c.interest_fen + c.default_interest_fen + c.costs_fen)
                           AS opening,
                       coalesce(sum(rec.recovered), 0) AS recovered
                FROM cohort_claims cc JOIN claims c ON c.id = cc.claim_id JOIN orgs o ON o.id = c.bank_org_id
                LEFT JOIN rec ON rec.claim_id = c.id
                GROUP BY c.bank_org_id, o.name ORDER BY c.bank_org_id
                """
            ),
            f.params(),
        )
    ).all()
    by_bank = [
        {
            "bank_org_id": int(r.bank_org_id),
            "bank_name": r.bank_name,
            "claims": int(r.claims),
            "opening_fen": int(r.opening),
            "recovered_fen": int(r.recovered),
            "rate": _rate(int(r.recovered), int(r.opening)),
        }
        for r in rows
    ]
    opening = sum(b["opening_fen"] for b in by_bank)
    recovered = sum(b["recovered_fen"] for b in by_bank)
    overall = {
        "claims": sum(b["claims"] for b in by_bank),
        "opening_fen": opening,
        "recovered_fen": recovered,
        "rate": _rate(recovered, opening),
    }
    return {"overall": overall, "by_bank": by_bank}


async def time_to_disposal(conn: AsyncConnection, f: Filters) -> dict[str, Any]:
    row = (
        await conn.execute(
            text(
                f"""
                WITH cohort AS ({_COHORT}),
                spans AS (
                    SELECT extract(epoch FROM created_at - published_at) / {SECONDS_PER_DAY} AS days
                    FROM cohort WHERE published_at IS NOT NULL
                )
                SELECT count(*) AS n, avg(days) AS mean,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY days) AS median,
                       percentile_cont(0.9) WITHIN GROUP (ORDER BY days) AS p90
                FROM spans
                """
            ),
            f.params(),
        )
    ).one()
    return {
        "disposals": int(row.n),
        "mean_days": _round(row.mean),
        "median_days": _round(row.median),
        "p90_days": _round(row.p90),
    }


async def failed_rounds(conn: AsyncConnection, f: Filters) -> list[dict[str, Any]]:
    rows = (
        await conn.execute(
            text(
                """
                SELECT a.round_no, count(*) AS finished, count(*) FILTER (WHERE a.status = 'failed') AS failed
                FROM auctions a JOIN listings l ON l.id = a.listing_id
                WHERE a.status IN ('closed', 'failed')
                  AND (CAST(:bank AS bigint) IS NULL OR a.bank_org_id = CAST(:bank AS bigint))
                  AND (CAST(:kind AS text) IS NULL OR l.kinds @> jsonb_build_array(CAST(:kind AS text)))
                  AND (CAST(:start AS timestamptz) IS NULL OR a.closed_at >= CAST(:start AS timestamptz))
                  AND (CAST(:end AS timestamptz) IS NULL OR a.closed_at < CAST(:end AS timestamptz))
                GROUP BY a.round_no ORDER BY a.round_no
                """
            ),
            f.params(),
        )
    ).all()
    return [
        {
            "round_no": int(r.round_no),
            "finished": int(r.finished),
            "failed": int(r.failed),
            "rate": _rate(int(r.failed), int(r.finished)),
        }
        for r in rows
    ]


async def price_to_appraisal(conn: AsyncConnection, f: Filters) -> dict[str, Any]:
    row = (
        await conn.execute(
            text(
                f"""
                WITH cohort AS ({_COHORT}),
                ratios AS (
                    SELECT price_fen, appraisal_fen, price_fen::numeric / appraisal_fen AS ratio
                    FROM cohort WHERE appraisal_fen > 0
                )
                SELECT count(*) AS n, avg(ratio) AS mean,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY ratio) AS median,
                       sum(price_fen) AS price, sum(appraisal_fen) AS appraisal
                FROM ratios
                """
            ),
            f.params(),
        )
    ).one()
    return {
        "disposals": int(row.n),
        "mean": _round(row.mean),
        "median": _round(row.median),
        "weighted": _rate(int(row.price or 0), int(row.appraisal or 0)),
    }


async def kpis(conn: AsyncConnection, f: Filters) -> dict[str, Any]:
    return {
        "recovery": await recovery(conn, f),
        "time_to_disposal": await time_to_disposal(conn, f),
        "failed_rounds": await failed_rounds(conn, f),
        "price_to_appraisal": await price_to_appraisal(conn, f),
    }
