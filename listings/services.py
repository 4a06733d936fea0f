"""Use cases of collateral and listings, inside the caller's transaction.

Every function takes the acting party and goes through ``market.access`` (via ``store``):
a bank only ever sees and changes its own claims, assets and listings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from listings import model, store, textsearch
from listings.schemas import AssetIn, ClaimIn, ListingIn
from listings.tables import assets, claims, listing_assets, listings, pledges
from market import audit, clock, pg
from market.access import require_role
from market.errors import Conflict, RuleViolation
from market.parties import Actor, Role
from market.tables import orgs

PUBLIC_STATUSES = ("published", "in_auction", "in_negotiation", "sold")


class LoanNoTaken(Conflict):
    code = "loan_no_taken"
    title = "A claim with this loan number already exists"


class AssetRegistered(Conflict):
    code = "asset_already_registered"
    title = "This bank already registered an asset of this kind and registration number"


class PledgeInvalid(RuleViolation):
    code = "pledge_invalid"
    title = "A pledge is invalid"


class ListingNotEditable(Conflict):
    code = "listing_not_editable"
    title = "Only a draft listing can change"


@dataclass(frozen=True, slots=True)
class AssetView:
    row: Row[Any]
    asset: model.Asset
    problems: list[model.Problem]


def _who(actor: Actor) -> dict[str, Any]:
    return {"actor_user_id": actor.user_id, "actor_org_id": actor.org_id}


# --------------------------------------------------------------------------- assets


async def _pledgee_org(conn: AsyncConnection, actor: Actor, credit_code: str | None) -> int | None:
    if credit_code is None:
        return actor.org_id
    row = (await conn.execute(select(orgs.c.id).where(orgs.c.credit_code == credit_code))).first()
    return row.id if row else None


async def asset_values(conn: AsyncConnection, actor: Actor, data: AssetIn) -> dict[str, Any]:
    """Column values of an asset row from its input (shared by the API and the importer)."""
    return {
        "bank_org_id": actor.org_id,
        "kind": data.kind,
        "registration_no": data.registration_no,
        "title_zh": data.title,
        "title_en": data.title_en,
        "description": data.description,
        "holder": data.holder,
        "pledgee_org_id": await _pledgee_org(conn, actor, data.pledgee_credit_code),
        "filed_on": data.filed_on,
        "granted_on": data.granted_on,
        "expires_on": data.expires_on,
        "first_use_on": data.first_use_on,
        "created_on": data.created_on,
        "legal_status": data.legal_status,
        "classes": list(data.classes),
        "appraisal_fen": data.appraisal_fen,
        "appraised_on": data.appraised_on,
        "appraiser": data.appraiser,
        "co_owners": [c.model_dump() for c in data.co_owners],
        "licenses": [lic.model_dump(mode="json") for lic in data.licenses],
        "annuity_paid_through": data.annuity_paid_through,
        "preservation_order": data.preservation_order,
        "ownership_dispute": data.ownership_dispute,
        "similar_mark_group": data.similar_mark_group,
    }


async def create_asset(conn: AsyncConnection, actor: Actor, data: AssetIn) -> AssetView:
    require_role(actor, Role.BANK)
    values = await asset_values(conn, actor, data)
    try:
        async with conn.begin_nested():
            row = (await conn.execute(insert(assets).values(**values).returning(assets))).one()
    except IntegrityError as exc:
        raise AssetRegistered(f"{data.kind} {data.registration_no} is already registered") from exc
    await audit.record(
        conn,
        **_who(actor),
        action="asset.create",
        entity="asset",
        entity_id=row.id,
        after=_audit_values(values),
    )
    return await asset_view(conn, row)


def _audit_values(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k not in ("description",)}


async def asset_view(conn: AsyncConnection, row: Row[Any], *, today: date | None = None) -> AssetView:
    asset = store.row_to_asset(row)
    problems = model.eligibility(
        asset,
        listing_bank_id=row.bank_org_id,
        today=today or clock.today_cst(),
        mode=model.DisposalMode.TRANSFER,
    )
    return AssetView(row, asset, problems)


async def get_asset(conn: AsyncConnection, actor: Actor, asset_id: int) -> AssetView:
    return await asset_view(conn, await store.get_asset_row(conn, actor, asset_id))


async def list_assets(
    conn: AsyncConnection, actor: Actor, *, limit: int = 200, before_id: int | None = None
) -> list[AssetView]:
    require_role(actor, Role.BANK, Role.OPERATOR)
    q = select(assets).order_by(assets.c.id.desc()).limit(limit)
    if not actor.is_operator:
        q = q.where(assets.c.bank_org_id == actor.org_id)
    if before_id:
        q = q.where(assets.c.id < before_id)
    return [await asset_view(conn, r) for r in (await conn.execute(q)).all()]


# --------------------------------------------------------------------------- claims


@dataclass(frozen=True, slots=True)
class ClaimView:
    row: Row[Any]
    pledges: list[dict[str, Any]]
    opening: dict[str, int]
    recovered: dict[str, int]
    limitation_ends_on: date
    time_barred: bool

    @property
    def outstanding(self) -> dict[str, int]:
        return {k: self.opening[k] - self.recovered[k] for k in self.opening}


async def create_claim(conn: AsyncConnection, actor: Actor, data: ClaimIn) -> ClaimView:
    require_role(actor, Role.BANK)
    _check_pledges_distinct(data)
    for p in data.pledges:
        await store.get_asset_row(conn, actor, p.asset_id)  # another bank's asset answers 404
    values = claim_values(actor, data)
    try:
        async with conn.begin_nested():
            row = (await conn.execute(insert(claims).values(**values).returning(claims))).one()
    except IntegrityError as exc:
        raise LoanNoTaken(f"Loan {data.loan_no} is already registered") from exc
    await _insert_pledges(conn, row.id, data)
    await audit.record(
        conn,
        **_who(actor),
        action="claim.create",
        entity="claim",
        entity_id=row.id,
        after={**values, "pledges": [p.model_dump(mode="json") for p in data.pledges]},
    )
    return await claim_view(conn, row)


def claim_values(actor: Actor, data: ClaimIn) -> dict[str, Any]:
    return {
        "bank_org_id": actor.org_id,
        "loan_no": data.loan_no,
        "borrower_name": data.borrower.name,
        "borrower_credit_code": data.borrower.credit_code,
        "principal_fen": data.principal_fen,
        "interest_fen": data.interest_fen,
        "default_interest_fen": data.default_interest_fen,
        "costs_fen": data.costs_fen,
        "defaulted_on": data.defaulted_on,
        "limitation_interrupted_on": data.limitation_interrupted_on,
        "bucket_order": data.bucket_order,
        "pool_code": data.pool_code,
    }


def _check_pledges_distinct(data: ClaimIn) -> None:
    ids = [p.asset_id for p in data.pledges]
    if len(ids) != len(set(ids)):
        raise PledgeInvalid("An asset is pledged twice for the same claim")
    for p in data.pledges:
        if p.registered_on is not None and p.registered_on > clock.today_cst():
            raise PledgeInvalid(f"Pledge on asset {p.asset_id} is registered in the future")


async def _insert_pledges(conn: AsyncConnection, claim_id: int, data: ClaimIn) -> None:
    if not data.pledges:
        return
    rows = [
        {
            "claim_id": claim_id,
            "asset_id": p.asset_id,
            "declared_rank": p.rank,
            "registration_no": p.registration_no,
            "registered_on": p.registered_on,
        }
        for p in data.pledges
    ]
    await conn.execute(insert(pledges), rows)


async def recovered_by_bucket(conn: AsyncConnection, claim_id: int) -> dict[str, int]:
    """What settlement has applied to each bucket of the claim so far (from the ledger)."""
    from market import ledger_store  # settlement lives in market; imported lazily to keep layering clear

    return await ledger_store.claim_recovered(conn, claim_id)


async def claim_view(conn: AsyncConnection, row: Row[Any], *, today: date | None = None) -> ClaimView:
    claim = store.row_to_claim(row)
    opening = {
        "costs_fen": claim.costs_fen,
        "interest_fen": claim.interest_fen,
        "principal_fen": claim.principal_fen,
    }
    pledge_rows = await store.pledges_of_claim(conn, row.id)
    return ClaimView(
        row=row,
        pledges=await _pledges_with_rank(conn, pledge_rows),
        opening=opening,
        recovered=await recovered_by_bucket(conn, row.id),
        limitation_ends_on=model.limitation_ends_on(claim),
        time_barred=model.limitation_expired(claim, today or clock.today_cst()),
    )


async def _pledges_with_rank(conn: AsyncConnection, rows: Sequence[Row[Any]]) -> list[dict[str, Any]]:
    """Each pledge of a claim with its legal rank on its asset (rule 24, among all claims on the asset)."""
    out = []
    for row in rows:
        on_asset = [store.row_to_pledge(r) for r in await store.pledges_of_assets(conn, [row.asset_id])]
        rank = next(
            i
            for i, group in enumerate(model.ranks(on_asset), 1)
            if any(p.claim_id == row.claim_id for p in group)
        )
        out.append(
            {
                "asset_id": row.asset_id,
                "rank": rank,
                "declared_rank": row.declared_rank,
                "registration_no": row.registration_no,
                "registered_on": row.registered_on,
            }
        )
    return out


async def get_claim(conn: AsyncConnection, actor: Actor, claim_id: int) -> ClaimView:
    return await claim_view(conn, await store.get_claim_row(conn, actor, claim_id))


async def list_claims(
    conn: AsyncConnection, actor: Actor, *, limit: int = 200, before_id: int | None = None
) -> list[ClaimView]:
    require_role(actor, Role.BANK, Role.OPERATOR)
    q = select(claims).order_by(claims.c.id.desc()).limit(limit)
    if not actor.is_operator:
        q = q.where(claims.c.bank_org_id == actor.org_id)
    if before_id:
        q = q.where(claims.c.id < before_id)
    return [await claim_view(conn, r) for r in (await conn.execute(q)).all()]


# --------------------------------------------------------------------------- listings


def license_terms(data: ListingIn) -> model.LicenseTerms | None:
    t = data.license_terms
    if t is None:
        return None
    return model.LicenseTerms(
        term_months=t.term_months,
        territory=t.territory,
        field=t.field,
        type=model.LicenseType(t.type),
        upfront_fen=t.upfront_fen,
        royalty_bp=t.royalty_bp,
        royalty_base=t.royalty_base,
        starts_on=t.starts_on,
    )


def backstop(data: ListingIn) -> model.Backstop | None:
    b = data.backstop
    if b is None:
        return None
    return model.Backstop(b.acquirer_org_id, b.price_fen, b.break_up_fee_fen, b.expense_fen)


async def _owner_other_marks(
    conn: AsyncConnection, bank_org_id: int, listed: Sequence[model.Asset]
) -> list[model.Asset]:
    """The holder's other same-or-similar marks this bank knows of (rule 27)."""
    groups = {a.similar_mark_group for a in listed if a.similar_mark_group}
    if not groups:
        return []
    q = select(assets).where(
        assets.c.bank_org_id == bank_org_id,
        assets.c.similar_mark_group.in_(groups),
        assets.c.id.not_in([a.id for a in listed]),
    )
    return [store.row_to_asset(r) for r in (await conn.execute(q)).all()]


