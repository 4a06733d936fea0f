"""The one mapping from errors to HTTP: ``application/problem+json`` for the API, a page for browsers.

Domain errors (``MarketError``) carry a stable ``code``; their family decides the status.
Anything else is a bug: logged with its traceback, answered with a bare 500 problem.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from market.errors import (
    Conflict,
    Forbidden,
    MarketError,
    NotFound,
    RuleViolation,
    Throttled,
    Unauthenticated,
    ValidationFailed,
)

log = logging.getLogger("web.errors")

STATUS: list[tuple[type[MarketError], int]] = [
    (Unauthenticated, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (ValidationFailed, 422),
    (RuleViolation, 422),
    (Throttled, 429),
]
HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "throttled",
    500: "internal_error",
}


def status_of(exc: MarketError) -> int:
    return next((status for cls, status in STATUS if isinstance(exc, cls)), 400)


def problem_body(exc: MarketError) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"https://errors.ipmarket.invalid/{exc.code}",
        "title": exc.title,
        "status": status_of(exc),
        "detail": exc.detail,
        "code": exc.code,
    }
    for key, value in exc.data.items():
        body.setdefault(key, value)
    return body


def wants_html(request: Request) -> bool:
    path = request.url.path
    if path.startswith(("/api/", "/ws/")) or path in ("/healthz", "/readyz", "/metrics"):
        return False
    return "text/html" in request.headers.get("accept", "")


def problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        body, status_code=body["status"], media_type="application/problem+json", headers=headers
    )


async def market_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MarketError)
    body = problem_body(exc)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Throttled) else None
    if wants_html(request):
        return _page(request, body, headers)
    return problem_response(body, headers)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = HTTP_CODES.get(exc.status_code, "http_error")
    body = {
        "type": f"https://errors.ipmarket.invalid/{code}",
        "title": code.replace("_", " ").capitalize(),
        "status": exc.status_code,
        "detail": exc.detail if isinstance(exc.detail, str) else code,
        "code": code,
    }
    if wants_html(request):
        return _page(request, body, dict(exc.headers or {}))
    return problem_response(body, dict(exc.headers or {}))


async def server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    body = {
        "type": "https://errors.ipmarket.invalid/internal_error",
        "title": "Internal error",
        "status": 500,
        "detail": "Something went wrong on our side; the request was not applied.",
        "code": "internal_error",
    }
    if wants_html(request):
        return _page(request, body, None)
    return problem_response(body)


def _page(request: Request, body: dict[str, Any], headers: dict[str, str] | None) -> Response:
    templates = getattr(request.app.state, "templates", None)
    if templates is None:
        return HTMLResponse(f"<h1>{body['status']}</h1>", status_code=body["status"], headers=headers)
    from web.pages import page_context

    ctx = page_context(request, problem=body)
    page: Response = templates.TemplateResponse(
        request, "error.html", ctx, status_code=body["status"], headers=headers
    )
    return page


EXCEPTION_HANDLERS = {MarketError: market_error, HTTPException: http_error, Exception: server_error}
