"""Settlement in the database: every money event of a lot goes through the pure engine
(``market.settlement.advance``) against the *global* ledger balances, then is posted once.

A lot is a listing. Its fixed facts (the claims its assets secure, with their legal ranks
and bucket orders, the assets' appraisals, the fee terms, the pools) are read from the
database; its moving state (deposit holds, winner, forfeits, barred bidders) is the
``settlement_lots`` row. Claim balances are read from the ledger at the moment of the event,
so a claim secured by several lots is never paid twice: the claim rows are locked in id
order, and the ledger's CHECKs refuse any bucket above what it was owed.

Every event carries an idempotency key (the ledger entry key): a replay with the same
content returns the first result and changes nothing; the same key with other content is
refused (``id_reused``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from listings import model, store
from listings.disposals import DisposalNotFound
from listings.tables import disposals, risk_pools, settlement_lots
from market import audit, ledger_store, pg, settlement as engine
from market.access import require_role
from market.config import Settings
from market.errors import Conflict, IdempotencyKeyReused, NotFound
from market.ledger import Posting
from market.metrics import SETTLEMENTS
from market.parties import Actor, Role

SALE_MODES = ("transfer", "bundle", "entrusted_acquisition")
REGISTRY_KINDS = frozenset(
    {
        "invention_patent",
        "utility_model",
        "design_patent",
        "trademark",
        "ic_layout",
        "geographical_indication",
    }
)


def lot_id(listing_id: int) -> str:
    return str(listing_id)


def pledgor_of(asset_id: int) -> str:
    return f"asset{asset_id}"


@dataclass(frozen=True, slots=True)
class Scope:
    """The engine's view of one lot: fixed facts and the names of every account they touch."""

    disposal: engine.Disposal
    listing: Any
    claim_rows: list[Any]
    asset_rows: list[Any]
    pledge_rows: list[Any]

    @property
    def lot(self) -> engine.Lot:
        return self.disposal.lots[lot_id(self.listing.id)]


async def scope(
    conn: AsyncConnection, listing_id: int, settings: Settings, *, lock: bool = True, listing: Any = None
) -> Scope:
    """Read the lot's facts; with ``lock`` the claims it pays are locked (id order: no deadlocks).

    ``listing`` is the listing's row if the caller read it in this transaction already.
    """
    listing = listing if listing is not None else await store.find_listing_row(conn, listing_id)
    if listing is None:
        raise store.ListingNotFound(f"No listing {listing_id}")
    asset_rows = await store.listing_asset_rows(conn, listing_id)
    pledge_rows = await store.pledges_of_assets(conn, [a.id for a in asset_rows])
    claim_rows = await store.claims_by_ids(conn, sorted({p.claim_id for p in pledge_rows}), lock=lock)
    pools = await _pools(conn, {c.pool_code for c in claim_rows if c.pool_code})
    disposal = engine.Disposal(
        id=f"L{listing_id}",
        claims={str(c.id): _claim(c, pools) for c in claim_rows},
        assets={f"A{a.id}": _asset(a, [p for p in pledge_rows if p.asset_id == a.id]) for a in asset_rows},
        lots={lot_id(listing_id): _lot(listing, asset_rows, settings)},
        pools=pools,
    )
    return Scope(disposal, listing, list(claim_rows), list(asset_rows), list(pledge_rows))


def _claim(row: Any, pools: dict[str, engine.Pool]) -> engine.Claim:
    opening = {
        "costs": row.costs_fen,
        "interest": row.interest_fen + row.default_interest_fen,
        "principal": row.principal_fen,
    }
    order = tuple(row.bucket_order) if row.bucket_order else engine.STATUTORY_ORDER
    pool = row.pool_code if row.pool_code in pools else None
    return engine.Claim(
        id=str(row.id),
        bank=str(row.bank_org_id),
        opening=opening,
        order=order,
        pool=pool,
        debtor=row.borrower_credit_code,
    )


