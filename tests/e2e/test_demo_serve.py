"""``market serve --demo`` as a newcomer runs it: embedded database, printed sign-in, a room that moves."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Server, free_port, stop_server

pytestmark = pytest.mark.e2e


def start_demo(data_dir: Path, timeout: float = 120) -> Server:
    """``market serve --demo`` with nothing configured: no DATABASE_URL, no timing, no secret key."""
    port = free_port()
    log = data_dir / f"demo-{port}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKET_") and k != "DATABASE_URL"}
    env |= {"MARKET_DATA_DIR": str(data_dir), "MARKET_LOG_LEVEL": "info"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "market", "serve", "--demo", "--port", str(port)],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    server = Server(f"http://127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text()}")
        try:
            if httpx.get(server.url + "/readyz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop_server(server)
    raise RuntimeError(f"server not ready in {timeout}s:\n{log.read_text()}")


def printed(log: str, pattern: str) -> str:
    found = re.search(pattern, log)
    assert found, f"{pattern!r} not in the output:\n{log}"
    return found.group(1)


def test_demo_room_moves_within_a_minute(tmp_path: Path) -> None:
    server = start_demo(tmp_path)
    try:
        started = time.monotonic()
        out = server.log.read_text()
        password = printed(out, r"with password (\S+)")
        buyer = printed(out, r"buyer\s+(\S+@\S+)")
        room = printed(out, r"Live auction room: (\S+)")
        assert re.fullmatch(re.escape(server.url) + r"/auctions/\d+", room), room
        session = httpx.post(server.url + "/api/v1/session", json={"email": buyer, "password": password})
        assert session.status_code == 201, session.text
        headers = {"Authorization": f"Bearer {session.json()['token']}"}

        first_seen: dict[int, int] = {}
        moved = None
        while moved is None and time.monotonic() - started < 60:
            r = httpx.get(server.url + "/api/v1/auctions", params={"status": "live"}, headers=headers)
            assert r.status_code == 200, r.text
            for a in r.json()["items"]:
                seen = first_seen.setdefault(a["id"], a["seq"])
                if a["seq"] > seen:
                    moved = a
            time.sleep(0.5)
        assert moved is not None, f"no live demo auction moved within 60 s:\n{server.log.read_text()}"
        assert moved["bid_count"] >= 2 and moved["current_price_fen"] >= moved["start_price_fen"]
        assert "drives the demo bidders" in server.log.read_text()
    finally:
        stop_server(server)
