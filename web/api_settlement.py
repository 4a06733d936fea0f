"""API: disposals and their settlement — receipts, escrow release, default, costs, finalize, pools, tasks."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import select, update

from listings import disposals, settlement, statements
from listings.schemas import Fen, PositiveFen
from listings.tables import assets, pledge_tasks
from market.access import check_owner
from market.errors import NotFound
from market.parties import Role
from web.api import Call, api

OPERATOR = (Role.OPERATOR,)
SIGNED_IN: tuple[Role, ...] = ()
Reference = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120, pattern=r"^[^:\s]+$")
]


class ReceiptIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    amount_fen: PositiveFen
    reference: Reference
    received_on: Annotated[date, Field(strict=False)]


class ReceiptOut(BaseModel):
    key: str
    duplicate: bool
    stage: str
    postings: list[dict[str, Any]]


class CostIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    amount_fen: PositiveFen
    memo: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    reference: Reference


class EntryOut(BaseModel):
    key: str
    duplicate: bool
    postings: list[dict[str, Any]]


class Allocation(BaseModel):
    claim_id: int
    costs_fen: int
    interest_fen: int
    principal_fen: int


class DisposalOut(BaseModel):
    id: int
    listing_id: int
    bank_org_id: int
    buyer_org_id: int | None
    source: str
    stage: str
    price_fen: int
    balance_due_fen: int | None
    balance_due_at: datetime | None
    fees_fen: int
    platform_fee_fen: int
    commission_fen: int
    disposal_costs_fen: int
    allocations: list[Allocation]
    surplus_to_pledgor_fen: int
    pool_compensation_fen: int
    deposits_held_fen: int
    forfeit_reserve_fen: int
    escrow_pending_fen: int
    postings: list[dict[str, Any]]


class PoolIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    code: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[^:\s]+$")
    ]
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    share_bp: Annotated[int, Field(strict=True, ge=0, le=10000)]
    per_loan_cap_fen: Fen | None = None
    per_enterprise_cap_fen: Fen | None = None


class PoolOut(BaseModel):
    code: str
    name: str
    share_bp: int
    per_loan_cap_fen: int | None
    per_enterprise_cap_fen: int | None
    balance_fen: int


class FundIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    amount_fen: PositiveFen
    reference: Reference


class TaskOut(BaseModel):
    id: int
    disposal_id: int
    asset_id: int
    claim_id: int
    status: str
    created_at: datetime
    done_at: datetime | None


class TaskList(BaseModel):
    items: list[TaskOut]


def _id(call: Call, name: str) -> int:
    return int(call.params[name])


@api.operation(
    "GET",
    "/api/v1/disposals/{disposal_id}",
    summary="A disposal: price, fees, allocations, surplus, postings",
    tag="settlement",
    roles=SIGNED_IN,
    response=DisposalOut,
)
async def get_disposal(call: Call) -> DisposalOut:
    row = await disposals.get(call.conn, call.need_actor(), _id(call, "disposal_id"))
    return DisposalOut(**await statements.disposal(call.conn, row, call.settings))


@api.operation(
    "POST",
    "/api/v1/disposals/{disposal_id}/receipts",
    summary="Money received from the buyer; settled through the waterfall",
    tag="settlement",
    roles=OPERATOR,
    body=ReceiptIn,
    response=ReceiptOut,
    status=201,
    extra_responses={200: "A repeat of a recorded receipt (same bank reference): nothing posted"},
)
async def record_receipt(call: Call) -> tuple[int, ReceiptOut]:
    b: ReceiptIn = call.body
    r = await settlement.record_receipt(
        call.conn,
        call.need_actor(),
        _id(call, "disposal_id"),
        b.amount_fen,
        b.reference,
        b.received_on.isoformat(),
        call.settings,
    )
    return (200 if r.duplicate else 201), ReceiptOut(
        key=r.key, duplicate=r.duplicate, stage=r.stage, postings=r.postings
    )


@api.operation(
    "POST",
    "/api/v1/disposals/{disposal_id}/transfer-recorded",
    summary="The registry recorded the transfer: release the escrowed balance (rule 29)",
    tag="settlement",
    roles=OPERATOR,
    response=DisposalOut,
)
async def transfer_recorded(call: Call) -> DisposalOut:
    row = await settlement.record_transfer(
        call.conn, call.need_actor(), _id(call, "disposal_id"), call.settings
    )
    return DisposalOut(**await statements.disposal(call.conn, row, call.settings))


@api.operation(
    "POST",
    "/api/v1/disposals/{disposal_id}/default",
    summary="The winner did not pay: deposit forfeited, listing back for a new round",
    tag="settlement",
    roles=OPERATOR,
    response=DisposalOut,
)
async def record_default(call: Call) -> DisposalOut:
    row = await settlement.record_default(
        call.conn, call.need_actor(), _id(call, "disposal_id"), call.settings
    )
    return DisposalOut(**await statements.disposal(call.conn, row, call.settings))


@api.operation(
    "POST",
    "/api/v1/listings/{listing_id}/costs",
    summary="Record a disposal cost of the lot",
    tag="settlement",
    roles=OPERATOR,
    body=CostIn,
    response=EntryOut,
    status=201,
)
async def record_cost(call: Call) -> EntryOut:
    b: CostIn = call.body
    r = await settlement.record_cost(
        call.conn,
        call.need_actor(),
        _id(call, "listing_id"),
        b.amount_fen,
        b.memo,
        b.reference,
        call.settings,
    )
    return EntryOut(key=r.key, duplicate=r.duplicate, postings=r.postings)


@api.operation(
    "POST",
    "/api/v1/listings/{listing_id}/finalize",
    summary="Finalize the lot: shortfall recorded, risk pools pay",
    tag="settlement",
    roles=OPERATOR,
    response=EntryOut,
)
async def finalize_lot(call: Call) -> EntryOut:
    r = await settlement.finalize(call.conn, call.need_actor(), _id(call, "listing_id"), call.settings)
    return EntryOut(key=r.key, duplicate=r.duplicate, postings=r.postings)


@api.operation(
    "POST",
    "/api/v1/pools",
    summary="Create a risk compensation pool",
    tag="settlement",
    roles=OPERATOR,
    body=PoolIn,
    response=PoolOut,
    status=201,
)
async def create_pool(call: Call) -> PoolOut:
    b: PoolIn = call.body
    row = await settlement.create_pool(
        call.conn,
        call.need_actor(),
        code=b.code,
        name=b.name,
        share_bp=b.share_bp,
        per_loan_cap_fen=b.per_loan_cap_fen,
        per_enterprise_cap_fen=b.per_enterprise_cap_fen,
    )
    return PoolOut(
        code=row.code,
        name=row.name,
        share_bp=row.share_bp,
        per_loan_cap_fen=row.per_loan_cap_fen,
        per_enterprise_cap_fen=row.per_enterprise_cap_fen,
        balance_fen=0,
    )


@api.operation(
    "POST",
    "/api/v1/pools/{pool_code}/fund",
    summary="Pay money into a risk pool",
    tag="settlement",
    roles=OPERATOR,
    body=FundIn,
    response=PoolOut,
)
async def fund_pool(call: Call) -> PoolOut:
    b: FundIn = call.body
    code = str(call.request.path_params["pool_code"])
    balance = await settlement.fund_pool(call.conn, call.need_actor(), code, b.amount_fen, b.reference)
    row = await statements.pool(call.conn, code)
    return PoolOut(
        code=row.code,
        name=row.name,
        share_bp=row.share_bp,
        per_loan_cap_fen=row.per_loan_cap_fen,
        per_enterprise_cap_fen=row.per_enterprise_cap_fen,
        balance_fen=balance,
    )


@api.operation(
    "GET",
    "/api/v1/me/tasks",
    summary="The bank's pledge-cancellation tasks (rule 30)",
    tag="settlement",
    roles=(Role.BANK, Role.OPERATOR),
    response=TaskList,
)
async def list_tasks(call: Call) -> TaskList:
    actor = call.need_actor()
    q = select(pledge_tasks).order_by(pledge_tasks.c.id.desc()).limit(500)
    if not actor.is_operator:
        q = q.where(pledge_tasks.c.bank_org_id == actor.org_id)
    rows = (await call.conn.execute(q)).all()
    return TaskList(items=[TaskOut.model_validate(r, from_attributes=True) for r in rows])


class TaskNotFound(NotFound):
    code = "task_not_found"
    title = "No such task"


@api.operation(
    "POST",
    "/api/v1/me/tasks/{task_id}/done",
    summary="The pledge cancellation was recorded",
    tag="settlement",
    roles=(Role.BANK,),
    response=TaskOut,
)
async def complete_task(call: Call) -> TaskOut:
    actor = call.need_actor()
    row = (
        await call.conn.execute(
            select(pledge_tasks).where(pledge_tasks.c.id == _id(call, "task_id")).with_for_update()
        )
    ).first()
    if row is None:
        raise TaskNotFound("No such task")
    check_owner(actor, row.bank_org_id, "task", TaskNotFound)
    done = (
        await call.conn.execute(
            update(pledge_tasks)
            .where(pledge_tasks.c.id == row.id)
            .values(status="done", done_at=row.done_at or datetime.now().astimezone())
            .returning(pledge_tasks)
        )
    ).one()
    still_open = (
        await call.conn.execute(
            select(pledge_tasks.c.id).where(
                pledge_tasks.c.asset_id == row.asset_id, pledge_tasks.c.status == "open"
            )
        )
    ).first()
    if still_open is None:
        await call.conn.execute(
            update(assets).where(assets.c.id == row.asset_id).values(pledge_status="cancelled")
        )
    from market import audit

    await audit.record(
        call.conn,
        actor_user_id=actor.user_id,
        actor_org_id=actor.org_id,
        action="pledge.cancelled",
        entity="asset",
        entity_id=row.asset_id,
        after={"task": row.id, "claim_id": row.claim_id},
    )
    return TaskOut.model_validate(done, from_attributes=True)


class ReverseIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


@api.operation(
    "POST",
    "/api/v1/ledger/entries/{entry_id}/reverse",
    summary="Reverse a receipt entry (a mirror entry; nothing is ever edited)",
    tag="settlement",
    roles=OPERATOR,
    body=ReverseIn,
    response=EntryOut,
    status=201,
)
async def reverse_entry(call: Call) -> tuple[int, EntryOut]:
    from listings import reversal

    b: ReverseIn = call.body
    entry = await reversal.reverse(call.conn, call.need_actor(), _id(call, "entry_id"), b.reason)
    postings = await settlement.entry_postings(call.conn, entry.id)
    return (200 if entry.duplicate else 201), EntryOut(
        key=entry.key, duplicate=entry.duplicate, postings=postings
    )
