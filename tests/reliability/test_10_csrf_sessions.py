"""10. CSRF and sessions.

- Every unsafe page route of the router (and every unsafe API operation called with the session
  cookie instead of a bearer token), as a caller whose role may use it: without a token, with
  another session's token, and cross-site (a foreign ``Origin``; ``Sec-Fetch-Site: cross-site``;
  ``Origin: null``) — 0 accepted: each answers 403 ``csrf_failed``. A control request with the
  right token from our own origin is never refused as CSRF.
- The session id changes on every sign-in (a planted or previous session cookie is never kept).
- Cookies are HttpOnly and SameSite=Lax; Secure when served over TLS: a real TLS server is started
  here (uvicorn ``--ssl-keyfile/--ssl-certfile`` with a self-signed certificate made by
  ``openssl``), and over plain HTTP the flag is absent unless ``MARKET_COOKIE_SECURE`` forces it.
- Login throttling holds across worker processes: ``market serve --workers 2``, a fresh client
  address per scenario (127.0.0.x), failures counted in the database.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import ssl
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.routing import Route

import web.app  # noqa: F401  (registers every operation)
from market.config import Settings
from market.parties import Role
from tests.conftest import FAST_TIMING
from tests.e2e.conftest import Server, free_port
from tests.reliability import helpers as h
from tests.support.factories import PASSWORD
from web.api import UNSAFE, api

pytestmark = pytest.mark.reliability
EVIL = "https://evil.example"


def page_routes() -> list[str]:
    from web.app import create_app

    app = create_app(Settings(DATABASE_URL="postgresql+asyncpg://unused/unused", MARKET_SECRET_KEY=h.SECRET))
    out = []
    for r in app.routes:
        if isinstance(r, Route) and not r.path.startswith("/api/"):
            out += [f"{m} {r.path}" for m in sorted((r.methods or set()) & UNSAFE)]
    return out


def role_for_page(path: str) -> str:
    if path.startswith("/bank/"):
        return "bank"
    if path.startswith("/ops/"):
        return "operator"
    if path in ("/login", "/logout"):
        return "anonymous"
    return "buyer"


def concrete(path: str) -> str:
    path = re.sub(r"\{action(:str)?\}", "reject", path)
    path = re.sub(r"\{decision(:str)?\}", "reject", path)
    return re.sub(r"\{[a-z_]+(:int)?\}", "1", path)


async def test_csrf_on_every_unsafe_route(pair: list[Server], engine: AsyncEngine) -> None:
    base = pair[0].url
    people = {r.value: await h.who(engine, r) for r in (Role.BUYER, Role.BANK, Role.OPERATOR)}
    other = await h.who(engine, Role.BUYER)  # another session, whose token is "stolen"
    attempts: Counter[str] = Counter()
    accepted, controls_refused = [], []
    targets: list[tuple[str, str, str, bool]] = []  # (method, path, role, is_page)
    for key in page_routes():
        method, path = key.split(" ", 1)
        targets.append((method, concrete(path), role_for_page(path), True))
    for op in api.operations:
        if op.method in UNSAFE and op.roles is not None:
            role = op.roles[0].value if op.roles else "buyer"
            targets.append((op.method, concrete(op.path), role, False))
    async with httpx.AsyncClient(base_url=base, timeout=30) as c:
        for method, path, role, is_page in targets:
            who = people.get(role)
            cookie = who.cookie if who else f"anon{secrets.token_hex(8)}"
            jar = f"market_session={cookie}" if who else f"market_anon={cookie}"
            good = h.csrf_for(cookie)
            stolen = h.csrf_for(other.cookie)
            cases = {
                "no token": (None, {"Origin": base}),
                "another session's token": (stolen, {"Origin": base}),
                "foreign Origin": (good, {"Origin": EVIL}),
                "Origin null": (good, {"Origin": "null"}),
                "Sec-Fetch-Site cross-site": (good, {"Sec-Fetch-Site": "cross-site"}),
            }
            for name, (token, extra) in [*cases.items(), ("control", (good, {"Origin": base}))]:
                headers = {"Cookie": jar, "Accept": "application/json", **extra}
                if is_page:
                    data = {"csrf_token": token} if token else {}
                    r = await c.request(method, path, headers=headers, data=data)
                else:
                    if token:
                        headers["X-CSRF-Token"] = token
                    r = await c.request(method, path, headers=headers, json={})
                code = r.json().get("code") if "json" in r.headers.get("content-type", "") else None
                refused = r.status_code == 403 and code == "csrf_failed"
                if name == "control":
                    if refused:
                        controls_refused.append(f"{method} {path}")
                    continue
                attempts[name] += 1
                if not refused:
                    accepted.append(f"{method} {path} [{name}] as {role}: {r.status_code} {code}")
    pages = sum(1 for t in targets if t[3])
    print(
        f"\n[csrf] {pages} unsafe page routes + {len(targets) - pages} unsafe API operations with the "
        "session "
        f"cookie, x {len(attempts)} forgeries ({sum(attempts.values())} requests): {len(accepted)} accepted; "
        f"controls with the right token refused as CSRF: {len(controls_refused)}"
    )
    assert accepted == [], accepted[:10]
    assert controls_refused == [], controls_refused


def set_cookies(r: httpx.Response) -> dict[str, str]:
    """Set-Cookie headers by cookie name (the raw header, attributes included)."""
    return {v.split("=", 1)[0]: v for v in r.headers.get_list("set-cookie")}


def attrs(raw: str) -> set[str]:
    return {p.strip().split("=")[0].lower() for p in raw.split(";")[1:]}


async def login(c: httpx.AsyncClient, email: str, cookie: str | None = None) -> httpx.Response:
    """Sign in through the page: the form's CSRF token is bound to the cookie the browser holds."""
    form = await c.get("/login", headers={"Cookie": f"market_session={cookie}"} if cookie else {})
    anon = form.cookies.get("market_anon") or ""
    jar = f"market_session={cookie}" if cookie else f"market_anon={anon}"
    token = h.csrf_for(cookie or anon)
    return await c.post(
        "/login",
        headers={"Cookie": jar, "Origin": str(c.base_url).rstrip("/")},
        data={"email": email, "password": PASSWORD, "next": "/", "csrf_token": token},
    )


