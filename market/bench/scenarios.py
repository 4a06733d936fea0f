"""The scenarios of ``market bench``: seed through the real API and services, drive from client
processes, and turn what they report into rows (service, raw limit, ratio, target).

A row is ``{"case", "metric", "unit", "service", "raw", "ratio", "target", "met"}``; ``ratio`` is
service ÷ raw whenever the raw limit was measured. Sizes are the issue's; ``--quick`` shrinks every
one to seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import httpx
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from market.bench import clients, raw
from market.bench.clients import Hist

APPRAISAL = 100_000_000
START = 70_000_000  # 70 % of the appraisal (rule 2)
INCREMENT = 500_000
DEPOSIT = 7_000_000  # 10 % of the start price (rule 6)
PASSWORD = "bench-password-1"
HOUR = 3600.0

Row = dict[str, Any]
Result = dict[str, Any]


# --------------------------------------------------------------------------- context


@dataclass
class Ctx:
    """What every scenario needs: the service, the database, the clients' environment."""

    url: str
    database_url: str
    dsn: str
    engine: AsyncEngine
    http: httpx.AsyncClient
    quick: bool
    workers: int
    service_pid: int
    service_port: int
    env: dict[str, str]
    log_dir: str
    say: Callable[[str], None]
    start_bare: Callable[[], Awaitable[raw.BareServer]]
    postgres_pid: int | None = None
    client_procs: int = 2
    bare_pid: int | None = None
    seeder: Seeder = field(init=False)
    cpu: CpuMeter = field(init=False)

    def __post_init__(self) -> None:
        self.seeder = Seeder(self)
        self.cpu = CpuMeter(self)

    async def bare(self) -> raw.BareServer:
        """The bare broadcast server (started on first use, kept for the run)."""
        server = await self.start_bare()
        self.bare_pid = server.pid
        return server

    def size(self, quick: Any, full: Any) -> Any:
        return quick if self.quick else full


def row(
    case: str,
    metric: str,
    unit: str,
    service: float | None,
    raw_value: float | None = None,
    *,
    target: str | None = None,
    met: bool | None = None,
) -> Row:
    ratio = None
    if service is not None and raw_value not in (None, 0):
        ratio = round(service / raw_value, 3)
    return {
        "case": case,
        "metric": metric,
        "unit": unit,
        "service": _round(service),
        "raw": _round(raw_value),
        "ratio": ratio,
        "target": target,
        "met": met,
    }


def _round(value: float | None) -> float | None:
    if value is None:
        return None
    return round(float(value), 2 if abs(value) < 1000 else 0)


# --------------------------------------------------------------------------- CPU accounting


def _tree_cpu(pid: int | None, *, reaped: bool = True) -> float:
    """CPU seconds of a process tree: live members, plus children it has already reaped."""
    import psutil

    if pid is None:
        return 0.0
    try:
        root = psutil.Process(pid)
        members = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for p in members:
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
        if reaped and p is root:
            total += t.children_user + t.children_system
    return total


class CpuMeter:
    """Where the machine's CPU went during a phase: the service's process tree, PostgreSQL, the bench's
    client processes, the bare broadcast server, the bench itself, and everything else on the machine
    ("other": processes that are not part of this run). Figures are cores (CPU seconds per second)."""

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx

    def snapshot(self) -> dict[str, float]:
        import psutil

        me = psutil.Process()
        clients_ = 0.0
        for child in me.children():
            try:
                if "market.bench.worker" in " ".join(child.cmdline()):
                    t = child.cpu_times()
                    clients_ += t.user + t.system
            except psutil.Error:
                continue
        mine = me.cpu_times()
        machine = psutil.cpu_times()
        busy = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0) - getattr(machine, "guest", 0.0)
        return {
            "t": time.monotonic(),
            "service": _tree_cpu(self.ctx.service_pid, reaped=False),
            "bare": _tree_cpu(self.ctx.bare_pid, reaped=False),
            "postgres": _tree_cpu(self.ctx.postgres_pid),
            "clients": clients_ + mine.children_user + mine.children_system,
            "bench": mine.user + mine.system,
            "machine": busy,
        }

    def since(self, before: dict[str, float]) -> dict[str, Any]:
        after = self.snapshot()
        wall = max(after["t"] - before["t"], 1e-9)
        used = {k: max(0.0, (after[k] - before[k]) / wall) for k in after if k != "t"}
        ours = sum(v for k, v in used.items() if k != "machine")
        used["other"] = max(0.0, used["machine"] - ours)
        return {"wall_s": round(wall, 2), "cores": {k: round(v, 2) for k, v in used.items()}}


# --------------------------------------------------------------------------- seeding


@dataclass
class Party:
    org_id: int
    user_id: int
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def _today() -> date:
    from market.clock import today_cst

    return today_cst()


def _patent(title: str, title_en: str) -> dict[str, Any]:
    today = _today()
    return {
        "kind": "invention_patent",
        "registration_no": f"ZL0{secrets.randbelow(10**11):011d}.{secrets.randbelow(10)}",
        "title": title,
        "title_en": title_en,
        "holder": "深圳市某某科技有限公司",
        "filed_on": "2019-03-01",
        "granted_on": "2021-06-01",
        "legal_status": "granted",
        "classes": ["H01M 4/505"],
        "appraisal_fen": APPRAISAL,
        "appraised_on": (today - timedelta(days=60)).isoformat(),
        "appraiser": "中联资产评估",
        "annuity_paid_through": (today + timedelta(days=200)).isoformat(),
    }


def _claim(asset_ids: list[int]) -> dict[str, Any]:
    from market.identity import make_credit_code

    today = _today()
    return {
        "loan_no": f"BENCH{secrets.token_hex(6).upper()}",
        "borrower": {"name": "深圳市某某科技有限公司", "credit_code": make_credit_code(secrets.token_hex(8))},
        "principal_fen": 60_000_000,
        "interest_fen": 3_000_000,
        "costs_fen": 200_000,
        "defaulted_on": (today - timedelta(days=100)).isoformat(),
        "pledges": [
            {"asset_id": a, "registration_no": f"ZX{secrets.token_hex(4)}", "registered_on": "2023-01-10"}
            for a in asset_ids
        ],
    }


