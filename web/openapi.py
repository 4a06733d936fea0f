"""The OpenAPI 3.1 document, generated from the operation registry and the pydantic models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from web.api import Api, Operation

REF = "#/components/schemas/{model}"
PROBLEM = {
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string", "description": "stable machine-readable error code"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"loc": {"type": "array", "items": {}}, "msg": {"type": "string"}},
            },
        },
    },
    "additionalProperties": True,
}
STANDARD_ERRORS = {
    401: "Not signed in",
    403: "Wrong role",
    404: "Not found (or not yours)",
    409: "Conflicts with the current state",
    422: "Invalid input",
}


def document(
    registry: Api, *, title: str = "Pledged-IP disposal marketplace", version: str = "1"
) -> dict[str, Any]:
    models = _models(registry)
    _, schemas = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    components = dict(schemas.get("$defs", {}))
    components["Problem"] = PROBLEM
    paths: dict[str, dict[str, Any]] = {}
    for op in registry.operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Amounts are integer fen (`*_fen`); errors are application/problem+json.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _models(registry: Api) -> list[type[BaseModel]]:
    seen: list[type[BaseModel]] = []
    for op in registry.operations:
        for m in (op.body, op.response):
            if m is not None and m not in seen:
                seen.append(m)
    return seen


def _operation(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {
        "operationId": op.name,
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": _parameters(op),
        "responses": _responses(op),
    }
    if op.roles is not None:
        out["security"] = [{"bearer": []}]
        if op.roles:
            out["description"] = "Roles: " + ", ".join(r.value for r in op.roles)
    if op.body is not None:
        out["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": REF.format(model=op.body.__name__)}}},
        }
    return out


def _parameters(op: Operation) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    for part in op.path.split("/"):
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            kind: dict[str, Any] = {"type": "integer", "minimum": 1}
            if name not in op.int_params:
                kind = {"type": "string", "maxLength": 64}
            params.append({"name": name, "in": "path", "required": True, "schema": kind})
    if op.query is not None:
        schema = op.query.model_json_schema()
        for name, prop in schema.get("properties", {}).items():
            params.append(
                {
                    "name": name,
                    "in": "query",
                    "required": name in schema.get("required", []),
                    "schema": _strip_title(prop),
                }
            )
    if op.method in ("POST", "PUT", "PATCH", "DELETE"):
        params.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": 200},
            }
        )
    return params


def _strip_title(schema: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k != "title"}


def _responses(op: Operation) -> dict[str, Any]:
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    ok: dict[str, Any] = {"description": "Success"}
    if op.response is not None:
        ok["content"] = {"application/json": {"schema": {"$ref": REF.format(model=op.response.__name__)}}}
    responses: dict[str, Any] = {str(op.status): ok}
    errors = dict(STANDARD_ERRORS)
    if op.roles is None:
        errors.pop(401)
        errors.pop(403)
    errors.update(op.extra_responses)
    for status, text in errors.items():
        if status < 300:  # another success (e.g. 200 for a repeat of a 201): the same body
            responses[str(status)] = {**ok, "description": text}
            continue
        responses[str(status)] = {"description": text, "content": problem}
    return responses
