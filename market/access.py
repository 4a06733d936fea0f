"""The one place that decides who may see or change an object.

Every query on organisation-owned data goes through ``scope_to_actor`` (for lists)
or ``check_owner`` (for one object). Another organisation's object answers
``NotFound`` (never reveal it exists), a wrong role ``Forbidden``, nobody ``Unauthenticated``.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select

from market.errors import Forbidden, NotFound, Unauthenticated
from market.parties import Actor, Role

S = TypeVar("S", bound=Select[Any])


def require_actor(actor: Actor | None) -> Actor:
    """The signed-in actor, or ``Unauthenticated``."""
    if actor is None:
        raise Unauthenticated("Sign in or send a bearer token")
    return actor


def require_role(actor: Actor | None, *roles: Role) -> Actor:
    """The actor, if its role is one of ``roles``; ``Unauthenticated`` / ``Forbidden`` otherwise."""
    who = require_actor(actor)
    if roles and who.role not in roles:
        raise Forbidden(f"This needs the {' or '.join(r.value for r in roles)} role")
    return who


def can_see(actor: Actor, owner_org_id: int | None) -> bool:
    """Operators see everything; everyone else only their own organisation's objects."""
    return actor.is_operator or (owner_org_id is not None and owner_org_id == actor.org_id)


def check_owner(
    actor: Actor, owner_org_id: int | None, what: str = "object", error: type[NotFound] = NotFound
) -> None:
    """Raise ``error`` unless ``actor`` may see an object owned by ``owner_org_id``.

    Callers pass the same error class they raise for a missing object, so "not yours" and
    "does not exist" answer identically (code and detail): existence never leaks.
    """
    if not can_see(actor, owner_org_id):
        raise error(f"No such {what}")


def scope_to_actor(query: S, owner_column: ColumnElement[Any], actor: Actor) -> S:
    """Restrict a list query to what ``actor`` may see."""
    if actor.is_operator:
        return query
    return query.where(owner_column == actor.org_id)