async def bounded(factories: Iterable[Callable[[], Awaitable[Any]]], limit: int) -> list[Any]:
    """Run the coroutines made by ``factories`` with at most ``limit`` at a time, in order."""
    gate = asyncio.Semaphore(limit)

    async def one(make: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            return await make()

    return list(await asyncio.gather(*(one(f) for f in factories)))


class Seeder:
    """Parties through the identity services; listings, auctions, registrations through the API.

    Bench users get a cheap argon2 hash (the hash records its own parameters): thousands of
    watchers must not cost minutes of password hashing, and nobody signs in with them.
    """

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        self.run = secrets.token_hex(3)
        self._bank: Party | None = None
        self._operator: Party | None = None
        self._buyers: list[Party] = []
        self._viewers: list[Party] = []
        self._viewer_org: int | None = None
        self._lock = asyncio.Lock()  # parties are made once, even when many coroutines ask at once

    @staticmethod
    def _cheap_hashes() -> None:
        from argon2 import PasswordHasher

        from market import identity

        identity._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)

    async def _parties(self, kind: str, count: int, org_id: int | None = None) -> list[Party]:
        from market.db import transaction
        from market.parties import Role

        self._cheap_hashes()
        made: list[Party] = []
        while len(made) < count:
            async with transaction(self.ctx.engine) as conn:
                for _ in range(min(100, count - len(made))):
                    made.append(await self._party(conn, Role(kind), org_id))
        return made

    async def _party(self, conn: AsyncConnection, kind: Any, org_id: int | None) -> Party:
        from market import identity

        tag = secrets.token_hex(5)
        if org_id is None:
            org = await identity.create_org(
                conn,
                None,
                name=f"bench {kind.value} {tag}",
                kind=kind,
                credit_code=identity.make_credit_code(tag),
                verified=True,
            )
            org_id = org.id
        user = await identity.create_user(
            conn, None, org_id=org_id, email=f"bench-{kind.value}-{tag}@example.com", password=PASSWORD
        )
        issued = await identity.issue_session(conn, user, kind="bearer", ttl_seconds=2 * 86400)
        return Party(org_id, user.id, issued.token)

    async def bank(self) -> Party:
        async with self._lock:
            if self._bank is None:
                self._bank = (await self._parties("bank", 1))[0]
            return self._bank

    async def operator(self) -> Party:
        async with self._lock:
            return await self._make_operator()

    async def _make_operator(self) -> Party:
        if self._operator is None:
            from market import identity
            from market.db import transaction

            self._cheap_hashes()
            async with transaction(self.ctx.engine) as conn:
                user = await identity.create_operator(
                    conn, email=f"bench-operator-{self.run}@example.com", password=PASSWORD
                )
                issued = await identity.issue_session(conn, user, kind="bearer", ttl_seconds=2 * 86400)
            self._operator = Party(user.org_id, user.id, issued.token)
        return self._operator

    async def buyers(self, count: int) -> list[Party]:
        async with self._lock:
            if len(self._buyers) < count:
                self._buyers += await self._parties("buyer", count - len(self._buyers))
            return self._buyers[:count]

    async def viewers(self, count: int) -> list[str]:
        """Tokens of ``count`` distinct users (one socket each, as a real audience)."""
        async with self._lock:
            return await self._make_viewers(count)

    async def _make_viewers(self, count: int) -> list[str]:
        if self._viewer_org is None:
            first = (await self._parties("buyer", 1))[0]
            self._viewer_org = first.org_id
            self._viewers.append(first)
        if len(self._viewers) < count:
            self._viewers += await self._parties("buyer", count - len(self._viewers), self._viewer_org)
        return [p.token for p in self._viewers[:count]]

    async def _post(self, path: str, headers: dict[str, str], body: Any = None) -> dict[str, Any]:
        for attempt in range(3):
            r = await self.ctx.http.post(path, headers=headers, json=body)
            if r.status_code in (200, 201):
                out: dict[str, Any] = r.json()
                return out
            if r.status_code < 500 or attempt == 2:
                raise RuntimeError(f"POST {path}: {r.status_code} {r.text[:500]}")
            await asyncio.sleep(0.2)
        raise AssertionError("unreachable")

    async def listing(self, n: int = 0) -> int:
        """A published transfer listing of one patent pledged to its own claim (four API calls)."""
        bank = await self.bank()
        h = bank.headers
        asset = await self._post(
            "/api/v1/assets", h, _patent("一种锂电池正极材料的制备方法", "Lithium cathode")
        )
        await self._post("/api/v1/claims", h, _claim([asset["id"]]))
        listing = await self._post(
            "/api/v1/listings",
            h,
            {"title": f"锂电池专利拍卖 {self.run}-{n}", "mode": "transfer", "asset_ids": [asset["id"]]},
        )
        await self._post(f"/api/v1/listings/{listing['id']}/publish", h)
        return int(listing["id"])

    async def listings(self, count: int, parallel: int = 12) -> list[int]:
        return await bounded([lambda i=i: self.listing(i) for i in range(count)], parallel)  # type: ignore[misc]

    async def auction(
        self,
        listing_id: int,
        *,
        starts_at: datetime | None = None,
        ends_at: datetime | None = None,
        extension_seconds: int = 2,
    ) -> dict[str, Any]:
        bank = await self.bank()
        starts = starts_at or datetime.now(UTC) + timedelta(seconds=0.8)
        ends = ends_at or starts + timedelta(seconds=HOUR)
        body = {
            "listing_id": listing_id,
            "start_price_fen": START,
            "increment_fen": INCREMENT,
            "deposit_fen": DEPOSIT,
            "starts_at": starts.isoformat(),
            "ends_at": ends.isoformat(),
            "extension_seconds": extension_seconds,
        }
        return await self._post("/api/v1/auctions", bank.headers, body)

    async def register(self, auction_id: int, buyer: Party) -> str:
        reg = await self._post(f"/api/v1/auctions/{auction_id}/registrations", buyer.headers)
        return str(reg["paddle_no"])

    async def live_auctions(self, count: int, bidders_each: int) -> tuple[list[int], list[list[Party]]]:
        """``count`` auctions open for an hour, each with ``bidders_each`` registered buyers of its own."""
        listing_ids = await self.listings(count)
        made = await bounded([lambda lid=lid: self.auction(lid) for lid in listing_ids], 12)  # type: ignore[misc]
        ids = [int(a["id"]) for a in made]
        buyers = await self.buyers(count * bidders_each)
        groups = [buyers[i * bidders_each : (i + 1) * bidders_each] for i in range(count)]
        await bounded(
            [lambda a=a, b=b: self.register(a, b) for a, g in zip(ids, groups, strict=True) for b in g],  # type: ignore[misc]
            12,
        )
        opens = max(datetime.fromisoformat(a["starts_at"]) for a in made)
        await asyncio.sleep(max(0.0, (opens - datetime.now(UTC)).total_seconds()) + 0.1)
        return ids, groups


# --------------------------------------------------------------------------- helpers


