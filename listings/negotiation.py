"""Negotiation (对接洽谈): an offer thread between one buyer and the listing bank.

A buyer opens a thread with an offer. From then on the two sides alternate: the side that did
*not* make the current offer may counter it, accept it or reject it; the side that made it may
withdraw it. Every offer carries an expiry; once it passes, the offer can no longer be countered,
accepted, rejected or withdrawn, and ``expire_due`` closes the thread. Accepting yields the agreed
price. A closed thread (accepted, rejected, withdrawn, expired) refuses everything.

Pure state machine: a ``Thread`` in, a new ``Thread`` out, ``now`` passed in, amounts in integer
fen. Errors carry stable codes; a refused action changes nothing.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime

from market.errors import Conflict, Forbidden, NotIntegerFen, RuleViolation


class Side(enum.StrEnum):
    """The two parties of a negotiation."""

    BUYER = "buyer"
    BANK = "bank"

    @property
    def other(self) -> Side:
        """The opposite side."""
        return Side.BANK if self is Side.BUYER else Side.BUYER


class ThreadStatus(enum.StrEnum):
    """Open, or closed for one of four reasons."""

    OPEN = "open"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"


class NotYourTurn(Conflict):
    code = "not_your_turn"
    title = "Only the other side may answer this offer"


class NotYourOffer(Conflict):
    code = "not_your_offer"
    title = "Only the side that made an offer may withdraw it"


class OfferExpired(Conflict):
    code = "offer_expired"
    title = "The offer has expired"


class ThreadClosed(Conflict):
    code = "negotiation_closed"
    title = "The negotiation is closed"


class AmountNotPositive(RuleViolation):
    code = "offer_amount_invalid"
    title = "An offer must be a positive amount of fen"


class ExpiryInvalid(RuleViolation):
    code = "offer_expiry_invalid"
    title = "An offer must expire after it is made"


class NotAParty(Forbidden):
    code = "not_negotiation_party"
    title = "Only the buyer and the listing bank take part in this negotiation"


class OwnListing(Forbidden):
    code = "own_listing_offer"
    title = "A bank cannot make offers on its own listing"


@dataclass(frozen=True, slots=True)
class Offer:
    """One offer or counter-offer; ``seq`` starts at 1 and counts the thread's offers."""

    seq: int
    by: Side
    amount_fen: int
    made_at: datetime
    expires_at: datetime
    message: str = ""


@dataclass(frozen=True, slots=True)
class Thread:
    """A negotiation over one listing between one buyer organisation and the listing bank."""

    listing_id: int
    buyer_org_id: int
    bank_org_id: int
    offers: tuple[Offer, ...]
    status: ThreadStatus = ThreadStatus.OPEN
    closed_at: datetime | None = None
    closed_by: Side | None = None
    agreed_price_fen: int | None = None

    @property
    def current(self) -> Offer:
        """The offer on the table (the latest one)."""
        return self.offers[-1]

    @property
    def is_open(self) -> bool:
        """Whether anything can still happen."""
        return self.status is ThreadStatus.OPEN

    @property
    def turn(self) -> Side | None:
        """The side that may answer the current offer, or ``None`` once closed."""
        return self.current.by.other if self.is_open else None


def _check_amount(amount_fen: int) -> None:
    if not isinstance(amount_fen, int) or isinstance(amount_fen, bool):
        raise NotIntegerFen("amount_fen must be an integer number of fen", field="amount_fen")
    if amount_fen <= 0:
        raise AmountNotPositive(amount_fen=amount_fen)


def _check_expiry(now: datetime, expires_at: datetime) -> None:
    if expires_at <= now:
        raise ExpiryInvalid(expires_at=expires_at.isoformat(), now=now.isoformat())


def _side(by: Side | str) -> Side:
    try:
        return Side(by)
    except ValueError:
        raise NotAParty(f"Unknown side {by!r}") from None


def is_expired(thread: Thread, now: datetime) -> bool:
    """Whether the current offer of an open thread has passed its expiry (expiry is exclusive)."""
    return thread.is_open and now >= thread.current.expires_at


def _check_open(thread: Thread, now: datetime) -> None:
    if not thread.is_open:
        raise ThreadClosed(f"The negotiation is {thread.status}", status=str(thread.status))
    if is_expired(thread, now):
        raise OfferExpired(expires_at=thread.current.expires_at.isoformat())


def _check_answerer(thread: Thread, by: Side) -> None:
    if by is thread.current.by:
        raise NotYourTurn(turn=str(thread.current.by.other))


