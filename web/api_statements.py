"""API: statements and reports (SETTLEMENT.md §13) — per claim, per bank, disposals of a period.

JSON for programs, and the same figures as CSV (UTF-8 with BOM, amounts in integer fen),
XLSX (amounts in CNY) or PDF (CJK font) downloads. Every figure is a sum of ledger lines.

- ``GET /api/v1/claims/{claim_id}/statement[.csv|.xlsx|.pdf]?as_of=``: the bank that holds the
  claim, or an operator (another bank: 404). ``as_of`` is a date (end of that day, China
  Standard Time) or an ISO instant.
- ``GET /api/v1/banks/{org_id}/statement?as_of=``: that bank's users, or an operator.
- ``GET /api/v1/reports/disposals[.csv|.xlsx|.pdf]?from=&to=&bank=``: operators; the period
  defaults to the current calendar quarter in China Standard Time.

Files take the caller's language (``lang`` cookie or ``Accept-Language``; ``?lang=`` overrides).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.responses import Response

from listings import statements
from market import exports
from market.clock import CST
from market.errors import ValidationFailed
from market.money import BIGINT_MAX
from market.parties import Role
from web import auth, i18n
from web.api import Call, Handler, api

log = logging.getLogger("web.statements")

BANK_OR_OPERATOR = (Role.BANK, Role.OPERATOR)
OPERATOR = (Role.OPERATOR,)
TAG = "statements"
Lang = Literal["zh_CN", "en"]


# --------------------------------------------------------------------------- inputs


class AsOfQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    as_of: Annotated[
        str | None, Field(max_length=40, description="YYYY-MM-DD (end of day, CST) or ISO instant")
    ] = None
    lang: Lang | None = None


# days the database can hold once shifted to UTC (year 1 in CST is before PostgreSQL's timestamptz range)
Day = Annotated[date, Field(ge=date(1970, 1, 1), le=date(9998, 12, 31))]


class ReportQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    date_from: Annotated[
        Day | None, Field(alias="from", description="first day (CST); default: quarter start")
    ] = None
    date_to: Annotated[Day | None, Field(alias="to", description="last day (CST); default: quarter end")] = (
        None
    )
    bank: Annotated[int | None, Field(ge=1, le=BIGINT_MAX, description="only this bank's disposals")] = None
    lang: Lang | None = None


# --------------------------------------------------------------------------- outputs


class BucketOut(BaseModel):
    bucket: Literal["costs", "interest", "principal"]
    opening_fen: int
    recovered_fen: int
    outstanding_fen: int
    postings_fen: int
    check: bool


class ClaimPostingOut(BaseModel):
    entry_id: int
    entry: str
    type: str
    listing_id: int | None
    at: datetime
    bucket: str
    amount_fen: int
    asset_id: int | None
    rank: int | None
    memo: str


class FinalizedLotOut(BaseModel):
    listing_id: int
    finalized_at: datetime


class ClaimStatementOut(BaseModel):
    claim_id: int
    bank_org_id: int
    bank_name: str
    loan_no: str
    borrower_name: str
    borrower_credit_code: str
    pool_code: str | None
    as_of: datetime | None
    last_entry_id: int
    buckets: list[BucketOut]
    opening_fen: int
    recovered_fen: int
    outstanding_fen: int
    pool_compensation_fen: int
    status: Literal["open", "paid", "finalized"]
    shortfall_fen: int
    finalized_lots: list[FinalizedLotOut]
    postings: list[ClaimPostingOut]
    compensation_postings: list[ClaimPostingOut]
    check: bool


class BankClaimOut(BaseModel):
    claim_id: int
    loan_no: str
    borrower_name: str
    pool_code: str | None
    opening_fen: int
    recovered_costs_fen: int
    recovered_interest_fen: int
    recovered_principal_fen: int
    recovered_fen: int
    outstanding_fen: int
    pool_compensation_fen: int
    status: Literal["open", "paid", "finalized"]
    shortfall_fen: int
    check: bool


class BankTotalsOut(BaseModel):
    opening_fen: int
    recovered_costs_fen: int
    recovered_interest_fen: int
    recovered_principal_fen: int
    recovered_fen: int
    outstanding_fen: int
    pool_compensation_fen: int
    shortfall_fen: int


class BankStatementOut(BaseModel):
    bank_org_id: int
    bank_name: str
    as_of: datetime | None
    last_entry_id: int
    claims: list[BankClaimOut]
    totals: BankTotalsOut
    payout_due_fen: int
    check: bool


class Figures(BaseModel):
    price_fen: int
    received_fen: int
    platform_fee_fen: int
    commission_fen: int
    fees_fen: int
    disposal_costs_fen: int
    to_claims_fen: int
    surplus_fen: int
    pool_compensation_fen: int
    deposits_held_fen: int
    forfeit_reserve_fen: int
    escrow_pending_fen: int


class ReportRowOut(Figures):
    disposal_id: int | None
    listing_id: int
    listing_title: str
    mode: str
    kinds: list[str]
    bank_org_id: int
    bank_name: str
    buyer_org_id: int | None
    source: str | None
    stage: str | None
    agreed_at: datetime | None
    lot_finalized: bool
    entries: int
    check: bool


class ReportTotalsOut(Figures):
    disposals: int


class BankSubtotalOut(ReportTotalsOut):
    bank_org_id: int
    bank_name: str


class LedgerSumsOut(BaseModel):
    platform_fee_fen: int
    commission_fen: int
    disposal_costs_fen: int
    to_claims_fen: int
    surplus_fen: int
    pool_compensation_fen: int


class DisposalsReportOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    date_from: date = Field(alias="from")
    date_to: date = Field(alias="to")
    bank_org_id: int | None
    period: str
    rows: list[ReportRowOut]
    banks: list[BankSubtotalOut]
    totals: ReportTotalsOut
    ledger: LedgerSumsOut
    check: bool


# --------------------------------------------------------------------------- helpers


def _id(call: Call, name: str) -> int:
    return int(call.params[name])


def _as_of(call: Call) -> datetime | None:
    raw = call.query.as_of if call.query is not None else None
    if not raw:
        return None
    try:
        return statements.parse_as_of(raw)
    except ValueError:
        raise ValidationFailed(
            "as_of must be a date (YYYY-MM-DD) or an ISO 8601 instant",
            errors=[{"loc": ["query", "as_of"], "msg": "not a date or instant"}],
        ) from None


def period(query: ReportQuery) -> tuple[date, date]:
    """The report's days: as given, else the current quarter in CST (or the quarter of the one given)."""
    try:
        return statements.resolve_period(query.date_from, query.date_to)
    except ValueError:
        raise ValidationFailed(
            "The period ends before it starts", errors=[{"loc": ["query", "to"], "msg": "before from"}]
        ) from None


