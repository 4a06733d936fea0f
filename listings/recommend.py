"""Buyer interests, recommendations and in-app notifications (services)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from listings import matching
from listings.tables import buyer_interests, listings, notifications
from market import audit
from market.access import require_role
from market.parties import Actor, Role
from market.tables import orgs

RECOMMENDABLE = ("published", "in_auction", "in_negotiation")


async def put_interests(
    conn: AsyncConnection, actor: Actor, kinds: Sequence[str], classes: Sequence[str], keywords: Sequence[str]
) -> matching.Profile:
    require_role(actor, Role.BUYER)
    values = {
        "kinds": sorted(set(kinds)),
        "classes": sorted(set(classes)),
        "keywords": list(dict.fromkeys(keywords)),
    }
    stmt = pg_insert(buyer_interests).values(org_id=actor.org_id, **values)
    await conn.execute(
        stmt.on_conflict_do_update(index_elements=["org_id"], set_={**values, "updated_at": func.now()})
    )
    await audit.record(
        conn,
        actor_user_id=actor.user_id,
        actor_org_id=actor.org_id,
        action="interests.put",
        entity="org",
        entity_id=actor.org_id,
        after=values,
    )
    return _profile(values)


def _profile(data: Any) -> matching.Profile:
    return matching.Profile(tuple(data["kinds"]), tuple(data["classes"]), tuple(data["keywords"]))


async def get_interests(conn: AsyncConnection, actor: Actor) -> matching.Profile:
    require_role(actor, Role.BUYER)
    row = (
        await conn.execute(select(buyer_interests).where(buyer_interests.c.org_id == actor.org_id))
    ).first()
    return _profile(row._mapping) if row else matching.Profile()


def features(row: Any, extra_text: str = "") -> matching.Features:
    text = " ".join(p for p in (row.title, row.title_en, row.description, extra_text) if p)
    return matching.Features(tuple(row.kinds or ()), tuple(row.classes or ()), text)


@dataclass(frozen=True, slots=True)
class Recommendation:
    listing: Row[Any]
    match: matching.Match


async def recommendations(conn: AsyncConnection, actor: Actor, *, limit: int = 50) -> list[Recommendation]:
    """Published listings ranked for the buyer, each with the reasons it matched."""
    profile = await get_interests(conn, actor)
    if profile.empty:
        return []
    q = (
        select(listings)
        .where(listings.c.status.in_(RECOMMENDABLE))
        .order_by(listings.c.id.desc())
        .limit(2000)
    )
    scored = []
    for row in (await conn.execute(q)).all():
        m = matching.match(profile, features(row))
        if m.score > 0:
            scored.append(Recommendation(row, m))
    scored.sort(key=lambda r: (-r.match.score, -r.listing.id))
    return scored[:limit]


async def notify_on_publish(conn: AsyncConnection, row: Row[Any], asset_rows: Sequence[Row[Any]]) -> int:
    """Tell every verified buyer whose interests match the newly published listing (once per listing)."""
    asset_text = " ".join(f"{a.title_zh} {a.title_en}" for a in asset_rows)
    feats = features(row, asset_text)
    q = (
        select(buyer_interests)
        .join(orgs, orgs.c.id == buyer_interests.c.org_id)
        .where(orgs.c.verified.is_(True))
    )
    rows = []
    for interest in (await conn.execute(q)).all():
        m = matching.match(_profile(interest._mapping), feats)
        if m.score > 0:
            rows.append(
                {
                    "org_id": interest.org_id,
                    "kind": "listing_published",
                    "listing_id": row.id,
                    "payload": {
                        "title": row.title,
                        "score": m.score,
                        "reasons": [{"code": r.code, "value": r.value} for r in m.reasons],
                    },
                }
            )
    if rows:
        await conn.execute(pg_insert(notifications).values(rows).on_conflict_do_nothing())
    return len(rows)


async def list_notifications(
    conn: AsyncConnection, actor: Actor, *, unread_only: bool = False, limit: int = 100
) -> list[Row[Any]]:
    q = (
        select(notifications)
        .where(notifications.c.org_id == actor.org_id)
        .order_by(notifications.c.id.desc())
        .limit(limit)
    )
    if unread_only:
        q = q.where(notifications.c.read_at.is_(None))
    return list((await conn.execute(q)).all())


async def mark_read(conn: AsyncConnection, actor: Actor, notification_id: int) -> bool:
    result = await conn.execute(
        update(notifications)
        .where(notifications.c.id == notification_id, notifications.c.org_id == actor.org_id)
        .values(read_at=func.coalesce(notifications.c.read_at, func.now()))
        .returning(notifications.c.id)
    )
    return result.first() is not None
