"""Auctions: the auction row, its append-only event log, registrations with deposits.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 18:39:00.671647
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "auctions",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("listing_id", sa.BigInteger(), nullable=False),
        sa.Column("bank_org_id", sa.BigInteger(), nullable=False),
        sa.Column("round_no", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("terms", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("state", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seq", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("next_step", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('auction','fixed_price_sale')", name=op.f("ck_auctions_kind")),
        sa.CheckConstraint(
            "status IN ('scheduled','live','suspended','closed','failed','cancelled')",
            name=op.f("ck_auctions_status"),
        ),
        sa.CheckConstraint("seq >= 0", name=op.f("ck_auctions_seq_non_negative")),
        sa.ForeignKeyConstraint(["bank_org_id"], ["orgs.id"], name=op.f("fk_auctions_bank_org_id_orgs")),
        sa.ForeignKeyConstraint(
            ["listing_id"], ["listings.id"], name=op.f("fk_auctions_listing_id_listings")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auctions")),
        sa.UniqueConstraint("listing_id", "round_no", name="uq_auctions_listing_id_round_no"),
    )
    op.create_index(
        "ix_auctions_due",
        "auctions",
        ["ends_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('scheduled','live')"),
    )
    op.create_index("ix_auctions_status", "auctions", ["status"], unique=False)
    op.create_table(
        "auction_events",
        sa.Column("auction_id", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(length=24), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("record", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("public", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("bidder_org_id", sa.BigInteger(), nullable=True),
        sa.Column("amount_fen", sa.BigInteger(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("seq > 0", name=op.f("ck_auction_events_seq_positive")),
        sa.ForeignKeyConstraint(
            ["auction_id"], ["auctions.id"], name=op.f("fk_auction_events_auction_id_auctions")
        ),
        sa.PrimaryKeyConstraint("auction_id", "seq", name="pk_auction_events"),
    )
    op.create_table(
        "auction_registrations",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("auction_id", sa.BigInteger(), nullable=False),
        sa.Column("bidder_org_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("paddle_no", sa.String(length=16), nullable=False),
        sa.Column("deposit_fen", sa.BigInteger(), nullable=False),
        sa.Column("deposit_status", sa.String(length=16), server_default="held", nullable=False),
        sa.Column("priority_rank", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "deposit_status IN ('held','released','applied','forfeited')",
            name=op.f("ck_auction_registrations_deposit_status"),
        ),
        sa.CheckConstraint("deposit_fen >= 0", name=op.f("ck_auction_registrations_deposit_non_negative")),
        sa.ForeignKeyConstraint(
            ["auction_id"], ["auctions.id"], name=op.f("fk_auction_registrations_auction_id_auctions")
        ),
        sa.ForeignKeyConstraint(
            ["bidder_org_id"], ["orgs.id"], name=op.f("fk_auction_registrations_bidder_org_id_orgs")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_auction_registrations_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auction_registrations")),
        sa.UniqueConstraint(
            "auction_id", "bidder_org_id", name="uq_auction_registrations_auction_id_bidder_org_id"
        ),
        sa.UniqueConstraint("auction_id", "paddle_no", name="uq_auction_registrations_auction_id_paddle_no"),
    )
    # Auction records are kept, never rewritten (rule 32).
    op.execute(
        "CREATE TRIGGER auction_events_append_only BEFORE UPDATE OR DELETE ON auction_events "
        "FOR EACH ROW EXECUTE FUNCTION refuse_change()"
    )
    op.execute(
        "CREATE TRIGGER auction_events_no_truncate BEFORE TRUNCATE ON auction_events "
        "FOR EACH STATEMENT EXECUTE FUNCTION refuse_change()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER auction_events_no_truncate ON auction_events")
    op.execute("DROP TRIGGER auction_events_append_only ON auction_events")
    op.drop_table("auction_registrations")
    op.drop_table("auction_events")
    op.drop_index("ix_auctions_status", table_name="auctions")
    op.drop_index(
        "ix_auctions_due", table_name="auctions", postgresql_where=sa.text("status IN ('scheduled','live')")
    )
    op.drop_table("auctions")