def process_tree_rss(pid: int) -> int:
    import psutil

    root = psutil.Process(pid)
    total = 0
    for p in [root, *root.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            continue
    return total


def sockets_per_worker(pid: int, port: int) -> list[int]:
    """Established connections on ``port`` held by each worker of the process tree ``pid``."""
    import psutil

    counts: list[int] = []
    for p in psutil.Process(pid).children(recursive=True):
        try:
            n = sum(
                1
                for c in p.net_connections(kind="tcp")
                if c.laddr and c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED
            )
        except psutil.Error:
            continue
        if n:
            counts.append(n)
    return sorted(counts, reverse=True)


def merge_hists(reports: Iterable[dict[str, Any]], key: str) -> Hist:
    h = Hist()
    for r in reports:
        h.merge(Hist.from_json(r[key]))
    return h


def merge_counts(reports: Iterable[dict[str, Any]], key: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in reports:
        for k, v in r.get(key, {}).items():
            out[k] = out.get(k, 0) + int(v)
    return out


def hist_summary(h: Hist) -> dict[str, Any]:
    return {
        "n": h.n,
        "p50_ms": h.quantile_ms(0.5),
        "p95_ms": h.quantile_ms(0.95),
        "p99_ms": h.quantile_ms(0.99),
        "max_ms": h.max_ms(),
        "mean_ms": h.mean_ms(),
    }


def watch_targets(auction_ids: list[int], tokens: list[str], per_auction: int) -> list[tuple[int, str]]:
    targets: list[tuple[int, str]] = []
    k = 0
    for aid in auction_ids:
        for _ in range(per_auction):
            targets.append((aid, tokens[k % len(tokens)]))
            k += 1
    return targets


async def open_watchers(
    ctx: Ctx, base_url: str, targets: list[tuple[int, str]], procs: int
) -> tuple[list[clients.WorkerProcess], dict[str, int], dict[str, int]]:
    """Watcher processes holding one socket per target; returns them, sockets per auction, failures."""
    specs = [
        ("watch", {"role": "watch", "url": base_url, "targets": part, "parallel": 48, "timeout": 120})
        for part in clients.split(targets, procs)
    ]
    workers, ready = await clients.start_all(specs, ctx.env, ctx.log_dir, timeout=180)
    return workers, merge_counts(ready, "per_auction"), merge_counts(ready, "errors")


async def close_watchers(workers: list[clients.WorkerProcess]) -> None:
    with contextlib.suppress(Exception):
        await clients.ask_all(workers, {"cmd": "close"}, timeout=30)
    await clients.stop_all(workers)


async def await_delivery(
    watchers: list[clients.WorkerProcess], sends: dict[str, float], expected: int, limit: float
) -> list[dict[str, Any]]:
    """Wait until the watchers received every expected frame (or ``limit`` seconds, or no progress
    for 3 s), then collect their reports."""
    deadline = time.monotonic() + limit
    last, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        counts = await clients.ask_all(watchers, {"cmd": "count", "sends": sends}, timeout=60)
        got = sum(int(c["received"]) for c in counts)
        if got >= expected:
            break
        if got != last:
            last, last_change = got, time.monotonic()
        elif time.monotonic() - last_change > 3:
            break
        await asyncio.sleep(0.25)
    return await clients.ask_all(watchers, {"cmd": "report", "sends": sends}, timeout=120)


def merge_sends(reports: Iterable[dict[str, Any]]) -> dict[str, float]:
    sends: dict[str, float] = {}
    for r in reports:
        sends.update(r["sends"])
    return sends


# --------------------------------------------------------------------------- hot auction


async def run_hot(ctx: Ctx) -> Result:
    levels = ctx.size([1, 4], [int(x) for x in os.environ.get("BENCH_HOT_LEVELS", "1,4,16,64").split(",")])
    duration = ctx.size(1.0, 8.0)
    max_bids = ctx.size(2_000, 100_000)
    seeder = ctx.seeder
    buyers = await seeder.buyers(2 * max(levels))
    rows: list[Row] = []
    details: dict[str, Any] = {"duration_s": duration, "levels": {}}
    for c in levels:
        ctx.say(f"hot auction C={c}: seeding")
        ids, groups = await _hot_auction(ctx, buyers[: 2 * c])
        aid = ids[0]
        async with _asyncpg(ctx) as conn:
            await raw.copy_auctions(conn, [aid])
        pairs = [(groups[0][2 * i], groups[0][2 * i + 1]) for i in range(c)]
        procs = min(c, ctx.client_procs)
        ctx.say(f"hot auction C={c}: service")
        svc = await _drive_hot(
            ctx, "ws", aid, [[a.token, b.token] for a, b in pairs], procs, duration, max_bids
        )
        ctx.say(f"hot auction C={c}: raw limit (one SQL round trip)")
        lim = await _drive_hot(
            ctx, "raw", aid, [[a.org_id, b.org_id] for a, b in pairs], procs, duration, max_bids
        )
        details["levels"][str(c)] = {"service": svc, "raw": lim, "auction_id": aid}
        case = f"C={c}"
        hot16 = c == 16
        rate_ratio = svc["accepted_per_s"] / lim["accepted_per_s"] if lim["accepted_per_s"] else None
        rows += [
            row(
                case,
                "accepted bids/s",
                "1/s",
                svc["accepted_per_s"],
                lim["accepted_per_s"],
                target="≥ 50 % of raw" if hot16 else None,
                met=(rate_ratio is not None and rate_ratio >= 0.5) if hot16 else None,
            ),
            row(case, "rejected", "%", svc["rejected_pct"], lim["rejected_pct"]),
            row(case, "ack p50", "ms", svc["ack"]["p50_ms"], lim["ack"]["p50_ms"]),
            row(
                case,
                "ack p99",
                "ms",
                svc["ack"]["p99_ms"],
                lim["ack"]["p99_ms"],
                target="≤ 25 ms" if hot16 else None,
                met=(svc["ack"]["p99_ms"] is not None and svc["ack"]["p99_ms"] <= 25) if hot16 else None,
            ),
        ]
    return {"rows": rows, "details": details}


async def _hot_auction(ctx: Ctx, bidders: list[Party]) -> tuple[list[int], list[list[Party]]]:
    seeder = ctx.seeder
    listing_id = await seeder.listing()
    made = await seeder.auction(listing_id)
    aid = int(made["id"])
    await bounded([lambda b=b: seeder.register(aid, b) for b in bidders], 12)  # type: ignore[misc]
    opens = datetime.fromisoformat(made["starts_at"])
    await asyncio.sleep(max(0.0, (opens - datetime.now(UTC)).total_seconds()) + 0.1)
    return [aid], [bidders]


async def _drive_hot(
    ctx: Ctx, transport: str, aid: int, streams: list[list[Any]], procs: int, duration: float, max_bids: int
) -> dict[str, Any]:
    base = {
        "role": "hot",
        "transport": transport,
        "url": ctx.url,
        "dsn": ctx.dsn,
        "auction_id": aid,
        "increment": INCREMENT,
        "start": START,
    }
    specs = [("hot", {**base, "streams": part}) for part in clients.split(streams, procs)]
    workers, _ = await clients.start_all(specs, ctx.env, ctx.log_dir, timeout=120)
    try:
        before = ctx.cpu.snapshot()
        reports = await clients.ask_all(
            workers, {"cmd": "go", "duration": duration, "max_bids": max_bids}, timeout=duration + 120
        )
        cpu = ctx.cpu.since(before)
    finally:
        await clients.stop_all(workers)
    accepted = sum(int(r["accepted"]) for r in reports)
    replies = sum(int(r["replies"]) for r in reports)
    elapsed = max(float(r["elapsed"]) for r in reports)
    rejected = merge_counts(reports, "rejected")
    return {
        "accepted": accepted,
        "replies": replies,
        "elapsed_s": round(elapsed, 3),
        "accepted_per_s": accepted / elapsed if elapsed else 0.0,
        "rejected_pct": 100.0 * (replies - accepted) / replies if replies else 0.0,
        "rejected": rejected,
        "ack": hist_summary(merge_hists(reports, "ack")),
        "reply": hist_summary(merge_hists(reports, "reply")),
        "cpu": cpu,
    }


class _asyncpg:
    """``async with _asyncpg(ctx) as conn``: a plain asyncpg connection to the bench database."""

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        self.conn: Any = None

    async def __aenter__(self) -> Any:
        import asyncpg

        self.conn = await asyncpg.connect(self.ctx.dsn)
        return self.conn

    async def __aexit__(self, *exc: object) -> None:
        await self.conn.close()


# --------------------------------------------------------------------------- fan-out


async def run_fanout(ctx: Ctx) -> Result:
    levels = ctx.size([20], [1000, 5000])
    rates = ctx.size([10], [10, 50])
    duration = ctx.size(1.0, 10.0)
    procs = ctx.size(1, 4)
    seeder = ctx.seeder
    ctx.say("fan-out: seeding")
    ids, groups = await _hot_auction(ctx, await seeder.buyers(2))
    aid = ids[0]
    tokens = await seeder.viewers(max(levels))
    bare = await ctx.bare()
    svc_bidder, _ = await clients.start_all(
        [
            (
                "paced",
                {
                    "role": "paced",
                    "transport": "ws",
                    "url": ctx.url,
                    "increment": INCREMENT,
                    "auctions": [{"id": aid, "start": START, "paddles": [p.token for p in groups[0]]}],
                },
            )
        ],
        ctx.env,
        ctx.log_dir,
        timeout=60,
    )
    bare_bidder, _ = await clients.start_all(
        [
            (
                "paced",
                {
                    "role": "paced",
                    "transport": "ws",
                    "url": bare.url,
                    "increment": 1,
                    "auctions": [{"id": aid, "start": 1_000, "paddles": ["bare", "bare"]}],
                },
            )
        ],
        ctx.env,
        ctx.log_dir,
        timeout=60,
    )
    rows: list[Row] = []
    details: dict[str, Any] = {"duration_s": duration, "cases": {}}
    try:
        for w in levels:
            results: dict[str, dict[int, dict[str, Any]]] = {}
            for name, base_url, bidder in (("service", ctx.url, svc_bidder), ("raw", bare.url, bare_bidder)):
                ctx.say(f"fan-out W={w}: {name}: opening {w} watchers")
                targets = [(aid, tokens[i]) for i in range(w)]
                watchers, per_auction, errors = await open_watchers(ctx, base_url, targets, procs)
                spread = sockets_per_worker(
                    ctx.service_pid if name == "service" else bare.pid,
                    ctx.service_port if name == "service" else int(bare.url.rsplit(":", 1)[1]),
                )
                results[name] = {}
                try:
                    for r in rates:
                        ctx.say(f"fan-out W={w} R={r}/s: {name}")
                        results[name][r] = await _fanout_phase(
                            ctx, bidder, watchers, per_auction, r, duration
                        )
                        results[name][r]["sockets_per_worker"] = spread
                        results[name][r]["connect_errors"] = errors
                finally:
                    await close_watchers(watchers)
            for r in rates:
                s, b = results["service"][r], results["raw"][r]
                case = f"W={w} R={r}"
                target_case = w == 5000 and r == 10
                details["cases"][case] = {"service": s, "raw": b}
                rows += [
                    row(case, "bids/s achieved", "1/s", s["accepted"] / duration, b["accepted"] / duration),
                    row(case, "latency p50", "ms", s["latency"]["p50_ms"], b["latency"]["p50_ms"]),
                    row(
                        case,
                        "latency p99",
                        "ms",
                        s["latency"]["p99_ms"],
                        b["latency"]["p99_ms"],
                        target="≤ 150 ms" if target_case else None,
                        met=(s["latency"]["p99_ms"] is not None and s["latency"]["p99_ms"] <= 150)
                        if target_case
                        else None,
                    ),
                    row(case, "latency max", "ms", s["latency"]["max_ms"], b["latency"]["max_ms"]),
                    row(
                        case,
                        "delivered",
                        "%",
                        s["delivered_pct"],
                        b["delivered_pct"],
                        target="100 %" if target_case else None,
                        met=(s["delivered_pct"] >= 100.0) if target_case else None,
                    ),
                ]
    finally:
        await clients.stop_all(svc_bidder + bare_bidder)
    return {"rows": rows, "details": details}


SETTLE_SECONDS = 2.0  # between opening the sockets and measuring (see _fanout_phase)


async def _fanout_phase(
    ctx: Ctx,
    bidder: list[clients.WorkerProcess],
    watchers: list[clients.WorkerProcess],
    per_auction: dict[str, int],
    rate: float,
    duration: float,
) -> dict[str, Any]:
    """One measured phase of paced bids to watched auctions, ``SETTLE_SECONDS`` after the sockets
    were opened (none in ``--quick``): the scenarios measure the steady state, not the service
    digesting thousands of new connections (while the heap grows, each full garbage collection of
    a worker walks it all: pauses of 0.1-0.5 s with 2,500 sockets per worker, the last of them up
    to a second after the last socket opened). Deliveries are awaited 5 s (30 s in a full run)."""
    await asyncio.sleep(ctx.size(0.0, SETTLE_SECONDS))
    await clients.ask_all(watchers, {"cmd": "reset"}, timeout=60)
    before = ctx.cpu.snapshot()
    bids = await clients.ask_all(
        bidder, {"cmd": "go", "rate": rate, "duration": duration}, timeout=duration + 60
    )
    sends = merge_sends(bids)
    expected = sum(per_auction.get(key.split(":", 1)[0], 0) for key in sends)
    reports = await await_delivery(watchers, sends, expected, ctx.size(5.0, 30.0))
    used = ctx.cpu.since(before)
    received = sum(int(r["received"]) for r in reports)
    return {
        "offered": sum(int(b["offered"]) for b in bids),
        "accepted": len(sends),
        "rejected": merge_counts(bids, "rejected"),
        "ack": hist_summary(merge_hists(bids, "ack")),
        "watchers": sum(per_auction.values()),
        "expected": expected,
        "received": received,
        "delivered_pct": 100.0 * received / expected if expected else 0.0,
        "closed_by_server": merge_counts(reports, "closed"),
        "latency": hist_summary(merge_hists(reports, "hist")),
        "cpu": used,
    }


# --------------------------------------------------------------------------- many auctions


async def run_many(ctx: Ctx) -> Result:
    count = ctx.size(3, 100)
    per = ctx.size(3, 20)
    offered = ctx.size(30.0, 500.0)
    duration = ctx.size(1.0, 10.0)
    seeder = ctx.seeder
    ctx.say(f"many auctions: seeding {count} auctions")
    ids, groups = await seeder.live_auctions(count, 2)
    async with _asyncpg(ctx) as conn:
        await raw.copy_auctions(conn, ids)
    tokens = await seeder.viewers(count * per)
    rate = offered / count
    ctx.say(f"many auctions: opening {count * per} watchers")
    watchers, per_auction, errors = await open_watchers(
        ctx, ctx.url, watch_targets(ids, tokens, per), ctx.size(1, 4)
    )
    items = [
        {"id": aid, "start": START, "paddles": [p.token for p in g]}
        for aid, g in zip(ids, groups, strict=True)
    ]
    bidder_procs = ctx.size(1, ctx.client_procs)
    try:
        bidders, _ = await clients.start_all(
            [
                (
                    "paced",
                    {
                        "role": "paced",
                        "transport": "ws",
                        "url": ctx.url,
                        "increment": INCREMENT,
                        "auctions": p,
                    },
                )
                for p in clients.split(items, bidder_procs)
            ],
            ctx.env,
            ctx.log_dir,
            timeout=120,
        )
        try:
            ctx.say(f"many auctions: service, {offered:.0f} bids/s offered")
            svc = await _fanout_phase(ctx, bidders, watchers, per_auction, rate, duration)
        finally:
            await clients.stop_all(bidders)
    finally:
        await close_watchers(watchers)
    ctx.say("many auctions: raw limit")
    raw_items = [
        {"id": aid, "start": START, "paddles": [p.org_id for p in g]}
        for aid, g in zip(ids, groups, strict=True)
    ]
    raw_bidders, _ = await clients.start_all(
        [
            (
                "paced",
                {
                    "role": "paced",
                    "transport": "raw",
                    "dsn": ctx.dsn,
                    "pool": 16,
                    "increment": INCREMENT,
                    "auctions": p,
                },
            )
            for p in clients.split(raw_items, bidder_procs)
        ],
        ctx.env,
        ctx.log_dir,
        timeout=120,
    )
    try:
        before = ctx.cpu.snapshot()
        lim_reports = await clients.ask_all(
            raw_bidders, {"cmd": "go", "rate": rate, "duration": duration}, timeout=duration + 60
        )
        lim_cpu = ctx.cpu.since(before)
    finally:
        await clients.stop_all(raw_bidders)
    lim_ack = hist_summary(merge_hists(lim_reports, "ack"))
    lim_accepted = sum(int(r["accepted"]) for r in lim_reports)
    svc["connect_errors"] = errors
    details = {
        "auctions": count,
        "watchers_per_auction": per,
        "offered_per_s": offered,
        "duration_s": duration,
        "service": svc,
        "raw": {
            "accepted": lim_accepted,
            "ack": lim_ack,
            "rejected": merge_counts(lim_reports, "rejected"),
            "cpu": lim_cpu,
        },
    }
    case = f"{count}×{per}, {offered:.0f}/s"
    return {
        "rows": [
            row(case, "accepted bids/s", "1/s", svc["accepted"] / duration, lim_accepted / duration),
            row(case, "ack p50", "ms", svc["ack"]["p50_ms"], lim_ack["p50_ms"]),
            row(
                case,
                "ack p99",
                "ms",
                svc["ack"]["p99_ms"],
                lim_ack["p99_ms"],
                target="≤ 50 ms",
                met=svc["ack"]["p99_ms"] is not None and svc["ack"]["p99_ms"] <= 50,
            ),
            row(case, "delivery p99", "ms", svc["latency"]["p99_ms"]),
            row(case, "delivered", "%", svc["delivered_pct"]),
        ],
        "details": details,
    }


# --------------------------------------------------------------------------- close storm


async def run_close(ctx: Ctx) -> Result:
    count = ctx.size(5, 500)
    seeder = ctx.seeder
    buyers = await seeder.buyers(min(count, 50))
    ctx.say(f"close storm: {count} listings")
    t = time.monotonic()
    listing_ids = await seeder.listings(count, parallel=16)
    per_call = (time.monotonic() - t) / (4 * count)  # four API calls a listing, 16 at a time
    # creating and registering (two calls an auction) must end before bidding opens, and the bids
    # (one call each) well before the common end, or anti-sniping would move it: a margin of 3x.
    starts = datetime.now(UTC) + timedelta(seconds=2 * count * per_call * 3 + 2)
    ends = (starts + timedelta(seconds=count * per_call * 3 + 3)).replace(microsecond=0) + timedelta(
        seconds=1
    )
    ctx.say(f"close storm: {count} auctions ending at {ends.time().isoformat()} UTC")
    made = await bounded(
        [
            lambda lid=lid: seeder.auction(lid, starts_at=starts, ends_at=ends, extension_seconds=1)  # type: ignore[misc]
            for lid in listing_ids
        ],
        16,
    )
    ids = [int(a["id"]) for a in made]
    winners = [buyers[i % len(buyers)] for i in range(count)]
    await bounded(
        [lambda a=a, b=b: seeder.register(a, b) for a, b in zip(ids, winners, strict=True)],  # type: ignore[misc]
        16,
    )
    await asyncio.sleep(max(0.0, (starts - datetime.now(UTC)).total_seconds()) + 0.1)

    async def bid(aid: int, buyer: Party) -> None:
        await seeder._post(f"/api/v1/auctions/{aid}/bids", buyer.headers, {"amount_fen": START})

    await bounded([lambda a=a, b=b: bid(a, b) for a, b in zip(ids, winners, strict=True)], 16)  # type: ignore[misc]
    margin = (ends - datetime.now(UTC)).total_seconds()
    ctx.say(f"close storm: bids placed {margin:.1f} s before the end; waiting for the closer")
    deadline = time.monotonic() + max(0.0, margin) + ctx.size(30.0, 120.0)
    q = text(
        "SELECT count(*) FILTER (WHERE status IN ('closed', 'failed', 'cancelled')) AS done "
        "FROM auctions WHERE id = ANY(:ids)"
    )
    while time.monotonic() < deadline:
        async with ctx.engine.connect() as conn:
            done = int((await conn.execute(q, {"ids": ids})).scalar_one())
        if done >= count:
            break
        await asyncio.sleep(0.05)
    async with ctx.engine.connect() as conn:
        rows_ = (
            await conn.execute(
                text(
                    "SELECT a.id, a.status, a.ends_at, a.closed_at, "
                    "(SELECT count(*) FROM disposals d WHERE d.source = 'auction' "
                    " AND d.source_ref = a.id::text) AS disposals "
                    "FROM auctions a WHERE a.id = ANY(:ids)"
                ),
                {"ids": ids},
            )
        ).all()
    closed = [r for r in rows_ if r.closed_at is not None]
    lags = Hist()
    for r in closed:
        lags.add((r.closed_at - r.ends_at).total_seconds())
    extended = sum(1 for r in rows_ if r.ends_at != ends)
    all_closed = len(closed) == count
    until_all = (max(r.closed_at for r in closed) - ends).total_seconds() if all_closed else None
    once = sum(1 for r in rows_ if r.status == "closed" and r.disposals == 1)
    details = {
        "auctions": count,
        "ends_at": ends.isoformat(),
        "bids_done_before_end_s": round(margin, 2),
        "extended_by_late_bids": extended,
        "closed": sum(1 for r in rows_ if r.status == "closed"),
        "failed": sum(1 for r in rows_ if r.status == "failed"),
        "not_closed": count - len(closed),
        "disposals_exactly_once": once,
        "disposals_duplicated": sum(1 for r in rows_ if r.disposals > 1),
        "disposals_missing": sum(1 for r in rows_ if r.status == "closed" and r.disposals == 0),
        "close_lag": hist_summary(lags),
        "grace_ms": int(ctx.env.get("MARKET_CLOSE_GRACE_MS", "500")),
    }
    case = f"{count} auctions"
    return {
        "rows": [
            row(
                case,
                "all closed after the end",
                "s",
                until_all,
                target="≤ 3 s",
                met=until_all is not None and until_all <= 3.0,
            ),
            row(case, "close lag p50", "ms", lags.quantile_ms(0.5)),
            row(case, "close lag p99", "ms", lags.quantile_ms(0.99)),
            row(
                case,
                "disposals created once each",
                "count",
                once,
                target=f"= {count}",
                met=once == count and details["disposals_duplicated"] == 0,
            ),
        ],
        "details": details,
    }


# --------------------------------------------------------------------------- search

ZH_SUBJECTS = [
    "锂电池正极材料",
    "半导体芯片封装",
    "图像识别算法",
    "新能源汽车电机",
    "中药复方制剂",
    "柔性显示面板",
    "区块链支付系统",
    "医疗影像设备",
    "工业机器人控制",
    "通信天线阵列",
    "石墨烯导热膜",
    "智能家居传感器",
    "生物疫苗佐剂",
    "光伏逆变器",
    "无人机飞行控制",
    "纳米涂层材料",
    "语音合成模型",
    "精密轴承",
    "食品保鲜包装",
    "环保涂料",
]
EN_SUBJECTS = [
    "lithium battery cathode material",
    "semiconductor chip packaging",
    "image recognition algorithm",
    "electric vehicle motor",
    "herbal compound formulation",
    "flexible display panel",
    "blockchain payment system",
    "medical imaging device",
    "industrial robot control",
    "antenna array",
    "graphene thermal film",
    "smart home sensor",
    "vaccine adjuvant",
    "photovoltaic inverter",
    "drone flight control",
    "nanocoating material",
    "speech synthesis model",
    "precision bearing",
    "food preservation packaging",
    "eco-friendly coating",
]
ZH_FORMS = ["一种{}的制备方法", "{}及其应用", "基于{}的检测装置", "{}系统", "用于{}的控制方法", "{}技术许可"]
EN_FORMS = ["Method for preparing {}", "{} and its use", "Detection device based on {}", "{} system"]
HOLDERS = [
    "深圳市某某科技有限公司",
    "杭州智造股份有限公司",
    "北京创新研究院",
    "Shanghai Bright Materials Co Ltd",
]
KINDS = [
    ("invention_patent", "H01M 4/505"),
    ("trademark", "30"),
    ("software_copyright", "G06F"),
    ("utility_model", "B65D"),
]
MODES = ["transfer", "license", "bundle", "entrusted_acquisition"]
STATUSES = ["published"] * 6 + ["in_auction", "in_negotiation", "sold"]

SEARCH_QUERIES: list[dict[str, Any]] = [
    {"q": "电池"},
    {"q": "芯片"},
    {"q": "算法"},
    {"q": "汽车"},
    {"q": "显示"},
    {"q": "医疗"},
    {"q": "疫苗"},
    {"q": "轴承"},
    {"q": "lith"},
    {"q": "semi"},
    {"q": "algo"},
    {"q": "vacc"},
    {"q": "sens"},
    {"q": "bear"},
    {"q": "专利 batt"},
    {"q": "材料", "mode": "license"},
    {"q": "inver", "kind": "invention_patent"},
    {"q": "涂料", "min_price_fen": 50_000_000, "max_price_fen": 300_000_000},
    {"kind": "trademark", "mode": "transfer"},
    {"mode": "license", "min_remaining_months": 60},
    {"q": "控制", "status": "published", "class": "H01M 4/505"},
    {"min_price_fen": 100_000_000, "max_price_fen": 120_000_000},
]


def _search_rows(n: int, bank_org_id: int) -> list[tuple[Any, ...]]:
    from listings.services import search_text

    rnd = random.Random(7)
    out: list[tuple[Any, ...]] = []
    for i in range(n):
        k = rnd.randrange(len(ZH_SUBJECTS))
        title = rnd.choice(ZH_FORMS).format(ZH_SUBJECTS[k])
        title_en = rnd.choice(EN_FORMS).format(EN_SUBJECTS[k])
        if rnd.random() < 0.3:  # some titles mix both languages
            title = f"{title} {EN_SUBJECTS[rnd.randrange(len(EN_SUBJECTS))].split()[0]}"
        kind, cls = KINDS[rnd.randrange(len(KINDS))]
        description = f"{ZH_SUBJECTS[rnd.randrange(len(ZH_SUBJECTS))]}相关专利组合，编号 ZL2018{i:07d}"
        asset = SimpleNamespace(
            title_zh=title,
            title_en=title_en,
            registration_no=f"ZL2018{i:07d}.{i % 10}",
            holder=rnd.choice(HOLDERS),
            classes=[cls],
        )
        listing = SimpleNamespace(title=title, title_en=title_en, description=description)
        doc = search_text(cast(Any, listing), [cast(Any, asset)])
        appraisal = rnd.randrange(10, 400) * 1_000_000
        asking = appraisal if rnd.random() < 0.5 else None
        out.append(
            (
                bank_org_id,
                title,
                title_en,
                description,
                rnd.choice(MODES),
                rnd.choice(STATUSES),
                asking,
                appraisal,
                rnd.randrange(6, 240),
                f'["{kind}"]',
                f'["{cls}"]',
                doc,
            )
        )
    return out


async def _insert_listings(ctx: Ctx, n: int, bank_org_id: int) -> float:
    """``n`` listings in bulk: COPY into a staging table, then one INSERT … SELECT with
    ``to_tsvector('simple', listings.services.search_text(...))``. Returns the seconds it took."""
    started = time.monotonic()
    records = await asyncio.to_thread(_search_rows, n, bank_org_id)
    cols = [
        "bank_org_id",
        "title",
        "title_en",
        "description",
        "mode",
        "status",
        "asking_price_fen",
        "appraisal_fen",
        "remaining_term_months",
        "kinds",
        "classes",
        "doc",
    ]
    async with _asyncpg(ctx) as conn:
        await conn.execute(
            "CREATE TEMP TABLE bench_listings_in (bank_org_id bigint, title text, title_en text, "
            "description text, mode text, status text, asking_price_fen bigint, appraisal_fen bigint, "
            "remaining_term_months int, kinds text, classes text, doc text)"
        )
        await conn.copy_records_to_table("bench_listings_in", records=records, columns=cols)
        await conn.execute(
            "INSERT INTO listings (bank_org_id, title, title_en, description, mode, status, "
            "asking_price_fen, appraisal_fen, remaining_term_months, kinds, classes, published_at, "
            "status_changed_at, search_doc) "
            "SELECT bank_org_id, title, title_en, description, mode, status, asking_price_fen, "
            "appraisal_fen, remaining_term_months, kinds::jsonb, classes::jsonb, now(), now(), "
            "to_tsvector('simple', doc) FROM bench_listings_in"
        )
        await conn.execute("ANALYZE listings")
    return time.monotonic() - started


def _search_of(params: dict[str, Any]) -> Any:
    from listings import queries

    return queries.Search(
        q=str(params.get("q", "")),
        kind=params.get("kind"),
        cls=params.get("class"),
        mode=params.get("mode"),
        status=params.get("status"),
        min_price_fen=params.get("min_price_fen"),
        max_price_fen=params.get("max_price_fen"),
        min_remaining_months=params.get("min_remaining_months"),
        bank_org_id=params.get("bank"),
        limit=int(params.get("limit", 20)),
    )


def compiled_search(params: dict[str, Any]) -> tuple[str, list[Any]]:
    """The service's search statement for these API parameters, as SQL with ``$n`` and its arguments."""
    from sqlalchemy import and_, select
    from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg

    from listings import queries
    from listings.tables import listings

    s = _search_of(params)
    stmt = (
        select(listings).where(and_(*queries._filters(s))).order_by(listings.c.id.desc()).limit(s.limit + 1)
    )
    dialect = pg_asyncpg.dialect()  # type: ignore[no-untyped-call]
    compiled = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    names = compiled.positiontup or []
    values = compiled.construct_params()
    return str(compiled), [values[name] for name in names]


async def run_search(ctx: Ctx) -> Result:
    count = ctx.size(500, 100_000)
    duration = ctx.size(1.5, 10.0)
    procs, concurrency = ctx.size((1, 2), (2, 2))
    bank = await ctx.seeder.bank()
    ctx.say(f"search: inserting {count} listings")
    took = await _insert_listings(ctx, count, bank.org_id)
    raw_queries = [dict(zip(("sql", "args"), compiled_search(p), strict=True)) for p in SEARCH_QUERIES]
    http_queries = [{"params": p} for p in SEARCH_QUERIES]

    async def drive(transport: str, queries_: list[dict[str, Any]]) -> dict[str, Any]:
        specs = [
            (
                "search",
                {
                    "role": "search",
                    "transport": transport,
                    "url": ctx.url,
                    "dsn": ctx.dsn,
                    "queries": queries_,
                    "concurrency": concurrency,
                    "offset": i * 7,
                },
            )
            for i in range(procs)
        ]
        workers, _ = await clients.start_all(specs, ctx.env, ctx.log_dir, timeout=120)
        try:
            before = ctx.cpu.snapshot()
            reports = await clients.ask_all(
                workers, {"cmd": "go", "duration": duration, "max_queries": 200_000}, timeout=duration + 120
            )
            cpu = ctx.cpu.since(before)
        finally:
            await clients.stop_all(workers)
        h = merge_hists(reports, "hist")
        elapsed = max(float(r["elapsed"]) for r in reports)
        return {
            **hist_summary(h),
            "per_s": h.n / elapsed if elapsed else 0.0,
            "errors": merge_counts(reports, "errors"),
            "cpu": cpu,
        }

    ctx.say("search: service")
    svc = await drive("http", http_queries)
    ctx.say("search: raw limit (the same SQL through asyncpg)")
    lim = await drive("raw", raw_queries)
    explain: list[dict[str, Any]] = []  # EXPLAIN ANALYZE of every query of the mix: plan and time
    async with _asyncpg(ctx) as conn:
        await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=str, schema="pg_catalog")
        for p in SEARCH_QUERIES:
            sql, args = compiled_search(p)
            plan = [r[0] for r in await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *args)]
            executed = next((line for line in plan if line.startswith("Execution Time")), "")
            nodes = [line.strip() for line in plan if "->" in line or line.startswith(("Limit", "Sort"))]
            explain.append({"query": p, "execution": executed, "plan": nodes})
    case = f"{count:,} listings"
    return {
        "rows": [
            row(case, "query p50", "ms", svc["p50_ms"], lim["p50_ms"]),
            row(
                case,
                "query p95",
                "ms",
                svc["p95_ms"],
                lim["p95_ms"],
                target="≤ 50 ms",
                met=svc["p95_ms"] is not None and svc["p95_ms"] <= 50,
            ),
            row(case, "queries/s", "1/s", svc["per_s"], lim["per_s"]),
        ],
        "details": {
            "listings": count,
            "insert_s": round(took, 2),
            "concurrency": procs * concurrency,
            "service": svc,
            "raw": lim,
            "explain": explain,
        },
    }