async def _listing_problems(
    conn: AsyncConnection, row: Row[Any], asset_rows: Sequence[Row[Any]], today: date
) -> list[model.Problem]:
    listed = [store.row_to_asset(r) for r in asset_rows]
    terms = _terms_from_json(row.license_terms)
    stop = backstop_from_json(row.backstop)
    return model.listing_problems(
        model.DisposalMode(row.mode),
        listed,
        listing_bank_id=row.bank_org_id,
        today=today,
        license_terms=terms,
        backstop=stop,
        owner_other_marks=await _owner_other_marks(conn, row.bank_org_id, listed),
    )


def _terms_from_json(data: dict[str, Any] | None) -> model.LicenseTerms | None:
    if not data:
        return None
    starts = data.get("starts_on")
    return model.LicenseTerms(
        term_months=data["term_months"],
        territory=data["territory"],
        field=data["field"],
        type=model.LicenseType(data.get("type", "non_exclusive")),
        upfront_fen=data.get("upfront_fen"),
        royalty_bp=data.get("royalty_bp"),
        royalty_base=data.get("royalty_base", ""),
        starts_on=date.fromisoformat(starts) if starts else None,
    )


def backstop_from_json(data: dict[str, Any] | None) -> model.Backstop | None:
    if not data:
        return None
    return model.Backstop(
        data["acquirer_org_id"],
        data["price_fen"],
        data.get("break_up_fee_fen", 0),
        data.get("expense_fen", 0),
    )


