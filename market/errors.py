"""Domain errors: conditions a user can cause, each with a stable machine-readable code.

Bugs are not ``MarketError``s. Five families decide the HTTP status in one place
(``web/errors.py``): ``NotFound`` 404, ``Forbidden`` 403, ``Unauthenticated`` 401,
``Conflict`` 409, ``RuleViolation`` 422 (plus ``Throttled`` 429).
Concrete errors live beside the rule they express and only set ``code`` and,
where useful, extra ``data`` fields that clients can read.
"""

from __future__ import annotations

from typing import Any, ClassVar


class MarketError(Exception):
    """A condition a user can cause. ``code`` is part of the public API."""

    code: ClassVar[str] = "market_error"
    title: ClassVar[str] = "Request refused"

    def __init__(self, detail: str = "", **data: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.data: dict[str, Any] = data


class NotFound(MarketError):
    code = "not_found"
    title = "Not found"


class Forbidden(MarketError):
    code = "forbidden"
    title = "Forbidden"


class Unauthenticated(MarketError):
    code = "unauthenticated"
    title = "Authentication required"


class Conflict(MarketError):
    code = "conflict"
    title = "Conflict with the current state"


class RuleViolation(MarketError):
    code = "rule_violation"
    title = "Rule violated"


class Throttled(MarketError):
    code = "throttled"
    title = "Too many attempts"

    def __init__(self, detail: str = "", *, retry_after: int, **data: Any) -> None:
        super().__init__(detail, retry_after=retry_after, **data)
        self.retry_after = retry_after


class ValidationFailed(RuleViolation):
    """Request body or parameters do not have the required shape."""

    code = "validation_failed"
    title = "Invalid request"

    def __init__(self, detail: str = "", *, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail or "The request is invalid", errors=errors or [])
        self.errors = errors or []


class NotIntegerFen(RuleViolation):
    code = "not_integer_fen"
    title = "Amounts must be integer fen"


class IdempotencyKeyReused(Conflict):
    code = "id_reused"
    title = "Idempotency key reused with a different request"


class InvalidCredentials(Unauthenticated):
    code = "invalid_credentials"
    title = "Email or password is wrong"


class CsrfFailed(Forbidden):
    code = "csrf_failed"
    title = "Form expired or was not sent by this site"


# Conditions shared by several packages (one class per code; the packages re-export them).


class BidderBarred(Forbidden):
    code = "bidder_barred"
    title = "This bidder defaulted on this lot and is barred from it"


class BuyerNotVerified(Forbidden):
    code = "buyer_not_verified"
    title = "Only verified buyers may do this; an operator must verify the organisation first"


class ReasonRequired(RuleViolation):
    code = "reason_required"
    title = "A reason is required"
