"""JSON API machinery: one declaration per operation drives routing, auth, parsing,
the transaction, idempotency and the OpenAPI document.

Every operation is declared with ``@api.operation(...)``. The wrapper parses the body
with the declared pydantic model (strict: no coercion, unknown fields refused), resolves
the actor (bearer token, or session cookie + CSRF header for browser scripts), checks
the role, then runs the handler inside one database transaction (serialization failures
and deadlocks retried). A state-changing POST with an ``Idempotency-Key`` header stores
its response in the same transaction; a repeat returns it and changes nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from market.access import require_actor, require_role
from market.config import Settings
from market.db import run_in_transaction
from market.errors import IdempotencyKeyReused, NotFound, RuleViolation, ValidationFailed
from market.parties import Actor, Role
from market.tables import idempotency_keys
from web import auth
from web.digits import ascii_digits

MAX_BODY_BYTES = 1_000_000
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


class PayloadTooLarge(RuleViolation):
    code = "payload_too_large"
    title = "Request body too large"


@dataclass(slots=True)
class Call:
    """What a handler gets: the request, its transaction, who is acting, and the parsed input."""

    request: Request
    conn: AsyncConnection
    actor: Actor | None
    body: Any
    query: Any
    params: dict[str, int | str]
    settings: Settings

    def need_actor(self) -> Actor:
        return require_actor(self.actor)

    @property
    def engine(self) -> AsyncEngine:
        engine: AsyncEngine = self.request.app.state.engine
        return engine


Handler = Callable[[Call], Awaitable[Any]]


@dataclass(slots=True)
class Operation:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    roles: tuple[Role, ...] | None  # None: public; (): any signed-in user
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    int_params: tuple[str, ...] = ()
    transactional: bool = True
    extra_responses: dict[int, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.handler.__name__


class Api:
    """A registry of operations; ``routes()`` gives Starlette routes, ``web.openapi`` reads it."""

    def __init__(self) -> None:
        self.operations: list[Operation] = []

    def operation(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        tag: str,
        roles: tuple[Role, ...] | None,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        status: int = 200,
        transactional: bool = True,
        extra_responses: dict[int, str] | None = None,
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            params = tuple(p.strip("{}") for p in path.split("/") if p.startswith("{") and p.endswith("_id}"))
            self.operations.append(
                Operation(
                    method,
                    path,
                    handler,
                    summary,
                    tag,
                    roles,
                    body,
                    query,
                    response,
                    status,
                    params,
                    transactional,
                    extra_responses or {},
                )
            )
            return handler

        return register

    def routes(self) -> list[Route]:
        return [Route(op.path, _endpoint(op), methods=[op.method], name=op.name) for op in self.operations]


api = Api()


def _endpoint(op: Operation) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        params = _path_params(request, op)
        raw = await _read_limited(request) if op.body else b""
        settings: Settings = request.app.state.settings
        key = request.headers.get("idempotency-key") if op.method in UNSAFE else None

        async def work(conn: AsyncConnection) -> tuple[int, Any]:
            # who first: an anonymous or wrong-role caller learns nothing about the body's schema
            actor = await auth.actor_for_api(request, conn)
            if op.roles is not None:
                require_role(actor, *op.roles)
            if actor is not None and op.method in UNSAFE:
                auth.check_api_csrf(request, actor)
            body = _parse_body(request, raw, op.body) if op.body else None
            query = _parse_query(request, op.query) if op.query else None
            call = Call(request, conn, actor, body, query, params, settings)
            if key:
                return await _idempotent(call, op, key)
            return await _run(call, op)

        if not op.transactional:
            body = _parse_body(request, raw, op.body) if op.body else None
            query = _parse_query(request, op.query) if op.query else None
            call = Call(request, None, None, body, query, params, settings)  # type: ignore[arg-type]
            status, payload = await _run(call, op)
        else:
            status, payload = await run_in_transaction(request.app.state.engine, work)
        if isinstance(payload, Response):
            return payload
        return JSONResponse(payload, status_code=status)

    endpoint.__name__ = op.name
    return endpoint


async def _run(call: Call, op: Operation) -> tuple[int, Any]:
    result = await op.handler(call)
    if isinstance(result, Response):
        return result.status_code, result
    if isinstance(result, tuple):
        status, result = result
    else:
        status = op.status
    return status, _dump(result)


def _dump(result: Any) -> Any:
    if isinstance(result, BaseModel):
        return result.model_dump(mode="json")
    return json.loads(json.dumps(result, default=str)) if result is not None else None


def _path_params(request: Request, op: Operation) -> dict[str, int | str]:
    """Ids (``*_id``) are positive integers; anything malformed is simply not found."""
    out: dict[str, int | str] = {}
    for name, raw in request.path_params.items():
        value = str(raw)
        if not name.endswith("_id"):
            if not 0 < len(value) <= 64 or ":" in value:
                raise NotFound(f"No such {name.removesuffix('_code')}")
            out[name] = value
            continue
        if not (value.isascii() and value.isdigit()) or len(value) > 18 or int(value) < 1:  # "¹" is a digit
            raise NotFound(f"No such {name.removesuffix('_id')}")
        out[name] = int(value)
    return out


def _parse_body(request: Request, raw: bytes, model: type[BaseModel]) -> BaseModel:
    ctype = request.headers.get("content-type", "")
    if ctype and "json" not in ctype:
        raise ValidationFailed(
            "Send the body as application/json",
            errors=[{"loc": ["header", "content-type"], "msg": "expected application/json"}],
        )
    try:
        data = json.loads(raw or b"null", parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise ValidationFailed(
            "The body is not valid JSON", errors=[{"loc": ["body"], "msg": str(exc)[:200]}]
        ) from None
    if _has_nul(data):  # PostgreSQL stores no NUL in text or JSONB: refuse it here, not with a 500
        raise ValidationFailed(
            "Text may not contain NUL characters", errors=[{"loc": ["body"], "msg": "NUL character"}]
        )
    return validate(model, data)


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON bodies")


async def _read_limited(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared and ascii_digits(declared) and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"Bodies are limited to {MAX_BODY_BYTES} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"Bodies are limited to {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def validate(model: type[BaseModel], data: Any) -> BaseModel:
    """``data`` as ``model``, or ``ValidationFailed`` listing every error with its location."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [{"loc": ["body", *[str(p) for p in e["loc"]]], "msg": e["msg"]} for e in exc.errors()]
        raise ValidationFailed("The request body is invalid", errors=errors) from None


