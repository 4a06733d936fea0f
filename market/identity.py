"""Organisations, users, passwords, sessions and login throttling (service layer).

Passwords are argon2id hashes. Sessions and API tokens are random secrets; only their
SHA-256 is stored, so a database leak does not leak usable tokens, and either can be
revoked server-side. Failed logins are counted in the database (per email and per
client address) under an advisory lock, so throttling holds across workers and instances.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from market import audit
from market.errors import Conflict, InvalidCredentials, NotFound, RuleViolation, Throttled
from market.parties import Actor, Org, Role, User
from market.tables import login_failures, orgs, sessions, users

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
_DUMMY_HASH = _hasher.hash("not-a-real-password-used-for-timing")
CREDIT_CODE = re.compile(r"^[0-9A-Z]{18}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class EmailTaken(Conflict):
    code = "email_taken"
    title = "A user with this email already exists"


class CreditCodeTaken(Conflict):
    code = "credit_code_taken"
    title = "An organisation with this unified social credit code already exists"


class WeakPassword(RuleViolation):
    code = "weak_password"
    title = "Password too weak"


class BadCreditCode(RuleViolation):
    code = "bad_credit_code"
    title = "Not a unified social credit code"


class OrgNotFound(NotFound):
    code = "org_not_found"
    title = "No such organisation"


class AlreadyVerified(Conflict):
    code = "already_verified"
    title = "Organisation already verified"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def validate_password(password: str) -> None:
    if len(password) < 10 or password.isdigit() or password.isalpha():
        raise WeakPassword("Use at least 10 characters mixing letters with digits or symbols")


def validate_credit_code(code: str) -> str:
    """Check the shape of an 18-character unified social credit code (GB 32100-2015).

    The check character is not enforced: registries hold legacy and re-issued codes
    whose check digit does not follow the formula, and refusing a bank's real
    counterparty would be worse than storing it. ``credit_code_checksum_ok`` reports it.
    """
    code = code.strip().upper()
    if not CREDIT_CODE.match(code):
        raise BadCreditCode(f"{code!r} is not an 18-character unified social credit code (digits and A-Z)")
    return code


def credit_code_checksum_ok(code: str) -> bool:
    """Whether the 18th character matches the GB 32100-2015 check formula."""
    return bool(re.match(r"^[0-9A-HJ-NPQRTUWXY]{18}$", code)) and _credit_code_checksum_ok(code)


_CC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def _credit_code_checksum_ok(code: str) -> bool:
    total = sum(_CC_ALPHABET.index(c) * w for c, w in zip(code[:17], _CC_WEIGHTS, strict=True))
    return _CC_ALPHABET[(31 - total % 31) % 31] == code[17]


def make_credit_code(seed: str) -> str:
    """A valid code derived from ``seed`` (for demos, imports and tests)."""
    digest = hashlib.sha256(seed.encode()).digest()
    body = (
        "91" + "".join(str(b % 10) for b in digest[:6]) + "".join(_CC_ALPHABET[b % 31] for b in digest[6:15])
    )
    total = sum(_CC_ALPHABET.index(c) * w for c, w in zip(body, _CC_WEIGHTS, strict=True))
    return body + _CC_ALPHABET[(31 - total % 31) % 31]


def _org(row: object) -> Org:
    m = row._mapping  # type: ignore[attr-defined]
    return Org(m["id"], m["name"], Role(m["kind"]), m["credit_code"], m["verified"])


async def create_org(
    conn: AsyncConnection,
    actor: Actor | None,
    *,
    name: str,
    kind: Role,
    credit_code: str,
    verified: bool = True,
) -> Org:
    code = validate_credit_code(credit_code)
    try:
        async with conn.begin_nested():
            row = (
                await conn.execute(
                    insert(orgs)
                    .values(
                        name=name.strip(),
                        kind=kind.value,
                        credit_code=code,
                        verified=verified,
                        verified_at=func.now() if verified else None,
                    )
                    .returning(orgs)
                )
            ).one()
    except IntegrityError as exc:
        raise CreditCodeTaken(f"Credit code {code} is already registered") from exc
    org = _org(row)
    await audit.record(
        conn,
        actor_user_id=actor.user_id if actor else None,
        actor_org_id=actor.org_id if actor else None,
        action="org.create",
        entity="org",
        entity_id=org.id,
        after={
            "name": org.name,
            "kind": org.kind.value,
            "credit_code": org.credit_code,
            "verified": verified,
        },
    )
    return org


async def get_org(conn: AsyncConnection, org_id: int) -> Org:
    row = (await conn.execute(select(orgs).where(orgs.c.id == org_id))).first()
    if row is None:
        raise OrgNotFound("No such organisation")
    return _org(row)


async def list_orgs(conn: AsyncConnection, kind: Role | None = None) -> list[Org]:
    q = select(orgs).order_by(orgs.c.id)
    if kind:
        q = q.where(orgs.c.kind == kind.value)
    return [_org(r) for r in (await conn.execute(q)).all()]


async def verify_org(conn: AsyncConnection, actor: Actor, org_id: int) -> Org:
    row = (await conn.execute(select(orgs).where(orgs.c.id == org_id).with_for_update())).first()
    if row is None:
        raise OrgNotFound("No such organisation")
    if row.verified:
        raise AlreadyVerified(f"Organisation {org_id} is already verified")
    await conn.execute(update(orgs).where(orgs.c.id == org_id).values(verified=True, verified_at=func.now()))
    await audit.record(
        conn,
        actor_user_id=actor.user_id,
        actor_org_id=actor.org_id,
        action="org.verify",
        entity="org",
        entity_id=org_id,
        before={"verified": False},
        after={"verified": True},
    )
    return await get_org(conn, org_id)


async def create_user(
    conn: AsyncConnection, actor: Actor | None, *, org_id: int, email: str, password: str
) -> User:
    """A user of ``org_id``; the role follows the organisation's kind."""
    org = await get_org(conn, org_id)
    email = email.strip().lower()
    validate_password(password)
    try:
        async with conn.begin_nested():
            row = (
                await conn.execute(
                    insert(users)
                    .values(
                        org_id=org.id, email=email, password_hash=hash_password(password), role=org.kind.value
                    )
                    .returning(users.c.id)
                )
            ).one()
    except IntegrityError as exc:
        raise EmailTaken(f"{email} is already registered") from exc
    user = User(row.id, org.id, email, org.kind)
    await audit.record(
        conn,
        actor_user_id=actor.user_id if actor else None,
        actor_org_id=actor.org_id if actor else None,
        action="user.create",
        entity="user",
        entity_id=user.id,
        after={"org_id": org.id, "email": email, "role": org.kind.value},
    )
    return user


