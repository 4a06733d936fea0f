"""Tables of the operator console: instance presence, two-operator bid cancellations, and the
indexes the monitor's aggregates need on the auction tables (migration 0006)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from auctions.tables import auction_events, auction_registrations, auctions
from market.db import metadata

TS = DateTime(timezone=True)

instance_presence = Table(
    "instance_presence",
    metadata,
    Column("instance_id", Text, primary_key=True),
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("watchers", Integer, nullable=False, server_default="0"),
    Column("per_auction", JSONB, nullable=False, server_default="{}"),
    Column("started_at", TS, nullable=False),
    Column("seen_at", TS, nullable=False, server_default=func.now()),
    CheckConstraint("watchers >= 0", name="watchers_non_negative"),
)

bid_cancellations = Table(
    "bid_cancellations",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("auction_id", BigInteger, ForeignKey("auctions.id"), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),
    Column("requested_by", BigInteger, ForeignKey("users.id"), nullable=False),
    Column("requested_at", TS, nullable=False, server_default=func.now()),
    # the second operator's decision, approval or rejection (``status`` says which)
    Column("approved_by", BigInteger, ForeignKey("users.id")),
    Column("approved_at", TS),
    Column("status", String(16), nullable=False, server_default="pending"),
    CheckConstraint("status IN ('pending','approved','rejected')", name="status"),
    CheckConstraint("approved_by <> requested_by", name="second_operator"),
    CheckConstraint(
        "(status = 'pending') = (approved_by IS NULL AND approved_at IS NULL)", name="decided_by_someone"
    ),
    CheckConstraint("length(btrim(reason)) > 0", name="reason_required"),
    CheckConstraint("seq > 0", name="seq_positive"),
    Index("ix_bid_cancellations_auction_id", "auction_id"),
    Index(
        "uq_bid_cancellations_pending",
        "auction_id",
        "seq",
        unique=True,
        postgresql_where=text("status = 'pending'"),
    ),
)

# The monitor's aggregates: bids per minute, extended rounds, a bidder's history across auctions
# (registrations, and bids read from the index alone), recent closes.
ix_auction_events_bid_at = Index(
    "ix_auction_events_bid_at", auction_events.c.at, postgresql_where=text("type = 'bid'")
)
ix_auction_events_extended = Index(
    "ix_auction_events_extended", auction_events.c.auction_id, postgresql_where=text("type = 'extended'")
)
ix_auction_events_bid_cancelled = Index(
    "ix_auction_events_bid_cancelled",
    auction_events.c.auction_id,
    postgresql_where=text("type = 'bid_cancelled'"),
)
ix_auction_events_bidder = Index(
    "ix_auction_events_bidder",
    auction_events.c.bidder_org_id,
    auction_events.c.auction_id,
    postgresql_include=["type"],
    postgresql_where=text("bidder_org_id IS NOT NULL"),
)
ix_auction_registrations_bidder = Index(
    "ix_auction_registrations_bidder", auction_registrations.c.bidder_org_id
)
ix_auctions_closed_at = Index(
    "ix_auctions_closed_at", auctions.c.closed_at, postgresql_where=text("closed_at IS NOT NULL")
)
