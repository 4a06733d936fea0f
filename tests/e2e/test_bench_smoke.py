"""``market bench --quick``: every scenario at tiny sizes through the real stack, so the bench never rots.

The bench creates its own database on the test server (DATABASE_URL) and drops it afterwards; the
full run (``market bench``) is not part of the suite.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from market.bench import SCENARIOS

pytestmark = pytest.mark.e2e

WITH_RAW_LIMIT = {"hot", "fanout", "many", "search", "memory"}


async def _bench_databases(url: str, pid: int) -> list[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT datname FROM pg_database WHERE datname LIKE :p"), {"p": f"market_bench_{pid}_%"}
            )
            return [r[0] for r in rows]
    finally:
        await engine.dispose()


def test_quick_bench_reports_every_scenario_against_its_raw_limit(database_url: str, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    env = {**os.environ, "DATABASE_URL": database_url}
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "market", "bench", "--quick", "--json", str(out)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        output, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.terminate()
        output, _ = proc.communicate(timeout=60)
        pytest.fail(f"market bench --quick did not finish in 120 s:\n{output.decode()[-4000:]}")
    took = time.monotonic() - started
    assert proc.returncode == 0, output.decode()[-4000:]
    assert took < 90, f"the quick bench took {took:.0f} s"
    assert "service ÷ raw" in output.decode()  # the human table

    report = json.loads(out.read_text())
    assert report["quick"] is True
    assert set(report["scenarios"]) == set(SCENARIOS)
    for name, result in report["scenarios"].items():
        assert "error" not in result, (name, result.get("error"))
        assert result["rows"], name
        for row in result["rows"]:
            assert isinstance(row["service"], int | float), (name, row)
            if row["raw"] is not None:
                assert isinstance(row["raw"], int | float), (name, row)
                if row["raw"] != 0:
                    assert isinstance(row["ratio"], int | float), (name, row)
        if name in WITH_RAW_LIMIT:
            assert any(r["ratio"] is not None for r in result["rows"]), name
    close = report["scenarios"]["close"]["details"]
    assert close["disposals_exactly_once"] == close["auctions"]
    assert close["disposals_duplicated"] == 0
    assert report["scenarios"]["settle"]["details"]["settled"] > 0
    assert asyncio.run(_bench_databases(database_url, proc.pid)) == []  # its database was dropped