@dataclass(frozen=True, slots=True)
class ListingView:
    row: Row[Any]
    assets: list[Row[Any]]
    problems: list[model.Problem]


async def create_listing(conn: AsyncConnection, actor: Actor, data: ListingIn) -> ListingView:
    require_role(actor, Role.BANK)
    asset_rows = [await store.get_asset_row(conn, actor, aid) for aid in data.asset_ids]
    if len(set(data.asset_ids)) != len(data.asset_ids):
        raise model.ListingInvalid(
            "An asset appears twice",
            problems=[{"code": "duplicate_assets", "detail": "An asset appears twice in the listing"}],
        )
    if data.backstop is not None:
        await _check_acquirer(conn, data.backstop.acquirer_org_id)
    values = _listing_values(actor, data, asset_rows)
    row = (await conn.execute(insert(listings).values(**values).returning(listings))).one()
    await conn.execute(
        insert(listing_assets),
        [{"listing_id": row.id, "asset_id": aid, "position": i} for i, aid in enumerate(data.asset_ids)],
    )
    await audit.record(
        conn,
        **_who(actor),
        action="listing.create",
        entity="listing",
        entity_id=row.id,
        after={k: v for k, v in values.items() if k not in ("description", "status_changed_at")}
        | {"asset_ids": list(data.asset_ids)},
    )
    problems = await _listing_problems(conn, row, asset_rows, clock.today_cst())
    return ListingView(row, asset_rows, problems)


