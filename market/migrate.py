"""Schema migrations driven through Alembic's command API, and the readiness check."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.set_main_option(
        "file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(hour).2d%%(minute).2d-%%(rev)s_%%(slug)s"
    )
    return cfg


def heads() -> list[str]:
    return list(ScriptDirectory.from_config(alembic_config("postgresql://unused")).get_heads())


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (blocking; call from a thread inside an event loop)."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


async def upgrade_async(url: str) -> None:
    await asyncio.to_thread(upgrade, url)


async def current_revision(engine: AsyncEngine) -> str | None:
    """The applied revision, or None when the database was never migrated."""
    async with engine.connect() as conn:
        exists = (await conn.execute(text("SELECT to_regclass('public.alembic_version')"))).scalar()
        if exists is None:
            return None
        return (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()


async def is_migrated(engine: AsyncEngine) -> bool:
    return await current_revision(engine) in set(heads())
