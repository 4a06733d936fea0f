"""``market bench``: the service measured through its real stack against raw limits of the same machine.

- ``runner`` starts the database and the service (as ``market serve`` does), runs the scenarios with
  a progress bar, prints the table and writes ``--json``;
- ``scenarios`` seeds what each scenario needs (real API and services) and turns client results
  into figures;
- ``clients`` is the load: separate processes (``python -m market.bench.worker``) with asyncio,
  websockets, httpx and asyncpg inside;
- ``raw`` measures the raw limits in the same run on the same database: the bid transaction as one
  SQL round trip (a plpgsql function in the scratch schema ``bench_raw``) and a bare
  uvicorn/Starlette broadcast server (``bare_broadcast``).
"""

from __future__ import annotations

SCENARIOS = ("hot", "fanout", "many", "close", "search", "settle", "memory")
