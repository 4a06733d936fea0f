"""Auction events: what happened to one auction, in the order it happened.

Every change of an auction's state is one of these frozen values. ``auctions.rules`` produces
them; the persistence layer stores each as an ``auction_events`` row with a per-auction ``seq``
(events carry no ``seq``: the k-th event of a transition gets ``state.seq + k``, where ``state``
is the state before the transition), and the live hub pushes them to watchers.

Two shapes per event:

- ``to_dict()`` is the **public** feed shape (DOMAIN rule 14): bidders appear only by their paddle
  (竞买号); bidder ids and proxy maxima are left out. Callers add ``seq``.
- ``to_record()`` is the **full** shape for storage; ``event_from_record()`` reads it back, so
  ``rules.replay`` can rebuild the state, proxy maxima included.

Times are timezone-aware UTC datetimes, written as RFC 3339 strings.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

FailureReason = Literal["no_bids", "reserve_not_met"]

_TIME_FIELDS = frozenset({"at", "ends_at", "previous_ends_at", "starts_at"})
_TUPLE_FIELDS = frozenset({"cancelled_seqs"})


def rfc3339(moment: datetime) -> str:
    """``moment`` as an RFC 3339 string in UTC, e.g. ``2025-01-02T10:00:00+00:00``."""
    return moment.astimezone(UTC).isoformat()


@dataclass(frozen=True, kw_only=True)
class _AuctionEvent:
    type: ClassVar[str]
    #: Fields left out of the public feed shape.
    private: ClassVar[frozenset[str]] = frozenset()
    #: False for bookkeeping events the public feed need not show.
    public: ClassVar[bool] = True

    at: datetime

    def to_record(self) -> dict[str, Any]:
        """Every field, JSON-ready: the stored form, read back by ``event_from_record``."""
        record: dict[str, Any] = {"type": self.type}
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, datetime):
                value = rfc3339(value)
            elif isinstance(value, tuple):
                value = list(value)
            record[item.name] = value
        return record

    def to_dict(self) -> dict[str, Any]:
        """The public feed shape: no bidder ids, no proxy maxima."""
        return {key: value for key, value in self.to_record().items() if key not in self.private}


@dataclass(frozen=True, kw_only=True)
class BidPlaced(_AuctionEvent):
    """A bid was accepted and now leads. ``proxy`` marks a step the system made from a maximum.

    ``ends_at`` is the bidding end after this bid (anti-sniping applied). ``max_fen`` is the
    proxy maximum submitted with a manual bid (private).
    """

    type: ClassVar[str] = "bid"
    private: ClassVar[frozenset[str]] = frozenset({"bidder_id", "max_fen"})

    bidder_id: int
    paddle_no: str
    amount_fen: int
    ends_at: datetime
    proxy: bool = False
    priority_rank: int | None = None
    max_fen: int | None = None


@dataclass(frozen=True, kw_only=True)
class Extended(_AuctionEvent):
    """The bidding end moved (anti-sniping, or a fixed-price sale's first bid opening its window)."""

    type: ClassVar[str] = "extended"

    ends_at: datetime
    previous_ends_at: datetime


@dataclass(frozen=True, kw_only=True)
class MaxRaised(_AuctionEvent):
    """The leader raised (or set) his proxy maximum; no price moves, so the feed need not show it."""

    type: ClassVar[str] = "max_raised"
    private: ClassVar[frozenset[str]] = frozenset({"bidder_id", "paddle_no", "max_fen"})
    public: ClassVar[bool] = False

    bidder_id: int
    paddle_no: str
    max_fen: int


@dataclass(frozen=True, kw_only=True)
class Suspended(_AuctionEvent):
    """An operator (or a system fault) suspended bidding (暂缓); the reason is published."""

    type: ClassVar[str] = "suspended"

    reason: str
    remaining_seconds: int


@dataclass(frozen=True, kw_only=True)
class Resumed(_AuctionEvent):
    """Bidding resumed with the remaining time re-based on the resumption time."""

    type: ClassVar[str] = "resumed"

    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True, kw_only=True)
class Closed(_AuctionEvent):
    """Bidding ended with a winner at ``amount_fen`` (at or above the reserve)."""

    type: ClassVar[str] = "closed"
    private: ClassVar[frozenset[str]] = frozenset({"bidder_id"})

    bidder_id: int
    paddle_no: str
    amount_fen: int
    priority_rank: int | None = None


@dataclass(frozen=True, kw_only=True)
class Failed(_AuctionEvent):
    """Bidding ended without a sale (流拍): no bid, or the highest bid below the reserve."""

    type: ClassVar[str] = "failed"

    reason: FailureReason
    highest_fen: int | None = None


@dataclass(frozen=True, kw_only=True)
class Cancelled(_AuctionEvent):
    """An operator terminated the auction (中止); the reason is published."""

    type: ClassVar[str] = "cancelled"

    reason: str


@dataclass(frozen=True, kw_only=True)
class BidCancelled(_AuctionEvent):
    """Two operators cancelled the accepted bid ``cancelled_seq`` (e.g. shill bidding); the reason is
    published.

    ``cancelled_seqs`` is every event the cancellation voids: the bid and the automatic answers that
    followed it in the same transaction (its ``extended`` event and the proxy steps, with theirs).
    The bidder's standing proxy maximum is withdrawn with the bid. ``ends_at`` is the bidding end
    afterwards (never earlier than before). ``price_fen`` and ``leader_paddle`` tell watchers the
    outcome; ``rules.replay`` does not trust them but rebuilds the state from the other events.
    """

    type: ClassVar[str] = "bid_cancelled"
    private: ClassVar[frozenset[str]] = frozenset({"bidder_id"})

    cancelled_seq: int
    cancelled_seqs: tuple[int, ...]
    reason: str
    bidder_id: int
    paddle_no: str
    ends_at: datetime
    price_fen: int | None = None
    leader_paddle: str | None = None


Event = BidPlaced | Extended | MaxRaised | Suspended | Resumed | Closed | Failed | Cancelled | BidCancelled

EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (BidPlaced, Extended, MaxRaised, Suspended, Resumed, Closed, Failed, Cancelled, BidCancelled)
}


def event_from_record(record: dict[str, Any]) -> Event:
    """Read back an event stored with ``to_record()`` (a ``seq`` key, if present, is ignored).

    Raises:
        ValueError: for an unknown ``type``.
    """
    cls = EVENT_TYPES.get(record.get("type", ""))
    if cls is None:
        raise ValueError(f"unknown auction event type {record.get('type')!r}")
    names = {item.name for item in fields(cls)}
    values = {key: _field_value(key, value) for key, value in record.items() if key in names}
    return cls(**values)


def _field_value(name: str, value: Any) -> Any:
    if name in _TIME_FIELDS and isinstance(value, str):
        return datetime.fromisoformat(value)
    if name in _TUPLE_FIELDS and isinstance(value, list):
        return tuple(value)
    return value