def _parse_query(request: Request, model: type[BaseModel]) -> BaseModel:
    names = {(f.alias or name): name for name, f in model.model_fields.items()}
    data: dict[str, Any] = {}
    for key in request.query_params:
        if key not in names:
            continue
        values = request.query_params.getlist(key)
        if _has_nul(values):
            raise ValidationFailed(
                "Text may not contain NUL characters",
                errors=[{"loc": ["query", key], "msg": "NUL character"}],
            )
        data[key] = values if _is_list_field(model, names[key]) else values[-1]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [{"loc": ["query", *[str(p) for p in e["loc"]]], "msg": e["msg"]} for e in exc.errors()]
        raise ValidationFailed("The query string is invalid", errors=errors) from None


def _is_list_field(model: type[BaseModel], name: str) -> bool:
    ann = str(model.model_fields[name].annotation)
    return ann.startswith("list") or "List" in ann


def _request_hash(call: Call, op: Operation) -> str:
    """What makes two requests "the same": method, path, query string and body."""
    body = call.body.model_dump(mode="json") if isinstance(call.body, BaseModel) else None
    raw = getattr(call.request.state, "raw_body_sha256", None)
    canonical = json.dumps(
        [op.method, call.request.url.path, str(call.request.url.query), body, raw],
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


async def _idempotent(call: Call, op: Operation, key: str) -> tuple[int, Any]:
    if len(key) > 200 or not key.isprintable():
        raise ValidationFailed(
            "Idempotency-Key must be 1-200 printable characters",
            errors=[{"loc": ["header", "idempotency-key"], "msg": "invalid"}],
        )
    scope = f"user:{call.actor.user_id}" if call.actor else f"anon:{op.name}"
    digest = _request_hash(call, op)
    claimed = await call.conn.execute(
        text(
            "INSERT INTO idempotency_keys (scope, key, request_hash, status_code, response) "
            "VALUES (:s, :k, :h, 0, 'null'::jsonb) ON CONFLICT DO NOTHING RETURNING 1"
        ),
        {"s": scope, "k": key, "h": digest},
    )
    if claimed.first() is None:
        return await _replay(call.conn, scope, key, digest)
    status, payload = await _run(call, op)
    if isinstance(payload, Response):  # a bodiless answer (204): a replay gives the same status
        await call.conn.execute(
            idempotency_keys.update()
            .where(idempotency_keys.c.scope == scope, idempotency_keys.c.key == key)
            .values(status_code=status)
        )
        return status, payload
    payload = canonical_order(payload)  # a replay (read back from JSONB) answers byte for byte the same
    await call.conn.execute(
        idempotency_keys.update()
        .where(idempotency_keys.c.scope == scope, idempotency_keys.c.key == key)
        .values(status_code=status, response=payload)
    )
    return status, payload


async def _replay(conn: AsyncConnection, scope: str, key: str, digest: str) -> tuple[int, Any]:
    row = (
        await conn.execute(
            select(idempotency_keys).where(idempotency_keys.c.scope == scope, idempotency_keys.c.key == key)
        )
    ).one()
    if row.request_hash != digest:
        raise IdempotencyKeyReused("This Idempotency-Key was used for a different request")
    if row.response is None:
        return row.status_code, Response(status_code=row.status_code)
    return row.status_code, canonical_order(row.response)


def canonical_order(value: Any) -> Any:
    """``value`` with every object's keys sorted (JSONB does not keep key order)."""
    if isinstance(value, dict):
        return {k: canonical_order(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [canonical_order(v) for v in value]
    return value
