"""Bulk import, second half: check a parsed file against the database, then write it.

``run_import`` works inside the caller's ONE transaction. It resolves every pledge's
natural keys to a claim and an asset of the importing bank (in the same file or already
registered; another bank's objects are simply not found, so nothing about them leaks),
decides for each record whether it would be created, updated or left unchanged, and
reports every bad row. With ``dry_run`` — or when any row is bad — it writes nothing.
Otherwise it upserts assets by (bank, kind, registration_no), claims by (bank, loan_no),
makes each claim that has pledge rows in the file carry exactly those pledges, and
records one audit entry for the whole import.

Records that the trade already depends on are protected: an asset in a live listing
(published, in auction or negotiation, sold) and a claim that is no longer ``open`` may
appear in a file only unchanged.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import bindparam, delete, func, insert, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from listings import services
from listings.importer import AssetKey, ParsedFile, PledgeRow, Problem
from listings.tables import assets, claims, listing_assets, listings, pledges
from market import audit, identity
from market.access import require_role
from market.errors import Conflict, Forbidden, RuleViolation
from market.parties import Actor, Role
from market.tables import orgs

StageProgress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``; stage is ``check`` or ``write``."""

IMPORT_LOCK_KEY = 7300101
LOOKUP_CHUNK = 1000
ASSET_CHUNK = 500
CLAIM_CHUNK = 1000
PLEDGE_CHUNK = 2000
ASSET_KEY_COLUMNS = frozenset({"bank_org_id", "kind", "registration_no"})
CLAIM_KEY_COLUMNS = frozenset({"bank_org_id", "loan_no"})
SHEET_ORDER = {"": 0, "csv": 1, "assets": 1, "claims": 2, "pledges": 3}

T = TypeVar("T")


class ImportHasErrors(RuleViolation):
    code = "import_has_errors"
    title = "The file has bad rows; nothing was imported"


class ImportRaced(Conflict):
    code = "import_raced"
    title = "A claim changed while the import ran; nothing was imported"


@dataclass(slots=True)
class Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "removed": self.removed,
        }


@dataclass(slots=True)
class ImportReport:
    dry_run: bool
    format: str
    sha256: str
    rows: int
    problems: list[Problem]
    assets: Counts = field(default_factory=Counts)
    claims: Counts = field(default_factory=Counts)
    pledges: Counts = field(default_factory=Counts)
    applied: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def bad_rows(self) -> list[tuple[str, int]]:
        """(sheet, row) of every data row with a problem."""
        rows = {(p.sheet, p.row) for p in self.problems if p.row is not None and p.row > 1}
        return sorted(rows, key=lambda r: (SHEET_ORDER.get(r[0], 9), r[0], r[1]))

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            "assets": self.assets.as_dict(),
            "claims": self.claims.as_dict(),
            "pledges": self.pledges.as_dict(),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "dry_run": self.dry_run,
            "applied": self.applied,
            "format": self.format,
            "sha256": self.sha256,
            "rows": self.rows,
            "bad_rows": len(self.bad_rows()),
            "problems": [p.as_dict() for p in self.problems],
            "counts": self.counts(),
        }


@dataclass(frozen=True, slots=True)
class _Bank:
    actor: Actor  # for services.asset_values / claim_values (only org_id is read)
    user_id: int | None


@dataclass(slots=True)
class _PledgePlan:
    loan_no: str
    insert: list[tuple[PledgeRow, int | None]] = field(default_factory=list)  # (row, known asset id)
    update: list[tuple[int, PledgeRow, int]] = field(default_factory=list)  # (pledge id, row, asset id)
    delete: list[int] = field(default_factory=list)

    @property
    def changes(self) -> bool:
        return bool(self.insert or self.update or self.delete)


