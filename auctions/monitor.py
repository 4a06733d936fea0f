"""The operator monitor's read side: live counts from SQL aggregates.

Every figure is one aggregate query (indexes of migration 0006 keep the time-bounded ones cheap);
Python only shapes the few result rows. ``bank_org_id`` scopes every figure to one consigning bank
(what a test with its own fresh bank asserts exactly, while other tests share the database); the
instance watchers figure then counts the watchers of that bank's auctions.

Definitions:

- auctions by status: the stored status, with a ``scheduled`` round whose opening has passed shown
  as ``live`` (``rules.status_at``);
- bids in the last minute: ``bid`` events received within the last 60 s; bids per minute: the last
  30 whole minutes (the current one included), zeros filled;
- watchers connected: the sum over instances that reported within the last 10 s
  (``instance_presence``, refreshed every 2 s by each instance);
- extensions in progress: running rounds, not yet ended, whose end an ``extended`` event moved;
- closer lag: the largest ``now() - ends_at`` of rounds still open past their end, and the p99 of
  ``closed_at - ends_at`` over the closes of the last hour;
- disposals by stage: listings published (listed) and in auction, disposals awaiting payment / in
  escrow / settled / licensed, failed rounds, defaults;
- deposits held: the sum of ``hold:*`` ledger balances; amounts recovered: the sum of ``claim:*``
  balances, and per bank against the opening amounts of the bank's claims;
- suspects: bidders of running rounds whose ``integrity.shill_score`` reaches the threshold, with
  their paddle and identity (the monitor is for operators only).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from auctions import integrity
from auctions.events import rfc3339

STATUSES = ("scheduled", "live", "suspended", "closed", "failed", "cancelled")
PRESENCE_TTL_SECONDS = 10
BID_MINUTES = 30
SUSPECT_LIMIT = 50

_NUMERIC_ID = "'^[0-9]{1,18}$'"


def _by_bank(column: str, bank: int | None) -> str:
    """The bank condition (none without a bank: each query's plan is the one for its case)."""
    return "TRUE" if bank is None else f"{column} = :bank"


def _in_bank(expr: str, table: str, bank: int | None, *, key: str = "id") -> str:
    """``expr`` is the ``key`` of a row of ``table`` consigned by the bank."""
    return "TRUE" if bank is None else f"{expr} IN (SELECT {key} FROM {table} WHERE bank_org_id = :bank)"


def _account_key(column: str) -> str:
    """The id in the middle of an account name ``kind:<id>:…``, as text (compared with ``id::text``:
    no cast that a malformed name could break)."""
    return f"split_part({column}, ':', 2)"


async def _rows(conn: AsyncConnection, sql: str, **params: Any) -> list[Any]:
    return list((await conn.execute(text(sql), params)).all())


async def _one(conn: AsyncConnection, sql: str, **params: Any) -> Any:
    return (await conn.execute(text(sql), params)).one()


# --------------------------------------------------------------------------- auctions and bids


async def auctions_by_status(conn: AsyncConnection, bank: int | None) -> dict[str, int]:
    rows = await _rows(
        conn,
        f"""
        SELECT CASE WHEN status = 'scheduled' AND (state->>'starts_at')::timestamptz <= now()
                    THEN 'live' ELSE status END AS shown, count(*) AS n
        FROM auctions WHERE {_by_bank("bank_org_id", bank)} GROUP BY 1
        """,
        bank=bank,
    )
    counts = dict.fromkeys(STATUSES, 0)
    counts.update({r.shown: int(r.n) for r in rows})
    return counts


async def extensions_in_progress(conn: AsyncConnection, bank: int | None) -> int:
    row = await _one(
        conn,
        f"""
        SELECT count(*) AS n FROM auctions a
        WHERE a.status IN ('scheduled', 'live') AND a.ends_at > now() AND {_by_bank("a.bank_org_id", bank)}
          AND EXISTS (SELECT 1 FROM auction_events e WHERE e.auction_id = a.id AND e.type = 'extended')
        """,
        bank=bank,
    )
    return int(row.n)


async def bids_last_minute(conn: AsyncConnection, bank: int | None) -> int:
    row = await _one(
        conn,
        f"""
        SELECT count(*) AS n FROM auction_events e
        WHERE e.type = 'bid' AND e.at > now() - interval '1 minute'
          AND {_in_bank("e.auction_id", "auctions", bank)}
        """,
        bank=bank,
    )
    return int(row.n)


async def bids_per_minute(conn: AsyncConnection, bank: int | None) -> list[dict[str, Any]]:
    rows = await _rows(
        conn,
        f"""
        WITH b AS (
            SELECT date_trunc('minute', e.at) AS minute, count(*) AS n FROM auction_events e
            WHERE e.type = 'bid'
              AND e.at >= date_trunc('minute', now()) - interval '{BID_MINUTES - 1} minutes'
              AND {_in_bank("e.auction_id", "auctions", bank)}
            GROUP BY 1
        )
        SELECT m.minute, coalesce(b.n, 0) AS n
        FROM generate_series(date_trunc('minute', now()) - interval '{BID_MINUTES - 1} minutes',
                             date_trunc('minute', now()), interval '1 minute') AS m(minute)
        LEFT JOIN b ON b.minute = m.minute
        ORDER BY m.minute
        """,
        bank=bank,
    )
    return [{"minute": rfc3339(r.minute), "bids": int(r.n)} for r in rows]


async def watchers(conn: AsyncConnection, bank: int | None) -> dict[str, Any]:
    fresh = f"p.seen_at > now() - interval '{PRESENCE_TTL_SECONDS} seconds'"
    instances = await _one(
        conn,
        f"SELECT count(*) AS n, coalesce(sum(p.watchers), 0) AS w FROM instance_presence p WHERE {fresh}",
    )
    rows = await _rows(
        conn,
        f"""
        SELECT a.id AS auction_id, sum(kv.value::int) AS n
        FROM instance_presence p CROSS JOIN LATERAL jsonb_each_text(p.per_auction) AS kv
        JOIN auctions a ON a.id = (CASE WHEN kv.key ~ {_NUMERIC_ID} THEN kv.key::bigint END)
        WHERE {fresh} AND {_by_bank("a.bank_org_id", bank)}
        GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1000
        """,
        bank=bank,
    )
    per_auction = {str(r.auction_id): int(r.n) for r in rows}
    connected = int(instances.w) if bank is None else sum(per_auction.values())
    return {"connected": connected, "instances": int(instances.n), "per_auction": per_auction}


async def closer_lag(conn: AsyncConnection, bank: int | None) -> dict[str, Any]:
    overdue = await _one(
        conn,
        f"""
        SELECT count(*) AS n, coalesce(extract(epoch FROM max(now() - ends_at)), 0) AS lag
        FROM auctions
        WHERE status IN ('scheduled', 'live') AND ends_at < now() AND {_by_bank("bank_org_id", bank)}
        """,
        bank=bank,
    )
    recent = await _one(
        conn,
        f"""
        SELECT count(*) AS n,
               percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM closed_at - ends_at)) AS p99
        FROM auctions
        WHERE closed_at > now() - interval '1 hour' AND status IN ('closed', 'failed')
          AND {_by_bank("bank_org_id", bank)}
        """,
        bank=bank,
    )
    return {
        "lag_seconds": round(float(overdue.lag), 3),
        "overdue": int(overdue.n),
        "p99_seconds": None if recent.p99 is None else round(max(0.0, float(recent.p99)), 3),
        "recent_closes": int(recent.n),
    }


# --------------------------------------------------------------------------- disposals and money


async def disposals_by_stage(conn: AsyncConnection, bank: int | None) -> dict[str, int]:
    row = await _one(
        conn,
        f"""
        SELECT
          count(*) FILTER (WHERE status = 'published') AS listed,
          count(*) FILTER (WHERE status = 'in_auction') AS in_auction,
          count(*) FILTER (WHERE status = 'in_negotiation') AS in_negotiation,
          (SELECT count(*) FROM auctions a WHERE a.status = 'failed' AND {_by_bank("a.bank_org_id", bank)})
              AS failed_rounds
        FROM listings
        WHERE status IN ('published', 'in_auction', 'in_negotiation') AND {_by_bank("bank_org_id", bank)}
        """,
        bank=bank,
    )
    stages = await _rows(
        conn,
        f"SELECT stage, count(*) AS n FROM disposals WHERE {_by_bank('bank_org_id', bank)} GROUP BY stage",
        bank=bank,
    )
    by_stage = {r.stage: int(r.n) for r in stages}
    return {
        "listed": int(row.listed),
        "in_auction": int(row.in_auction),
        "in_negotiation": int(row.in_negotiation),
        "awaiting_payment": by_stage.get("awaiting_payment", 0),
        "in_escrow": by_stage.get("in_escrow", 0),
        "settled": by_stage.get("settled", 0),
        "licensed": by_stage.get("licensed", 0),
        "failed_rounds": int(row.failed_rounds),
        "defaults": by_stage.get("defaulted", 0),
    }


async def deposits_held(conn: AsyncConnection, bank: int | None) -> int:
    row = await _one(
        conn,
        f"""
        SELECT coalesce(sum(la.balance), 0) AS held FROM ledger_accounts la
        WHERE la.name LIKE 'hold:%' AND {_in_bank(_account_key("la.name"), "listings", bank, key="id::text")}
        """,
        bank=bank,
    )
    return int(row.held)


async def amounts_recovered(conn: AsyncConnection, bank: int | None) -> int:
    row = await _one(
        conn,
        f"""
        SELECT coalesce(sum(la.balance), 0) AS recovered FROM ledger_accounts la
        WHERE la.name LIKE 'claim:%' AND {_in_bank(_account_key("la.name"), "claims", bank, key="id::text")}
        """,
        bank=bank,
    )
    return int(row.recovered)


async def recovery_by_bank(conn: AsyncConnection, bank: int | None) -> list[dict[str, Any]]:
    """Recovered (``claim:*`` balances) against the opening amounts of each bank's claims."""
    rows = await _rows(
        conn,
        f"""
        WITH rec AS (
            SELECT {_account_key("la.name")} AS claim_key, sum(la.balance) AS recovered
            FROM ledger_accounts la WHERE la.name LIKE 'claim:%' GROUP BY 1
        )
        SELECT c.bank_org_id, o.name AS bank_name, count(*) AS claims,
               sum(c.principal_fen + c.interest_fen + c.default_interest_fen + c.costs_fen) AS opening,
               coalesce(sum(rec.recovered), 0) AS recovered
        FROM claims c JOIN orgs o ON o.id = c.bank_org_id LEFT JOIN rec ON rec.claim_key = c.id::text
        WHERE {_by_bank("c.bank_org_id", bank)}
        GROUP BY c.bank_org_id, o.name
        ORDER BY recovered DESC, c.bank_org_id
        LIMIT 200
        """,
        bank=bank,
    )
    return [
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


def _rate(part: int, whole: int) -> float | None:
    return None if whole <= 0 else round(part / whole, 4)


# --------------------------------------------------------------------------- integrity


async def bidder_activity(conn: AsyncConnection, bank: int | None) -> list[Any]:
    """Per bidder per running auction: ``integrity.BidderActivity`` figures, paddle and identity."""
    return await _rows(
        conn,
        f"""
        WITH live AS NOT MATERIALIZED (  -- inlined: each use is planned with the auctions' statistics
            SELECT a.id, a.bank_org_id,
                   (a.terms->>'starts_at')::timestamptz AS starts_at,
                   (a.terms->>'ends_at')::timestamptz AS ends_at,
                   (a.terms->>'increment_fen')::bigint AS inc
            FROM auctions a
            WHERE a.status IN ('scheduled', 'live', 'suspended') AND a.seq > 0
              AND {_by_bank("a.bank_org_id", bank)}
        ),
        void AS (
            SELECT c.auction_id, v.seq::bigint AS seq
            FROM auction_events c JOIN live ON live.id = c.auction_id
            CROSS JOIN LATERAL jsonb_array_elements_text(c.record->'cancelled_seqs') AS v(seq)
            WHERE c.type = 'bid_cancelled'
        ),
        bids AS (  -- the standing bids of each running auction (read by its primary key), in order
            SELECT live.id AS auction_id, b.bidder_org_id, b.at, b.amount_fen, b.previous,
                   live.starts_at, live.ends_at, live.inc
            FROM live CROSS JOIN LATERAL (
                SELECT e.bidder_org_id, e.at, e.amount_fen,
                       lag(e.amount_fen) OVER (ORDER BY e.seq) AS previous
                FROM auction_events e
                WHERE e.auction_id = live.id AND e.type = 'bid' AND e.bidder_org_id IS NOT NULL
                  AND NOT EXISTS (SELECT 1 FROM void v WHERE v.auction_id = e.auction_id AND v.seq = e.seq)
            ) AS b
        ),
        per AS (
            SELECT auction_id, bidder_org_id, count(*) AS bids,
                   count(*) FILTER (WHERE at < starts_at + (ends_at - starts_at) / {integrity.EARLY_FRACTION})
                       AS early,
                   count(*) FILTER (WHERE previous IS NOT NULL AND amount_fen - previous = inc) AS minimum
            FROM bids GROUP BY 1, 2
        ),
        pairs AS (  -- every auction each involved bidder registered for and bid in, and whether it won
            SELECT r.bidder_org_id, r.auction_id,
                   a.status = 'closed' AND a.state->'leader'->>'bidder_id' = r.bidder_org_id::text AS won
            FROM auction_registrations r JOIN auctions a ON a.id = r.auction_id
            WHERE r.bidder_org_id IN (SELECT DISTINCT bidder_org_id FROM per)
              AND EXISTS (SELECT 1 FROM auction_events e WHERE e.bidder_org_id = r.bidder_org_id
                          AND e.auction_id = r.auction_id AND e.type = 'bid')
        ),
        hist AS (
            SELECT p.bidder_org_id, a.bank_org_id, count(*) AS bid_in,
                   count(*) FILTER (WHERE a.status IN ('closed', 'failed')) AS finished,
                   count(*) FILTER (WHERE p.won) AS won
            FROM pairs p JOIN auctions a ON a.id = p.auction_id
            GROUP BY 1, 2
        ),
        total AS (
            SELECT bidder_org_id, sum(bid_in) AS bid_in, sum(finished) AS finished, sum(won) AS won
            FROM hist GROUP BY 1
        )
        SELECT per.auction_id, per.bidder_org_id, per.bids, per.early, per.minimum,
               total.bid_in, total.finished, total.won, coalesce(same.bid_in, 0) AS same_seller,
               r.paddle_no, o.name AS org_name, o.credit_code
        FROM per
        JOIN live ON live.id = per.auction_id
        JOIN total ON total.bidder_org_id = per.bidder_org_id
        LEFT JOIN hist same ON same.bidder_org_id = per.bidder_org_id AND same.bank_org_id = live.bank_org_id
        LEFT JOIN auction_registrations r
               ON r.auction_id = per.auction_id AND r.bidder_org_id = per.bidder_org_id
        JOIN orgs o ON o.id = per.bidder_org_id
        """,
        bank=bank,
    )


async def suspects(
    conn: AsyncConnection, bank: int | None, threshold: int = integrity.SUSPECT_THRESHOLD
) -> list[dict[str, Any]]:
    out = []
    for r in await bidder_activity(conn, bank):
        activity = integrity.BidderActivity(
            bids=int(r.bids),
            early_bids=int(r.early),
            minimum_increment_bids=int(r.minimum),
            auctions_bid=int(r.bid_in),
            auctions_finished=int(r.finished),
            auctions_won=int(r.won),
            auctions_same_seller=int(r.same_seller),
        )
        score = integrity.shill_score(activity)
        if score.is_suspect(threshold):
            out.append(
                {
                    "auction_id": int(r.auction_id),
                    "paddle_no": r.paddle_no,
                    "bidder_org_id": int(r.bidder_org_id),
                    "org_name": r.org_name,
                    "credit_code": r.credit_code,
                    "score": score.score,
                    "signals": [
                        {"code": s.code, "ratio": s.ratio, "points": s.points, "weight": s.weight}
                        for s in score.signals
                    ],
                }
            )
    out.sort(key=lambda s: (-s["score"], s["auction_id"], s["paddle_no"] or ""))
    return out[:SUSPECT_LIMIT]


# --------------------------------------------------------------------------- the snapshot


@dataclass(frozen=True, slots=True)
class Options:
    bank_org_id: int | None = None
    suspect_threshold: int = integrity.SUSPECT_THRESHOLD
    #: False leaves ``suspects`` empty: the costliest figure (every involved bidder's history), which
    #: the live feed refreshes less often (``web.ws_monitor``)
    suspects: bool = True


async def snapshot(conn: AsyncConnection, options: Options | None = None) -> dict[str, Any]:
    """Every monitor figure at one moment (JSON-ready)."""
    o = options or Options()
    bank = o.bank_org_id
    now: datetime = (await conn.execute(text("SELECT now()"))).scalar_one()
    return {
        "generated_at": rfc3339(now),
        "bank_org_id": bank,
        "auctions": {
            "by_status": await auctions_by_status(conn, bank),
            "extensions_in_progress": await extensions_in_progress(conn, bank),
        },
        "bids_last_minute": await bids_last_minute(conn, bank),
        "bids_per_minute": await bids_per_minute(conn, bank),
        "watchers": await watchers(conn, bank),
        "closer": await closer_lag(conn, bank),
        "disposals": await disposals_by_stage(conn, bank),
        "deposits_held_fen": await deposits_held(conn, bank),
        "recovered_fen": await amounts_recovered(conn, bank),
        "recovery_by_bank": await recovery_by_bank(conn, bank),
        "suspects": await suspects(conn, bank, o.suspect_threshold) if o.suspects else [],
        "suspect_threshold": o.suspect_threshold,
    }