def _asset(row: Any, pledge_rows: list[Any]) -> engine.Asset:
    """The asset with the claims it secures by legal rank (rule 24), in pledge order within a rank."""
    groups = model.ranks([store.row_to_pledge(p) for p in pledge_rows])
    rank_of = {p.claim_id: rank for rank, group in enumerate(groups, 1) for p in group}
    secures = tuple(engine.Pledge(str(p.claim_id), rank_of[p.claim_id]) for p in pledge_rows)
    return engine.Asset(
        id=f"A{row.id}", pledgor=pledgor_of(row.id), appraisal_fen=row.appraisal_fen or 0, secures=secures
    )


def _lot(listing: Any, asset_rows: list[Any], settings: Settings) -> engine.Lot:
    mode = engine.LICENCE if listing.mode == "license" else engine.SALE
    return engine.Lot(
        id=lot_id(listing.id),
        assets=tuple(f"A{a.id}" for a in asset_rows),
        platform_fee_bp=settings.platform_fee_bp,
        buyer_commission=settings.buyer_commission == "slices",
        mode=mode,
    )


async def _pools(conn: AsyncConnection, codes: set[str]) -> dict[str, engine.Pool]:
    if not codes:
        return {}
    rows = await pg.fetch(conn, "SELECT * FROM risk_pools WHERE code = ANY($1::text[])", sorted(codes))
    return {
        r.code: engine.Pool(
            id=r.code,
            balance_fen=0,
            share_bp=r.share_bp,
            per_loan_cap_fen=r.per_loan_cap_fen,
            per_enterprise_cap_fen=r.per_enterprise_cap_fen,
        )
        for r in rows
    }


# --------------------------------------------------------------------------- lot state


def state_to_json(state: engine.LotState) -> dict[str, Any]:
    return {
        "status": state.status,
        "holds": dict(state.holds),
        "barred": list(state.barred),
        "winner": state.winner,
        "price_fen": state.price_fen,
        "extra_costs_fen": state.extra_costs_fen,
        "forfeits": [
            {"bidder": f.bidder, "defaulted_price_fen": f.defaulted_price_fen, "reserve_fen": f.reserve_fen}
            for f in state.forfeits
        ],
    }


def state_from_json(data: dict[str, Any]) -> engine.LotState:
    return engine.LotState(
        status=data["status"],
        holds=dict(data["holds"]),
        barred=list(data["barred"]),
        winner=data["winner"],
        price_fen=data["price_fen"],
        extra_costs_fen=data["extra_costs_fen"],
        forfeits=[
            engine.Forfeit(f["bidder"], f["defaulted_price_fen"], f["reserve_fen"]) for f in data["forfeits"]
        ],
    )


async def lock_lot(conn: AsyncConnection, listing_id: int) -> Any:
    """Lock the lot's settlement row, creating it on first use."""
    locking = "SELECT * FROM settlement_lots WHERE listing_id = $1 FOR UPDATE"
    found = await pg.fetchrow(conn, locking, listing_id)
    if found is not None:
        return found
    if await store.find_listing_row(conn, listing_id) is None:  # not a foreign-key error (500)
        raise store.ListingNotFound(f"No listing {listing_id}")
    await conn.execute(
        pg_insert(settlement_lots)
        .values(listing_id=listing_id, state=state_to_json(engine.LotState()))
        .on_conflict_do_nothing()
    )
    row = await pg.fetchrow(conn, locking, listing_id)
    assert row is not None
    return row


async def lot_state(conn: AsyncConnection, listing_id: int) -> engine.LotState:
    row = (
        await conn.execute(select(settlement_lots.c.state).where(settlement_lots.c.listing_id == listing_id))
    ).first()
    return state_from_json(row.state) if row else engine.LotState()


async def barred_org_ids(conn: AsyncConnection, listing_id: int) -> list[int]:
    """Defaulters of this lot: they may not register for its later rounds (rule 17)."""
    return [int(b) for b in (await lot_state(conn, listing_id)).barred]


# --------------------------------------------------------------------------- applying events


@dataclass(frozen=True, slots=True)
class Result:
    key: str
    entry_id: int
    duplicate: bool
    postings: list[dict[str, Any]]
    state: engine.LotState = field(default_factory=engine.LotState)


