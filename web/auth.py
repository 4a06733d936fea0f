"""Who is calling: bearer tokens for the API, a revocable server-side session cookie for pages.

CSRF: every unsafe browser request carries a token bound to its session (an HMAC of the
session cookie under the secret key), either as the ``csrf_token`` form field or the
``X-CSRF-Token`` header; cross-site requests (``Origin`` or ``Sec-Fetch-Site``) are
refused outright. Bearer-token API calls are not exposed to CSRF and need no token.
"""

from __future__ import annotations

import hmac
import secrets
from hashlib import sha256

from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from market import identity
from market.errors import CsrfFailed
from market.parties import Actor

SESSION_COOKIE = "market_session"
ANON_COOKIE = "market_anon"
LANG_COOKIE = "lang"


def bearer_token(conn: HTTPConnection) -> str | None:
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


async def actor_for_api(request: Request, conn: AsyncConnection) -> Actor | None:
    """Bearer token first; otherwise the page session cookie (browser scripts)."""
    token = bearer_token(request)
    if token is not None:
        return await identity.resolve_token(conn, token, kind="bearer")
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        actor = await identity.resolve_token(conn, cookie, kind="cookie")
        if actor is not None:
            request.state.cookie_auth = True
        return actor
    return None


async def actor_for_page(request: HTTPConnection, conn: AsyncConnection) -> Actor | None:
    cookie = request.cookies.get(SESSION_COOKIE)
    return await identity.resolve_token(conn, cookie, kind="cookie") if cookie else None


def _secret(request: HTTPConnection) -> bytes:
    key: str = request.app.state.secret_key
    return key.encode()


def csrf_token(request: HTTPConnection) -> str:
    """The token for forms on this page: bound to the session cookie, or to the anonymous cookie."""
    basis = request.cookies.get(SESSION_COOKIE) or _anon_id(request)
    return hmac.new(_secret(request), b"csrf:" + basis.encode(), sha256).hexdigest()


def _anon_id(request: HTTPConnection) -> str:
    existing = request.cookies.get(ANON_COOKIE) or getattr(request.state, "new_anon_id", None)
    if existing:
        return str(existing)
    fresh = secrets.token_urlsafe(24)
    request.state.new_anon_id = fresh
    return fresh


def set_anon_cookie_if_new(request: HTTPConnection, response: Response) -> None:
    fresh = getattr(request.state, "new_anon_id", None)
    if fresh:
        response.set_cookie(
            ANON_COOKIE, fresh, httponly=True, samesite="lax", secure=cookie_secure(request), path="/"
        )


def cookie_secure(request: HTTPConnection) -> bool:
    configured = request.app.state.settings.cookie_secure
    if configured is not None:
        return bool(configured)
    return request.url.scheme == "https"


def check_same_origin(request: HTTPConnection) -> None:
    """Refuse cross-site unsafe requests (the second line of defence after the token)."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise CsrfFailed("Cross-site request refused")
    origin = request.headers.get("origin")
    if origin and origin != "null" and not same_origin(request, origin):
        raise CsrfFailed("Cross-site request refused")
    if origin == "null":
        raise CsrfFailed("Cross-site request refused")


def same_origin(request: HTTPConnection, origin: str) -> bool:
    allowed: set[str] = request.app.state.settings.origin_allow_list()
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    ws_own = own.replace("ws://", "http://").replace("wss://", "https://")
    return origin.rstrip("/") in allowed | {own, ws_own}


def check_form_csrf(request: Request, submitted: str | None) -> None:
    check_same_origin(request)
    expected = csrf_token(request)
    if not submitted or not hmac.compare_digest(submitted, expected):
        raise CsrfFailed("The form expired or was not sent by this site; reload the page and try again")


def check_api_csrf(request: Request, actor: Actor) -> None:
    """Cookie-authenticated API writes (from our own pages' scripts) need the CSRF header."""
    if not getattr(request.state, "cookie_auth", False):
        return
    check_form_csrf(request, request.headers.get("x-csrf-token"))


def set_session_cookie(request: Request, response: Response, token: str, max_age: int) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=cookie_secure(request),
        path="/",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")
