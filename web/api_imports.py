"""API: bulk import of assets, claims and pledges from CSV or XLSX (templates, dry run, import).

``POST /api/v1/imports`` takes the file itself as the body (``Content-Type: text/csv`` or the
XLSX type), at most 20 MB, and answers the report: every bad row with its sheet, row
number, column and reason, and what was (or, in a dry run, would be) created, updated,
left unchanged or removed. A real import of a file with any bad row writes nothing and
answers 422 ``import_has_errors`` with the same report fields. The layout is described in
``listings.importer``.
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from listings import importer
from listings.import_service import ImportHasErrors, run_import
from market.errors import ValidationFailed
from market.parties import Role
from web.api import Call, api
from web.digits import ascii_digits

BANK = (Role.BANK,)
MAX_IMPORT_BYTES = importer.MAX_FILE_BYTES
CSV_TYPES = frozenset({"text/csv", "application/csv", "text/plain"})
XLSX_TYPES = frozenset({importer.XLSX_MIME})


class ImportQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dry_run: bool = False


class ImportProblemOut(BaseModel):
    sheet: str
    row: int | None
    column: str | None
    code: str
    reason: str


class ImportCountsOut(BaseModel):
    created: int
    updated: int
    unchanged: int
    removed: int


class ImportCountsByRecord(BaseModel):
    assets: ImportCountsOut
    claims: ImportCountsOut
    pledges: ImportCountsOut


class ImportReportOut(BaseModel):
    ok: bool
    dry_run: bool
    applied: bool
    format: str
    sha256: str
    rows: int
    bad_rows: int
    problems: list[ImportProblemOut]
    counts: ImportCountsByRecord


def _download(body: bytes, media_type: str, filename: str) -> Response:
    return Response(
        body,
        media_type=media_type,
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )


@api.operation(
    "GET",
    "/api/v1/imports/template.csv",
    summary="The CSV import template: header and one example row per record type",
    tag="imports",
    roles=BANK,
)
async def import_template_csv(call: Call) -> Response:
    return _download(importer.template_csv(), "text/csv; charset=utf-8", "import-template.csv")


@api.operation(
    "GET",
    "/api/v1/imports/template.xlsx",
    summary="The XLSX import template: assets, claims and pledges sheets with instructions (zh/en)",
    tag="imports",
    roles=BANK,
)
async def import_template_xlsx(call: Call) -> Response:
    return _download(importer.template_xlsx(), importer.XLSX_MIME, "import-template.xlsx")


async def read_upload(request: Request, limit: int = MAX_IMPORT_BYTES) -> bytes:
    """The raw body, at most ``limit`` bytes (kept on the request: a retried transaction reads it again)."""
    cached = getattr(request.state, "import_body", None)
    if isinstance(cached, bytes):
        return cached
    declared = request.headers.get("content-length")
    if declared and ascii_digits(declared) and int(declared) > limit:
        raise HTTPException(413, f"Import files are limited to {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"Import files are limited to {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    request.state.import_body = body
    return body


@api.operation(
    "POST",
    "/api/v1/imports",
    summary="Import assets, claims and pledges from a CSV or XLSX body (dry_run=true: check only)",
    tag="imports",
    roles=BANK,
    query=ImportQuery,
    response=ImportReportOut,
    extra_responses={413: "File larger than 20 MB", 415: "Not text/csv or XLSX"},
)
async def import_file(call: Call) -> ImportReportOut:
    actor = call.need_actor()
    if call.request.headers.get("idempotency-key"):
        # the stored answer would be keyed on the path alone, not on the file: refuse rather than
        # replay another file's report. Importing the same file again is harmless (an upsert).
        raise ValidationFailed(
            "Idempotency-Key is not supported on imports; importing the same file again changes nothing",
            errors=[{"loc": ["header", "idempotency-key"], "msg": "not supported here"}],
        )
    ctype = call.request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype not in CSV_TYPES | XLSX_TYPES:
        raise HTTPException(415, f"Send the file as text/csv or {importer.XLSX_MIME}")
    data = await read_upload(call.request)
    expect = "xlsx" if ctype in XLSX_TYPES else None
    parsed = await asyncio.to_thread(importer.parse, data, expect=expect)
    report = await run_import(call.conn, actor, parsed, dry_run=call.query.dry_run)
    if not report.ok and not report.dry_run:
        raise ImportHasErrors(
            f"{len(report.problems)} problems in {len(report.bad_rows())} rows; nothing was imported",
            **report.as_dict(),
        )
    return ImportReportOut.model_validate(report.as_dict())