def _close(thread: Thread, status: ThreadStatus, by: Side | None, at: datetime) -> Thread:
    return replace(thread, status=status, closed_by=by, closed_at=at)


def side_of(thread: Thread, org_id: int) -> Side:
    """Which side ``org_id`` is on.

    Raises:
        NotAParty: the organisation is neither the thread's buyer nor the listing bank.
    """
    if org_id == thread.buyer_org_id:
        return Side.BUYER
    if org_id == thread.bank_org_id:
        return Side.BANK
    raise NotAParty()


def offer(
    *,
    listing_id: int,
    buyer_org_id: int,
    bank_org_id: int,
    amount_fen: int,
    now: datetime,
    expires_at: datetime,
    message: str = "",
) -> Thread:
    """Open a thread with the buyer's first offer.

    Raises:
        OwnListing: the buyer is the listing bank itself.
        NotIntegerFen: the amount is not an integer.
        AmountNotPositive: the amount is zero or negative.
        ExpiryInvalid: ``expires_at`` is not after ``now``.
    """
    if buyer_org_id == bank_org_id:
        raise OwnListing()
    _check_amount(amount_fen)
    _check_expiry(now, expires_at)
    first = Offer(1, Side.BUYER, amount_fen, now, expires_at, message)
    return Thread(listing_id, buyer_org_id, bank_org_id, (first,))


def counter(
    thread: Thread,
    by: Side | str,
    amount_fen: int,
    *,
    now: datetime,
    expires_at: datetime,
    message: str = "",
) -> Thread:
    """Answer the current offer with a new one from the other side; it replaces the old one.

    Raises:
        NotAParty: ``by`` is not a side.
        ThreadClosed: the thread is no longer open.
        OfferExpired: the current offer has expired.
        NotYourTurn: ``by`` made the current offer.
        NotIntegerFen: the amount is not an integer.
        AmountNotPositive: the amount is zero or negative.
        ExpiryInvalid: ``expires_at`` is not after ``now``.
    """
    side = _side(by)
    _check_open(thread, now)
    _check_answerer(thread, side)
    _check_amount(amount_fen)
    _check_expiry(now, expires_at)
    new = Offer(len(thread.offers) + 1, side, amount_fen, now, expires_at, message)
    return replace(thread, offers=(*thread.offers, new))


def accept(thread: Thread, by: Side | str, *, now: datetime) -> tuple[Thread, int]:
    """Accept the current offer; returns the closed thread and the agreed price in fen.

    Raises:
        NotAParty: ``by`` is not a side.
        ThreadClosed: the thread is no longer open.
        OfferExpired: the current offer has expired.
        NotYourTurn: ``by`` made the current offer.
    """
    side = _side(by)
    _check_open(thread, now)
    _check_answerer(thread, side)
    price = thread.current.amount_fen
    closed = replace(_close(thread, ThreadStatus.ACCEPTED, side, now), agreed_price_fen=price)
    return closed, price


def reject(thread: Thread, by: Side | str, *, now: datetime) -> Thread:
    """Reject the current offer and close the thread.

    Raises:
        NotAParty: ``by`` is not a side.
        ThreadClosed: the thread is no longer open.
        OfferExpired: the current offer has expired.
        NotYourTurn: ``by`` made the current offer.
    """
    side = _side(by)
    _check_open(thread, now)
    _check_answerer(thread, side)
    return _close(thread, ThreadStatus.REJECTED, side, now)


def withdraw(thread: Thread, by: Side | str, *, now: datetime) -> Thread:
    """Withdraw one's own current offer and close the thread.

    Raises:
        NotAParty: ``by`` is not a side.
        ThreadClosed: the thread is no longer open.
        OfferExpired: the current offer has expired (it lapsed on its own).
        NotYourOffer: ``by`` did not make the current offer.
    """
    side = _side(by)
    _check_open(thread, now)
    if side is not thread.current.by:
        raise NotYourOffer(turn=str(thread.current.by.other))
    return _close(thread, ThreadStatus.WITHDRAWN, side, now)


def expire_due(thread: Thread, now: datetime) -> Thread:
    """Close an open thread whose current offer has expired; otherwise return it unchanged.

    Idempotent; ``closed_at`` is the offer's expiry, not ``now``.

    Raises:
        Nothing.
    """
    if not is_expired(thread, now):
        return thread
    return _close(thread, ThreadStatus.EXPIRED, None, thread.current.expires_at)
