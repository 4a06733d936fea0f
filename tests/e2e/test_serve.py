"""``market serve`` as a newcomer runs it: embedded database, reuse, refusal when unmigrated, workers."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import _admin
from tests.e2e.conftest import Server, start_server, stop_server

pytestmark = pytest.mark.e2e


def test_serves_health_and_ready(live_server: Server) -> None:
    assert httpx.get(live_server.url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(live_server.url + "/readyz").json() == {"status": "ready"}


def test_refuses_an_unmigrated_database(database_url: str, tmp_path: Path) -> None:
    name = f"market_empty_{secrets.token_hex(4)}"
    asyncio.run(_admin(database_url, f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
        env = {**os.environ, "DATABASE_URL": url, "MARKET_DATA_DIR": str(tmp_path)}
        r = subprocess.run(
            [sys.executable, "-m", "market", "serve", "--port", "1"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode != 0
        assert "market migrate" in r.stderr
    finally:
        asyncio.run(_admin(database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_embedded_database_starts_and_is_reused(tmp_path: Path) -> None:
    env = {"DATABASE_URL": "", "MARKET_SECRET_KEY": ""}
    first = start_server(env, tmp_path, timeout=90)
    try:
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "market",
                "users",
                "create-operator",
                "--email",
                "first@example.com",
                "--password",
                "operator-pass-1",
            ],
            env={**os.environ, **env, "MARKET_DATA_DIR": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, r.stderr
        assert "Open http://127.0.0.1:" in first.log.read_text()
    finally:
        stop_server(first)
    assert (tmp_path / "pgdata" / "PG_VERSION").exists()
    second = start_server(env, tmp_path, timeout=90)
    try:
        token = httpx.post(
            second.url + "/api/v1/session", json={"email": "first@example.com", "password": "operator-pass-1"}
        )
        assert token.status_code == 201, token.text  # the data survived the restart
    finally:
        stop_server(second)


def test_metrics_add_up_across_workers(database_url: str, tmp_path: Path) -> None:
    server = start_server(
        {"DATABASE_URL": database_url, "MARKET_SECRET_KEY": "w" * 40}, tmp_path, "--workers", "2"
    )
    try:
        for _ in range(40):
            httpx.get(server.url + "/healthz")
        text = httpx.get(server.url + "/metrics").text
        line = next(
            ln
            for ln in text.splitlines()
            if ln.startswith("market_http_requests_total") and 'route="/healthz"' in ln
        )
        assert float(line.rsplit(" ", 1)[1]) >= 40
    finally:
        stop_server(server)
