"""The bulk-import page of a bank: upload a CSV or XLSX file, dry run or import, see the report.

GET shows the form (file, dry-run box ticked by default, links to the two templates, which
are the API's template downloads: the page's session cookie is enough for them). POST reads
the multipart form (CSRF first), then parses the file and runs ``run_import`` in one
transaction, and shows the report: counts and every bad row as a table. A real import of
a file with bad rows writes nothing and answers 422.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from listings import importer
from listings.import_service import ImportReport, run_import
from market.access import require_role
from market.db import run_in_transaction
from market.parties import Actor, Role
from web import auth
from web.digits import ascii_digits
from web.pages import load_actor, render

PATH = "/bank/import"
TEMPLATE = "imports/import.html"
MAX_UPLOAD = importer.MAX_FILE_BYTES
FORM_OVERHEAD = 64 * 1024  # multipart boundaries, headers and the other fields


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


async def _bank(request: Request) -> Actor | Response:
    actor = await load_actor(request)
    if actor is None:
        return RedirectResponse(f"/login?next={PATH}", status_code=303)
    return require_role(actor, Role.BANK)


async def import_form(request: Request) -> Response:
    actor = await _bank(request)
    if isinstance(actor, Response):
        return actor
    return render(request, TEMPLATE, report=None, dry_run=True, error=None, filename=None)


async def import_submit(request: Request) -> Response:
    actor = await _bank(request)
    if isinstance(actor, Response):
        return actor
    declared = request.headers.get("content-length", "")
    if not ascii_digits(declared) or int(declared) > MAX_UPLOAD + FORM_OVERHEAD:
        # refuse before reading a byte of it (browsers always declare the length of a form)
        return _error(request, "too_large", 413, dry_run=True)
    async with request.form(max_files=1, max_fields=5) as form:
        auth.check_form_csrf(request, _str(form.get("csrf_token")))
        dry_run = bool(_str(form.get("dry_run")))
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            return _error(request, "no_file", 422, dry_run=dry_run)
        data = await upload.read(MAX_UPLOAD + 1)
        filename = upload.filename
    if len(data) > MAX_UPLOAD:
        return _error(request, "too_large", 413, dry_run=dry_run)
    if not data:
        return _error(request, "no_file", 422, dry_run=dry_run)
    expect = "xlsx" if filename.lower().endswith(".xlsx") else None
    parsed = await asyncio.to_thread(importer.parse, data, expect=expect)

    async def work(conn: AsyncConnection) -> ImportReport:
        return await run_import(conn, actor, parsed, dry_run=dry_run)

    report = await run_in_transaction(request.app.state.engine, work)
    status = 422 if not report.ok and not dry_run else 200
    return render(
        request, TEMPLATE, status_code=status, report=report, dry_run=dry_run, error=None, filename=filename
    )


def _error(request: Request, code: str, status: int, *, dry_run: bool) -> Response:
    return render(
        request, TEMPLATE, status_code=status, report=None, dry_run=dry_run, error=code, filename=None
    )


ROUTES = [
    Route(PATH, import_form, methods=["GET"], name="import_form"),
    Route(PATH, import_submit, methods=["POST"], name="import_submit"),
]