def _chunks(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _sort(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (SHEET_ORDER.get(p.sheet, 9), p.sheet, p.row or 0))


async def resolve_bank(conn: AsyncConnection, ref: str) -> int:
    """A bank organisation by id or by its 18-character credit code (the CLI's ``--bank``)."""
    ref = ref.strip().upper()
    if len(ref) == 18:
        row = (await conn.execute(select(orgs.c.id, orgs.c.kind).where(orgs.c.credit_code == ref))).first()
        if row is None:
            raise identity.OrgNotFound(f"No organisation with credit code {ref}")
        org_id, kind = int(row.id), str(row.kind)
    elif ref.isdigit() and 0 < int(ref) < 2**63:
        org = await identity.get_org(conn, int(ref))
        org_id, kind = org.id, org.kind.value
    else:
        raise identity.OrgNotFound(f"{ref!r} is neither an organisation id nor an 18-character credit code")
    if kind != Role.BANK.value:
        raise Forbidden(f"Organisation {org_id} is not a bank")
    return org_id


async def _bank(conn: AsyncConnection, who: Actor | int) -> _Bank:
    if isinstance(who, Actor):
        require_role(who, Role.BANK)
        return _Bank(who, who.user_id)
    org = await identity.get_org(conn, who)
    if org.kind is not Role.BANK:
        raise Forbidden(f"Organisation {who} is not a bank")
    return _Bank(Actor(user_id=0, org_id=org.id, role=Role.BANK, email=""), None)


# --------------------------------------------------------------------------- look-ups


async def _existing_assets(
    conn: AsyncConnection, bank_id: int, keys: Iterable[AssetKey]
) -> dict[AssetKey, Row[Any]]:
    wanted = sorted(set(keys))
    out: dict[AssetKey, Row[Any]] = {}
    for chunk in _chunks(wanted, LOOKUP_CHUNK):
        q = select(assets).where(
            assets.c.bank_org_id == bank_id, tuple_(assets.c.kind, assets.c.registration_no).in_(chunk)
        )
        for row in (await conn.execute(q)).all():
            out[(row.kind, row.registration_no)] = row
    return out


async def _live_listings(conn: AsyncConnection, asset_ids: Sequence[int]) -> dict[int, tuple[int, str]]:
    out: dict[int, tuple[int, str]] = {}
    for chunk in _chunks(sorted(set(asset_ids)), LOOKUP_CHUNK):
        q = (
            select(listing_assets.c.asset_id, listings.c.id, listings.c.status)
            .join(listings, listings.c.id == listing_assets.c.listing_id)
            .where(listing_assets.c.asset_id.in_(chunk), listings.c.status.in_(services.PUBLIC_STATUSES))
        )
        for row in (await conn.execute(q)).all():
            out.setdefault(row.asset_id, (row.id, row.status))
    return out


async def _existing_claims(
    conn: AsyncConnection, bank_id: int, loan_nos: Iterable[str], *, lock: bool
) -> dict[str, Row[Any]]:
    out: dict[str, Row[Any]] = {}
    for chunk in _chunks(sorted(set(loan_nos)), LOOKUP_CHUNK):
        q = select(claims).where(claims.c.bank_org_id == bank_id, claims.c.loan_no.in_(chunk))
        for row in (await conn.execute(q.with_for_update() if lock else q)).all():
            out[row.loan_no] = row
    return out


async def _pledges_of_claims(
    conn: AsyncConnection, claim_ids: Sequence[int]
) -> dict[int, dict[int, Row[Any]]]:
    out: dict[int, dict[int, Row[Any]]] = defaultdict(dict)
    for chunk in _chunks(sorted(set(claim_ids)), LOOKUP_CHUNK):
        q = select(pledges).where(pledges.c.claim_id.in_(chunk))
        for row in (await conn.execute(q)).all():
            out[row.claim_id][row.asset_id] = row
    return out


def _differs(old: Row[Any], values: dict[str, Any], keys: frozenset[str]) -> bool:
    m = old._mapping
    return any(m[k] != v for k, v in values.items() if k not in keys)


def _same_pledge(old: Row[Any], row: PledgeRow) -> bool:
    d = row.data
    return (old.declared_rank, old.registration_no, old.registered_on) == (
        d.rank,
        d.registration_no,
        d.registered_on,
    )


# --------------------------------------------------------------------------- the import


async def run_import(
    conn: AsyncConnection,
    actor_or_bank: Actor | int,
    parsed: ParsedFile,
    *,
    dry_run: bool,
    progress: StageProgress | None = None,
) -> ImportReport:
    """Check ``parsed`` for the bank and, unless ``dry_run`` or any row is bad, write it all.

    ``actor_or_bank`` is a bank user (API, page) or a bank organisation id (the CLI, audited
    without a user). Runs in the caller's transaction; never commits.
    """
    bank = await _bank(conn, actor_or_bank)
    bank_id = bank.actor.org_id
    report = ImportReport(dry_run, parsed.format, parsed.sha256, parsed.rows, list(parsed.problems))
    if not dry_run:  # one import per bank at a time: the checks below stay true until commit
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(:k, :b)"), {"k": IMPORT_LOCK_KEY, "b": bank_id % 2**31}
        )

    def problem(sheet: str, row: int, column: str, code: str, reason: str) -> None:
        report.problems.append(Problem(sheet, row, column, code, reason))

    total = len(parsed.assets) + len(parsed.claims) + len(parsed.pledges)
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress and (done % 50 == 0 or done == total):
            progress("check", done, total)

    if progress:
        progress("check", 0, total)
    old_assets = await _existing_assets(
        conn, bank_id, [a.key for a in parsed.assets] + [p.asset_key for p in parsed.pledges]
    )
    live = await _live_listings(conn, [r.id for r in old_assets.values()])
    old_claims = await _existing_claims(
        conn,
        bank_id,
        [c.data.loan_no for c in parsed.claims] + [p.loan_no for p in parsed.pledges],
        lock=not dry_run,
    )
    old_pledges = await _pledges_of_claims(conn, [r.id for r in old_claims.values()])

    # assets ------------------------------------------------------------------
    asset_writes: list[dict[str, Any]] = []
    for a in parsed.assets:
        values = await services.asset_values(conn, bank.actor, a.data)
        values.pop("licenses")  # not in the layout: keep what is recorded
        old = old_assets.get(a.key)
        if old is None:
            report.assets.created += 1
            asset_writes.append(values)
        elif not _differs(old, values, ASSET_KEY_COLUMNS):
            report.assets.unchanged += 1
        elif old.id in live:
            listing_id, status = live[old.id]
            problem(
                a.sheet,
                a.row,
                "registration_no",
                "asset_listed",
                f"this asset is in listing {listing_id} ({status}); it cannot change while listed",
            )
        else:
            report.assets.updated += 1
            asset_writes.append(values)
        tick()

    # claims ------------------------------------------------------------------
    claim_writes: list[dict[str, Any]] = []
    for c in parsed.claims:
        values = services.claim_values(bank.actor, c.data)
        old = old_claims.get(c.data.loan_no)
        if old is None:
            report.claims.created += 1
            claim_writes.append(values)
        elif not _differs(old, values, CLAIM_KEY_COLUMNS):
            report.claims.unchanged += 1
        elif old.status != "open":
            problem(
                c.sheet,
                c.row,
                "loan_no",
                "claim_not_open",
                f"this claim is {old.status}; it cannot change any more",
            )
        else:
            report.claims.updated += 1
            claim_writes.append(values)
        tick()

    # pledges -----------------------------------------------------------------
    by_claim: dict[str, list[PledgeRow]] = defaultdict(list)
    for p in parsed.pledges:
        by_claim[p.loan_no].append(p)
    plans: list[_PledgePlan] = []
    for loan_no, rows in by_claim.items():
        old_claim = old_claims.get(loan_no)
        plan = _PledgePlan(loan_no)
        bad = False
        for p in rows:
            tick()
            if old_claim is None and loan_no not in parsed.loan_nos:
                problem(
                    p.sheet,
                    p.row,
                    "loan_no",
                    "unknown_claim",
                    f"no claim {loan_no} in this file or among yours",
                )
                bad = True
            old_asset = old_assets.get(p.asset_key)
            if old_asset is None and p.asset_key not in parsed.asset_keys:
                problem(
                    p.sheet,
                    p.row,
                    "registration_no",
                    "unknown_asset",
                    f"no {p.kind} {p.registration_no} in this file or among your assets",
                )
                bad = True
            if bad:
                continue
            before = old_pledges.get(old_claim.id, {}) if old_claim is not None else {}
            asset_id = old_asset.id if old_asset is not None else None
            if asset_id is None or asset_id not in before:
                plan.insert.append((p, asset_id))
            elif _same_pledge(before[asset_id], p):
                report.pledges.unchanged += 1
            else:
                plan.update.append((before[asset_id].id, p, asset_id))
        if bad:
            continue
        if old_claim is not None:
            kept = {old_assets[p.asset_key].id for p in rows if p.asset_key in old_assets}
            plan.delete = [r.id for aid, r in old_pledges.get(old_claim.id, {}).items() if aid not in kept]
        if old_claim is not None and old_claim.status != "open" and plan.changes:
            for p in rows:
                problem(
                    p.sheet,
                    p.row,
                    "loan_no",
                    "claim_not_open",
                    f"claim {loan_no} is {old_claim.status}; its pledges cannot change any more",
                )
            continue
        report.pledges.created += len(plan.insert)
        report.pledges.updated += len(plan.update)
        report.pledges.removed += len(plan.delete)
        if plan.changes:
            plans.append(plan)

    report.problems = _sort(report.problems)
    if report.problems or dry_run:
        return report

    await _write(conn, bank_id, asset_writes, claim_writes, plans, old_claims, progress)
    await audit.record(
        conn,
        actor_user_id=bank.user_id,
        actor_org_id=bank_id,
        action="import.apply",
        entity="import",
        entity_id=parsed.sha256[:16],
        after={
            "bank_org_id": bank_id,
            "format": parsed.format,
            "sha256": parsed.sha256,
            "rows": parsed.rows,
            **report.counts(),
        },
    )
    report.applied = True
    return report


