"""API: sessions, organisations, users, sign-up and verification, the audit trail."""

from __future__ import annotations

from starlette.responses import Response

from market import audit, identity
from market.db import transaction
from market.errors import InvalidCredentials, Throttled
from market.metrics import LOGIN_FAILURES, LOGIN_THROTTLED
from market.parties import Org, Role, User
from web import schemas as s
from web.api import Call, api

OPERATOR = (Role.OPERATOR,)
ANYONE_SIGNED_IN: tuple[Role, ...] = ()


def org_out(org: Org) -> s.OrgOut:
    return s.OrgOut(
        id=org.id, name=org.name, kind=org.kind.value, credit_code=org.credit_code, verified=org.verified
    )


def user_out(user: User) -> s.UserOut:
    return s.UserOut(id=user.id, org_id=user.org_id, role=user.role.value, email=user.email)


def client_address(call: Call) -> str:
    return call.request.client.host if call.request.client else "unknown"


@api.operation(
    "POST",
    "/api/v1/session",
    summary="Sign in and get a bearer token",
    tag="parties",
    roles=None,
    body=s.SessionIn,
    response=s.SessionOut,
    status=201,
    transactional=False,
    extra_responses={401: "Wrong email or password", 429: "Too many failed attempts"},
)
async def create_session(call: Call) -> s.SessionOut:
    user = await login(call, call.body.email, call.body.password)
    async with transaction(call.engine) as conn:
        issued = await identity.issue_session(
            conn, user, kind="bearer", ttl_seconds=call.settings.token_ttl_seconds
        )
    return s.SessionOut(token=issued.token, user=user_out(user), expires_at=issued.expires_at)


async def login(call: Call, email: str, password: str) -> User:
    """Authenticate under the database throttle. A failure is recorded in the same transaction,
    under the same lock as the check, so a burst of guesses cannot slip past the limit."""
    settings = call.settings
    failed: InvalidCredentials | None = None
    try:
        async with transaction(call.engine) as conn:
            try:
                return await identity.authenticate(
                    conn,
                    email=email,
                    password=password,
                    client=client_address(call),
                    limit=settings.login_max_failures,
                    window=settings.login_window_seconds,
                )
            except InvalidCredentials as exc:
                await identity.record_login_failure(
                    conn, [f"email:{email.strip().lower()}", f"ip:{client_address(call)}"]
                )
                failed = exc
    except Throttled:
        LOGIN_THROTTLED.inc()
        raise
    LOGIN_FAILURES.inc()
    assert failed is not None
    raise failed


@api.operation(
    "DELETE",
    "/api/v1/session",
    summary="Revoke the current token",
    tag="parties",
    roles=ANYONE_SIGNED_IN,
    status=204,
)
async def delete_session(call: Call) -> Response:
    await identity.revoke_session(call.conn, call.need_actor())
    return Response(status_code=204)


@api.operation(
    "GET", "/api/v1/me", summary="Who am I", tag="parties", roles=ANYONE_SIGNED_IN, response=s.UserOut
)
async def me(call: Call) -> s.UserOut:
    actor = call.need_actor()
    return s.UserOut(id=actor.user_id, org_id=actor.org_id, role=actor.role.value, email=actor.email)


@api.operation(
    "POST",
    "/api/v1/orgs",
    summary="Create a bank or buyer organisation",
    tag="parties",
    roles=OPERATOR,
    body=s.OrgIn,
    response=s.OrgOut,
    status=201,
)
async def create_org(call: Call) -> s.OrgOut:
    b: s.OrgIn = call.body
    org = await identity.create_org(
        call.conn, call.actor, name=b.name, kind=Role(b.kind), credit_code=b.credit_code, verified=True
    )
    return org_out(org)


@api.operation(
    "GET", "/api/v1/orgs", summary="List organisations", tag="parties", roles=OPERATOR, response=s.OrgList
)
async def list_orgs(call: Call) -> s.OrgList:
    return s.OrgList(items=[org_out(o) for o in await identity.list_orgs(call.conn)])


@api.operation(
    "GET",
    "/api/v1/orgs/{org_id}",
    summary="One organisation (operators, or its own members)",
    tag="parties",
    roles=ANYONE_SIGNED_IN,
    response=s.OrgOut,
)
async def get_org(call: Call) -> s.OrgOut:
    from market.access import check_owner

    org_id = int(call.params["org_id"])
    check_owner(call.need_actor(), org_id, "organisation", identity.OrgNotFound)
    return org_out(await identity.get_org(call.conn, org_id))


@api.operation(
    "POST",
    "/api/v1/orgs/{org_id}/verify",
    summary="Verify a buyer organisation",
    tag="parties",
    roles=OPERATOR,
    response=s.OrgOut,
)
async def verify_org(call: Call) -> s.OrgOut:
    return org_out(await identity.verify_org(call.conn, call.need_actor(), int(call.params["org_id"])))


@api.operation(
    "POST",
    "/api/v1/users",
    summary="Create a user; the role follows the organisation's kind",
    tag="parties",
    roles=OPERATOR,
    body=s.UserIn,
    response=s.UserOut,
    status=201,
)
async def create_user(call: Call) -> s.UserOut:
    b: s.UserIn = call.body
    user = await identity.create_user(
        call.conn, call.actor, org_id=b.org_id, email=b.email, password=b.password
    )
    return user_out(user)


@api.operation(
    "POST",
    "/api/v1/signup",
    summary="Buyer sign-up (pending operator verification)",
    tag="parties",
    roles=None,
    body=s.SignupIn,
    response=s.SignupOut,
    status=201,
)
async def signup(call: Call) -> s.SignupOut:
    b: s.SignupIn = call.body
    user = await identity.signup_buyer(
        call.conn, org_name=b.org_name, credit_code=b.credit_code, email=b.email, password=b.password
    )
    org = await identity.get_org(call.conn, user.org_id)
    return s.SignupOut(org=org_out(org), user=user_out(user))


@api.operation(
    "GET",
    "/api/v1/audit",
    summary="The audit trail, newest first",
    tag="audit",
    roles=OPERATOR,
    query=s.AuditQuery,
    response=s.AuditPage,
)
async def list_audit(call: Call) -> s.AuditPage:
    q: s.AuditQuery = call.query
    rows = await audit.entries(
        call.conn, entity=q.entity, entity_id=q.id, actor_user_id=q.actor, limit=q.limit, before_seq=q.before
    )
    return s.AuditPage(items=[s.AuditEntryOut.model_validate(r, from_attributes=True) for r in rows])


@api.operation(
    "GET",
    "/api/v1/audit/verify",
    summary="Verify the hash chain",
    tag="audit",
    roles=OPERATOR,
    response=s.AuditVerifyOut,
)
async def verify_audit(call: Call) -> s.AuditVerifyOut:
    report = await audit.verify(call.conn)
    return s.AuditVerifyOut(
        ok=report.ok, entries=report.entries, first_broken_seq=report.first_broken_seq, reason=report.reason
    )
