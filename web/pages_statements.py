"""Server-rendered statement pages: a bank's claim statement and bank statement, the operators' reports.

Read-only pages (GET forms, nothing to protect with CSRF). Every figure comes from
``listings.statements`` — sums of ledger lines — and the download buttons are the API's file
routes (``/api/v1/.../statement.csv`` and friends), which the page's session cookie is enough for.

- ``/bank/statement``: the signed-in bank's statement (``?as_of=YYYY-MM-DD``).
- ``/bank/claims/{id}/statement``: a claim statement for its bank or an operator (another bank: 404).
- ``/ops/banks/{org_id}/statement``: a bank's statement for operators (and that bank's users).
- ``/ops/reports``: disposals of a period (default: this quarter, CST), per bank and in all.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from listings import statements
from market import clock
from market.access import require_role
from market.db import transaction
from market.errors import NotFound
from market.money import BIGINT_MAX, format_cny
from market.parties import Actor, Role
from market.tables import orgs
from web.digits import ascii_digits
from web.pages import load_actor, render

DATE_FORMAT = "Enter the date as YYYY-MM-DD."
PERIOD_ORDER = "The period must end on or after its first day."


def _cny(fen: int | None) -> str:
    return "—" if fen is None else format_cny(fen)


def _moment(value: datetime | None) -> str:
    return "—" if value is None else value.astimezone(clock.CST).strftime("%Y-%m-%d %H:%M")


def _page(request: Request, template: str, status_code: int = 200, **ctx: Any) -> Response:
    return render(request, template, status_code, cny=_cny, moment=_moment, **ctx)


async def _signed_in(request: Request, *roles: Role) -> Actor | Response:
    """The signed-in actor with one of ``roles`` (403 otherwise), or a redirect to sign in."""
    actor = await load_actor(request)
    if actor is None:
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
    return require_role(actor, *roles)


def _day(raw: str | None) -> date | None:
    """A ``YYYY-MM-DD`` query value; ``ValueError`` when it is something else."""
    if raw is None or not raw.strip():
        return None
    return date.fromisoformat(raw.strip())


def _as_of(request: Request) -> tuple[date | None, str | None]:
    try:
        return _day(request.query_params.get("as_of")), None
    except ValueError:
        return None, DATE_FORMAT


def _path_id(request: Request, name: str) -> int:
    """An id from the path; one beyond BIGINT names nothing (404, not a database error)."""
    value = int(request.path_params[name])
    if value > BIGINT_MAX:
        raise NotFound(f"No such {name.removesuffix('_id')}")
    return value


def _engine(request: Request) -> Any:
    return request.app.state.engine


# --------------------------------------------------------------------------- bank: claim and bank statements


async def claim_statement_page(request: Request) -> Response:
    actor = await _signed_in(request, Role.BANK, Role.OPERATOR)
    if isinstance(actor, Response):
        return actor
    as_of, error = _as_of(request)
    moment = statements.end_of_day(as_of) if as_of else None
    async with transaction(_engine(request)) as conn:
        st = await statements.claim_statement(conn, actor, _path_id(request, "claim_id"), as_of=moment)
    query = f"?{urlencode({'as_of': as_of.isoformat()})}" if as_of else ""
    return _page(
        request,
        "statements/claim.html",
        422 if error else 200,
        st=st,
        as_of=as_of,
        error=error,
        downloads=f"/api/v1/claims/{st['claim_id']}/statement",
        query=query,
        bucket_labels=statements.BUCKET_LABELS,
    )


async def _bank_page(request: Request, actor: Actor, org_id: int) -> Response:
    as_of, error = _as_of(request)
    moment = statements.end_of_day(as_of) if as_of else None
    async with transaction(_engine(request)) as conn:
        st = await statements.bank_statement(conn, actor, org_id, as_of=moment)
    return _page(
        request,
        "statements/bank.html",
        422 if error else 200,
        st=st,
        as_of=as_of,
        error=error,
        query=f"?{urlencode({'as_of': as_of.isoformat()})}" if as_of else "",
    )


async def own_bank_statement_page(request: Request) -> Response:
    actor = await _signed_in(request, Role.BANK)
    if isinstance(actor, Response):
        return actor
    return await _bank_page(request, actor, actor.org_id)


async def bank_statement_page(request: Request) -> Response:
    actor = await _signed_in(request, Role.BANK, Role.OPERATOR)
    if isinstance(actor, Response):
        return actor
    return await _bank_page(request, actor, _path_id(request, "org_id"))


# --------------------------------------------------------------------------- operators: reports


def _period(request: Request) -> tuple[date, date, str | None]:
    """The requested days (default: this quarter in CST) and an error to show, if any."""
    default = statements.current_quarter()
    try:
        start = _day(request.query_params.get("from"))
        end = _day(request.query_params.get("to"))
    except ValueError:
        return default[0], default[1], DATE_FORMAT
    try:
        start, end = statements.resolve_period(start, end)
    except ValueError:
        return default[0], default[1], PERIOD_ORDER
    return start, end, None


def _bank_filter(request: Request) -> int | None:
    raw = request.query_params.get("bank", "").strip()
    return int(raw) if ascii_digits(raw) and 0 < int(raw) <= BIGINT_MAX else None


async def reports_page(request: Request) -> Response:
    actor = await _signed_in(request, Role.OPERATOR)
    if isinstance(actor, Response):
        return actor
    start, end, error = _period(request)
    bank = _bank_filter(request)
    async with transaction(_engine(request)) as conn:
        report = await statements.disposals_report(conn, start, end, bank)
        banks = (
            await conn.execute(
                select(orgs.c.id, orgs.c.name).where(orgs.c.kind == "bank").order_by(orgs.c.name)
            )
        ).all()
    params = {"from": start.isoformat(), "to": end.isoformat(), **({"bank": str(bank)} if bank else {})}
    this_quarter = statements.current_quarter()
    last_quarter = statements.quarter_of(this_quarter[0] - timedelta(days=1))
    return _page(
        request,
        "statements/reports.html",
        422 if error else 200,
        report=report,
        banks=banks,
        bank=bank,
        error=error,
        query="?" + urlencode(params),
        quarters=[("This quarter", this_quarter), ("Last quarter", last_quarter)],
    )


ROUTES = [
    Route("/bank/statement", own_bank_statement_page, methods=["GET"], name="bank_statement_page"),
    Route(
        "/bank/claims/{claim_id:int}/statement",
        claim_statement_page,
        methods=["GET"],
        name="claim_statement_page",
    ),
    Route(
        "/ops/banks/{org_id:int}/statement", bank_statement_page, methods=["GET"], name="ops_bank_statement"
    ),
    Route("/ops/reports", reports_page, methods=["GET"], name="ops_reports"),
]
