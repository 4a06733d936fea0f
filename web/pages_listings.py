"""Server-rendered pages of collateral and listings: bank, public catalogue, buyer.

Handlers stay thin: read the form (CSRF first), build the input model of ``listings.schemas``
(or ``web.schemas_listings``), call one service inside one transaction, then redirect (303)
or render. A form that does not validate is shown again with every error next to its
field (422); a rule the service refuses (409/422) is shown on the same page. Everything
else (404 for another organisation's object, 403 for a wrong role or a bad CSRF token)
is rendered by ``web.errors``.

Amounts are entered in yuan with at most two decimals and converted exactly to integer
fen from the decimal string (``parse_cny``); they are shown with ``market.money.format_cny``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any, TypeVar, get_args
from urllib.parse import quote, urlencode

from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from listings import (
    matching,
    model,
    negotiation as neg,
    offers,
    queries,
    recommend,
    schemas as ls,
    services,
    store,
)
from market import clock, identity
from market.access import require_role
from market.db import transaction
from market.errors import BuyerNotVerified, Conflict, MarketError, NotFound, RuleViolation
from market.money import format_cny
from market.parties import Actor, Role
from web import auth, i18n
from web.digits import ascii_digits
from web.errors import status_of
from web.pages import load_actor, locale_of, render
from web.schemas_listings import InterestsIn, ListingQuery, OfferIn, WithdrawIn

M = TypeVar("M", bound=BaseModel)

# --------------------------------------------------------------------------- vocabularies

KINDS = [k.value for k in model.AssetKind]
LEGAL_STATUSES = [s.value for s in model.LegalStatus]
MODES = [m.value for m in model.DisposalMode]
LICENSE_TYPES = [t.value for t in model.LicenseType]
PUBLIC_STATUSES = list(queries.PUBLIC)
WITHDRAWAL_REASONS: list[str] = list(get_args(WithdrawIn.model_fields["reason"].annotation))
OFFER_VALIDITY_DAYS = (1, 3, 7, 14, 30)
OFFER_ACTIONS = ("counter", "accept", "reject", "withdraw")
MAX_ROWS = 20

# Validation messages: English source text, translated in the template with ``_``.
REQUIRED = "This field is required."
AMOUNT = "Enter an amount in yuan with at most 2 decimals."
WHOLE = "Enter a whole number."
DATE = "Enter a date as YYYY-MM-DD."
CHOOSE = "Choose one of the options."
TOO_LONG = "The text is too long."
TOO_SMALL = "The value is too small."
TOO_LARGE = "The value is too large."
CREDIT_CODE = "Enter an 18-character unified social credit code (digits and capital letters)."
TITLE = "Give a Chinese or an English title."
INVALID = "This value is not valid."
NO_PLEDGE = "Choose at least one pledged asset."
NO_ASSET = "Choose at least one asset."
NO_ACQUIRER = "No bank or buyer organisation has this credit code."


# --------------------------------------------------------------------------- amounts

_YUAN = re.compile(r"(\d{1,3}(?:,\d{3})+|\d{1,16})(?:\.(\d{1,2}))?")


def parse_cny(text: str) -> int:
    """Yuan as typed (``"1,234.5"``, full-width digits, an optional ``¥``) -> exact integer fen.

    Decimal string arithmetic only, never a float; more than two decimals, signs, exponents
    and anything else are refused.

    Raises:
        ValueError: ``text`` is not a non-negative amount with at most two decimals.
    """
    s = unicodedata.normalize("NFKC", text).strip().removeprefix("¥").strip()
    m = _YUAN.fullmatch(s)
    if m is None:
        raise ValueError(f"not an amount in yuan: {text!r}")
    whole, cents = m.group(1).replace(",", ""), (m.group(2) or "").ljust(2, "0")
    return int(whole) * 100 + int(cents)


def _cny(fen: int | None) -> str:
    return "—" if fen is None else format_cny(fen)


def _day(value: date | str | None) -> str:
    if value is None or value == "":
        return "—"
    return value if isinstance(value, str) else value.isoformat()


def _percent(bp: int) -> str:
    """Basis points as a percentage with two decimals, exactly: ``350`` -> ``"3.50"``."""
    return f"{bp // 100}.{bp % 100:02d}"


def _moment(value: datetime | None) -> str:
    return "—" if value is None else value.astimezone(clock.CST).strftime("%Y-%m-%d %H:%M")


# --------------------------------------------------------------------------- forms


_SPLIT = re.compile(r"[,;\n\r，；、]+")


class FormInput:
    """A submitted form: typed reads that collect errors under the form field's name."""

    def __init__(self, data: FormData) -> None:
        self.data = data
        self.errors: dict[str, str] = {}

    @property
    def values(self) -> dict[str, str]:
        """The raw text of every field, to fill the form in again."""
        return {k: v for k, v in self.data.multi_items() if isinstance(v, str)}

    def text(self, name: str) -> str | None:
        value = self.data.get(name)
        return (value.strip() or None) if isinstance(value, str) else None

    def code(self, name: str) -> str | None:
        """A code typed in any width or case (credit codes): half-width, upper case."""
        raw = self.text(name)
        return unicodedata.normalize("NFKC", raw).upper() if raw else None

    def many(self, name: str) -> list[str]:
        return [v.strip() for v in self.data.getlist(name) if isinstance(v, str) and v.strip()]

    def split(self, name: str) -> list[str]:
        """A free-text list: items separated by commas, semicolons, 、 or new lines."""
        return [item.strip() for item in _SPLIT.split(self.text(name) or "") if item.strip()]

    def flag(self, name: str) -> bool:
        return self.text(name) is not None

    def fen(self, name: str) -> int | None:
        raw = self.text(name)
        if raw is None:
            return None
        try:
            return parse_cny(raw)
        except ValueError:
            self.errors[name] = AMOUNT
            return None

    def integer(self, name: str) -> int | None:
        raw = self.text(name)
        if raw is None:
            return None
        normal = unicodedata.normalize("NFKC", raw)
        if not re.fullmatch(r"\d{1,18}", normal):
            self.errors[name] = WHOLE
            return None
        return int(normal)

    def rows(self, prefix: str) -> list[int]:
        """Indexes of the repeated rows ``prefix.<i>.<field>`` present in the form."""
        found = {int(m.group(1)) for k in self.data if (m := re.fullmatch(rf"{prefix}\.(\d{{1,2}})\..+", k))}
        return sorted(i for i in found if i < MAX_ROWS)