async def _check_acquirer(conn: AsyncConnection, org_id: int) -> None:
    row = (await conn.execute(select(orgs.c.kind).where(orgs.c.id == org_id))).first()
    if row is None or row.kind == "operator":
        raise model.ListingInvalid(
            "The backstop acquirer must be a registered bank or buyer",
            problems=[
                {"code": "backstop_acquirer_unknown", "detail": f"No bank or buyer organisation {org_id}"}
            ],
        )


def _listing_values(actor: Actor, data: ListingIn, asset_rows: Sequence[Row[Any]]) -> dict[str, Any]:
    listed = [store.row_to_asset(r) for r in asset_rows]
    today = clock.today_cst()
    remaining = [model.remaining_term_months(a, today) for a in listed]
    known = [m for m in remaining if m is not None]
    appraisals = [a.appraisal_fen for a in listed]
    return {
        "bank_org_id": actor.org_id,
        "title": data.title,
        "title_en": data.title_en,
        "description": data.description,
        "mode": data.mode,
        "license_terms": data.license_terms.model_dump(mode="json") if data.license_terms else None,
        "backstop": data.backstop.model_dump(mode="json") if data.backstop else None,
        "asking_price_fen": data.asking_price_fen,
        "appraisal_fen": sum(a for a in appraisals if a is not None)
        if all(a is not None for a in appraisals)
        else None,
        "remaining_term_months": min(known) if known else None,
        "kinds": sorted({a.kind.value for a in listed}),
        "classes": sorted({c for a in listed for c in a.classes}),
        "pledgor_opt_in": data.pledgor_opt_in,
        "status_changed_at": func.now(),
    }


def search_text(row: Row[Any], asset_rows: Sequence[Row[Any]]) -> str:
    parts = [row.title, row.title_en, row.description]
    for a in asset_rows:
        parts += [a.title_zh, a.title_en, a.registration_no, a.holder, " ".join(a.classes or [])]
    return textsearch.tsvector_text(" ".join(p for p in parts if p))


async def get_listing_for(conn: AsyncConnection, actor: Actor | None, listing_id: int) -> ListingView:
    """A listing as ``actor`` may see it: drafts and withdrawn ones only to their bank and operators."""
    row = await store.find_listing_row(conn, listing_id)
    if row is None or not _visible(actor, row):
        raise store.ListingNotFound(f"No listing {listing_id}")
    asset_rows = await store.listing_asset_rows(conn, listing_id)
    owner = actor is not None and (actor.is_operator or actor.org_id == row.bank_org_id)
    problems = await _listing_problems(conn, row, asset_rows, clock.today_cst()) if owner else []
    return ListingView(row, asset_rows, problems)


def _visible(actor: Actor | None, row: Row[Any]) -> bool:
    if row.status in PUBLIC_STATUSES or row.status == "failed":
        return True
    return actor is not None and (actor.is_operator or actor.org_id == row.bank_org_id)