# --------------------------------------------------------------------------- settlement


async def _prepare_disposals(ctx: Ctx, count: int, buyers: list[Party]) -> list[list[Any]]:
    """Closed disposals awaiting the balance: claim, asset, pledge and listing rows written directly,
    then the deposit hold and the close through ``listings.settlement.apply`` and the disposal through
    ``listings.disposals.create`` — what a closed auction leaves behind."""
    from listings import disposals, settlement
    from listings.tables import assets, claims, listing_assets, listings, pledges
    from market import identity, settlement as engine
    from market.config import Settings
    from market.db import transaction

    bank = await ctx.seeder.bank()
    settings = Settings(DATABASE_URL=ctx.database_url)
    run = ctx.seeder.run
    today = _today()

    async def one(conn: AsyncConnection, i: int) -> list[Any]:
        tag = f"{run}-{i}"
        claim_id = (
            await conn.execute(
                insert(claims)
                .values(
                    bank_org_id=bank.org_id,
                    loan_no=f"BS{tag}",
                    borrower_name="借款人",
                    borrower_credit_code=identity.make_credit_code(tag),
                    principal_fen=60_000_000,
                    interest_fen=3_000_000,
                    costs_fen=200_000,
                    defaulted_on=today - timedelta(days=30),
                )
                .returning(claims.c.id)
            )
        ).scalar_one()
        asset_id = (
            await conn.execute(
                insert(assets)
                .values(
                    bank_org_id=bank.org_id,
                    kind="software_copyright",
                    registration_no=f"BENCH-{tag}",
                    title_zh="图像识别软件",
                    holder="深圳市某某科技有限公司",
                    legal_status="registered",
                    appraisal_fen=APPRAISAL,
                )
                .returning(assets.c.id)
            )
        ).scalar_one()
        await conn.execute(
            insert(pledges).values(
                claim_id=claim_id, asset_id=asset_id, registration_no="P1", registered_on=date(2020, 1, 2)
            )
        )
        listing_id = (
            await conn.execute(
                insert(listings)
                .values(bank_org_id=bank.org_id, title=f"bench lot {tag}", mode="transfer", status="sold")
                .returning(listings.c.id)
            )
        ).scalar_one()
        await conn.execute(
            insert(listing_assets).values(listing_id=listing_id, asset_id=asset_id, position=0)
        )
        lot = settlement.lot_id(listing_id)
        buyer = buyers[i % len(buyers)]
        winner = str(buyer.org_id)
        hold = {
            "id": f"hold:b{listing_id}",
            "type": "hold",
            "lot": lot,
            "bidder": winner,
            "amount_fen": DEPOSIT,
        }
        await settlement.apply(conn, listing_id, hold, settings)
        close = {
            "id": f"close:b{listing_id}",
            "type": "close",
            "lot": lot,
            "winner": winner,
            "price_fen": START,
        }
        await settlement.apply(conn, listing_id, close, settings)
        row_ = await disposals.create(
            conn,
            None,
            listing_id=listing_id,
            bank_org_id=bank.org_id,
            buyer_org_id=buyer.org_id,
            source="auction",
            source_ref=f"bench-{tag}",
            price_fen=START,
        )
        sc = await settlement.scope(conn, listing_id, settings, lock=False)
        due = engine.balance_due_fen(sc.lot, await settlement.lot_state(conn, listing_id))
        return [int(row_.id), int(due), f"BENCH-{tag}"]

    async def batch(indexes: list[int]) -> list[list[Any]]:
        async with transaction(ctx.engine) as conn:
            return [await one(conn, i) for i in indexes]

    chunks = [list(range(i, min(i + 25, count))) for i in range(0, count, 25)]
    done = await bounded([lambda c=c: batch(c) for c in chunks], 4)  # type: ignore[misc]
    return [t for chunk in done for t in chunk]


