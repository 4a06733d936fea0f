"""Tables of live auctions: the auction row (the lock), its append-only events, registrations."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from market.db import metadata

TS = DateTime(timezone=True)

auctions = Table(
    "auctions",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("listing_id", BigInteger, ForeignKey("listings.id"), nullable=False),
    Column("bank_org_id", BigInteger, ForeignKey("orgs.id"), nullable=False),
    Column("round_no", Integer, nullable=False),
    Column("kind", String(24), nullable=False),
    Column("terms", JSONB, nullable=False),
    Column("state", JSONB, nullable=False),
    Column("status", String(16), nullable=False),
    Column("ends_at", TS, nullable=False),
    Column("seq", BigInteger, nullable=False, server_default="0"),
    Column("next_step", JSONB),
    Column("created_at", TS, nullable=False, server_default=func.now()),
    Column("closed_at", TS),
    CheckConstraint(
        "status IN ('scheduled','live','suspended','closed','failed','cancelled')", name="status"
    ),
    CheckConstraint("kind IN ('auction','fixed_price_sale')", name="kind"),
    CheckConstraint("seq >= 0", name="seq_non_negative"),
    UniqueConstraint("listing_id", "round_no", name="uq_auctions_listing_id_round_no"),
    Index(
        "ix_auctions_due",
        "ends_at",
        postgresql_where=text("status IN ('scheduled','live')"),
    ),
    Index("ix_auctions_status", "status"),
)

auction_events = Table(
    "auction_events",
    metadata,
    Column("auction_id", BigInteger, ForeignKey("auctions.id"), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("type", String(24), nullable=False),
    Column("at", TS, nullable=False),
    Column("record", JSONB, nullable=False),
    Column("public", JSONB, nullable=False),
    Column("bidder_org_id", BigInteger),
    Column("amount_fen", BigInteger),
    Column("recorded_at", TS, nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("auction_id", "seq", name="pk_auction_events"),
    CheckConstraint("seq > 0", name="seq_positive"),
)

auction_registrations = Table(
    "auction_registrations",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("auction_id", BigInteger, ForeignKey("auctions.id"), nullable=False),
    Column("bidder_org_id", BigInteger, ForeignKey("orgs.id"), nullable=False),
    Column("user_id", BigInteger, ForeignKey("users.id"), nullable=False),
    Column("paddle_no", String(16), nullable=False),
    Column("deposit_fen", BigInteger, nullable=False),
    Column("deposit_status", String(16), nullable=False, server_default="held"),
    Column("priority_rank", Integer),
    Column("created_at", TS, nullable=False, server_default=func.now()),
    Column("resolved_at", TS),
    CheckConstraint("deposit_status IN ('held','released','applied','forfeited')", name="deposit_status"),
    CheckConstraint("deposit_fen >= 0", name="deposit_non_negative"),
    UniqueConstraint("auction_id", "bidder_org_id", name="uq_auction_registrations_auction_id_bidder_org_id"),
    UniqueConstraint("auction_id", "paddle_no", name="uq_auction_registrations_auction_id_paddle_no"),
)