def _accounts(sc: Scope) -> list[str]:
    names = [a for c in sc.disposal.claims.values() for a in c.accounts.values()]
    lot = sc.lot.id
    names += [engine.escrow_account(lot), engine.forfeit_account(lot), engine.costs_account(lot)]
    names += [f"pool:{p}" for p in sc.disposal.pools]
    names += [f"poolcomp:{c}" for c, claim in sc.disposal.claims.items() if claim.pool]
    return names


_BALANCES = "SELECT name, balance FROM ledger_accounts WHERE name = ANY($1::text[])"


async def _balances(conn: AsyncConnection, sc: Scope, lot: engine.LotState) -> dict[str, int]:
    """The balances of every account the event may touch: the lot's, its claims', its pools' and
    the deposit holds the lot still has (a released hold's balance is 0, as the register says)."""
    names = _accounts(sc) + [engine.hold_account(sc.lot.id, bidder) for bidder in lot.holds]
    rows = await pg.fetch(conn, _BALANCES, names)
    found = {r.name: r.balance for r in rows}
    return {n: found.get(n, 0) for n in names}


def _ceilings(sc: Scope) -> dict[str, int]:
    """Claim receivables may never exceed what each bucket was owed."""
    return {
        acct: c.opening[bucket] for c in sc.disposal.claims.values() for bucket, acct in c.accounts.items()
    }


async def apply(
    conn: AsyncConnection,
    listing_id: int,
    event: dict[str, Any],
    settings: Settings,
    *,
    prepared: tuple[Any, Scope] | None = None,
    key_checked: bool = False,
) -> Result:
    """Apply one settlement event to the lot, exactly once per event id.

    ``prepared`` is the caller's ``lock_lot`` row and locked ``scope`` of this lot, taken in this
    transaction in that order (lot, then claims), so they are not read twice; ``key_checked``
    says the caller found no entry under the event's id after taking those locks.

    Raises:
        IdempotencyKeyReused: the id was used for a different event.
        MarketError: every refusal of the engine (wrong_amount, hold_exists, bidder_barred, finalized, …).
    """
    key = engine.event_id(event)
    lot_row = prepared[0] if prepared else await lock_lot(conn, listing_id)
    if not key_checked:
        existing = await ledger_store.find_entry(conn, key)
        if existing is not None:
            return _replay(existing, event, lot_row)
    sc = prepared[1] if prepared else await scope(conn, listing_id, settings)
    before = state_from_json(lot_row.state)
    state = engine.make_state(
        await _balances(conn, sc, before), {sc.lot.id: before}, lot_row.state.get("shortfall")
    )
    new_state, postings = engine.advance(sc.disposal, state, engine.parse_event(event))
    entry = await ledger_store.post(
        conn,
        key=key,
        scope=f"listing:{listing_id}",
        type=str(event["type"]),
        content=event,
        postings=list(postings),
        ceilings=_ceilings(sc),
    )
    if entry.duplicate:  # only if the caller's check of the key was not under the lot's lock
        return Result(key, entry.id, True, [], before)
    lot_state_new = new_state.lots[sc.lot.id]
    saved = state_to_json(lot_state_new) | ({"shortfall": new_state.shortfall} if new_state.shortfall else {})
    await pg.execute(
        conn,
        "UPDATE settlement_lots SET state = $2::jsonb, version = version + 1 WHERE listing_id = $1",
        listing_id,
        json.dumps(saved, separators=(",", ":"), ensure_ascii=False),
    )
    SETTLEMENTS.labels(str(event["type"])).inc()
    await _update_claim_statuses(conn, sc, new_state.balances, new_state.shortfall is not None)
    return Result(key, entry.id, False, [p.as_dict() for p in postings], lot_state_new)


_SET_CLAIM_STATUSES = """
    UPDATE claims c SET status = u.status
    FROM unnest($1::bigint[], $2::text[]) AS u(id, status) WHERE c.id = u.id
"""


