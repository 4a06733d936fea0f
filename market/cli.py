"""The ``market`` command line: run the service, migrate, manage users, and operate it."""

from __future__ import annotations

import asyncio
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


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    demo: Annotated[bool, typer.Option(help="Fill the database with a live demo.")] = False,
) -> None:
    """Run the web service (embedded PostgreSQL unless DATABASE_URL is set; migrations applied)."""
    settings = load_settings()
    url, is_embedded = prepare_database(settings)
    os.environ["DATABASE_URL"] = url  # workers read the same database
    metrics_dir = _metrics_dir(settings)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    settings.resolved_secret_key()  # create it once, before workers race for it
    where = f"embedded PostgreSQL, data in {settings.pgdata}" if is_embedded else "DATABASE_URL"
    typer.echo(f"Open http://{host}:{port}/  (database: {where}; workers: {workers})")
    typer.echo(f"Data directory: {settings.data_dir.resolve()}   Stop with Ctrl-C.")
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


def main() -> None:
    app(prog_name="market")


if __name__ == "__main__":
    main()