def translator(call: Call) -> statements.Translate:
    wanted = getattr(call.query, "lang", None)
    locale = wanted or i18n.negotiate(
        call.request.cookies.get(auth.LANG_COOKIE), call.request.headers.get("accept-language")
    )

    def translate(message: str, **params: object) -> str:
        return i18n.gettext(locale, message, **params)

    return translate


async def file_response(
    fmt: str, report: exports.Report, filename: str, translate: statements.Translate
) -> Response:
    """The tables as a download (rendered off the event loop: a PDF takes a fraction of a second)."""
    try:
        body = await asyncio.to_thread(statements.render_file, fmt, report, translate)
    except exports.PdfFontMissing as exc:
        log.error("PDF export impossible: %s", exc)
        raise HTTPException(503, str(exc)) from None
    return Response(
        body,
        media_type=exports.MIME[fmt],
        headers={
            "content-disposition": f'attachment; filename="{filename}.{fmt}"',
            "cache-control": "no-store",
        },
    )


# --------------------------------------------------------------------------- per claim


async def _claim(call: Call) -> dict[str, Any]:
    return await statements.claim_statement(
        call.conn, call.need_actor(), _id(call, "claim_id"), as_of=_as_of(call)
    )


@api.operation(
    "GET",
    "/api/v1/claims/{claim_id}/statement",
    summary="Claim statement: per bucket opening, recovered, outstanding; postings; pool compensation",
    tag=TAG,
    roles=BANK_OR_OPERATOR,
    query=AsOfQuery,
    response=ClaimStatementOut,
)
async def claim_statement(call: Call) -> ClaimStatementOut:
    return ClaimStatementOut.model_validate(await _claim(call))


def _claim_file(fmt: str) -> Handler:
    async def handler(call: Call) -> Response:
        st = await _claim(call)
        translate = translator(call)
        report = statements.claim_statement_tables(st, translate)
        suffix = f"-{st['as_of'].astimezone(CST).date()}" if st["as_of"] else ""
        return await file_response(fmt, report, f"claim-{st['claim_id']}-statement{suffix}", translate)

    handler.__name__ = f"claim_statement_{fmt}"
    return api.operation(
        "GET",
        f"/api/v1/claims/{{claim_id}}/statement.{fmt}",
        summary=f"Claim statement as a {fmt.upper()} file",
        tag=TAG,
        roles=BANK_OR_OPERATOR,
        query=AsOfQuery,
    )(handler)


claim_statement_csv = _claim_file("csv")
claim_statement_xlsx = _claim_file("xlsx")
claim_statement_pdf = _claim_file("pdf")


# --------------------------------------------------------------------------- per bank


@api.operation(
    "GET",
    "/api/v1/banks/{org_id}/statement",
    summary="Bank statement: its claims, recovered per bucket, outstanding, pool compensation, payout due",
    tag=TAG,
    roles=BANK_OR_OPERATOR,
    query=AsOfQuery,
    response=BankStatementOut,
)
async def bank_statement(call: Call) -> BankStatementOut:
    st = await statements.bank_statement(
        call.conn, call.need_actor(), _id(call, "org_id"), as_of=_as_of(call)
    )
    return BankStatementOut.model_validate(st)


# --------------------------------------------------------------------------- disposals report


async def _report(call: Call) -> dict[str, Any]:
    query: ReportQuery = call.query
    start, end = period(query)
    return await statements.disposals_report(call.conn, start, end, query.bank)


@api.operation(
    "GET",
    "/api/v1/reports/disposals",
    summary="Disposals of a period: per disposal, per bank and totals, checked against the ledger",
    tag=TAG,
    roles=OPERATOR,
    query=ReportQuery,
    response=DisposalsReportOut,
)
async def disposals_report(call: Call) -> dict[str, Any]:
    report = DisposalsReportOut.model_validate(await _report(call))
    return report.model_dump(mode="json", by_alias=True)


def _report_file(fmt: str) -> Handler:
    async def handler(call: Call) -> Response:
        figures = await _report(call)
        translate = translator(call)
        report = statements.disposals_report_tables(figures, translate)
        bank = f"-bank{figures['bank_org_id']}" if figures["bank_org_id"] else ""
        return await file_response(fmt, report, f"disposals-{figures['period']}{bank}", translate)

    handler.__name__ = f"disposals_report_{fmt}"
    return api.operation(
        "GET",
        f"/api/v1/reports/disposals.{fmt}",
        summary=f"Disposals report as a {fmt.upper()} file",
        tag=TAG,
        roles=OPERATOR,
        query=ReportQuery,
    )(handler)


disposals_report_csv = _report_file("csv")
disposals_report_xlsx = _report_file("xlsx")
disposals_report_pdf = _report_file("pdf")