def _drop_none(data: Any) -> Any:
    """Leave unset fields out so the model's defaults and 'required' apply."""
    if isinstance(data, dict):
        return {k: _drop_none(v) for k, v in data.items() if v is not None}
    if isinstance(data, list):
        return [_drop_none(v) for v in data]
    return data


def _message(err: Mapping[str, Any]) -> str:
    kind: str = err["type"]
    last = str(err["loc"][-1]) if err["loc"] else ""
    if kind == "missing" or (kind == "string_too_short" and (err.get("ctx") or {}).get("min_length") == 1):
        return REQUIRED
    if kind == "too_short":
        return NO_ASSET
    if kind == "string_pattern_mismatch":
        return CREDIT_CODE if last.endswith("credit_code") else INVALID
    simple = {
        "string_too_long": TOO_LONG,
        "too_long": TOO_LONG,
        "literal_error": CHOOSE,
        "greater_than_equal": TOO_SMALL,
        "greater_than": TOO_SMALL,
        "less_than_equal": TOO_LARGE,
        "less_than": TOO_LARGE,
    }
    if kind in simple:
        return simple[kind]
    if kind.startswith(("date_", "datetime_")):
        return DATE
    if kind.startswith("int_"):
        return WHOLE
    return INVALID


def _field_key(loc: Iterable[Any], rows: Mapping[str, list[int]]) -> str:
    """The form field of an error location: dotted, list items back to their form row, fen -> cny."""
    parts = [str(p) for p in loc]
    if len(parts) > 1 and parts[0] in rows and ascii_digits(parts[1]):
        index = int(parts[1])
        row_ids = rows[parts[0]]
        parts[1] = str(row_ids[index] if index < len(row_ids) else index)
    key = ".".join(parts)
    return key[: -len("_fen")] + "_cny" if key.endswith("_fen") else key


def validate(
    schema: type[M],
    data: dict[str, Any],
    form: FormInput,
    *,
    rows: Mapping[str, list[int]] | None = None,
    rename: Mapping[str, str] | None = None,
    lists: Iterable[str] = (),
) -> M | None:
    """Build ``schema`` from ``data``; ``None`` (errors in ``form.errors``) if anything is wrong.

    ``rows`` maps repeated-row fields to the form row of each list item; ``rename`` maps an
    error location to the form field that shows it; an error on an item of a field in
    ``lists`` (one input holding the whole list) is shown on that field.
    """
    try:
        result = schema.model_validate(_drop_none(data))
    except ValidationError as exc:
        for err in exc.errors():
            key = _field_key(err["loc"], rows or {})
            key = next((name for name in lists if key.startswith(f"{name}.")), key)
            form.errors.setdefault((rename or {}).get(key, key), _message(err))
        return None
    return None if form.errors else result


async def read_form(request: Request) -> FormInput:
    """The posted form, after its CSRF token is checked (403 otherwise)."""
    data = await request.form()
    token = data.get("csrf_token")
    auth.check_form_csrf(request, token if isinstance(token, str) else None)
    return FormInput(data)