async def signup_buyer(
    conn: AsyncConnection, *, org_name: str, credit_code: str, email: str, password: str
) -> User:
    """Public sign-up: a buyer organisation pending operator verification, and its first user."""
    validate_password(password)
    org = await create_org(
        conn, None, name=org_name, kind=Role.BUYER, credit_code=credit_code, verified=False
    )
    return await create_user(conn, None, org_id=org.id, email=email, password=password)


@dataclass(frozen=True, slots=True)
class Issued:
    token: str
    session_id: int
    user: User
    expires_at: datetime


async def _throttle_check(conn: AsyncConnection, keys: list[str], limit: int, window: int) -> None:
    for key in keys:
        await conn.execute(text("SELECT pg_advisory_xact_lock(7300003, hashtext(:k))"), {"k": key})
    for key in keys:
        row = (
            await conn.execute(
                select(func.count(), func.min(login_failures.c.at), func.now()).where(
                    login_failures.c.key == key,
                    login_failures.c.at > func.now() - timedelta(seconds=window),
                )
            )
        ).one()
        count, oldest, now = row
        if count >= limit:
            retry = max(1, math.ceil((oldest + timedelta(seconds=window) - now).total_seconds()))
            raise Throttled("Too many failed sign-in attempts; try again later", retry_after=retry)


