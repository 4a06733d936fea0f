"""SQL of live auctions: lock the auction row, append events, keep the denormalised columns.

The auction row is the lock that serialises every change of one auction; its ``state``
JSONB is ``rules.state_to_dict`` of the live state and ``seq`` the number of events. Each
event is one ``auction_events`` row (``(auction_id, seq)`` is the primary key, so two
writers can never both append seq N). ``pg_notify`` tells every instance after COMMIT.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from auctions import events as ev, rules
from auctions.tables import auction_events, auction_registrations, auctions
from market import pg
from market.errors import NotFound

CHANNEL = "auction_events"
NOTIFY_LIMIT = 7000  # bytes; PostgreSQL refuses payloads of 8000 and more


class AuctionNotFound(NotFound):
    code = "auction_not_found"
    title = "No such auction"


def terms_to_dict(t: rules.AuctionTerms) -> dict[str, Any]:
    return {
        "start_price_fen": t.start_price_fen,
        "increment_fen": t.increment_fen,
        "deposit_fen": t.deposit_fen,
        "starts_at": ev.rfc3339(t.starts_at),
        "ends_at": ev.rfc3339(t.ends_at),
        "extension_seconds": t.extension_seconds,
        "reserve_fen": t.reserve_fen,
        "priority_holders": [{"org_id": p.org_id, "rank": p.rank} for p in t.priority_holders],
        "round_no": t.round_no,
        "kind": t.kind,
        "consignor_org_id": t.consignor_org_id,
        "related_org_ids": sorted(t.related_org_ids),
        "fixed_price_window_seconds": t.fixed_price_window_seconds,
    }


def terms_from_dict(d: dict[str, Any]) -> rules.AuctionTerms:
    return rules.AuctionTerms(
        start_price_fen=d["start_price_fen"],
        increment_fen=d["increment_fen"],
        deposit_fen=d["deposit_fen"],
        starts_at=datetime.fromisoformat(d["starts_at"]),
        ends_at=datetime.fromisoformat(d["ends_at"]),
        extension_seconds=d["extension_seconds"],
        reserve_fen=d["reserve_fen"],
        priority_holders=tuple(rules.PriorityHolder(p["org_id"], p["rank"]) for p in d["priority_holders"]),
        round_no=d["round_no"],
        kind=d["kind"],
        consignor_org_id=d["consignor_org_id"],
        related_org_ids=frozenset(d["related_org_ids"]),
        fixed_price_window_seconds=d["fixed_price_window_seconds"],
    )


@dataclass(frozen=True, slots=True)
class Locked:
    """An auction row under lock, decoded, with the database's receipt time."""

    id: int
    listing_id: int
    bank_org_id: int
    terms: rules.AuctionTerms
    state: rules.AuctionState
    now: datetime
    row: Any


_READ_FOR_BIDDER = """
    SELECT a.*, clock_timestamp() AS db_now, r.paddle_no AS r_paddle_no,
           r.deposit_status AS r_deposit_status, r.priority_rank AS r_priority_rank,
           k.request_hash AS k_hash, k.response AS k_response
    FROM auctions a
    LEFT JOIN auction_registrations r ON r.auction_id = a.id AND r.bidder_org_id = $2
    LEFT JOIN idempotency_keys k ON k.scope = $3 AND k.key = $4
    WHERE a.id = $1
"""


async def read_for_bidder(
    conn: AsyncConnection, auction_id: int, org_id: int, idempotency: tuple[str, str] | None = None
) -> tuple[Locked, Any]:
    """Read the auction, the bidder's registration and a stored answer to ``idempotency`` (scope,
    key) in one round trip, WITHOUT a lock; ``now`` is the database clock at the read.

    A write based on this read goes through ``append``, whose ``seq`` guard refuses it (``Stale``)
    if anything changed the auction since: the lock is held only inside that one statement.

    Raises:
        AuctionNotFound: no such auction.
    """
    scope, key = idempotency or ("", "")
    row = await pg.fetchrow(conn, _READ_FOR_BIDDER, auction_id, org_id, scope, key)
    if row is None:
        raise AuctionNotFound(f"No auction {auction_id}")
    return decode(row, row.db_now), row