def failure(request: Request, exc: MarketError) -> dict[str, Any]:
    """A refused action as the page shows it: translated message, detail, and any problems."""
    locale = locale_of(request)
    key = f"error.{exc.code}"
    message = i18n.gettext(locale, key)
    if message == key:
        message = i18n.gettext(locale, "error.generic")
    problems = exc.data.get("problems")
    return {
        "code": exc.code,
        "message": message,
        "detail": exc.detail,
        "problems": problems if isinstance(problems, list) else [],
    }


def page(request: Request, template: str, status_code: int = 200, **ctx: Any) -> Response:
    """``render`` with the helpers and defaults every page of this module uses."""
    ctx.setdefault("errors", {})
    ctx.setdefault("values", {})
    ctx.setdefault("failure", None)
    return render(request, template, status_code, cny=_cny, day=_day, moment=_moment, percent=_percent, **ctx)


async def signed_in(request: Request, *roles: Role) -> Actor | Response:
    """The signed-in actor with one of ``roles`` (403 otherwise), or a redirect to sign in."""
    actor = await load_actor(request)
    if actor is None:
        target = request.url.path if request.method == "GET" else "/"
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
    if roles:
        require_role(actor, *roles)
    return actor


def see_other(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


def _engine(request: Request) -> Any:
    return request.app.state.engine


# --------------------------------------------------------------------------- bank: claims


async def claims_page(request: Request) -> Response:
    actor = await signed_in(request, Role.BANK)
    if isinstance(actor, Response):
        return actor
    async with transaction(_engine(request)) as conn:
        views = await services.list_claims(conn, actor)
    return page(request, "banks/claims.html", claims=views)


def _pledge_rows(request: Request) -> int:
    raw = request.query_params.get("rows", "")
    return min(int(raw), MAX_ROWS) if ascii_digits(raw) and len(raw) <= 6 and int(raw) > 0 else 3


async def _claim_form(
    request: Request, actor: Actor, form: FormInput | None = None, *, status: int = 200, **ctx: Any
) -> Response:
    async with transaction(_engine(request)) as conn:
        assets = await services.list_assets(conn, actor)
    posted = form.rows("pledges") if form else []
    rows = max([_pledge_rows(request), *(i + 1 for i in posted)])
    return page(
        request,
        "banks/claim_form.html",
        status,
        assets=assets,
        pledge_rows=rows,
        values=form.values if form else {},
        errors=form.errors if form else {},
        **ctx,
    )


async def claim_new(request: Request) -> Response:
    actor = await signed_in(request, Role.BANK)
    if isinstance(actor, Response):
        return actor
    return await _claim_form(request, actor)


def claim_data(form: FormInput) -> tuple[dict[str, Any], list[int]]:
    """ClaimIn fields from the form, and the form row of each pledge kept."""
    t = form.text
    pledges, rows = [], []
    for i in form.rows("pledges"):
        name = f"pledges.{i}"
        asset_id = form.integer(f"{name}.asset_id")
        if asset_id is None and f"{name}.asset_id" not in form.errors:
            if t(f"{name}.registration_no") or t(f"{name}.registered_on"):
                form.errors[f"{name}.asset_id"] = REQUIRED
            continue
        pledges.append(
            {
                "asset_id": asset_id,
                "registration_no": t(f"{name}.registration_no"),
                "registered_on": t(f"{name}.registered_on"),
            }
        )
        rows.append(i)
    if not pledges and not any(k.startswith("pledges.") for k in form.errors):
        form.errors["pledges.0.asset_id"] = NO_PLEDGE
    data = {
        "loan_no": t("loan_no"),
        "borrower": {"name": t("borrower.name"), "credit_code": form.code("borrower.credit_code")},
        "principal_fen": form.fen("principal_cny"),
        "interest_fen": form.fen("interest_cny"),
        "default_interest_fen": form.fen("default_interest_cny"),
        "costs_fen": form.fen("costs_cny"),
        "defaulted_on": t("defaulted_on"),
        "limitation_interrupted_on": t("limitation_interrupted_on"),
        "pool_code": t("pool_code"),
        "pledges": pledges,
    }
    return data, rows


async def claim_create(request: Request) -> Response:
    actor = await signed_in(request, Role.BANK)
    if isinstance(actor, Response):
        return actor
    form = await read_form(request)
    data, rows = claim_data(form)
    body = validate(ls.ClaimIn, data, form, rows={"pledges": rows})
    if body is None:
        return await _claim_form(request, actor, form, status=422)
    try:
        async with transaction(_engine(request)) as conn:
            view = await services.create_claim(conn, actor, body)
    except (RuleViolation, Conflict) as exc:
        return await _claim_form(request, actor, form, status=status_of(exc), failure=failure(request, exc))
    return see_other(f"/bank/claims/{view.row.id}")


async def claim_page(request: Request) -> Response:
    actor = await signed_in(request, Role.BANK)
    if isinstance(actor, Response):
        return actor
    async with transaction(_engine(request)) as conn:
        view = await services.get_claim(conn, actor, request.path_params["claim_id"])
        assets = {p["asset_id"]: await services.get_asset(conn, actor, p["asset_id"]) for p in view.pledges}
    outstanding = view.outstanding
    return page(
        request,
        "banks/claim.html",
        claim=view,
        assets=assets,
        outstanding=outstanding,
        claim_status="paid" if not any(outstanding.values()) else view.row.status,
    )


# --------------------------------------------------------------------------- bank: assets


async def assets_page(request: Request) -> Response:
    actor = await signed_in(request, Role.BANK)
    if isinstance(actor, Response):
        return actor
    async with transaction(_engine(request)) as conn:
        views = await services.list_assets(conn, actor)
    return page(request, "banks/assets.html", assets=views)


def _asset_form(
    request: Request, form: FormInput | None = None, *, status: int = 200, **ctx: Any
) -> Response:
    return page(
        request,
        "banks/asset_form.html",
        status,
        kinds=KINDS,
        legal_statuses=LEGAL_STATUSES,
        license_types=LICENSE_TYPES,
        values=form.values if form else {},
        errors=form.errors if form else {},
        **ctx,
    )


async def asset_new(request: Request) -> Response:
    actor = await signed_in(request, Role.BANK)
    if isinstance(actor, Response):
        return actor
    return _asset_form(request)


def asset_data(form: FormInput) -> tuple[dict[str, Any], dict[str, list[int]]]:
    """AssetIn fields from the form, and the form rows of co-owners and licences kept."""
    t = form.text
    owners, owner_rows = [], []
    for i in form.rows("co_owners"):
        if t(f"co_owners.{i}.name"):
            owners.append(
                {"name": t(f"co_owners.{i}.name"), "consented": form.flag(f"co_owners.{i}.consented")}
            )
            owner_rows.append(i)
    licenses, license_rows = [], []
    for i in form.rows("licenses"):
        fields = ("field", "territory", "starts_on", "ends_on", "licensee")
        row = {f: t(f"licenses.{i}.{f}") for f in fields}
        if any(row.values()):
            licenses.append({"type": t(f"licenses.{i}.type"), **row})
            license_rows.append(i)
    data = {
        "kind": t("kind"),
        "registration_no": t("registration_no"),
        "title": t("title"),
        "title_en": t("title_en"),
        "description": t("description"),
        "holder": t("holder"),
        "legal_status": t("legal_status"),
        "filed_on": t("filed_on"),
        "granted_on": t("granted_on"),
        "expires_on": t("expires_on"),
        "first_use_on": t("first_use_on"),
        "created_on": t("created_on"),
        "classes": form.split("classes"),
        "appraisal_fen": form.fen("appraisal_cny"),
        "appraised_on": t("appraised_on"),
        "appraiser": t("appraiser"),
        "annuity_paid_through": t("annuity_paid_through"),
        "pledgee_credit_code": form.code("pledgee_credit_code"),
        "similar_mark_group": t("similar_mark_group"),
        "preservation_order": form.flag("preservation_order"),
        "ownership_dispute": form.flag("ownership_dispute"),
        "co_owners": owners,
        "licenses": licenses,
    }
    return data, {"co_owners": owner_rows, "licenses": license_rows}


async def asset_create(request: Request) -> Response:
    actor = await signed_in(request, Role.BANK)
    if isinstance(actor, Response):
        return actor
    form = await read_form(request)
    data, rows = asset_data(form)
    if not (data["title"] or data["title_en"]):  # the model checks it only once every field is valid
        form.errors["title"] = TITLE
    body = validate(ls.AssetIn, data, form, rows=rows)
    if body is None:
        return _asset_form(request, form, status=422)
    try:
        async with transaction(_engine(request)) as conn:
            view = await services.create_asset(conn, actor, body)
    except (RuleViolation, Conflict) as exc:
        return _asset_form(request, form, status=status_of(exc), failure=failure(request, exc))
    return see_other(f"/bank/assets/{view.row.id}")


async def asset_page(request: Request) -> Response:
    actor = await signed_in(request, Role.BANK)
    if isinstance(actor, Response):
        return actor
    async with transaction(_engine(request)) as conn:
        view = await services.get_asset(conn, actor, request.path_params["asset_id"])
    today = clock.today_cst()
    return page(
        request,
        "banks/asset.html",
        asset=view,
        term_ends_on=model.term_ends_on(view.asset),
        remaining_months=model.remaining_term_months(view.asset, today),
    )


# --------------------------------------------------------------------------- bank: listings


async def bank_listings_page(request: Request) -> Response:
    actor = await signed_in(request, Role.BANK)
    if isinstance(actor, Response):
        return actor
    async with transaction(_engine(request)) as conn:
        rows = await services.list_own_listings(conn, actor)
    return page(request, "banks/listings.html", listings=rows)


async def _listing_form(
    request: Request, actor: Actor, form: FormInput | None = None, *, status: int = 200, **ctx: Any
) -> Response:
    async with transaction(_engine(request)) as conn:
        assets = await services.list_assets(conn, actor)
    preselected = request.query_params.getlist("asset")
    return page(
        request,
        "banks/listing_form.html",
        status,
        assets=assets,
        modes=MODES,
        license_types=LICENSE_TYPES,
        selected=form.many("asset_ids") if form else preselected,
        values=form.values if form else {},
        errors=form.errors if form else {},
        **ctx,
    )


async def listing_new(request: Request) -> Response:
    actor = await signed_in(request, Role.BANK)
    if isinstance(actor, Response):
        return actor
    return await _listing_form(request, actor)


def listing_data(form: FormInput, acquirer_org_id: int | None) -> dict[str, Any]:
    """ListingIn fields from the form: licence terms for licence mode, a backstop when one is given."""
    t = form.text
    mode = t("mode")
    asset_ids = []
    for raw in form.many("asset_ids"):
        if not raw.isdigit():
            form.errors["asset_ids"] = CHOOSE
            continue
        asset_ids.append(int(raw))
    data: dict[str, Any] = {
        "title": t("title"),
        "title_en": t("title_en"),
        "description": t("description"),
        "mode": mode,
        "asset_ids": asset_ids,
        "asking_price_fen": form.fen("asking_price_cny"),
        "pledgor_opt_in": form.flag("pledgor_opt_in"),
    }
    if mode == model.DisposalMode.LICENSE:
        data["license_terms"] = {
            "type": t("license_terms.type"),
            "term_months": form.integer("license_terms.term_months"),
            "territory": t("license_terms.territory"),
            "field": t("license_terms.field"),
            "upfront_fen": form.fen("license_terms.upfront_cny"),
            "royalty_bp": form.integer("license_terms.royalty_bp"),
            "royalty_base": t("license_terms.royalty_base"),
            "starts_on": t("license_terms.starts_on"),
        }
    backstop = {
        "price_fen": form.fen("backstop.price_cny"),
        "break_up_fee_fen": form.fen("backstop.break_up_fee_cny"),
        "expense_fen": form.fen("backstop.expense_cny"),
    }
    given = any(t(f"backstop.{f}") for f in ("acquirer_credit_code", "price_cny", "break_up_fee_cny"))
    if mode == model.DisposalMode.ENTRUSTED_ACQUISITION or given:
        data["backstop"] = {"acquirer_org_id": acquirer_org_id, **backstop}
    return data


async def _acquirer_id(request: Request, form: FormInput) -> int | None:
    """The backstop acquirer named by its credit code: a bank or buyer organisation."""
    code = form.code("backstop.acquirer_credit_code")
    if code is None:
        return None
    async with transaction(_engine(request)) as conn:
        orgs = [*await identity.list_orgs(conn, Role.BUYER), *await identity.list_orgs(conn, Role.BANK)]
    found = next((o.id for o in orgs if o.credit_code == code), None)
    if found is None:
        form.errors["backstop.acquirer_credit_code"] = NO_ACQUIRER
    return found


async def listing_create(request: Request) -> Response:
    actor = await signed_in(request, Role.BANK)
    if isinstance(actor, Response):
        return actor
    form = await read_form(request)
    data = listing_data(form, await _acquirer_id(request, form))
    rename = {"backstop.acquirer_org_id": "backstop.acquirer_credit_code"}
    body = validate(ls.ListingIn, data, form, rename=rename, lists=["asset_ids"])
    if body is None:
        return await _listing_form(request, actor, form, status=422)
    try:
        async with transaction(_engine(request)) as conn:
            view = await services.create_listing(conn, actor, body)
    except (RuleViolation, Conflict) as exc:
        return await _listing_form(request, actor, form, status=status_of(exc), failure=failure(request, exc))
    return see_other(f"/bank/listings/{view.row.id}")


async def _bank_listing(
    request: Request, actor: Actor, *, status: int = 200, form: FormInput | None = None, **ctx: Any
) -> Response:
    listing_id = request.path_params["listing_id"]
    async with transaction(_engine(request)) as conn:
        view = await services.get_listing_for(conn, actor, listing_id)
    if view.row.bank_org_id != actor.org_id:  # a published listing of another bank: not this page
        raise store.ListingNotFound(f"No listing {listing_id}")
    actions = model.allowed_actions(model.ListingStatus(view.row.status))
    return page(
        request,
        "banks/listing.html",
        status,
        listing=view.row,
        assets=view.assets,
        assets_by_id={a.id: a for a in view.assets},
        problems=view.problems,
        can_publish=model.ListingAction.PUBLISH in actions,
        can_withdraw=model.ListingAction.WITHDRAW in actions,
        public=view.row.status in services.PUBLIC_STATUSES or view.row.status == "failed",
        reasons=WITHDRAWAL_REASONS,
        values=form.values if form else {},
        errors=form.errors if form else {},
        **ctx,
    )


async def bank_listing_page(request: Request) -> Response:
    actor = await signed_in(request, Role.BANK)
    if isinstance(actor, Response):
        return actor
    return await _bank_listing(request, actor)


async def listing_publish(request: Request) -> Response:
    actor = await signed_in(request, Role.BANK)
    if isinstance(actor, Response):
        return actor
    await read_form(request)
    listing_id = request.path_params["listing_id"]
    try:
        async with transaction(_engine(request)) as conn:
            await services.publish_listing(conn, actor, listing_id)
    except (RuleViolation, Conflict) as exc:
        return await _bank_listing(request, actor, status=status_of(exc), failure=failure(request, exc))
    return see_other(f"/bank/listings/{listing_id}")


async def listing_withdraw(request: Request) -> Response:
    actor = await signed_in(request, Role.BANK)
    if isinstance(actor, Response):
        return actor
    form = await read_form(request)
    body = validate(WithdrawIn, {"reason": form.text("reason"), "note": form.text("note")}, form)
    if body is None:
        return await _bank_listing(request, actor, status=422, form=form)
    listing_id = request.path_params["listing_id"]
    try:
        async with transaction(_engine(request)) as conn:
            await services.withdraw_listing(conn, actor, listing_id, body.reason, body.note or None)
    except (RuleViolation, Conflict) as exc:
        return await _bank_listing(
            request, actor, status=status_of(exc), form=form, failure=failure(request, exc)
        )
    return see_other(f"/bank/listings/{listing_id}")


# --------------------------------------------------------------------------- public catalogue

SEARCH_FIELDS = ("q", "kind", "class", "mode", "status", "min_price", "max_price", "min_months", "limit")


def search_query(params: Mapping[str, str], form: FormInput) -> ListingQuery | None:
    """The catalogue query from the search form's GET parameters (prices in yuan)."""
    raw = {name: (params.get(name) or "").strip() for name in (*SEARCH_FIELDS, "before_id")}
    data: dict[str, Any] = {
        "q": raw["q"],
        "kind": raw["kind"] or None,
        "class": raw["class"] or None,
        "mode": raw["mode"] or None,
        "status": raw["status"] or None,
        "min_remaining_months": raw["min_months"] or None,
        "before_id": raw["before_id"] or None,
        "limit": raw["limit"] or None,
        "min_price_fen": form.fen("min_price"),
        "max_price_fen": form.fen("max_price"),
    }
    rename = {
        "min_remaining_months": "min_months",
        "min_price_cny": "min_price",
        "max_price_cny": "max_price",
    }
    return validate(ListingQuery, data, form, rename=rename)


async def search_page(request: Request) -> Response:
    await load_actor(request)
    params: list[tuple[str, str | UploadFile]] = list(request.query_params.multi_items())
    form = FormInput(FormData(params))
    query = search_query(request.query_params, form)
    ctx: dict[str, Any] = {"kinds": KINDS, "modes": MODES, "statuses": PUBLIC_STATUSES}
    if query is None:
        return page(
            request,
            "listings/search.html",
            422,
            rows=[],
            next_url=None,
            values=form.values,
            errors=form.errors,
            **ctx,
        )
    async with transaction(_engine(request)) as conn:
        rows, cursor = await queries.search(
            conn,
            queries.Search(
                q=query.q,
                kind=query.kind,
                cls=query.cls,
                mode=query.mode,
                status=query.status,
                min_price_fen=query.min_price_fen,
                max_price_fen=query.max_price_fen,
                min_remaining_months=query.min_remaining_months,
                before_id=query.before_id,
                limit=query.limit,
            ),
        )
    next_url = None
    if cursor is not None:
        kept = {k: v for k, v in form.values.items() if k in SEARCH_FIELDS and v.strip()}
        next_url = "/listings?" + urlencode({**kept, "before_id": cursor})
    return page(request, "listings/search.html", rows=rows, next_url=next_url, values=form.values, **ctx)


async def _listing_detail(
    request: Request, actor: Actor | None, *, status: int = 200, form: FormInput | None = None, **ctx: Any
) -> Response:
    listing_id = request.path_params["listing_id"]
    async with transaction(_engine(request)) as conn:
        view = await services.get_listing_for(conn, actor, listing_id)
    row = view.row
    owner = actor is not None and (actor.is_operator or actor.org_id == row.bank_org_id)
    return page(
        request,
        "listings/detail.html",
        status,
        listing=row,
        assets=view.assets,
        owner=owner,
        can_offer=actor is not None and actor.role is Role.BUYER and row.status in offers.NEGOTIABLE,
        validity_days=OFFER_VALIDITY_DAYS,
        values=form.values if form else {},
        errors=form.errors if form else {},
        **ctx,
    )


async def listing_page(request: Request) -> Response:
    return await _listing_detail(request, await load_actor(request))


async def offer_create(request: Request) -> Response:
    actor = await signed_in(request, Role.BUYER)
    if isinstance(actor, Response):
        return actor
    form = await read_form(request)
    days = form.integer("valid_days")
    data = {
        "amount_fen": form.fen("amount_cny"),
        "message": form.text("message"),
        "valid_hours": days * 24 if days else None,
    }
    body = validate(OfferIn, data, form, rename={"valid_hours": "valid_days"})
    if body is None:
        return await _listing_detail(request, actor, status=422, form=form)
    validity = timedelta(hours=body.valid_hours) if body.valid_hours else None
    try:
        async with transaction(_engine(request)) as conn:
            thread_id, _ = await offers.make_offer(
                conn, actor, request.path_params["listing_id"], body.amount_fen, body.message, validity
            )
    except (RuleViolation, Conflict, BuyerNotVerified) as exc:
        return await _listing_detail(
            request, actor, status=status_of(exc), form=form, failure=failure(request, exc)
        )
    return see_other(f"/offers#thread-{thread_id}")


# --------------------------------------------------------------------------- buyer


def _interests_form(
    request: Request, profile: matching.Profile, form: FormInput | None = None, *, status: int = 200
) -> Response:
    values = (
        form.values
        if form
        else {"classes": ", ".join(profile.classes), "keywords": ", ".join(profile.keywords)}
    )
    chosen = form.many("kinds") if form else list(profile.kinds)
    return page(
        request,
        "buyers/interests.html",
        status,
        kinds=KINDS,
        chosen=chosen,
        values=values,
        errors=form.errors if form else {},
    )


async def interests_page(request: Request) -> Response:
    actor = await signed_in(request, Role.BUYER)
    if isinstance(actor, Response):
        return actor
    async with transaction(_engine(request)) as conn:
        profile = await recommend.get_interests(conn, actor)
    return _interests_form(request, profile)


async def interests_save(request: Request) -> Response:
    actor = await signed_in(request, Role.BUYER)
    if isinstance(actor, Response):
        return actor
    form = await read_form(request)
    data = {"kinds": form.many("kinds"), "classes": form.split("classes"), "keywords": form.split("keywords")}
    body = validate(InterestsIn, data, form, lists=["kinds", "classes", "keywords"])
    if body is None:
        return _interests_form(request, matching.Profile(), form, status=422)
    async with transaction(_engine(request)) as conn:
        await recommend.put_interests(conn, actor, body.kinds, body.classes, body.keywords)
    return see_other("/buyer/recommendations")


async def recommendations_page(request: Request) -> Response:
    actor = await signed_in(request, Role.BUYER)
    if isinstance(actor, Response):
        return actor
    async with transaction(_engine(request)) as conn:
        profile = await recommend.get_interests(conn, actor)
        recs = await recommend.recommendations(conn, actor)
    return page(request, "buyers/recommendations.html", recommendations=recs, profile=profile)


async def notifications_page(request: Request) -> Response:
    actor = await signed_in(request)
    if isinstance(actor, Response):
        return actor
    async with transaction(_engine(request)) as conn:
        rows = await recommend.list_notifications(conn, actor)
    return page(request, "buyers/notifications.html", notifications=rows)


async def notification_read(request: Request) -> Response:
    actor = await signed_in(request)
    if isinstance(actor, Response):
        return actor
    await read_form(request)
    async with transaction(_engine(request)) as conn:
        found = await recommend.mark_read(conn, actor, request.path_params["notification_id"])
    if not found:
        raise NotFound("No such notification")
    return see_other("/notifications")


async def _offers_page(
    request: Request,
    actor: Actor,
    *,
    status: int = 200,
    thread_id: int | None = None,
    form: FormInput | None = None,
    **ctx: Any,
) -> Response:
    now = clock.now()
    threads = []
    async with transaction(_engine(request)) as conn:
        for tid in await offers.threads_for(conn, actor):
            _, thread = await offers.get_thread(conn, actor, tid)
            try:
                listing = (await services.get_listing_for(conn, actor, thread.listing_id)).row
            except NotFound:  # withdrawn since: the thread stays, the listing is no longer shown
                listing = None
            side = None if actor.is_operator else neg.side_of(thread, actor.org_id)
            threads.append(
                {
                    "id": tid,
                    "thread": thread,
                    "listing": listing,
                    "side": side.value if side else None,
                    "expired": neg.is_expired(thread, now),
                }
            )
    return page(
        request,
        "buyers/offers.html",
        status,
        threads=threads,
        error_thread=thread_id,
        values=form.values if form else {},
        errors=form.errors if form else {},
        **ctx,
    )


async def offers_page(request: Request) -> Response:
    actor = await signed_in(request, Role.BANK, Role.BUYER)
    if isinstance(actor, Response):
        return actor
    return await _offers_page(request, actor)


async def offer_act(request: Request) -> Response:
    actor = await signed_in(request, Role.BANK, Role.BUYER)
    if isinstance(actor, Response):
        return actor
    form = await read_form(request)
    thread_id, action = request.path_params["thread_id"], request.path_params["action"]
    if action not in OFFER_ACTIONS:
        raise NotFound(f"No action {action}")
    amount = None
    if action == "counter":
        amount = form.fen("amount_cny")
        if amount is None and "amount_cny" not in form.errors:
            form.errors["amount_cny"] = REQUIRED
        elif amount == 0:
            form.errors["amount_cny"] = TOO_SMALL
        if form.errors:
            return await _offers_page(request, actor, status=422, thread_id=thread_id, form=form)
    try:
        async with transaction(_engine(request)) as conn:
            await offers.act(
                conn, actor, thread_id, action, amount_fen=amount, message=form.text("message") or ""
            )
    except (RuleViolation, Conflict) as exc:
        return await _offers_page(
            request,
            actor,
            status=status_of(exc),
            thread_id=thread_id,
            form=form,
            failure=failure(request, exc),
        )
    return see_other(f"/offers#thread-{thread_id}")


ROUTES = [
    Route("/bank/claims", claims_page, methods=["GET"], name="bank_claims"),
    Route("/bank/claims", claim_create, methods=["POST"], name="bank_claim_create"),
    Route("/bank/claims/new", claim_new, methods=["GET"], name="bank_claim_new"),
    Route("/bank/claims/{claim_id:int}", claim_page, methods=["GET"], name="bank_claim"),
    Route("/bank/assets", assets_page, methods=["GET"], name="bank_assets"),
    Route("/bank/assets", asset_create, methods=["POST"], name="bank_asset_create"),
    Route("/bank/assets/new", asset_new, methods=["GET"], name="bank_asset_new"),
    Route("/bank/assets/{asset_id:int}", asset_page, methods=["GET"], name="bank_asset"),
    Route("/bank/listings", bank_listings_page, methods=["GET"], name="bank_listings"),
    Route("/bank/listings", listing_create, methods=["POST"], name="bank_listing_create"),
    Route("/bank/listings/new", listing_new, methods=["GET"], name="bank_listing_new"),
    Route("/bank/listings/{listing_id:int}", bank_listing_page, methods=["GET"], name="bank_listing"),
    Route(
        "/bank/listings/{listing_id:int}/publish",
        listing_publish,
        methods=["POST"],
        name="bank_listing_publish",
    ),
    Route(
        "/bank/listings/{listing_id:int}/withdraw",
        listing_withdraw,
        methods=["POST"],
        name="bank_listing_withdraw",
    ),
    Route("/listings", search_page, methods=["GET"], name="listings_search"),
    Route("/listings/{listing_id:int}", listing_page, methods=["GET"], name="listing_page"),
    Route("/listings/{listing_id:int}/offers", offer_create, methods=["POST"], name="listing_offer_create"),
    Route("/buyer/interests", interests_page, methods=["GET"], name="buyer_interests"),
    Route("/buyer/interests", interests_save, methods=["POST"], name="buyer_interests_save"),
    Route("/buyer/recommendations", recommendations_page, methods=["GET"], name="buyer_recommendations"),
    Route("/notifications", notifications_page, methods=["GET"], name="notifications"),
    Route(
        "/notifications/{notification_id:int}/read",
        notification_read,
        methods=["POST"],
        name="notification_read",
    ),
    Route("/offers", offers_page, methods=["GET"], name="offers"),
    Route("/offers/{thread_id:int}/{action}", offer_act, methods=["POST"], name="offer_act"),
]