async def record_login_failure(conn: AsyncConnection, keys: list[str]) -> None:
    await conn.execute(insert(login_failures), [{"key": k} for k in keys])


async def authenticate(
    conn: AsyncConnection, *, email: str, password: str, client: str, limit: int, window: int
) -> User:
    """Check credentials under the database-held throttle.

    Raises:
        Throttled: too many recent failures for this email or this client address.
        InvalidCredentials: unknown email, wrong password, or inactive user (one message for all).
    """
    email = email.strip().lower()
    keys = [f"email:{email}", f"ip:{client}"]
    await _throttle_check(conn, keys[:1], limit, window)
    await _throttle_check(conn, keys[1:], limit * 4, window)
    row = (await conn.execute(select(users).where(users.c.email == email))).first()
    ok = (
        check_password(row.password_hash if row else _DUMMY_HASH, password) and row is not None and row.active
    )
    if not ok or row is None:
        raise InvalidCredentials("Email or password is wrong")
    await conn.execute(delete(login_failures).where(login_failures.c.key == keys[0]))
    return User(row.id, row.org_id, row.email, Role(row.role))


async def issue_session(conn: AsyncConnection, user: User, *, kind: str, ttl_seconds: int) -> Issued:
    token = secrets.token_urlsafe(32)
    row = (
        await conn.execute(
            insert(sessions)
            .values(
                token_hash=token_digest(token),
                user_id=user.id,
                kind=kind,
                expires_at=func.now() + timedelta(seconds=ttl_seconds),
            )
            .returning(sessions.c.id, sessions.c.expires_at)
        )
    ).one()
    await audit.record(
        conn,
        actor_user_id=user.id,
        actor_org_id=user.org_id,
        action=f"session.open.{kind}",
        entity="session",
        entity_id=row.id,
        after={"kind": kind, "expires_at": row.expires_at},
    )
    return Issued(token, row.id, user, row.expires_at)


async def resolve_token(conn: AsyncConnection, token: str, *, kind: str | None = None) -> Actor | None:
    """The actor behind a live (unexpired, unrevoked) session or API token, or None."""
    if not token or len(token) > 200:
        return None
    q = (
        select(
            sessions.c.id,
            sessions.c.kind,
            users.c.id.label("uid"),
            users.c.org_id,
            users.c.role,
            users.c.email,
            orgs.c.verified,
        )
        .join(users, users.c.id == sessions.c.user_id)
        .join(orgs, orgs.c.id == users.c.org_id)
        .where(
            sessions.c.token_hash == token_digest(token),
            sessions.c.revoked_at.is_(None),
            sessions.c.expires_at > func.now(),
            users.c.active.is_(True),
        )
    )
    if kind:
        q = q.where(sessions.c.kind == kind)
    row = (await conn.execute(q)).first()
    if row is None:
        return None
    return Actor(row.uid, row.org_id, Role(row.role), row.email, bool(row.verified), row.id)


async def revoke_session(conn: AsyncConnection, actor: Actor) -> None:
    if actor.session_id is None:
        return
    await conn.execute(
        update(sessions)
        .where(sessions.c.id == actor.session_id, sessions.c.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )
    await audit.record(
        conn,
        actor_user_id=actor.user_id,
        actor_org_id=actor.org_id,
        action="session.revoke",
        entity="session",
        entity_id=actor.session_id,
    )


async def create_operator(
    conn: AsyncConnection, *, email: str, password: str, org_name: str = "Platform operator"
) -> User:
    """Bootstrap: the operator organisation (created once) and an operator user in it."""
    row = (await conn.execute(select(orgs.c.id).where(orgs.c.kind == "operator").order_by(orgs.c.id))).first()
    org_id = (
        row.id
        if row
        else (
            await create_org(
                conn, None, name=org_name, kind=Role.OPERATOR, credit_code=make_credit_code("operator")
            )
        ).id
    )
    return await create_user(conn, None, org_id=org_id, email=email, password=password)