async def lock_own_listing(conn: AsyncConnection, actor: Actor, listing_id: int) -> Any:
    row = await store.find_listing_row(conn, listing_id, lock=True)
    if row is None or not (actor.is_operator or row.bank_org_id == actor.org_id):
        raise store.ListingNotFound(f"No listing {listing_id}")
    return row


_TRANSITION = """
    UPDATE listings SET status = $2, status_changed_at = $3, updated_at = $3, published_at = $4,
        withdrawal_reason = CASE WHEN $5::text IS NULL THEN withdrawal_reason ELSE $5::text END,
        withdrawal_note = CASE WHEN $5::text IS NULL THEN withdrawal_note ELSE $6::text END
    WHERE id = $1
    RETURNING *
"""


async def apply_transition(
    conn: AsyncConnection,
    actor: Actor | None,
    row: Row[Any],
    action: model.ListingAction,
    *,
    reason: str | None = None,
    now: datetime | None = None,
    note: str | None = None,
) -> Any:
    """Move a locked listing row through the pure lifecycle; persist and audit the transition."""
    at = now or clock.now()
    asset_ids = [r.id for r in await store.listing_asset_rows(conn, row.id)]
    new, trans = model.transition(store.listing_from_row(row, asset_ids), action, reason=reason, now=at)
    withdrawal = new.withdrawal_reason.value if new.withdrawal_reason is not None else None
    updated = await pg.fetchrow(
        conn, _TRANSITION, row.id, new.status.value, at, new.published_at, withdrawal, note
    )
    await audit.record(
        conn,
        actor_user_id=actor.user_id if actor else None,
        actor_org_id=actor.org_id if actor else None,
        action=f"listing.{trans.action}",
        entity="listing",
        entity_id=row.id,
        before={"status": trans.from_status.value},
        after={"status": trans.to_status.value, "reason": reason},
    )
    return updated


async def publish_listing(conn: AsyncConnection, actor: Actor, listing_id: int) -> ListingView:
    """Publish a draft: every problem of the listing and its assets refuses it; time-barred claims too."""
    require_role(actor, Role.BANK)
    row = await lock_own_listing(conn, actor, listing_id)
    asset_rows = await store.listing_asset_rows(conn, listing_id)
    today = clock.today_cst()
    model.raise_for_problems(await _listing_problems(conn, row, asset_rows, today))
    await check_claims_enforceable(conn, [a.id for a in asset_rows], today)
    row = await apply_transition(conn, actor, row, model.ListingAction.PUBLISH)
    await conn.execute(
        update(listings)
        .where(listings.c.id == row.id)
        .values(search_doc=func.to_tsvector("simple", search_text(row, asset_rows)))
    )
    await notify_matching_buyers(conn, row, asset_rows)
    claim_ids = sorted({p.claim_id for p in await store.pledges_of_assets(conn, [a.id for a in asset_rows])})
    if claim_ids:  # the claims are now being disposed of: the importer no longer rewrites them
        await conn.execute(
            update(claims)
            .where(claims.c.id.in_(claim_ids), claims.c.status == "open")
            .values(status="in_disposal")
        )
    return ListingView(row, asset_rows, [])


async def check_claims_enforceable(conn: AsyncConnection, asset_ids: Sequence[int], today: date) -> None:
    """Rule 31: no disposal while a claim secured by these assets is time-barred."""
    claim_ids = sorted({p.claim_id for p in await store.pledges_of_assets(conn, asset_ids)})
    for row in await store.claims_by_ids(conn, claim_ids):
        claim = store.row_to_claim(row)
        try:
            model.check_can_start_disposal(claim, today)
        except model.ClaimTimeBarred as exc:
            raise model.ClaimTimeBarred(
                f"Claim {claim.loan_no} is time-barred: {exc.detail}; the pledge can no longer be enforced",
                claim_id=claim.id,
                **exc.data,
            ) from None


async def withdraw_listing(
    conn: AsyncConnection, actor: Actor, listing_id: int, reason: str, note: str | None
) -> ListingView:
    require_role(actor, Role.BANK, Role.OPERATOR)
    row = await lock_own_listing(conn, actor, listing_id)
    row = await apply_transition(conn, actor, row, model.ListingAction.WITHDRAW, reason=reason, note=note)
    return ListingView(row, await store.listing_asset_rows(conn, listing_id), [])


