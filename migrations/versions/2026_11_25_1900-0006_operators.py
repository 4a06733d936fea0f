"""Operators: instance presence, two-operator bid cancellations, indexes for the live monitor.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 19:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "instance_presence",
        sa.Column("instance_id", sa.Text(), nullable=False),
        sa.Column("host", sa.Text(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("watchers", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "per_auction", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("watchers >= 0", name=op.f("ck_instance_presence_watchers_non_negative")),
        sa.PrimaryKeyConstraint("instance_id", name=op.f("pk_instance_presence")),
    )
    op.create_table(
        "bid_cancellations",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("auction_id", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.BigInteger(), nullable=False),
        sa.Column(
            "requested_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("approved_by", sa.BigInteger(), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.CheckConstraint(
            "status IN ('pending','approved','rejected')", name=op.f("ck_bid_cancellations_status")
        ),
        sa.CheckConstraint("approved_by <> requested_by", name=op.f("ck_bid_cancellations_second_operator")),
        sa.CheckConstraint(
            "(status = 'pending') = (approved_by IS NULL AND approved_at IS NULL)",
            name=op.f("ck_bid_cancellations_decided_by_someone"),
        ),
        sa.CheckConstraint("length(btrim(reason)) > 0", name=op.f("ck_bid_cancellations_reason_required")),
        sa.CheckConstraint("seq > 0", name=op.f("ck_bid_cancellations_seq_positive")),
        sa.ForeignKeyConstraint(
            ["auction_id"], ["auctions.id"], name=op.f("fk_bid_cancellations_auction_id_auctions")
        ),
        sa.ForeignKeyConstraint(
            ["requested_by"], ["users.id"], name=op.f("fk_bid_cancellations_requested_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["approved_by"], ["users.id"], name=op.f("fk_bid_cancellations_approved_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bid_cancellations")),
    )
    op.create_index("ix_bid_cancellations_auction_id", "bid_cancellations", ["auction_id"], unique=False)
    op.create_index(
        "uq_bid_cancellations_pending",
        "bid_cancellations",
        ["auction_id", "seq"],
        unique=True,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_auction_events_bid_at",
        "auction_events",
        ["at"],
        unique=False,
        postgresql_where=sa.text("type = 'bid'"),
    )
    op.create_index(
        "ix_auction_events_extended",
        "auction_events",
        ["auction_id"],
        unique=False,
        postgresql_where=sa.text("type = 'extended'"),
    )
    op.create_index(
        "ix_auction_events_bid_cancelled",
        "auction_events",
        ["auction_id"],
        unique=False,
        postgresql_where=sa.text("type = 'bid_cancelled'"),
    )
    op.create_index(
        "ix_auction_events_bidder",
        "auction_events",
        ["bidder_org_id", "auction_id"],
        unique=False,
        postgresql_include=["type"],
        postgresql_where=sa.text("bidder_org_id IS NOT NULL"),
    )
    op.create_index(
        "ix_auction_registrations_bidder", "auction_registrations", ["bidder_org_id"], unique=False
    )
    op.create_index(
        "ix_auctions_closed_at",
        "auctions",
        ["closed_at"],
        unique=False,
        postgresql_where=sa.text("closed_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_auctions_closed_at", table_name="auctions")
    op.drop_index("ix_auction_registrations_bidder", table_name="auction_registrations")
    op.drop_index("ix_auction_events_bidder", table_name="auction_events")
    op.drop_index("ix_auction_events_bid_cancelled", table_name="auction_events")
    op.drop_index("ix_auction_events_extended", table_name="auction_events")
    op.drop_index("ix_auction_events_bid_at", table_name="auction_events")
    op.drop_index("uq_bid_cancellations_pending", table_name="bid_cancellations")
    op.drop_index("ix_bid_cancellations_auction_id", table_name="bid_cancellations")
    op.drop_table("bid_cancellations")
    op.drop_table("instance_presence")
