"""The audit trail: an append-only, hash-chained record of every state-changing action.

Each entry's ``hash`` is SHA-256 over the previous entry's hash and the entry's own
canonical JSON (who, what, which object, before/after, when). A transaction's entries are
chained and written just before its COMMIT, under a transaction-scoped advisory lock, and a
trigger refuses any entry that does not extend the chain by exactly one, so concurrent
writers can never fork it or leave a gap — and they wait for each other only at the end. The
database refuses UPDATE, DELETE and TRUNCATE on the table (migration 0001).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, Engine, event, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from market.tables import audit_log

GENESIS = "0" * 64
AUDIT_LOCK_KEY = 7300002


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    at: datetime
    actor_user_id: int | None
    actor_org_id: int | None
    action: str
    entity: str
    entity_id: str
    before: Any
    after: Any
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class ChainReport:
    ok: bool
    entries: int
    first_broken_seq: int | None = None
    reason: str | None = None


def _json_default(value: object) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types (datetimes become ISO strings)."""
    return json.loads(json.dumps(value, default=_json_default)) if value is not None else None


def entry_hash(
    prev_hash: str,
    *,
    seq: int,
    at: datetime,
    actor_user_id: int | None,
    actor_org_id: int | None,
    action: str,
    entity: str,
    entity_id: str,
    before: Any,
    after: Any,
) -> str:
    """SHA-256 of the previous hash and the canonical JSON of the entry."""
    body = {
        "seq": seq,
        "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor_user_id": actor_user_id,
        "actor_org_id": actor_org_id,
        "action": action,
        "entity": entity,
        "entity_id": entity_id,
        "before": before,
        "after": after,
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


def verify_chain(entries: Iterable[AuditEntry]) -> ChainReport:
    """Walk entries in ``seq`` order; report the first one that breaks the chain (pure)."""
    prev_hash, expected_seq, count = GENESIS, 1, 0
    for e in entries:
        count += 1
        if e.seq != expected_seq:
            return ChainReport(False, count, e.seq, f"expected seq {expected_seq}, found {e.seq}")
        if e.prev_hash != prev_hash:
            return ChainReport(False, count, e.seq, "prev_hash does not match the previous entry")
        if _recompute(e) != e.hash:
            return ChainReport(False, count, e.seq, "hash does not match the entry's content")
        prev_hash, expected_seq = e.hash, expected_seq + 1
    return ChainReport(True, count)


def _recompute(e: AuditEntry) -> str:
    return entry_hash(
        e.prev_hash,
        seq=e.seq,
        at=e.at,
        actor_user_id=e.actor_user_id,
        actor_org_id=e.actor_org_id,
        action=e.action,
        entity=e.entity,
        entity_id=e.entity_id,
        before=e.before,
        after=e.after,
    )


PENDING = "audit_pending"  # key in the DBAPI connection's ``info``: entries of the open transaction


@dataclass(frozen=True, slots=True)
class Pending:
    actor_user_id: int | None
    actor_org_id: int | None
    action: str
    entity: str
    entity_id: str
    before: Any
    after: Any


async def record(
    conn: AsyncConnection,
    *,
    actor_user_id: int | None,
    actor_org_id: int | None,
    action: str,
    entity: str,
    entity_id: object,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> None:
    """Add one entry to the caller's transaction: it is chained and written just before COMMIT
    (``install`` hooks the engine), so it commits or rolls back with the transaction — and a
    savepoint rolled back takes its entries with it.

    Writers serialize on the chain only for those last statements, not for their whole
    transaction; ``flush`` writes the entries so far (to read them back in the same transaction).
    """
    if not conn.in_transaction() or not getattr(conn.sync_engine, INSTALLED, False):
        raise RuntimeError("audit.record needs a transaction on an engine with audit.install")
    entry = Pending(
        actor_user_id,
        actor_org_id,
        action,
        entity,
        str(entity_id),
        jsonable(dict(before)) if before is not None else None,
        jsonable(dict(after)) if after is not None else None,
    )
    conn.sync_connection.info.setdefault(PENDING, []).append(entry)  # type: ignore[union-attr]


async def flush(conn: AsyncConnection) -> list[AuditEntry]:
    """Chain and write the transaction's pending entries now; returns them."""
    return await conn.run_sync(_flush)


def _flush(sync_conn: Connection) -> list[AuditEntry]:
    pending: list[Pending] = sync_conn.info.pop(PENDING, None) or []
    if not pending:
        return []
    # the lock first, in its own statement: a statement's snapshot predates a lock it waits for
    sync_conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": AUDIT_LOCK_KEY})
    last = sync_conn.execute(
        text(
            "SELECT l.seq, l.hash, clock_timestamp() AS at FROM (SELECT 1) one "
            "LEFT JOIN LATERAL (SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1) l ON true"
        )
    ).one()
    seq, prev_hash, at = (last.seq or 0) + 1, last.hash or GENESIS, last.at
    written = []
    for p in pending:
        fields = {"seq": seq, "at": at, **{k: getattr(p, k) for k in Pending.__slots__}}
        digest = entry_hash(prev_hash, **fields)
        written.append(AuditEntry(**fields, prev_hash=prev_hash, hash=digest))
        seq, prev_hash = seq + 1, digest
    sync_conn.execute(audit_log.insert(), [{k: getattr(e, k) for k in AuditEntry.__slots__} for e in written])
    return written


INSTALLED = "_market_audit_installed"
MARKS = "audit_marks"  # per open savepoint: how many entries were pending when it began


def install(engine: Engine) -> None:
    """Write pending entries at COMMIT; forget them at ROLLBACK (or a savepoint's rollback)."""
    setattr(engine, INSTALLED, True)
    event.listen(engine, "begin", _on_rollback)  # nothing survives from a previous transaction
    event.listen(engine, "commit", _on_commit)
    event.listen(engine, "rollback", _on_rollback)
    event.listen(engine, "savepoint", _on_savepoint)
    event.listen(engine, "release_savepoint", _on_release_savepoint)
    event.listen(engine, "rollback_savepoint", _on_rollback_savepoint)


def _on_commit(sync_conn: Connection) -> None:
    if sync_conn.info.get(PENDING):
        _flush(sync_conn)


def _on_rollback(sync_conn: Connection) -> None:
    if sync_conn.invalidated:  # the connection is gone, and its info (the pending entries) with it
        return
    sync_conn.info.pop(PENDING, None)
    sync_conn.info.pop(MARKS, None)


def _on_savepoint(sync_conn: Connection, name: str | None) -> None:
    # savepoints nest last-in first-out; the event's name may not be generated yet
    sync_conn.info.setdefault(MARKS, []).append(len(sync_conn.info.get(PENDING) or []))


def _on_release_savepoint(sync_conn: Connection, name: str, context: object) -> None:
    if sync_conn.info.get(MARKS):
        sync_conn.info[MARKS].pop()


def _on_rollback_savepoint(sync_conn: Connection, name: str, context: object) -> None:
    if not sync_conn.info.get(MARKS):
        return
    mark = sync_conn.info[MARKS].pop()
    if sync_conn.info.get(PENDING):
        del sync_conn.info[PENDING][mark:]


def _row_to_entry(row: Any) -> AuditEntry:
    m = row._mapping
    return AuditEntry(**{k: m[k] for k in AuditEntry.__slots__})


async def entries(
    conn: AsyncConnection,
    *,
    entity: str | None = None,
    entity_id: str | None = None,
    actor_user_id: int | None = None,
    limit: int = 100,
    before_seq: int | None = None,
) -> list[AuditEntry]:
    """Newest-first page of entries, filtered by object and/or actor (this transaction's included)."""
    await flush(conn)
    q = select(audit_log).order_by(audit_log.c.seq.desc()).limit(limit)
    if entity:
        q = q.where(audit_log.c.entity == entity)
    if entity_id:
        q = q.where(audit_log.c.entity_id == entity_id)
    if actor_user_id is not None:
        q = q.where(audit_log.c.actor_user_id == actor_user_id)
    if before_seq is not None:
        q = q.where(audit_log.c.seq < before_seq)
    return [_row_to_entry(r) for r in (await conn.execute(q)).all()]


async def verify(conn: AsyncConnection, table: str = "audit_log", batch: int = 5000) -> ChainReport:
    """Verify the whole chain stored in ``table`` (``audit_log`` or a copy of it)."""
    await flush(conn)
    if table != "audit_log" and not table.replace("_", "").isalnum():
        raise ValueError("bad table name")

    async def stream() -> list[AuditEntry]:
        rows = await conn.execute(text(f"SELECT * FROM {table} ORDER BY seq"))
        return [_row_to_entry(r) for r in rows.all()]

    return verify_chain(await stream())