_READ_FOR_BIDDERS = """
    SELECT a.*, clock_timestamp() AS db_now,
        (SELECT coalesce(jsonb_agg(jsonb_build_object(
                    'org', r.bidder_org_id, 'paddle_no', r.paddle_no,
                    'deposit_status', r.deposit_status, 'priority_rank', r.priority_rank)), '[]')
         FROM auction_registrations r
         WHERE r.auction_id = a.id AND r.bidder_org_id = ANY($2::bigint[])) AS regs,
        (SELECT coalesce(jsonb_agg(jsonb_build_object(
                    'scope', k.scope, 'key', k.key, 'request_hash', k.request_hash,
                    'response', k.response)), '[]')
         FROM idempotency_keys k
         JOIN unnest($3::text[], $4::text[]) AS q(scope, key)
             ON k.scope = q.scope AND k.key = q.key) AS answers
    FROM auctions a
    WHERE a.id = $1
"""


@dataclass(frozen=True, slots=True)
class Registration:
    paddle_no: str
    deposit_status: str
    priority_rank: int | None


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    request_hash: str
    response: dict[str, Any]


async def read_for_bidders(
    conn: AsyncConnection, auction_id: int, org_ids: Sequence[int], requests: Sequence[tuple[str, str]]
) -> tuple[Locked, dict[int, Registration], dict[tuple[str, str], StoredAnswer]]:
    """``read_for_bidder`` for several bids at once: the auction, the registrations of ``org_ids``
    and the stored answers to ``requests`` (scope, key), in one round trip and WITHOUT a lock.

    Raises:
        AuctionNotFound: no such auction.
    """
    row = await pg.fetchrow(
        conn,
        _READ_FOR_BIDDERS,
        auction_id,
        sorted(set(org_ids)),
        [scope for scope, _ in requests],
        [key for _, key in requests],
    )
    if row is None:
        raise AuctionNotFound(f"No auction {auction_id}")
    regs = {
        int(r["org"]): Registration(r["paddle_no"], r["deposit_status"], r["priority_rank"]) for r in row.regs
    }
    answers = {(a["scope"], a["key"]): StoredAnswer(a["request_hash"], a["response"]) for a in row.answers}
    return decode(row, row.db_now), regs, answers


class Stale(Exception):
    """The auction changed between the read and the guarded write: read again."""


_LOCK = "SELECT *, now() AS db_now FROM auctions WHERE id = $1 FOR UPDATE"


async def lock(conn: AsyncConnection, auction_id: int) -> Locked:
    """``SELECT … FOR UPDATE`` the auction; ``now`` is the transaction's start (the receipt time).

    Raises:
        AuctionNotFound: no such auction.
    """
    row = await pg.fetchrow(conn, _LOCK, auction_id)
    if row is None:
        raise AuctionNotFound(f"No auction {auction_id}")
    return decode(row, row.db_now)


_LOCK_DUE = """
    SELECT *, now() AS db_now FROM auctions
    WHERE status IN ('scheduled', 'live') AND ends_at <= now() - $1::interval
        AND NOT (id = ANY($2::bigint[]))
    ORDER BY ends_at
    LIMIT 1
    FOR UPDATE SKIP LOCKED
"""


async def lock_due(conn: AsyncConnection, grace: timedelta, avoid: Collection[int] = ()) -> Locked | None:
    """Lock the auction that has been due longest (past ``ends_at`` by ``grace``), that no other
    closer holds (``SKIP LOCKED``) and that is not in ``avoid``; None when there is none."""
    row = await pg.fetchrow(conn, _LOCK_DUE, grace, list(avoid))
    return decode(row, row.db_now) if row is not None else None


def decode(row: Any, now: datetime) -> Locked:
    return Locked(
        row.id,
        row.listing_id,
        row.bank_org_id,
        terms_from_dict(row.terms),
        rules.state_from_dict(row.state),
        now,
        row,
    )


async def find(conn: AsyncConnection, auction_id: int) -> Row[Any] | None:
    row: Row[Any] | None = (
        await conn.execute(select(auctions, text("now() AS db_now")).where(auctions.c.id == auction_id))
    ).first()
    return row


def public_event(event: ev.Event, seq: int) -> dict[str, Any]:
    """The feed shape of an event: paddles only, no bidder ids or proxy maxima (rule 14)."""
    body = event.to_dict() if event.public else {"type": event.type, "at": ev.rfc3339(event.at)}
    return {**body, "seq": seq}


