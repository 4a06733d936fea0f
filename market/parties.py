"""Parties: organisations (bank, buyer, operator), their users, and who is acting."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    OPERATOR = "operator"
    BANK = "bank"
    BUYER = "buyer"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is making a request: a signed-in user of one organisation, with one role."""

    user_id: int
    org_id: int
    role: Role
    email: str
    org_verified: bool = True
    session_id: int | None = None

    @property
    def is_operator(self) -> bool:
        return self.role is Role.OPERATOR


@dataclass(frozen=True, slots=True)
class Org:
    id: int
    name: str
    kind: Role
    credit_code: str
    verified: bool


@dataclass(frozen=True, slots=True)
class User:
    id: int
    org_id: int
    email: str
    role: Role