async def _write(
    conn: AsyncConnection,
    bank_id: int,
    asset_writes: list[dict[str, Any]],
    claim_writes: list[dict[str, Any]],
    plans: list[_PledgePlan],
    old_claims: dict[str, Row[Any]],
    progress: StageProgress | None,
) -> None:
    steps = len(range(0, len(asset_writes), ASSET_CHUNK)) + len(range(0, len(claim_writes), CLAIM_CHUNK))
    steps += 1 if plans else 0
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress:
            progress("write", done, steps)

    if progress:
        progress("write", 0, steps)
    for chunk in _chunks(asset_writes, ASSET_CHUNK):
        await conn.execute(services.upsert_assets_statement(list(chunk)))
        step()

    claim_ids = {loan_no: int(r.id) for loan_no, r in old_claims.items()}
    for chunk in _chunks(claim_writes, CLAIM_CHUNK):
        ins = pg_insert(claims).values(list(chunk))
        stmt = ins.on_conflict_do_update(
            constraint="uq_claims_bank_org_id_loan_no",
            set_={
                **{c: ins.excluded[c] for c in chunk[0] if c not in CLAIM_KEY_COLUMNS},
                "updated_at": func.now(),
            },
            where=claims.c.status == "open",
        ).returning(claims.c.id, claims.c.loan_no)
        returned = (await conn.execute(stmt)).all()
        if len(returned) != len(chunk):
            raise ImportRaced("A claim in the file stopped being open during the import")
        claim_ids.update({r.loan_no: int(r.id) for r in returned})
        step()

    if not plans:
        return
    new_keys = [p.asset_key for plan in plans for p, aid in plan.insert if aid is None]
    new_ids = {k: int(r.id) for k, r in (await _existing_assets(conn, bank_id, new_keys)).items()}
    removed = [pid for plan in plans for pid in plan.delete]
    for ids in _chunks(removed, PLEDGE_CHUNK):
        await conn.execute(delete(pledges).where(pledges.c.id.in_(ids)))
    changed = [
        {"pid": pid, "r": p.data.rank, "n": p.data.registration_no, "d": p.data.registered_on}
        for plan in plans
        for pid, p, _ in plan.update
    ]
    if changed:
        await conn.execute(
            update(pledges)
            .where(pledges.c.id == bindparam("pid"))
            .values(
                declared_rank=bindparam("r"), registration_no=bindparam("n"), registered_on=bindparam("d")
            ),
            changed,
        )
    added = [
        {
            "claim_id": claim_ids[plan.loan_no],
            "asset_id": aid if aid is not None else new_ids[p.asset_key],
            "declared_rank": p.data.rank,
            "registration_no": p.data.registration_no,
            "registered_on": p.data.registered_on,
        }
        for plan in plans
        for p, aid in plan.insert
    ]
    for rows in _chunks(added, PLEDGE_CHUNK):
        await conn.execute(insert(pledges), list(rows))
    step()
