"""Raw limits, measured in the same run on the same database as the service.

(a) **The bid as one SQL round trip.** ``bench_raw.bid`` (plpgsql, in the scratch schema
``bench_raw``, created for the bench only and dropped after it) does what the service's websocket
bid does, minus Python: lock a copy of the auction row, check the bidder's held deposit, refuse the
leader outbidding himself and any amount below the next valid one, claim the request's idempotency
key, insert the event row with the next ``seq``, update the row's state, ``pg_notify`` the feed
and store the ack. Copies of the service's own auction rows (``LIKE`` tables with the same columns,
constraints and indexes) are used, so the rows, JSONB and indexes are the same size; registrations
are read from the real table. Client processes call it through asyncpg at the same concurrency as
the websocket bidders.

(b) **A bare broadcast.** ``market.bench.bare_broadcast``: uvicorn + Starlette with the same
number of workers, no authentication, no database transaction: a bid message is turned into one
event frame, ``pg_notify``-ed (the way the service's instances share events), and every worker
sends those same bytes to each of its sockets. The same client processes drive it the same way.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

SCHEMA = "bench_raw"
CHANNEL = "bench_raw"

SETUP_SQL = """
DROP SCHEMA IF EXISTS bench_raw CASCADE;
CREATE SCHEMA bench_raw;
CREATE TABLE bench_raw.auctions
    (LIKE public.auctions INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
CREATE TABLE bench_raw.auction_events
    (LIKE public.auction_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
CREATE TABLE bench_raw.idempotency_keys
    (LIKE public.idempotency_keys INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);

CREATE FUNCTION bench_raw.bid(
    p_auction bigint, p_bidder bigint, p_request text, p_amount bigint,
    OUT accepted boolean, OUT next_fen bigint, OUT seq bigint, OUT code text
) LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
    a bench_raw.auctions%ROWTYPE;
    r public.auction_registrations%ROWTYPE;
    t timestamptz := now();
    current_fen bigint;
    minimum bigint;
    new_seq bigint;
    new_ends timestamptz;
    ev jsonb;
    feed jsonb;
    ack jsonb;
BEGIN
    accepted := false;
    SELECT * INTO a FROM bench_raw.auctions WHERE id = p_auction FOR UPDATE;
    IF NOT FOUND THEN
        code := 'auction_not_found';
        RETURN;
    END IF;
    SELECT * INTO r FROM public.auction_registrations
        WHERE auction_id = p_auction AND bidder_org_id = p_bidder;
    IF NOT FOUND OR r.deposit_status <> 'held' THEN
        code := 'deposit_required';
        RETURN;
    END IF;
    IF a.status IN ('closed', 'failed', 'cancelled', 'suspended') OR t >= a.ends_at THEN
        code := 'auction_closed';
        RETURN;
    END IF;
    IF t < (a.state->>'starts_at')::timestamptz THEN
        code := 'auction_not_open';
        RETURN;
    END IF;
    current_fen := (a.state->>'current_price_fen')::bigint;
    minimum := CASE WHEN current_fen IS NULL THEN (a.terms->>'start_price_fen')::bigint
                    ELSE current_fen + (a.terms->>'increment_fen')::bigint END;
    next_fen := minimum;
    IF (a.state->'leader'->>'bidder_id')::bigint = p_bidder THEN
        code := 'self_outbid';
        RETURN;
    END IF;
    IF p_amount < minimum THEN
        code := 'bid_too_low';
        RETURN;
    END IF;
    INSERT INTO bench_raw.idempotency_keys (scope, key, request_hash, status_code, response)
        VALUES ('wsbid:' || p_bidder, p_auction || ':' || p_request,
                md5(p_auction || ':' || p_amount), 0, 'null'::jsonb);
    new_seq := a.seq + 1;
    new_ends := greatest(a.ends_at, t + make_interval(secs => (a.terms->>'extension_seconds')::int));
    ev := jsonb_build_object('type', 'bid', 'at', t, 'paddle_no', r.paddle_no, 'amount_fen', p_amount,
                             'ends_at', new_ends, 'proxy', false, 'priority_rank', NULL, 'seq', new_seq);
    INSERT INTO bench_raw.auction_events
        (auction_id, seq, type, at, record, public, bidder_org_id, amount_fen)
        VALUES (p_auction, new_seq, 'bid', t,
                (ev - 'seq') || jsonb_build_object('bidder_id', p_bidder, 'max_fen', NULL),
                ev, p_bidder, p_amount);
    feed := jsonb_build_array(ev);
    IF new_ends <> a.ends_at THEN
        new_seq := new_seq + 1;
        INSERT INTO bench_raw.auction_events (auction_id, seq, type, at, record, public)
            VALUES (p_auction, new_seq, 'extended', t,
                    jsonb_build_object('type', 'extended', 'at', t, 'ends_at', new_ends,
                                       'previous_ends_at', a.ends_at),
                    jsonb_build_object('type', 'extended', 'at', t, 'ends_at', new_ends,
                                       'previous_ends_at', a.ends_at, 'seq', new_seq));
        feed := feed || jsonb_build_array(jsonb_build_object('type', 'extended', 'at', t,
                                          'ends_at', new_ends, 'previous_ends_at', a.ends_at,
                                          'seq', new_seq));
    END IF;
    UPDATE bench_raw.auctions SET
        state = a.state || jsonb_build_object(
            'status', 'live', 'current_price_fen', p_amount, 'ends_at', new_ends, 'seq', new_seq,
            'bid_count', coalesce((a.state->>'bid_count')::int, 0) + 1, 'last_bid_at', t,
            'leader', jsonb_build_object('bidder_id', p_bidder, 'paddle_no', r.paddle_no,
                                         'priority_rank', NULL, 'committed_seq', a.seq)),
        status = 'live', ends_at = new_ends, seq = new_seq
        WHERE id = p_auction;
    PERFORM pg_notify('bench_raw', jsonb_build_object('a', p_auction, 'e', feed)::text);
    ack := jsonb_build_object('seq', a.seq + 1, 'amount_fen', p_amount, 'price_fen', p_amount,
                              'leading', true, 'ends_at', new_ends);
    UPDATE bench_raw.idempotency_keys SET status_code = 201, response = ack
        WHERE scope = 'wsbid:' || p_bidder AND key = p_auction || ':' || p_request;
    accepted := true;
    seq := a.seq + 1;
    next_fen := p_amount + (a.terms->>'increment_fen')::bigint;
    code := NULL;
END
$fn$;
"""


async def install(conn: Any) -> None:
    """Create (again) the scratch schema and the one-round-trip bid function (asyncpg ``conn``)."""
    await conn.execute(SETUP_SQL)


async def copy_auctions(conn: Any, auction_ids: list[int]) -> None:
    """Copy the auctions' rows, as they are now, into ``bench_raw`` (replacing earlier copies)."""
    await conn.execute(
        "DELETE FROM bench_raw.auction_events WHERE auction_id = ANY($1::bigint[])", auction_ids
    )
    await conn.execute("DELETE FROM bench_raw.auctions WHERE id = ANY($1::bigint[])", auction_ids)
    await conn.execute(
        "INSERT INTO bench_raw.auctions SELECT * FROM public.auctions WHERE id = ANY($1::bigint[])",
        auction_ids,
    )


async def drop(conn: Any) -> None:
    await conn.execute("DROP SCHEMA IF EXISTS bench_raw CASCADE")


class BareServer:
    """The bare broadcast server as its own process tree (uvicorn master and workers)."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.process, self.url, self.log = process, url, log

    @classmethod
    def start(cls, port: int, workers: int, dsn: str, env: dict[str, str], log: Path) -> BareServer:
        full_env = {**env, "BENCH_BARE_DSN": dsn}
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "market.bench.bare_broadcast",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            env=full_env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            cwd=str(log.parent),
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the bare broadcast server exited:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    return cls(process, url, log)
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        process.kill()
        raise RuntimeError(f"the bare broadcast server was not ready in 60 s:\n{log.read_text()[-3000:]}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def project_root() -> str:
    """The directory holding the ``market`` package (child processes import from it)."""
    return str(Path(__file__).resolve().parents[2])


def child_env(base: dict[str, str]) -> dict[str, str]:
    root = project_root()
    path = base.get("PYTHONPATH", "")
    return {**base, "PYTHONPATH": root + (os.pathsep + path if path else "")}