async def test_session_id_changes_on_login_and_cookie_flags(
    pair: list[Server], engine: AsyncEngine, tmp_path: Path, database_url: str
) -> None:
    user = await h.who(engine, Role.BUYER)
    planted = await h.token_for(engine, (await h.who(engine, Role.BUYER)).user_id, "cookie")
    async with httpx.AsyncClient(base_url=pair[0].url, timeout=30) as c:
        first = await login(c, user.email)
        s1 = first.cookies.get("market_session")
        second = await login(c, user.email, cookie=s1)
        s2 = second.cookies.get("market_session")
        fixed = await login(c, user.email, cookie=planted)
        s3 = fixed.cookies.get("market_session")
        plain = set_cookies(first)
    changed = (
        first.status_code == second.status_code == fixed.status_code == 303
        and len({s1, s2, s3, planted}) == 4
    )
    # TLS: a real https server (self-signed certificate) marks every cookie Secure
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    await asyncio.to_thread(
        subprocess.run,
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    with tls_server(database_url, key, cert, tmp_path) as url:
        trust = ssl.create_default_context(cafile=str(cert))
        async with httpx.AsyncClient(base_url=url, timeout=30, verify=trust) as c:
            tls_login = await login(c, user.email)
            c.cookies.clear()
            anon = await c.get("/login")
            hsts = anon.headers.get("strict-transport-security", "")
    secure = {**set_cookies(anon), **set_cookies(tls_login)}
    forced = h.start_servers(
        1, {"DATABASE_URL": database_url, "MARKET_COOKIE_SECURE": "true"}, tmp_path / "forced"
    )[0]
    try:
        async with httpx.AsyncClient(base_url=forced.url, timeout=30) as c:
            forced_cookies = set_cookies(await c.get("/login"))
    finally:
        h.stop_servers([forced])
    print(
        f"\n[sessions] session cookie changed on each of 3 sign-ins (fresh, over an old session, over a "
        f"planted one): {changed}; http Set-Cookie {sorted(attrs(plain['market_session']))}; over TLS "
        f"(uvicorn --ssl-keyfile/--ssl-certfile, self-signed openssl certificate) "
        f"market_session {sorted(attrs(secure['market_session']))}, market_anon "
        f"{sorted(attrs(secure['market_anon']))}, HSTS {hsts!r}; plain http with MARKET_COOKIE_SECURE=true: "
        f"{sorted(attrs(forced_cookies['market_anon']))}"
    )
    assert changed, (first.status_code, second.status_code, fixed.status_code, s1, s2, s3)
    for raw in (plain["market_session"], secure["market_session"], secure["market_anon"]):
        assert {"httponly", "samesite"} <= attrs(raw) and "samesite=lax" in raw.lower(), raw
    assert "secure" not in attrs(plain["market_session"])
    assert "secure" in attrs(secure["market_session"]) and "secure" in attrs(secure["market_anon"])
    assert "secure" in attrs(forced_cookies["market_anon"])
    assert hsts.startswith("max-age=")


class tls_server:  # a context manager used like a function
    """uvicorn serving the app over TLS (``market serve`` has no TLS options: it runs behind a proxy)."""

    def __init__(self, database_url: str, key: Path, cert: Path, tmp: Path) -> None:
        self.args = (database_url, key, cert, tmp)
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> str:
        database_url, key, cert, tmp = self.args
        port = free_port()
        env = {
            **os.environ,
            **{k: str(v) for k, v in FAST_TIMING.items()},
            "DATABASE_URL": database_url,
            "MARKET_SECRET_KEY": h.SECRET,
            "MARKET_DATA_DIR": str(tmp),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp),
        }
        log = (tmp / "tls.log").open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "web.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--ssl-keyfile",
                str(key),
                "--ssl-certfile",
                str(cert),
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"https://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((tmp / "tls.log").read_text())
            try:
                trust = ssl.create_default_context(cafile=str(cert))
                if httpx.get(url + "/readyz", verify=trust, timeout=1).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("TLS server not ready")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture(scope="module")
