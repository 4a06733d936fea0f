"""The ``market`` command line: run the service, migrate, manage users, and operate it."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from market.config import Settings, load_settings

app = typer.Typer(
    help=(
        "Disposal marketplace for pledged intellectual property.\n\n"
        "Without DATABASE_URL every command uses an embedded PostgreSQL kept under "
        "MARKET_DATA_DIR (default ./var)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
users_app = typer.Typer(help="Manage users.", no_args_is_help=True)
app.add_typer(users_app, name="users")


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def resolve_database(settings: Settings) -> tuple[str, bool]:
    """The database URL to use and whether it is the embedded server (started if needed)."""
    if settings.database_url:
        return settings.database_url, False
    from market import embedded

    return embedded.start(settings.pgdata), True


def _require_migrated(url: str) -> None:
    from market import migrate
    from market.db import create_engine

    async def check() -> bool:
        engine = create_engine(url, pool_size=1)
        try:
            return await migrate.is_migrated(engine)
        finally:
            await engine.dispose()

    try:
        migrated = asyncio.run(check())
    except Exception as exc:
        raise _fail(f"Cannot reach the database: {exc}") from None
    if not migrated:
        raise _fail(
            "The database is not migrated (or is behind). Run `market migrate` first, then start again."
        )


def prepare_database(settings: Settings) -> tuple[str, bool]:
    """Embedded: start it and apply migrations. External: refuse an unmigrated database."""
    url, is_embedded = resolve_database(settings)
    if is_embedded:
        from market import migrate

        migrate.upgrade(url)
    else:
        _require_migrated(url)
    return url, is_embedded


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _metrics_dir(settings: Settings) -> Path:
    path = settings.data_dir.resolve() / "metrics" / str(os.getpid())
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _demo_settings(settings: Settings) -> Settings:
    """``serve --demo``: short auction timing unless the user set it, and MARKET_DEMO=1 for the workers."""
    from auctions import demo

    os.environ.update(demo.timing_environment(settings))
    os.environ["MARKET_DEMO"] = "1"
    return Settings()


def _start_demo(url: str, settings: Settings, base: str) -> None:
    """Seed the demo (once) and schedule its first rounds; print how to sign in and where to watch."""
    from auctions import demo
    from market.db import create_engine
    from market.errors import MarketError

    async def run() -> tuple[demo.DemoInfo, list[int]]:
        engine = create_engine(url, pool_size=2)
        try:
            info = await demo.seed(engine, settings)
            return info, await demo.top_up(engine, settings)
        finally:
            await engine.dispose()

    try:
        info, live = asyncio.run(run())
    except MarketError as exc:
        raise _fail(f"Cannot set up the demo: {exc.code}: {exc.detail}") from None
    state = "created" if info.created else "found in the database"
    typer.echo(f"Demo data {state}. Sign in at {base}/login with password {info.password}")
    typer.echo(f"  operator  {info.operator_email}")
    typer.echo(f"  bank      {info.bank_email}  ({info.bank_name})")
    typer.echo(f"  buyer     {info.buyer_email}  ({info.buyer_name})")
    room = f"{base}/auctions/{live[0]}" if live else f"{base}/auctions (rounds open within seconds)"
    typer.echo(f"Live auction room: {room}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    demo: Annotated[bool, typer.Option(help="Fill the database with a live demo.")] = False,
) -> None:
    """Run the web service (embedded PostgreSQL unless DATABASE_URL is set; migrations applied)."""
    settings = _demo_settings(load_settings()) if demo else load_settings()
    url, is_embedded = prepare_database(settings)
    os.environ["DATABASE_URL"] = url  # workers read the same database
    metrics_dir = _metrics_dir(settings)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    settings.resolved_secret_key()  # create it once, before workers race for it
    where = f"embedded PostgreSQL, data in {settings.pgdata}" if is_embedded else "DATABASE_URL"
    typer.echo(f"Open http://{host}:{port}/  (database: {where}; workers: {workers})")
    typer.echo(f"Data directory: {settings.data_dir.resolve()}   Stop with Ctrl-C.")
    if demo:
        _start_demo(url, settings, f"http://{host}:{port}")
    import uvicorn

    # uvicorn re-raises SIGTERM after its graceful shutdown; exit through Python so that
    # the embedded server's handle is released (atexit) instead of dying on the spot.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        uvicorn.run(
            "web.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=settings.log_level,
            proxy_headers=False,
            timeout_graceful_shutdown=10,
            ws_max_size=64 * 1024,  # a bid is ~100 bytes; bigger frames close the socket (1009)
            ws_per_message_deflate=False,  # frames are encoded once and written as is to every watcher
        )
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


@app.command()
def migrate() -> None:
    """Apply database migrations up to the latest revision."""
    from market import migrate as migrations

    settings = load_settings()
    url, _ = resolve_database(settings)
    migrations.upgrade(url)
    typer.echo("Database migrated to " + ", ".join(migrations.heads()))


@app.command("db-url")
def db_url() -> None:
    """Print the database URL in use (starts the embedded server if needed)."""
    url, _ = resolve_database(load_settings())
    typer.echo(url)


@users_app.command("create-operator")
def create_operator(
    email: Annotated[str, typer.Option(help="Operator's email (sign-in name).")],
    password: Annotated[str, typer.Option(help="At least 10 characters, not only letters or digits.")],
) -> None:
    """Create a platform operator user (and the operator organisation on first use)."""
    from market import identity
    from market.db import create_engine, transaction
    from market.errors import MarketError

    url, _ = prepare_database(load_settings())

    async def run() -> int:
        engine = create_engine(url, pool_size=1)
        try:
            async with transaction(engine) as conn:
                user = await identity.create_operator(conn, email=email, password=password)
            return user.id
        finally:
            await engine.dispose()

    try:
        user_id = asyncio.run(run())
    except MarketError as exc:
        raise _fail(f"{exc.code}: {exc.detail}") from None
    typer.echo(f"Operator {email} created (user id {user_id}).")


@app.command("import")
def import_file(
    file: Annotated[
        Path, typer.Argument(help="CSV or XLSX file (layout: the templates of GET /api/v1/imports).")
    ],
    bank: Annotated[
        str, typer.Option("--bank", help="The bank: organisation id or 18-character credit code.")
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check every row and reference; write nothing.")
    ] = False,
) -> None:
    """Import assets, claims and pledges from CSV or XLSX in one transaction (all or nothing).

    Every bad row is listed with its sheet, row number, column and reason, and the command
    exits 1 without writing anything. Rows upsert by natural key: an asset by kind and
    registration_no, a claim by loan_no.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from listings import import_service, importer
    from market.db import create_engine, transaction
    from market.errors import MarketError

    if not file.is_file():
        raise _fail(f"No such file: {file}")
    if file.stat().st_size > importer.MAX_FILE_BYTES:
        raise _fail(f"{file} is larger than {importer.MAX_FILE_BYTES} bytes")
    data = file.read_bytes()
    url, _ = prepare_database(load_settings())
    out = Console(highlight=False)
    labels = {"read": "Reading rows", "check": "Checking", "write": "Writing"}
    columns = (TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        tasks = {"read": bar.add_task(labels["read"], total=None)}
        parsed = importer.parse(data, progress=lambda n: bar.update(tasks["read"], completed=n))
        bar.update(tasks["read"], total=parsed.rows, completed=parsed.rows)

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(labels.get(stage, stage), total=total)
            bar.update(tasks[stage], completed=done, total=total)

        async def run() -> import_service.ImportReport:
            engine = create_engine(url, pool_size=1)
            try:
                async with transaction(engine) as conn:
                    bank_id = await import_service.resolve_bank(conn, bank)
                    return await import_service.run_import(
                        conn, bank_id, parsed, dry_run=dry_run, progress=progress
                    )
            finally:
                await engine.dispose()

        try:
            report = asyncio.run(run())
        except MarketError as exc:
            raise _fail(f"{exc.code}: {exc.detail}") from None

    if report.problems:
        table = Table("sheet", "row", "column", "code", "reason", title="Problems")
        for p in report.problems:
            row = "" if p.row is None else str(p.row)
            table.add_row(p.sheet, row, p.column or "", p.code, p.reason)
        out.print(table)
        bad = len(report.bad_rows())
        out.print(f"{len(report.problems)} problems in {bad} rows of {report.rows}; nothing was imported.")
        raise typer.Exit(1)
    verb = (
        ("would be created", "would be updated", "would be removed")
        if dry_run
        else ("created", "updated", "removed")
    )
    counts = Table("record", verb[0], verb[1], "unchanged", verb[2], title=f"{report.rows} rows")
    for name, c in report.counts().items():
        counts.add_row(name, str(c["created"]), str(c["updated"]), str(c["unchanged"]), str(c["removed"]))
    out.print(counts)
    out.print("Dry run: no problems; nothing was written." if dry_run else "Imported in one transaction.")


@app.command()
def reconcile() -> None:
    """Check every ledger invariant over the whole database; list every problem; exit 1 if any."""
    from market import ledger_store
    from market.db import create_engine

    url, _ = prepare_database(load_settings())

    async def run() -> list[Any]:
        engine = create_engine(url, pool_size=1)
        try:
            async with engine.connect() as conn:
                return await ledger_store.reconcile(conn)
        finally:
            await engine.dispose()

    problems = asyncio.run(run())
    for problem in problems:
        typer.echo(f"{problem.code}: {problem.detail}")
    if problems:
        raise _fail(f"{len(problems)} ledger problem(s) found", code=1)
    typer.echo("Ledger reconciled: every entry balances, no account is out of bounds, no drift.")


@app.command("report")
def report(
    date_from: Annotated[
        str | None, typer.Option("--from", help="First day, YYYY-MM-DD (China Standard Time).")
    ] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="Last day, YYYY-MM-DD (included).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv, xlsx or pdf.")] = "csv",
    bank: Annotated[
        int | None, typer.Option("--bank", help="Only this bank's disposals (organisation id).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="File to write (default: disposals-<period>.<format> here).")
    ] = None,
    lang: Annotated[str, typer.Option("--lang", help="Language of the file: zh_CN or en.")] = "zh_CN",
) -> None:
    """Write the disposals report of a period (default: the current quarter, CST) and print its totals.

    Per disposal: listing, kinds, bank, source, price, fees, money to claims, surplus, pool
    compensation, stage; per-bank subtotals and totals, all sums of ledger lines and checked
    against the ledger. CSV amounts are integer fen; XLSX and PDF amounts are CNY.
    """
    from datetime import date

    from listings import statements
    from market import exports
    from market.db import create_engine
    from market.money import format_cny
    from web import i18n

    if fmt not in exports.FORMATS:
        raise _fail(f"--format must be one of {', '.join(exports.FORMATS)}, not {fmt!r}")
    if lang not in i18n.LOCALES:
        raise _fail(f"--lang must be one of {', '.join(i18n.LOCALES)}, not {lang!r}")
    try:
        first = date.fromisoformat(date_from) if date_from else None
        last = date.fromisoformat(date_to) if date_to else None
    except ValueError:
        raise _fail("--from and --to take dates as YYYY-MM-DD") from None
    try:
        first, last = statements.resolve_period(first, last)
    except ValueError as exc:
        raise _fail(f"Invalid period: {exc}") from None
    url, _ = prepare_database(load_settings())

    async def run() -> dict[str, object]:
        engine = create_engine(url, pool_size=1)
        try:
            async with engine.connect() as conn:
                return await statements.disposals_report(conn, first, last, bank)
        finally:
            await engine.dispose()

    result = asyncio.run(run())

    def translate(message: str, **params: object) -> str:
        return i18n.gettext(lang, message, **params)

    try:
        body = statements.render_file(fmt, statements.disposals_report_tables(result, translate), translate)
    except exports.PdfFontMissing as exc:
        raise _fail(str(exc)) from None
    suffix = f"-bank{bank}" if bank else ""
    target = out or Path(f"disposals-{result['period']}{suffix}.{fmt}")
    target.write_bytes(body)
    totals: dict[str, int] = result["totals"]  # type: ignore[assignment]
    typer.echo(f"Wrote {target.resolve()} ({len(body)} bytes): disposals {first} to {last} (CST)")
    typer.echo(f"  disposals            {totals['disposals']}")
    for key, label in (
        ("price_fen", "price"),
        ("received_fen", "received"),
        ("disposal_costs_fen", "disposal costs"),
        ("platform_fee_fen", "platform fee"),
        ("commission_fen", "commission"),
        ("to_claims_fen", "to claims"),
        ("surplus_fen", "surplus to pledgors"),
        ("pool_compensation_fen", "pool compensation"),
    ):
        typer.echo(f"  {label:<20} CNY {format_cny(totals[key]):>20}")
    if not result["check"]:
        raise _fail("The report's totals do NOT agree with the ledger; run `market reconcile`", code=1)
    typer.echo("Check: the totals equal the ledger's sums for these entries.")


