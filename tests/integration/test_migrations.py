"""Migrations: one head, upgrade from an empty database, downgrade and back, models match."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from market import migrate
from market.db import load_all_tables
from tests.conftest import _admin


def test_there_is_exactly_one_head() -> None:
    assert len(migrate.heads()) == 1


def _ignore_foreign_objects(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    return not (type_ == "table" and name == "alembic_version")


async def _diff(url: str) -> list[Any]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:

            def compare(sync_conn: Any) -> list[Any]:
                ctx = MigrationContext.configure(
                    sync_conn, opts={"include_object": _ignore_foreign_objects, "compare_type": True}
                )
                return list(compare_metadata(ctx, load_all_tables()))

            return await conn.run_sync(compare)
    finally:
        await engine.dispose()


async def test_models_match_migrations(database_url: str) -> None:
    assert await _diff(database_url) == []


async def test_upgrade_from_empty_downgrade_and_upgrade_again(database_url: str) -> None:
    name = f"market_mig_{secrets.token_hex(4)}"
    server = make_url(database_url)
    await _admin(database_url, f'CREATE DATABASE "{name}"')
    url = server.set(database=name).render_as_string(hide_password=False)
    try:
        engine = create_async_engine(url)
        assert await migrate.current_revision(engine) is None
        await asyncio.to_thread(migrate.upgrade, url)
        assert await migrate.is_migrated(engine)
        await asyncio.to_thread(migrate.downgrade, url, "base")
        assert await migrate.current_revision(engine) is None
        await asyncio.to_thread(migrate.upgrade, url)
        assert await migrate.is_migrated(engine)
        await engine.dispose()
    finally:
        await _admin(database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