async def _update_claim_statuses(
    conn: AsyncConnection, sc: Scope, balances: dict[str, int], finalized: bool
) -> None:
    """A claim is ``paid`` once every bucket is recovered; ``finalized`` when its lot's settlement
    closed with a shortfall left (CC 438: the debtor still owes it).

    ``balances`` are the claims' receivables after the event: read under the claims' locks and
    moved by the event's postings, so they are the ledger's.
    """
    ids, statuses = [], []
    for claim in sc.disposal.claims.values():
        paid = all(balances.get(acct, 0) >= claim.opening[b] for b, acct in claim.accounts.items())
        status = "paid" if paid else ("finalized" if finalized else None)
        if status is not None:
            ids.append(int(claim.id))
            statuses.append(status)
    if ids:
        await pg.execute(conn, _SET_CLAIM_STATUSES, ids, statuses)


def _replay(existing: Row[Any], event: dict[str, Any], lot_row: Row[Any]) -> Result:
    if existing.content_hash != ledger_store.content_hash(event):
        raise IdempotencyKeyReused(
            f"Operation id {existing.key!r} was already used for a different operation"
        )
    return Result(existing.key, existing.id, True, [], state_from_json(lot_row.state))


async def entry_postings(conn: AsyncConnection, entry_id: int) -> list[dict[str, Any]]:
    """The postings of one stored entry, in order (debit and credit of each posting)."""
    from market.ledger_store import ledger_lines

    rows = (
        await conn.execute(
            select(ledger_lines)
            .where(ledger_lines.c.entry_id == entry_id)
            .order_by(ledger_lines.c.posting_no, ledger_lines.c.side)
        )
    ).all()
    out: dict[int, dict[str, Any]] = {}
    for r in rows:
        p = out.setdefault(r.posting_no, {"amount_fen": abs(r.amount_fen), "memo": r.memo})
        p["credit" if r.side == "C" else "debit"] = r.account
    return [out[n] for n in sorted(out)]


# ----------------------------------------------------------------- disposals: receipts, escrow, default


class WrongStage(Conflict):
    code = "wrong_disposal_stage"
    title = "The disposal is not at the stage this needs"


class DisposalFinalized(Conflict):
    code = "lot_finalized"
    title = "The lot's settlement is finalized"


def escrow_pending_account(listing_id: int) -> str:
    """Money received for a registered-IP transfer, held until the registry records it (rule 29)."""
    return f"regescrow:{listing_id}"


async def lock_disposal(conn: AsyncConnection, disposal_id: int) -> Any:
    row = await pg.fetchrow(conn, "SELECT * FROM disposals WHERE id = $1 FOR UPDATE", disposal_id)
    if row is None:
        raise DisposalNotFound(f"No disposal {disposal_id}")
    return row


def needs_registry(asset_rows: list[Any]) -> bool:
    return any(a.kind in REGISTRY_KINDS for a in asset_rows)


async def _set_stage(conn: AsyncConnection, disposal_id: int, stage: str, **extra: Any) -> None:
    if not extra:
        sql = "UPDATE disposals SET stage = $2, updated_at = now() WHERE id = $1"
        await pg.execute(conn, sql, disposal_id, stage)
        return
    await conn.execute(
        update(disposals)
        .where(disposals.c.id == disposal_id)
        .values(stage=stage, updated_at=func.now(), **extra)
    )


async def _audit(
    conn: AsyncConnection, actor: Actor | None, action: str, disposal_id: int, after: dict[str, Any]
) -> None:
    await audit.record(
        conn,
        actor_user_id=actor.user_id if actor else None,
        actor_org_id=actor.org_id if actor else None,
        action=action,
        entity="disposal",
        entity_id=disposal_id,
        after=after,
    )


@dataclass(frozen=True, slots=True)
class ReceiptResult:
    key: str
    duplicate: bool
    stage: str
    postings: list[dict[str, Any]]


