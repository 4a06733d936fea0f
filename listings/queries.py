"""Read side: the public catalogue search.

Full-text over Chinese and English titles and descriptions without extensions: the
document is indexed as character bigrams (CJK) and words (Latin, digits) in a ``simple``
tsvector with a GIN index; the query is turned into AND-ed quoted prefix terms. Filters
narrow by kind, class, mode, status, price, remaining term and bank. Pagination is keyset
on ``id`` (stable while listings are added).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from listings import textsearch
from listings.tables import listings

PUBLIC = ("published", "in_auction", "in_negotiation", "sold")


@dataclass(frozen=True, slots=True)
class Search:
    q: str = ""
    kind: str | None = None
    cls: str | None = None
    mode: str | None = None
    status: str | None = None
    min_price_fen: int | None = None
    max_price_fen: int | None = None
    min_remaining_months: int | None = None
    bank_org_id: int | None = None
    before_id: int | None = None
    limit: int = 20


def _price() -> Any:
    return func.coalesce(listings.c.asking_price_fen, listings.c.appraisal_fen)


def _filters(s: Search) -> list[Any]:
    conds: list[Any] = [listings.c.status.in_([s.status] if s.status in PUBLIC else PUBLIC)]
    tsq = textsearch.tsquery_text(s.q) if s.q else ""
    if s.q and not tsq:
        conds.append(listings.c.id.is_(None))  # a query with no searchable terms matches nothing
    if tsq:
        conds.append(listings.c.search_doc.op("@@")(func.to_tsquery("simple", tsq)))
    if s.kind:
        conds.append(listings.c.kinds.contains([s.kind]))
    if s.cls:
        conds.append(listings.c.classes.contains([s.cls]))
    conds += _simple_filters(s)
    return conds


def _simple_filters(s: Search) -> list[Any]:
    conds: list[Any] = []
    if s.mode:
        conds.append(listings.c.mode == s.mode)
    if s.min_price_fen is not None:
        conds.append(_price() >= s.min_price_fen)
    if s.max_price_fen is not None:
        conds.append(_price() <= s.max_price_fen)
    if s.min_remaining_months is not None:
        conds.append(listings.c.remaining_term_months >= s.min_remaining_months)
    if s.bank_org_id is not None:
        conds.append(listings.c.bank_org_id == s.bank_org_id)
    if s.before_id is not None:
        conds.append(listings.c.id < s.before_id)
    return conds


async def search(conn: AsyncConnection, s: Search) -> tuple[list[Row[Any]], int | None]:
    """A page of public listings matching ``s``, newest first, and the cursor of the next page."""
    q = select(listings).where(and_(*_filters(s))).order_by(listings.c.id.desc()).limit(s.limit + 1)
    rows = list((await conn.execute(q)).all())
    more = len(rows) > s.limit
    rows = rows[: s.limit]
    return rows, (rows[-1].id if more and rows else None)