def two_workers(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    servers = h.start_servers(
        1, {"DATABASE_URL": database_url}, tmp_path_factory.mktemp("workers"), "--workers", "2"
    )
    yield servers[0]
    h.stop_servers(servers)


async def attempt(url: str, source: str, email: str, password: str) -> int:
    """One sign-in on a new connection (so the two workers share the load) from ``source``."""
    transport = httpx.AsyncHTTPTransport(local_address=source)
    async with httpx.AsyncClient(base_url=url, transport=transport, timeout=30) as c:
        r = await c.post("/api/v1/session", json={"email": email, "password": password})
        return r.status_code


async def test_login_throttling_across_two_workers(two_workers: Server, engine: AsyncEngine) -> None:
    workers = psutil.Process(two_workers.process.pid).children(recursive=True)
    limit = 5  # MARKET_LOGIN_MAX_FAILURES (default)
    results: dict[str, Any] = {}
    octet = 2 + secrets.randbelow(200)
    # sequential: exactly `limit` wrong passwords are checked, then 429 — whichever worker answers
    seq_user = await h.who(engine, Role.BUYER)
    src = f"127.0.0.{octet}"
    seq = [await attempt(two_workers.url, src, seq_user.email, "wrong-password-1") for _ in range(12)]
    right_after = await attempt(two_workers.url, src, seq_user.email, PASSWORD)
    results["sequential"] = seq
    # a burst of 20 at once on a fresh account and a fresh client address
    burst_user = await h.who(engine, Role.BUYER)
    src2 = f"127.0.1.{octet}"
    burst = await asyncio.gather(
        *(attempt(two_workers.url, src2, burst_user.email, "wrong-password-2") for _ in range(20))
    )
    results["burst"] = Counter(burst)
    # per client address: 4x the limit across many accounts, then the address is throttled
    src3 = f"127.0.2.{octet}"
    spread = []
    for _ in range(limit * 4 + 3):
        spread.append(
            await attempt(two_workers.url, src3, f"nobody-{secrets.token_hex(4)}@example.com", "x" * 12)
        )
    results["per address"] = spread
    await h.scalar(engine, "DELETE FROM login_failures WHERE key LIKE :k RETURNING 1", k="ip:127.0.%")
    print(
        f"\n[throttle] market serve --workers 2 ({len(workers)} worker processes), limit {limit} per "
        "account / "
        f"{limit * 4} per address: sequential wrong passwords {Counter(seq)} (first 429 at attempt "
        f"{seq.index(429) + 1 if 429 in seq else None}), right password afterwards {right_after}; "
        "burst of 20 at "
        f"once {dict(results['burst'])}; {len(spread)} failures from one address over many accounts "
        f"{Counter(spread)}"
    )
    assert len(workers) >= 2
    assert seq == [401] * limit + [429] * (12 - limit), seq
    assert right_after == 429
    assert results["burst"][401] <= limit, f"the throttle let {results['burst'][401]} guesses through"
    assert spread[: limit * 4] == [401] * (limit * 4) and set(spread[limit * 4 :]) == {429}