async def record_receipt(
    conn: AsyncConnection,
    actor: Actor,
    disposal_id: int,
    amount_fen: int,
    reference: str,
    received_on: str,
    settings: Settings,
) -> ReceiptResult:
    """Money from the buyer: the winner's balance, or a licence fee, instalment or royalty.

    Each receipt is settled through the waterfall against what is still outstanding when it
    arrives; for a registered-IP transfer the balance waits in escrow until the registry
    records the transfer. The bank reference is the idempotency key: a repeat changes nothing.
    """
    require_role(actor, Role.OPERATOR)
    disposal = await lock_disposal(conn, disposal_id)
    key = f"receipt:{disposal_id}:{reference}"
    content = {
        "id": key,
        "disposal": disposal_id,
        "amount_fen": amount_fen,
        "reference": reference,
        "received_on": received_on,
    }
    existing = await ledger_store.find_entry(conn, key)
    if existing is not None:
        if (
            existing.content.get("disposal") != disposal_id
            or existing.content.get("amount_fen") != amount_fen
            or existing.content.get("received_on") != received_on
        ):
            raise IdempotencyKeyReused(f"Receipt {reference!r} was already recorded with other figures")
        return ReceiptResult(key, True, disposal.stage, await entry_postings(conn, existing.id))
    listing = await store.find_listing_row(conn, disposal.listing_id)
    assert listing is not None
    if listing.mode == "license":
        return await _licence_receipt(conn, actor, disposal, content, settings)
    return await _sale_receipt(conn, actor, disposal, content, settings, listing)


async def _licence_receipt(
    conn: AsyncConnection, actor: Actor, disposal: Row[Any], content: dict[str, Any], settings: Settings
) -> ReceiptResult:
    if disposal.stage not in ("awaiting_payment", "licensed"):
        raise WrongStage(f"The disposal is {disposal.stage}")
    event = {
        **content,
        "type": "receipt",
        "lot": lot_id(disposal.listing_id),
        "payer": str(disposal.buyer_org_id),
        "memo": f"licence receipt {content['reference']}",
    }
    result = await apply(conn, disposal.listing_id, event, settings)
    await _set_stage(conn, disposal.id, "licensed")
    await _audit(
        conn,
        actor,
        "disposal.receipt",
        disposal.id,
        {"amount_fen": content["amount_fen"], "reference": content["reference"]},
    )
    return ReceiptResult(result.key, result.duplicate, "licensed", result.postings)


async def _sale_receipt(
    conn: AsyncConnection,
    actor: Actor,
    disposal: Any,
    content: dict[str, Any],
    settings: Settings,
    listing: Any,
) -> ReceiptResult:
    if disposal.stage != "awaiting_payment":
        raise WrongStage(f"The disposal is {disposal.stage}; the balance was already received or forfeited")
    lot_row = await lock_lot(conn, disposal.listing_id)  # lot, then claims: the order apply uses
    sc = await scope(conn, disposal.listing_id, settings, listing=listing)
    due = engine.balance_due_fen(sc.lot, state_from_json(lot_row.state))
    if content["amount_fen"] != due:
        raise engine.WrongAmount(f"The balance due is {due} fen", due_fen=due)
    if needs_registry(sc.asset_rows):
        account = escrow_pending_account(disposal.listing_id)
        winner = engine.buyer_account(str(disposal.buyer_org_id))
        memo = f"[{content['id']}] balance received; held until the registry records the transfer"
        entry = await ledger_store.post(
            conn,
            key=content["id"],
            scope=f"listing:{disposal.listing_id}",
            type="receipt_escrow",
            content=content,
            postings=[Posting(winner, account, due, memo)] if due else [],
        )
        await _set_stage(conn, disposal.id, "in_escrow")
        await _audit(conn, actor, "disposal.receipt", disposal.id, {"amount_fen": due, "escrow": True})
        return ReceiptResult(entry.key, False, "in_escrow", await entry_postings(conn, entry.id))
    event = {**content, "type": "pay", "lot": lot_id(disposal.listing_id)}
    # the receipt's key was looked up under the disposal's lock, which every receipt takes first
    result = await apply(conn, disposal.listing_id, event, settings, prepared=(lot_row, sc), key_checked=True)
    await _completed(conn, actor, disposal, sc=sc)
    return ReceiptResult(result.key, result.duplicate, "settled", result.postings)


