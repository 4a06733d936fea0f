"""Disposals: a sale agreed (auction won, offer accepted, fixed-price purchase, backstop taken).

Created exactly once per source (unique ``(source, source_ref)``): a retried close or a
replayed acceptance finds the existing disposal instead of making a second one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from listings.tables import disposals
from market import audit, pg
from market.access import check_owner
from market.errors import NotFound
from market.parties import Actor


class DisposalNotFound(NotFound):
    code = "disposal_not_found"
    title = "No such disposal"


_CREATE = """
    INSERT INTO disposals
        (listing_id, bank_org_id, buyer_org_id, source, source_ref, price_fen, balance_due_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
    ON CONFLICT ON CONSTRAINT uq_disposals_source_source_ref DO NOTHING
    RETURNING *
"""
_FIND_BY_SOURCE = "SELECT * FROM disposals WHERE source = $1 AND source_ref = $2"


async def create(
    conn: AsyncConnection,
    actor: Actor | None,
    *,
    listing_id: int,
    bank_org_id: int,
    buyer_org_id: int | None,
    source: str,
    source_ref: str,
    price_fen: int,
    balance_due_at: datetime | None = None,
) -> Any:
    """The disposal for this source, created now or found from an earlier call."""
    row = await pg.fetchrow(
        conn, _CREATE, listing_id, bank_org_id, buyer_org_id, source, source_ref, price_fen, balance_due_at
    )
    if row is None:
        existing = await pg.fetchrow(conn, _FIND_BY_SOURCE, source, source_ref)
        assert existing is not None
        return existing
    from listings import services  # rule 22: a sale may cover the claim; its other lots then come off

    await services.withdraw_covered_lots(conn, listing_id)
    await audit.record(
        conn,
        actor_user_id=actor.user_id if actor else None,
        actor_org_id=actor.org_id if actor else None,
        action="disposal.create",
        entity="disposal",
        entity_id=row.id,
        after={
            "listing_id": listing_id,
            "buyer_org_id": buyer_org_id,
            "source": source,
            "source_ref": source_ref,
            "price_fen": price_fen,
        },
    )
    return row


async def get(conn: AsyncConnection, actor: Actor, disposal_id: int) -> Row[Any]:
    """A disposal for its bank, its buyer, or an operator."""
    row = (await conn.execute(select(disposals).where(disposals.c.id == disposal_id))).first()
    if row is None:
        raise DisposalNotFound("No such disposal")
    if actor.org_id != row.buyer_org_id:
        check_owner(actor, row.bank_org_id, "disposal", DisposalNotFound)
    return row


async def for_listing(conn: AsyncConnection, listing_id: int) -> list[Row[Any]]:
    q = select(disposals).where(disposals.c.listing_id == listing_id).order_by(disposals.c.id)
    return list((await conn.execute(q)).all())