@app.command()
def bench(
    workers: Annotated[int, typer.Option(min=1, help="Worker processes of the service under test.")] = 2,
    json_file: Annotated[
        Path | None, typer.Option("--json", metavar="FILE", help="Also write every figure as JSON to FILE.")
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="Every scenario at tiny sizes, in seconds (the smoke test).")
    ] = False,
    scenarios: Annotated[
        str, typer.Option(help="Comma-separated: hot,fanout,many,close,search,settle,memory.")
    ] = "hot,fanout,many,close,search,settle,memory",
) -> None:
    """Measure the service through its real stack, side by side with raw limits of this machine.

    Starts the service as `market serve` does (embedded PostgreSQL in a throwaway data directory,
    or a fresh database on DATABASE_URL's server, dropped afterwards), drives it from separate
    client processes over HTTP and websockets on 127.0.0.1, and prints each scenario with its raw
    limit measured in the same run and the ratio service ÷ raw.
    """
    from rich.console import Console

    from market.bench import SCENARIOS
    from market.bench.runner import Options, run_bench, table_of

    chosen = tuple(s.strip() for s in scenarios.split(",") if s.strip())
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown or not chosen:
        raise _fail(
            f"Unknown scenario(s): {', '.join(unknown) or '(none)'}; choose from {','.join(SCENARIOS)}"
        )
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # step lines when not on a terminal
    report, code = run_bench(Options(workers=workers, json_path=json_file, quick=quick, scenarios=chosen))
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)  # a log or a file: do not fold the table to 80 columns
    console.print(table_of(report))  # the command's result, on stdout
    if code:
        raise typer.Exit(code)


def main() -> None:
    app(prog_name="market")


if __name__ == "__main__":
    main()
