"""A real ``market serve`` process on 127.0.0.1 against the test database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import FAST_TIMING


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def start_server(env: dict[str, str], data_dir: Path, *args: str, timeout: float = 60) -> Server:
    port = free_port()
    log = data_dir / f"serve-{port}.log"
    timing = {k: str(v) for k, v in FAST_TIMING.items()}
    full_env = {
        **os.environ,
        "MARKET_DATA_DIR": str(data_dir),
        "MARKET_LOG_LEVEL": "warning",
        **timing,
        **env,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "market", "serve", "--port", str(port), *args],
        env=full_env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text()}")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return Server(url, proc, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server not ready in {timeout}s:\n{log.read_text()}")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(5)


@pytest.fixture(scope="session")
def live_server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("live")
    server = start_server({"DATABASE_URL": database_url, "MARKET_SECRET_KEY": "e2e-secret-" + "y" * 32}, data)
    yield server
    stop_server(server)