async def list_own_listings(conn: AsyncConnection, actor: Actor, *, limit: int = 200) -> list[Row[Any]]:
    require_role(actor, Role.BANK, Role.OPERATOR)
    q = select(listings).order_by(listings.c.id.desc()).limit(limit)
    if not actor.is_operator:
        q = q.where(listings.c.bank_org_id == actor.org_id)
    return list((await conn.execute(q)).all())


# --------------------------------------------------------------------------- notifications (hook)


async def notify_matching_buyers(conn: AsyncConnection, row: Row[Any], asset_rows: Sequence[Row[Any]]) -> int:
    from listings import recommend

    return await recommend.notify_on_publish(conn, row, asset_rows)


def upsert_assets_statement(values: list[dict[str, Any]]) -> Any:
    """INSERT … ON CONFLICT (bank, kind, registration_no) DO UPDATE: the importer's upsert by natural key."""
    stmt = pg_insert(assets).values(values)
    updatable = {
        c: stmt.excluded[c] for c in values[0] if c not in ("bank_org_id", "kind", "registration_no")
    }
    return stmt.on_conflict_do_update(
        constraint="uq_assets_bank_org_id_kind_registration_no",
        set_={**updatable, "updated_at": func.now()},
    ).returning(
        assets.c.id, assets.c.registration_no, (assets.c.created_at == assets.c.updated_at).label("new")
    )


# --------------------------------------------------------------------------- rule 22


async def withdraw_covered_lots(conn: AsyncConnection, sold_listing_id: int) -> list[int]:
    """Rule 22: once the proceeds already secured cover a claim plus costs, withdraw the claim's
    remaining lots that have not started (unless the pledgor opted in to selling them all).

    "Secured" proceeds are what the ledger has applied to the claim plus the prices of agreed
    sales still awaiting payment on lots that secure it. Returns the withdrawn listing ids.
    """
    sold_assets = [a.id for a in await store.listing_asset_rows(conn, sold_listing_id)]
    claim_ids = sorted({p.claim_id for p in await store.pledges_of_assets(conn, sold_assets)})
    withdrawn: list[int] = []
    from market import ledger_store

    cover = await pg.fetch(conn, _CLAIM_COVER, claim_ids, list(ledger_store.BUCKETS)) if claim_ids else []
    for row in cover:
        remaining = [i for i in row.lot_ids if i != sold_listing_id]
        for listing_id in model.lots_to_withdraw(row.total, row.recovered + row.pending, remaining, False):
            if await _withdraw_if_not_started(conn, listing_id, row.id):
                withdrawn.append(listing_id)
    return withdrawn


# Per claim: what it is owed in all, the lots securing it, the prices of its agreed sales awaiting
# payment, and what the ledger applied to it (its receivables ``claim:{id}:{bucket}`` for the
# buckets $2, as ``market.ledger_store.claim_accounts`` names them).
_CLAIM_COVER = """
    SELECT c.id,
           c.costs_fen + c.interest_fen + c.default_interest_fen + c.principal_fen AS total,
           s.lot_ids,
           (SELECT coalesce(sum(d.price_fen), 0) FROM disposals d
             WHERE d.listing_id = ANY(s.lot_ids) AND d.stage = 'awaiting_payment')::bigint AS pending,
           (SELECT coalesce(sum(a.balance), 0) FROM ledger_accounts a
             WHERE a.name IN (SELECT 'claim:' || c.id || ':' || b FROM unnest($2::text[]) b))::bigint
             AS recovered
    FROM claims c
    CROSS JOIN LATERAL (
        SELECT coalesce(array_agg(DISTINCT la.listing_id ORDER BY la.listing_id), '{}') AS lot_ids
        FROM listing_assets la JOIN pledges p ON p.asset_id = la.asset_id
        WHERE p.claim_id = c.id
    ) s
    WHERE c.id = ANY($1::bigint[])
    ORDER BY c.id
"""


async def _withdraw_if_not_started(conn: AsyncConnection, listing_id: int, claim_id: int) -> bool:
    row = await store.find_listing_row(conn, listing_id, lock=True)
    if row is None or row.status not in ("draft", "published", "failed") or row.pledgor_opt_in:
        return False
    if row.status == "draft":
        return False  # a draft is not on offer; the bank decides what to do with it
    await apply_transition(
        conn,
        None,
        row,
        model.ListingAction.WITHDRAW,
        reason=model.WithdrawalReason.CLAIM_COVERED,
        note=f"claim {claim_id} is covered by lots already sold (rule 22)",
    )
    return True