async def record_transfer(conn: AsyncConnection, actor: Actor, disposal_id: int, settings: Settings) -> Any:
    """The registry recorded the transfer: release the escrowed balance through the waterfall."""
    require_role(actor, Role.OPERATOR)
    disposal = await lock_disposal(conn, disposal_id)
    if disposal.stage != "in_escrow":
        raise WrongStage(f"The disposal is {disposal.stage}, not waiting in escrow")
    held = await ledger_store.balances(conn, [escrow_pending_account(disposal.listing_id)])
    amount = next(iter(held.values()))
    winner = engine.buyer_account(str(disposal.buyer_org_id))
    key = f"release:{disposal_id}"
    memo = f"[{key}] registry transfer recorded: escrowed balance released"
    await ledger_store.post(
        conn,
        key=key,
        scope=f"listing:{disposal.listing_id}",
        type="release",
        content={"id": key, "disposal": disposal_id, "amount_fen": amount},
        postings=[Posting(escrow_pending_account(disposal.listing_id), winner, amount, memo)]
        if amount
        else [],
    )
    event = {
        "id": f"pay:{disposal_id}",
        "type": "pay",
        "lot": lot_id(disposal.listing_id),
        "amount_fen": amount,
    }
    await apply(conn, disposal.listing_id, event, settings)
    await _completed(conn, actor, disposal, transfer_recorded_at=func.now())
    return await lock_disposal(conn, disposal_id)


_PLEDGE_TASKS = """
    WITH tasks AS (
        INSERT INTO pledge_tasks (bank_org_id, disposal_id, asset_id, claim_id)
        SELECT $1, $2, t.asset_id, t.claim_id FROM unnest($3::bigint[], $4::bigint[]) AS t(asset_id, claim_id)
        ON CONFLICT DO NOTHING
        RETURNING 1
    )
    UPDATE assets SET pledge_status = 'cancellation_pending' WHERE id = ANY($5::bigint[])
"""


async def _completed(
    conn: AsyncConnection, actor: Actor | None, disposal: Row[Any], *, sc: Scope | None = None, **extra: Any
) -> None:
    """Settled: the bank gets a pledge-cancellation task for every pledge on the sold assets (rule 30)."""
    await _set_stage(conn, disposal.id, "settled", **extra)
    if sc is not None:  # read in this transaction already
        asset_rows, pledge_rows = sc.asset_rows, sc.pledge_rows
    else:
        asset_rows = await store.listing_asset_rows(conn, disposal.listing_id)
        pledge_rows = list(await store.pledges_of_assets(conn, [a.id for a in asset_rows]))
    if pledge_rows:
        await pg.execute(
            conn,
            _PLEDGE_TASKS,
            disposal.bank_org_id,
            disposal.id,
            [p.asset_id for p in pledge_rows],
            [p.claim_id for p in pledge_rows],
            [a.id for a in asset_rows],
        )
    await _audit(conn, actor, "disposal.settled", disposal.id, {"pledge_tasks": len(pledge_rows)})


async def record_default(conn: AsyncConnection, actor: Actor, disposal_id: int, settings: Settings) -> Any:
    """The winner did not pay in time (悔拍): deposit forfeited, bidder barred, listing back on offer."""
    require_role(actor, Role.OPERATOR)
    disposal = await lock_disposal(conn, disposal_id)
    if disposal.stage != "awaiting_payment":
        raise WrongStage(f"The disposal is {disposal.stage}")
    listing = await store.find_listing_row(conn, disposal.listing_id, lock=True)
    assert listing is not None
    if listing.mode == "license":
        raise WrongStage("A licence is not forfeited; end it through its contract")
    await apply(
        conn,
        disposal.listing_id,
        {"id": f"default:{disposal_id}", "type": "default", "lot": lot_id(disposal.listing_id)},
        settings,
    )
    await _set_stage(conn, disposal.id, "defaulted")
    from listings import services

    await services.apply_transition(
        conn,
        actor,
        listing,
        model.ListingAction.BUYER_DEFAULT,
        reason=f"disposal {disposal_id}: winner defaulted",
    )
    await _audit(conn, actor, "disposal.default", disposal.id, {"barred_org_id": disposal.buyer_org_id})
    return await lock_disposal(conn, disposal_id)