async def run_settle(ctx: Ctx) -> Result:
    count = ctx.size(20, 2000)
    procs, concurrency = ctx.size((1, 2), (2, 4))
    duration = ctx.size(10.0, 30.0)
    ctx.say(f"settlement: preparing {count} closed disposals")
    op = await ctx.seeder.operator()
    # winners spread over many buyers: one buyer winning every lot would make its ledger account
    # a hot row that no real day of auctions has
    buyers = await ctx.seeder.buyers(min(count, 400))
    tasks = await _prepare_disposals(ctx, count, buyers)
    operator = {"user_id": op.user_id, "org_id": op.org_id, "email": "bench-operator@example.com"}
    specs = [
        (
            "settle",
            {
                "role": "settle",
                "database_url": ctx.database_url,
                "operator": operator,
                "tasks": part,
                "concurrency": concurrency,
            },
        )
        for part in clients.split(tasks, procs)
    ]
    ctx.say(f"settlement: {procs * concurrency} connections")
    workers, _ = await clients.start_all(specs, ctx.env, ctx.log_dir, timeout=120)
    try:
        before = ctx.cpu.snapshot()
        reports = await clients.ask_all(workers, {"cmd": "go", "duration": duration}, timeout=duration + 120)
        cpu = ctx.cpu.since(before)
    finally:
        await clients.stop_all(workers)
    settled = sum(int(r["settled"]) for r in reports)
    elapsed = max(float(r["elapsed"]) for r in reports)
    h = merge_hists(reports, "hist")
    per_s = settled / elapsed if elapsed else 0.0
    case = f"{procs * concurrency} connections"
    return {
        "rows": [
            row(case, "disposals settled/s", "1/s", per_s, target="≥ 200/s", met=per_s >= 200),
            row(case, "receipt p50", "ms", h.quantile_ms(0.5)),
            row(case, "receipt p99", "ms", h.quantile_ms(0.99)),
        ],
        "details": {
            "prepared": len(tasks),
            "settled": settled,
            "elapsed_s": round(elapsed, 3),
            "errors": merge_counts(reports, "errors"),
            "receipt": hist_summary(h),
            "cpu": cpu,
        },
    }


