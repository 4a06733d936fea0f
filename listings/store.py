"""SQL for collateral and listings: rows in, domain dataclasses out.

``get_x`` raises ``XNotFound`` (also for another organisation's object: never reveal it);
``find_x`` returns None; ``lock_x`` takes the row lock (``FOR UPDATE``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from listings import model
from listings.tables import assets, claims, pledges
from market import pg
from market.access import check_owner
from market.errors import NotFound
from market.parties import Actor


class AssetNotFound(NotFound):
    code = "asset_not_found"
    title = "No such asset"


class ClaimNotFound(NotFound):
    code = "claim_not_found"
    title = "No such claim"


class ListingNotFound(NotFound):
    code = "listing_not_found"
    title = "No such listing"


def _d(value: Any) -> date | None:
    return value if isinstance(value, date) else None


def row_to_asset(row: Row[Any]) -> model.Asset:
    m = row._mapping
    return model.Asset(
        id=m["id"],
        kind=model.AssetKind(m["kind"]),
        registration_no=m["registration_no"],
        title_zh=m["title_zh"],
        title_en=m["title_en"],
        holder=m["holder"],
        legal_status=model.LegalStatus(m["legal_status"]),
        pledgee_org_id=m["pledgee_org_id"],
        filed_on=_d(m["filed_on"]),
        granted_on=_d(m["granted_on"]),
        expires_on=_d(m["expires_on"]),
        first_use_on=_d(m["first_use_on"]),
        created_on=_d(m["created_on"]),
        classes=tuple(m["classes"] or ()),
        appraisal_fen=m["appraisal_fen"],
        appraised_on=_d(m["appraised_on"]),
        appraiser=m["appraiser"],
        co_owners=tuple(model.CoOwner(c["name"], bool(c.get("consented"))) for c in m["co_owners"] or ()),
        licenses=tuple(_license(lic) for lic in m["licenses"] or ()),
        annuity_paid_through=_d(m["annuity_paid_through"]),
        preservation_order=m["preservation_order"],
        ownership_dispute=m["ownership_dispute"],
        similar_mark_group=m["similar_mark_group"],
    )


def _license(data: dict[str, Any]) -> model.License:
    return model.License(
        type=model.LicenseType(data.get("type", "non_exclusive")),
        field=data.get("field", ""),
        territory=data.get("territory", ""),
        starts_on=date.fromisoformat(data["starts_on"]),
        ends_on=date.fromisoformat(data["ends_on"]) if data.get("ends_on") else None,
        licensee=data.get("licensee", ""),
    )


def row_to_claim(row: Row[Any]) -> model.Claim:
    m = row._mapping
    order = tuple(model.Bucket(b) for b in m["bucket_order"]) if m["bucket_order"] else None
    return model.Claim(
        id=m["id"],
        loan_no=m["loan_no"],
        borrower=model.Borrower(m["borrower_name"], m["borrower_credit_code"]),
        principal_fen=m["principal_fen"],
        interest_fen=m["interest_fen"] + m["default_interest_fen"],
        costs_fen=m["costs_fen"],
        defaulted_on=m["defaulted_on"],
        limitation_interrupted_on=m["limitation_interrupted_on"],
        bucket_order=order,
    )


def row_to_pledge(row: Row[Any]) -> model.Pledge:
    m = row._mapping
    return model.Pledge(
        m["claim_id"], m["asset_id"], m["declared_rank"], m["registration_no"], m["registered_on"]
    )


async def get_asset_row(
    conn: AsyncConnection, actor: Actor, asset_id: int, *, lock: bool = False
) -> Row[Any]:
    q = select(assets).where(assets.c.id == asset_id)
    row = (await conn.execute(q.with_for_update() if lock else q)).first()
    if row is None:
        raise AssetNotFound("No such asset")
    check_owner(actor, row.bank_org_id, "asset", AssetNotFound)
    return row


async def get_claim_row(
    conn: AsyncConnection, actor: Actor, claim_id: int, *, lock: bool = False
) -> Row[Any]:
    q = select(claims).where(claims.c.id == claim_id)
    row = (await conn.execute(q.with_for_update() if lock else q)).first()
    if row is None:
        raise ClaimNotFound("No such claim")
    check_owner(actor, row.bank_org_id, "claim", ClaimNotFound)
    return row


# Read on every close and receipt: raw SQL (``market.pg``), rows answer attributes like SQLAlchemy's.
_FIND_LISTING = "SELECT * FROM listings WHERE id = $1"
_LISTING_ASSETS = """
    SELECT a.* FROM assets a JOIN listing_assets la ON la.asset_id = a.id
    WHERE la.listing_id = $1 ORDER BY la.position
"""
_PLEDGES_OF_ASSETS = "SELECT * FROM pledges WHERE asset_id = ANY($1::bigint[]) ORDER BY asset_id, id"
_CLAIMS_BY_IDS = "SELECT * FROM claims WHERE id = ANY($1::bigint[]) ORDER BY id"


async def find_listing_row(conn: AsyncConnection, listing_id: int, *, lock: bool = False) -> Any:
    return await pg.fetchrow(conn, _FIND_LISTING + (" FOR UPDATE" if lock else ""), listing_id)


async def listing_asset_rows(conn: AsyncConnection, listing_id: int) -> list[Any]:
    return await pg.fetch(conn, _LISTING_ASSETS, listing_id)


async def pledges_of_assets(conn: AsyncConnection, asset_ids: Iterable[int]) -> list[Any]:
    ids = list(asset_ids)
    if not ids:
        return []
    return await pg.fetch(conn, _PLEDGES_OF_ASSETS, ids)


async def pledges_of_claim(conn: AsyncConnection, claim_id: int) -> list[Row[Any]]:
    q = select(pledges).where(pledges.c.claim_id == claim_id).order_by(pledges.c.id)
    return list((await conn.execute(q)).all())


async def claims_by_ids(conn: AsyncConnection, claim_ids: Sequence[int], *, lock: bool = False) -> list[Any]:
    """The claims in id order; with ``lock`` locked in that order (no deadlocks between lockers)."""
    if not claim_ids:
        return []
    return await pg.fetch(conn, _CLAIMS_BY_IDS + (" FOR UPDATE" if lock else ""), list(claim_ids))


def listing_from_row(row: Row[Any], asset_ids: Sequence[int]) -> model.Listing:
    m = row._mapping
    reason = m["withdrawal_reason"]
    return model.Listing(
        id=m["id"],
        bank_org_id=m["bank_org_id"],
        title=m["title"],
        mode=model.DisposalMode(m["mode"]),
        asset_ids=tuple(asset_ids),
        status=model.ListingStatus(m["status"]),
        published_at=m["published_at"],
        status_changed_at=m["status_changed_at"],
        withdrawal_reason=model.WithdrawalReason(reason) if reason else None,
    )