_APPEND = """
    WITH up AS (
        UPDATE auctions SET state = $3::jsonb, status = $4, ends_at = $5, seq = $6, closed_at = $7
        WHERE id = $1 AND seq = $2 RETURNING id
    ), ev AS (
        INSERT INTO auction_events (auction_id, seq, type, at, record, public, bidder_org_id, amount_fen)
        SELECT up.id, x.seq, x.type, x.at, x.record, x.public, x.bidder_org_id, x.amount_fen
        FROM up, jsonb_to_recordset($8::jsonb) AS x(
            seq bigint, type text, at timestamptz, record jsonb, public jsonb, bidder_org_id bigint,
            amount_fen bigint)
        RETURNING 1
    ), idem AS (
        INSERT INTO idempotency_keys (scope, key, request_hash, status_code, response)
        SELECT k.scope, k.key, k.request_hash, 201, k.response
        FROM up, jsonb_to_recordset($9::jsonb) AS k(scope text, key text, request_hash text, response jsonb)
        RETURNING 1
    )
    SELECT pg_notify($10, $11), (SELECT count(*) FROM ev) AS n_events, (SELECT count(*) FROM idem) AS n_idem
    FROM up
"""


def feed_of(locked: Locked, events: Sequence[ev.Event]) -> list[dict[str, Any]]:
    """The feed shapes of ``events``, numbered after the locked state's ``seq``."""
    return [public_event(event, locked.state.seq + 1 + i) for i, event in enumerate(events)]


async def append(
    conn: AsyncConnection,
    locked: Locked,
    new_state: rules.AuctionState,
    events: Sequence[ev.Event],
    *,
    answers: Sequence[tuple[str, str, str, dict[str, Any]]] = (),
) -> list[dict[str, Any]]:
    """Store the events and the new state and NOTIFY (delivered at COMMIT) in ONE round trip.

    Guarded by ``seq``: the write applies only if the auction is still at ``locked.state.seq``
    (always true under ``lock``; after ``read_for_bidder`` it may not be). ``answers`` (scope, key,
    request hash, response) record the answers of websocket requests in the same statement.
    Returns the feed shapes.

    Raises:
        Stale: the auction moved on since it was read; nothing was written.
    """
    if not events:
        return []
    feed = feed_of(locked, events)
    rows = []
    for event, public in zip(events, feed, strict=True):
        record = event.to_record()
        rows.append(
            {
                "seq": public["seq"],
                "type": event.type,
                "at": record["at"],
                "record": record,
                "public": public,
                "bidder_org_id": record.get("bidder_id"),
                "amount_fen": record.get("amount_fen"),
            }
        )
    keys = [{"scope": a[0], "key": a[1], "request_hash": a[2], "response": a[3]} for a in answers]
    result = await pg.fetchrow(
        conn,
        _APPEND,
        locked.id,
        locked.state.seq,
        _json(rules.state_to_dict(new_state)),
        new_state.status,
        new_state.ends_at,
        new_state.seq,
        new_state.closed_at,
        _json(rows),
        _json(keys),
        CHANNEL,
        _payload(locked.id, feed),
    )
    if result is None:
        raise Stale(f"auction {locked.id} moved past seq {locked.state.seq}")
    assert result.n_events == len(rows) and result.n_idem == len(keys), "append did not apply"
    return feed


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _payload(auction_id: int, feed: list[dict[str, Any]]) -> str:
    payload = json.dumps({"a": auction_id, "e": feed}, separators=(",", ":"), ensure_ascii=False)
    if len(payload.encode()) > NOTIFY_LIMIT:  # too big to carry: listeners read the events from the table
        payload = json.dumps({"a": auction_id, "from": feed[0]["seq"], "to": feed[-1]["seq"]})
    return payload


async def events_after(
    conn: AsyncConnection, auction_id: int, after_seq: int, upto_seq: int | None = None, limit: int = 10_000
) -> list[dict[str, Any]]:
    q = (
        select(auction_events.c.public)
        .where(auction_events.c.auction_id == auction_id, auction_events.c.seq > after_seq)
        .order_by(auction_events.c.seq)
        .limit(limit)
    )
    if upto_seq is not None:
        q = q.where(auction_events.c.seq <= upto_seq)
    return [r.public for r in (await conn.execute(q)).all()]


async def all_records(conn: AsyncConnection, auction_id: int) -> list[dict[str, Any]]:
    q = (
        select(auction_events.c.record)
        .where(auction_events.c.auction_id == auction_id)
        .order_by(auction_events.c.seq)
    )
    return [r.record for r in (await conn.execute(q)).all()]


async def registration(conn: AsyncConnection, auction_id: int, org_id: int) -> Row[Any] | None:
    q = select(auction_registrations).where(
        auction_registrations.c.auction_id == auction_id, auction_registrations.c.bidder_org_id == org_id
    )
    row: Row[Any] | None = (await conn.execute(q)).first()
    return row