# --------------------------------------------------------------------------- memory


async def run_memory(ctx: Ctx) -> Result:
    count = ctx.size(50, 5000)
    procs = ctx.size(1, 4)
    seeder = ctx.seeder
    ctx.say("memory: seeding")
    ids, _ = await _hot_auction(ctx, await seeder.buyers(2))
    aid = ids[0]
    tokens = await seeder.viewers(count)
    bare = await ctx.bare()
    out: dict[str, dict[str, Any]] = {}
    for name, base_url, pid, port in (
        ("service", ctx.url, ctx.service_pid, ctx.service_port),
        ("raw", bare.url, bare.pid, int(bare.url.rsplit(":", 1)[1])),
    ):
        ctx.say(f"memory: {name}: {count} idle watchers")
        warm, _, _ = await open_watchers(ctx, base_url, [(aid, t) for t in tokens[: min(20, count)]], 1)
        await close_watchers(warm)
        await asyncio.sleep(ctx.size(0.5, 2.0))
        before = process_tree_rss(pid)
        watchers, per_auction, errors = await open_watchers(ctx, base_url, [(aid, t) for t in tokens], procs)
        try:
            await asyncio.sleep(ctx.size(0.5, 3.0))
            after = process_tree_rss(pid)
            spread = sockets_per_worker(pid, port)
        finally:
            await close_watchers(watchers)
        connected = sum(per_auction.values())
        per_1000 = (after - before) / max(connected, 1) * 1000 / 2**20
        out[name] = {
            "watchers": connected,
            "connect_errors": errors,
            "rss_before_mb": round(before / 2**20, 1),
            "rss_after_mb": round(after / 2**20, 1),
            "mb_per_1000": round(per_1000, 2),
            "sockets_per_worker": spread,
        }
    case = f"{count:,} watchers"
    s, b = out["service"]["mb_per_1000"], out["raw"]["mb_per_1000"]
    return {
        "rows": [row(case, "RSS per 1,000 idle watchers", "MB", s, b, target="≤ 40 MB", met=s <= 40)],
        "details": out,
    }


SCENARIOS: dict[str, Callable[[Ctx], Awaitable[Result]]] = {
    "memory": run_memory,
    "hot": run_hot,
    "fanout": run_fanout,
    "many": run_many,
    "close": run_close,
    "search": run_search,
    "settle": run_settle,
}
"""In the order they run: memory first, on a service that has not yet held thousands of sockets."""

TITLES = {
    "hot": "hot auction",
    "fanout": "fan-out",
    "many": "many auctions",
    "close": "close storm",
    "search": "search",
    "settle": "settlement",
    "memory": "memory",
}