async def record_cost(
    conn: AsyncConnection,
    actor: Actor,
    listing_id: int,
    amount_fen: int,
    memo: str,
    reference: str,
    settings: Settings,
) -> Result:
    """A disposal cost of the lot (appraisal, notice, registry fees): paid first from the proceeds."""
    require_role(actor, Role.OPERATOR)
    event = {
        "id": f"cost:{listing_id}:{reference}",
        "type": "cost",
        "lot": lot_id(listing_id),
        "amount_fen": amount_fen,
        "memo": memo,
    }
    result = await apply(conn, listing_id, event, settings)
    await audit.record(
        conn,
        actor_user_id=actor.user_id,
        actor_org_id=actor.org_id,
        action="lot.cost",
        entity="listing",
        entity_id=listing_id,
        after={"amount_fen": amount_fen, "memo": memo},
    )
    return result


async def finalize(conn: AsyncConnection, actor: Actor, listing_id: int, settings: Settings) -> Result:
    """Close the lot's settlement: holds voided, leftover forfeits applied, shortfall recorded, pools pay."""
    require_role(actor, Role.OPERATOR)
    result = await apply(conn, listing_id, {"id": f"finalize:{listing_id}", "type": "finalize"}, settings)
    await conn.execute(
        update(settlement_lots)
        .where(settlement_lots.c.listing_id == listing_id)
        .values(finalized_at=func.coalesce(settlement_lots.c.finalized_at, func.now()))
    )
    await audit.record(
        conn,
        actor_user_id=actor.user_id,
        actor_org_id=actor.org_id,
        action="lot.finalize",
        entity="listing",
        entity_id=listing_id,
        after={"entry": result.entry_id},
    )
    return result


# --------------------------------------------------------------------------- risk pools


async def create_pool(
    conn: AsyncConnection,
    actor: Actor,
    *,
    code: str,
    name: str,
    share_bp: int,
    per_loan_cap_fen: int | None,
    per_enterprise_cap_fen: int | None,
) -> Row[Any]:
    require_role(actor, Role.OPERATOR)
    exists = (await conn.execute(select(risk_pools.c.code).where(risk_pools.c.code == code))).first()
    if exists is not None:
        raise PoolExists(f"A pool {code!r} already exists")
    row: Row[Any] = (
        await conn.execute(
            pg_insert(risk_pools)
            .values(
                code=code,
                name=name,
                share_bp=share_bp,
                per_loan_cap_fen=per_loan_cap_fen,
                per_enterprise_cap_fen=per_enterprise_cap_fen,
            )
            .returning(risk_pools)
        )
    ).one()
    await audit.record(
        conn,
        actor_user_id=actor.user_id,
        actor_org_id=actor.org_id,
        action="pool.create",
        entity="pool",
        entity_id=code,
        after={"share_bp": share_bp, "per_loan_cap_fen": per_loan_cap_fen},
    )
    return row


async def fund_pool(conn: AsyncConnection, actor: Actor, code: str, amount_fen: int, reference: str) -> int:
    require_role(actor, Role.OPERATOR)
    if (await conn.execute(select(risk_pools.c.code).where(risk_pools.c.code == code))).first() is None:
        raise PoolNotFound(f"No pool {code}")
    key = f"poolfund:{code}:{reference}"
    await ledger_store.post(
        conn,
        key=key,
        scope=f"pool:{code}",
        type="pool_fund",
        content={"id": key, "pool": code, "amount_fen": amount_fen},
        postings=[Posting(f"poolfund:{code}", f"pool:{code}", amount_fen, f"[{key}] pool funded")],
    )
    return (await ledger_store.balances(conn, [f"pool:{code}"]))[f"pool:{code}"]


class PoolExists(Conflict):
    code = "pool_exists"
    title = "A risk pool with this code already exists"


class PoolNotFound(NotFound):
    code = "pool_not_found"
    title = "No such risk pool"
