"""Collateral and listings: claims, assets, pledges, listings, interests, notifications, offers, disposals.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 18:29:07.851457
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "assets",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("bank_org_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("registration_no", sa.String(length=64), nullable=False),
        sa.Column("title_zh", sa.Text(), server_default="", nullable=False),
        sa.Column("title_en", sa.Text(), server_default="", nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("pledgee_org_id", sa.BigInteger(), nullable=True),
        sa.Column("filed_on", sa.Date(), nullable=True),
        sa.Column("granted_on", sa.Date(), nullable=True),
        sa.Column("expires_on", sa.Date(), nullable=True),
        sa.Column("first_use_on", sa.Date(), nullable=True),
        sa.Column("created_on", sa.Date(), nullable=True),
        sa.Column("legal_status", sa.String(length=16), nullable=False),
        sa.Column("classes", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False),
        sa.Column("appraisal_fen", sa.BigInteger(), nullable=True),
        sa.Column("appraised_on", sa.Date(), nullable=True),
        sa.Column("appraiser", sa.String(length=200), server_default="", nullable=False),
        sa.Column("co_owners", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False),
        sa.Column("licenses", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False),
        sa.Column("annuity_paid_through", sa.Date(), nullable=True),
        sa.Column("preservation_order", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("ownership_dispute", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("similar_mark_group", sa.String(length=64), nullable=True),
        sa.Column("pledge_status", sa.String(length=24), server_default="active", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "pledge_status IN ('active','cancellation_pending','cancelled')",
            name=op.f("ck_assets_pledge_status"),
        ),
        sa.CheckConstraint(
            "appraisal_fen IS NULL OR appraisal_fen >= 0", name=op.f("ck_assets_appraisal_non_negative")
        ),
        sa.ForeignKeyConstraint(["bank_org_id"], ["orgs.id"], name=op.f("fk_assets_bank_org_id_orgs")),
        sa.ForeignKeyConstraint(["pledgee_org_id"], ["orgs.id"], name=op.f("fk_assets_pledgee_org_id_orgs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assets")),
        sa.UniqueConstraint(
            "bank_org_id", "kind", "registration_no", name="uq_assets_bank_org_id_kind_registration_no"
        ),
    )
    op.create_table(
        "buyer_interests",
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("kinds", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False),
        sa.Column("classes", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False),
        sa.Column("keywords", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], name=op.f("fk_buyer_interests_org_id_orgs")),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_buyer_interests")),
    )
    op.create_table(
        "claims",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("bank_org_id", sa.BigInteger(), nullable=False),
        sa.Column("loan_no", sa.String(length=64), nullable=False),
        sa.Column("borrower_name", sa.String(length=200), nullable=False),
        sa.Column("borrower_credit_code", sa.String(length=18), nullable=False),
        sa.Column("principal_fen", sa.BigInteger(), nullable=False),
        sa.Column("interest_fen", sa.BigInteger(), nullable=False),
        sa.Column("default_interest_fen", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("costs_fen", sa.BigInteger(), nullable=False),
        sa.Column("defaulted_on", sa.Date(), nullable=False),
        sa.Column("limitation_interrupted_on", sa.Date(), nullable=True),
        sa.Column("bucket_order", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("pool_code", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=24), server_default="open", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "status IN ('open','in_disposal','paid','finalized')", name=op.f("ck_claims_status")
        ),
        sa.CheckConstraint(
            "principal_fen >= 0 AND interest_fen >= 0 AND costs_fen >= 0 AND default_interest_fen >= 0",
            name=op.f("ck_claims_amounts_non_negative"),
        ),
        sa.ForeignKeyConstraint(["bank_org_id"], ["orgs.id"], name=op.f("fk_claims_bank_org_id_orgs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claims")),
        sa.UniqueConstraint("bank_org_id", "loan_no", name="uq_claims_bank_org_id_loan_no"),
    )
    op.create_table(
        "listings",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("bank_org_id", sa.BigInteger(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("title_en", sa.Text(), server_default="", nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("mode", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=24), server_default="draft", nullable=False),
        sa.Column("license_terms", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("backstop", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("asking_price_fen", sa.BigInteger(), nullable=True),
        sa.Column("appraisal_fen", sa.BigInteger(), nullable=True),
        sa.Column("remaining_term_months", sa.Integer(), nullable=True),
        sa.Column("kinds", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False),
        sa.Column("classes", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("withdrawal_reason", sa.String(length=32), nullable=True),
        sa.Column("withdrawal_note", sa.Text(), nullable=True),
        sa.Column("pledgor_opt_in", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("search_doc", postgresql.TSVECTOR(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "mode IN ('license','transfer','bundle','entrusted_acquisition')", name=op.f("ck_listings_mode")
        ),
        sa.CheckConstraint(
            "status IN ('draft','published','in_auction','in_negotiation','sold','failed','withdrawn')",
            name=op.f("ck_listings_status"),
        ),
        sa.CheckConstraint(
            "asking_price_fen IS NULL OR asking_price_fen > 0", name=op.f("ck_listings_asking_price_positive")
        ),
        sa.ForeignKeyConstraint(["bank_org_id"], ["orgs.id"], name=op.f("fk_listings_bank_org_id_orgs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_listings")),
    )
    op.create_index("ix_listings_bank_org_id", "listings", ["bank_org_id"], unique=False)
    op.create_index(
        "ix_listings_search_doc", "listings", ["search_doc"], unique=False, postgresql_using="gin"
    )
    op.create_index("ix_listings_status_published_at", "listings", ["status", "published_at"], unique=False)
    op.create_table(
        "disposals",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("listing_id", sa.BigInteger(), nullable=False),
        sa.Column("bank_org_id", sa.BigInteger(), nullable=False),
        sa.Column("buyer_org_id", sa.BigInteger(), nullable=True),
        sa.Column("source", sa.String(length=24), nullable=False),
        sa.Column("source_ref", sa.String(length=64), nullable=False),
        sa.Column("price_fen", sa.BigInteger(), nullable=False),
        sa.Column("stage", sa.String(length=24), server_default="awaiting_payment", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "source IN ('auction','negotiation','fixed_price','entrusted_acquisition')",
            name=op.f("ck_disposals_source"),
        ),
        sa.CheckConstraint("price_fen > 0", name=op.f("ck_disposals_price_positive")),
        sa.ForeignKeyConstraint(["bank_org_id"], ["orgs.id"], name=op.f("fk_disposals_bank_org_id_orgs")),
        sa.ForeignKeyConstraint(["buyer_org_id"], ["orgs.id"], name=op.f("fk_disposals_buyer_org_id_orgs")),
        sa.ForeignKeyConstraint(
            ["listing_id"], ["listings.id"], name=op.f("fk_disposals_listing_id_listings")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disposals")),
        sa.UniqueConstraint("source", "source_ref", name="uq_disposals_source_source_ref"),
    )
    op.create_index("ix_disposals_listing_id", "disposals", ["listing_id"], unique=False)
    op.create_table(
        "listing_assets",
        sa.Column("listing_id", sa.BigInteger(), nullable=False),
        sa.Column("asset_id", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["asset_id"], ["assets.id"], name=op.f("fk_listing_assets_asset_id_assets")),
        sa.ForeignKeyConstraint(
            ["listing_id"], ["listings.id"], name=op.f("fk_listing_assets_listing_id_listings")
        ),
        sa.PrimaryKeyConstraint("listing_id", "asset_id", name="pk_listing_assets"),
    )
    op.create_index("ix_listing_assets_asset_id", "listing_assets", ["asset_id"], unique=False)
    op.create_table(
        "notifications",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("org_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("listing_id", sa.BigInteger(), nullable=True),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["listing_id"], ["listings.id"], name=op.f("fk_notifications_listing_id_listings")
        ),
        sa.ForeignKeyConstraint(["org_id"], ["orgs.id"], name=op.f("fk_notifications_org_id_orgs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("org_id", "kind", "listing_id", name="uq_notifications_org_id_kind_listing_id"),
    )
    op.create_index(
        "ix_notifications_org_id_created_at", "notifications", ["org_id", "created_at"], unique=False
    )
    op.create_table(
        "offer_threads",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("listing_id", sa.BigInteger(), nullable=False),
        sa.Column("buyer_org_id", sa.BigInteger(), nullable=False),
        sa.Column("bank_org_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="open", nullable=False),
        sa.Column("agreed_price_fen", sa.BigInteger(), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.String(length=8), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "status IN ('open','accepted','rejected','withdrawn','expired')",
            name=op.f("ck_offer_threads_status"),
        ),
        sa.ForeignKeyConstraint(["bank_org_id"], ["orgs.id"], name=op.f("fk_offer_threads_bank_org_id_orgs")),
        sa.ForeignKeyConstraint(
            ["buyer_org_id"], ["orgs.id"], name=op.f("fk_offer_threads_buyer_org_id_orgs")
        ),
        sa.ForeignKeyConstraint(
            ["listing_id"], ["listings.id"], name=op.f("fk_offer_threads_listing_id_listings")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offer_threads")),
    )
    op.create_index("ix_offer_threads_buyer_org_id", "offer_threads", ["buyer_org_id"], unique=False)
    op.create_index("ix_offer_threads_listing_id", "offer_threads", ["listing_id"], unique=False)
    op.create_table(
        "pledges",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("claim_id", sa.BigInteger(), nullable=False),
        sa.Column("asset_id", sa.BigInteger(), nullable=False),
        sa.Column("declared_rank", sa.Integer(), nullable=True),
        sa.Column("registration_no", sa.String(length=64), nullable=True),
        sa.Column("registered_on", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["asset_id"], ["assets.id"], name=op.f("fk_pledges_asset_id_assets")),
        sa.ForeignKeyConstraint(["claim_id"], ["claims.id"], name=op.f("fk_pledges_claim_id_claims")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pledges")),
        sa.UniqueConstraint("claim_id", "asset_id", name="uq_pledges_claim_id_asset_id"),
    )
    op.create_index("ix_pledges_asset_id", "pledges", ["asset_id"], unique=False)
    op.create_table(
        "offers",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("thread_id", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("by_side", sa.String(length=8), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("message", sa.Text(), server_default="", nullable=False),
        sa.Column("made_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("by_side IN ('buyer','bank')", name=op.f("ck_offers_by_side")),
        sa.CheckConstraint("amount_fen > 0", name=op.f("ck_offers_amount_positive")),
        sa.ForeignKeyConstraint(
            ["thread_id"], ["offer_threads.id"], name=op.f("fk_offers_thread_id_offer_threads")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offers")),
        sa.UniqueConstraint("thread_id", "seq", name="uq_offers_thread_id_seq"),
    )


def downgrade() -> None:
    op.drop_table("offers")
    op.drop_index("ix_pledges_asset_id", table_name="pledges")
    op.drop_table("pledges")
    op.drop_index("ix_offer_threads_listing_id", table_name="offer_threads")
    op.drop_index("ix_offer_threads_buyer_org_id", table_name="offer_threads")
    op.drop_table("offer_threads")
    op.drop_index("ix_notifications_org_id_created_at", table_name="notifications")
    op.drop_table("notifications")
    op.drop_index("ix_listing_assets_asset_id", table_name="listing_assets")
    op.drop_table("listing_assets")
    op.drop_index("ix_disposals_listing_id", table_name="disposals")
    op.drop_table("disposals")
    op.drop_index("ix_listings_status_published_at", table_name="listings")
    op.drop_index("ix_listings_search_doc", table_name="listings", postgresql_using="gin")
    op.drop_index("ix_listings_bank_org_id", table_name="listings")
    op.drop_table("listings")
    op.drop_table("claims")
    op.drop_table("buyer_interests")
    op.drop_table("assets")
