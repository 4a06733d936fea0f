"""Request and response bodies (syntax only; rules live in the domain packages)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Email = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
    ),
]
Password = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
CreditCode = Annotated[str, StringConstraints(strip_whitespace=True, min_length=18, max_length=18)]
Id = Annotated[int, Field(strict=True, ge=1, le=2**63 - 1)]


class Body(BaseModel):
    """Base of every request body: unknown fields refused, no type coercion."""

    model_config = ConfigDict(extra="forbid", strict=True)


class SessionIn(Body):
    email: Email
    password: Password


class UserOut(BaseModel):
    id: int
    org_id: int
    role: Literal["operator", "bank", "buyer"]
    email: str | None = None


class SessionOut(BaseModel):
    token: str
    user: UserOut
    expires_at: datetime


class OrgIn(Body):
    name: Name
    kind: Literal["bank", "buyer"]
    credit_code: CreditCode


class OrgOut(BaseModel):
    id: int
    name: str
    kind: Literal["operator", "bank", "buyer"]
    credit_code: str
    verified: bool


class OrgList(BaseModel):
    items: list[OrgOut]


class UserIn(Body):
    org_id: Id
    email: Email
    password: Password


class SignupIn(Body):
    org_name: Name
    credit_code: CreditCode
    email: Email
    password: Password


class SignupOut(BaseModel):
    org: OrgOut
    user: UserOut


class AuditEntryOut(BaseModel):
    seq: int
    at: datetime
    actor_user_id: int | None
    actor_org_id: int | None
    action: str
    entity: str
    entity_id: str
    before: dict[str, object] | None
    after: dict[str, object] | None
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    items: list[AuditEntryOut]


class AuditVerifyOut(BaseModel):
    ok: bool
    entries: int
    first_broken_seq: int | None = None
    reason: str | None = None


class AuditQuery(Body):
    model_config = ConfigDict(extra="forbid", strict=False)
    entity: Annotated[str, StringConstraints(max_length=50)] | None = None
    id: Annotated[str, StringConstraints(max_length=100)] | None = None
    actor: Annotated[int, Field(ge=1, le=2**63 - 1)] | None = None
    before: Annotated[int, Field(ge=1, le=2**63 - 1)] | None = None
    limit: Annotated[int, Field(ge=1, le=500)] = 100


class Health(BaseModel):
    status: str
    detail: str | None = None
