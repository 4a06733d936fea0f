"""Tables of collateral and listings: claims, assets, pledges, listings, interests, offers, disposals."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR

from market.db import metadata

TS = DateTime(timezone=True)

claims = Table(
    "claims",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("bank_org_id", BigInteger, ForeignKey("orgs.id"), nullable=False),
    Column("loan_no", String(64), nullable=False),
    Column("borrower_name", String(200), nullable=False),
    Column("borrower_credit_code", String(18), nullable=False),
    Column("principal_fen", BigInteger, nullable=False),
    Column("interest_fen", BigInteger, nullable=False),
    Column("default_interest_fen", BigInteger, nullable=False, server_default="0"),
    Column("costs_fen", BigInteger, nullable=False),
    Column("defaulted_on", Date, nullable=False),
    Column("limitation_interrupted_on", Date),
    Column("bucket_order", JSONB),
    Column("pool_code", String(64)),
    Column("status", String(24), nullable=False, server_default="open"),
    Column("created_at", TS, nullable=False, server_default=func.now()),
    Column("updated_at", TS, nullable=False, server_default=func.now()),
    CheckConstraint(
        "principal_fen >= 0 AND interest_fen >= 0 AND costs_fen >= 0 AND default_interest_fen >= 0",
        name="amounts_non_negative",
    ),
    CheckConstraint("status IN ('open','in_disposal','paid','finalized')", name="status"),
    UniqueConstraint("bank_org_id", "loan_no", name="uq_claims_bank_org_id_loan_no"),
)

assets = Table(
    "assets",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("bank_org_id", BigInteger, ForeignKey("orgs.id"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("registration_no", String(64), nullable=False),
    Column("title_zh", Text, nullable=False, server_default=""),
    Column("title_en", Text, nullable=False, server_default=""),
    Column("description", Text, nullable=False, server_default=""),
    Column("holder", String(200), nullable=False),
    Column("pledgee_org_id", BigInteger, ForeignKey("orgs.id")),
    Column("filed_on", Date),
    Column("granted_on", Date),
    Column("expires_on", Date),
    Column("first_use_on", Date),
    Column("created_on", Date),
    Column("legal_status", String(16), nullable=False),
    Column("classes", JSONB, nullable=False, server_default="[]"),
    Column("appraisal_fen", BigInteger),
    Column("appraised_on", Date),
    Column("appraiser", String(200), nullable=False, server_default=""),
    Column("co_owners", JSONB, nullable=False, server_default="[]"),
    Column("licenses", JSONB, nullable=False, server_default="[]"),
    Column("annuity_paid_through", Date),
    Column("preservation_order", Boolean, nullable=False, server_default="false"),
    Column("ownership_dispute", Boolean, nullable=False, server_default="false"),
    Column("similar_mark_group", String(64)),
    Column("pledge_status", String(24), nullable=False, server_default="active"),
    Column("created_at", TS, nullable=False, server_default=func.now()),
    Column("updated_at", TS, nullable=False, server_default=func.now()),
    CheckConstraint("appraisal_fen IS NULL OR appraisal_fen >= 0", name="appraisal_non_negative"),
    CheckConstraint("pledge_status IN ('active','cancellation_pending','cancelled')", name="pledge_status"),
    UniqueConstraint(
        "bank_org_id", "kind", "registration_no", name="uq_assets_bank_org_id_kind_registration_no"
    ),
)

pledges = Table(
    "pledges",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("claim_id", BigInteger, ForeignKey("claims.id"), nullable=False),
    Column("asset_id", BigInteger, ForeignKey("assets.id"), nullable=False),
    Column("declared_rank", Integer),
    Column("registration_no", String(64)),
    Column("registered_on", Date),
    Column("created_at", TS, nullable=False, server_default=func.now()),
    UniqueConstraint("claim_id", "asset_id", name="uq_pledges_claim_id_asset_id"),
    Index("ix_pledges_asset_id", "asset_id"),
)

listings = Table(
    "listings",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("bank_org_id", BigInteger, ForeignKey("orgs.id"), nullable=False),
    Column("title", Text, nullable=False),
    Column("title_en", Text, nullable=False, server_default=""),
    Column("description", Text, nullable=False, server_default=""),
    Column("mode", String(32), nullable=False),
    Column("status", String(24), nullable=False, server_default="draft"),
    Column("license_terms", JSONB),
    Column("backstop", JSONB),
    Column("asking_price_fen", BigInteger),
    Column("appraisal_fen", BigInteger),
    Column("remaining_term_months", Integer),
    Column("kinds", JSONB, nullable=False, server_default="[]"),
    Column("classes", JSONB, nullable=False, server_default="[]"),
    Column("published_at", TS),
    Column("status_changed_at", TS),
    Column("withdrawal_reason", String(32)),
    Column("withdrawal_note", Text),
    Column("pledgor_opt_in", Boolean, nullable=False, server_default="false"),
    Column("search_doc", TSVECTOR),
    Column("created_at", TS, nullable=False, server_default=func.now()),
    Column("updated_at", TS, nullable=False, server_default=func.now()),
    CheckConstraint("mode IN ('license','transfer','bundle','entrusted_acquisition')", name="mode"),
    CheckConstraint(
        "status IN ('draft','published','in_auction','in_negotiation','sold','failed','withdrawn')",
        name="status",
    ),
    CheckConstraint("asking_price_fen IS NULL OR asking_price_fen > 0", name="asking_price_positive"),
    Index("ix_listings_search_doc", "search_doc", postgresql_using="gin"),
    Index("ix_listings_status_published_at", "status", "published_at"),
    Index("ix_listings_bank_org_id", "bank_org_id"),
)

listing_assets = Table(
    "listing_assets",
    metadata,
    Column("listing_id", BigInteger, ForeignKey("listings.id"), nullable=False),
    Column("asset_id", BigInteger, ForeignKey("assets.id"), nullable=False),
    Column("position", Integer, nullable=False),
    PrimaryKeyConstraint("listing_id", "asset_id", name="pk_listing_assets"),
    Index("ix_listing_assets_asset_id", "asset_id"),
)

buyer_interests = Table(
    "buyer_interests",
    metadata,
    Column("org_id", BigInteger, ForeignKey("orgs.id"), primary_key=True),
    Column("kinds", JSONB, nullable=False, server_default="[]"),
    Column("classes", JSONB, nullable=False, server_default="[]"),
    Column("keywords", JSONB, nullable=False, server_default="[]"),
    Column("updated_at", TS, nullable=False, server_default=func.now()),
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("org_id", BigInteger, ForeignKey("orgs.id"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("listing_id", BigInteger, ForeignKey("listings.id")),
    Column("payload", JSONB, nullable=False, server_default="{}"),
    Column("created_at", TS, nullable=False, server_default=func.now()),
    Column("read_at", TS),
    UniqueConstraint("org_id", "kind", "listing_id", name="uq_notifications_org_id_kind_listing_id"),
    Index("ix_notifications_org_id_created_at", "org_id", "created_at"),
)

offer_threads = Table(
    "offer_threads",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("listing_id", BigInteger, ForeignKey("listings.id"), nullable=False),
    Column("buyer_org_id", BigInteger, ForeignKey("orgs.id"), nullable=False),
    Column("bank_org_id", BigInteger, ForeignKey("orgs.id"), nullable=False),
    Column("status", String(16), nullable=False, server_default="open"),
    Column("agreed_price_fen", BigInteger),
    Column("closed_at", TS),
    Column("closed_by", String(8)),
    Column("created_at", TS, nullable=False, server_default=func.now()),
    CheckConstraint("status IN ('open','accepted','rejected','withdrawn','expired')", name="status"),
    Index("ix_offer_threads_listing_id", "listing_id"),
    Index("ix_offer_threads_buyer_org_id", "buyer_org_id"),
)

offers = Table(
    "offers",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("thread_id", BigInteger, ForeignKey("offer_threads.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("by_side", String(8), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("message", Text, nullable=False, server_default=""),
    Column("made_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
    CheckConstraint("amount_fen > 0", name="amount_positive"),
    CheckConstraint("by_side IN ('buyer','bank')", name="by_side"),
    UniqueConstraint("thread_id", "seq", name="uq_offers_thread_id_seq"),
)

disposals = Table(
    "disposals",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("listing_id", BigInteger, ForeignKey("listings.id"), nullable=False),
    Column("bank_org_id", BigInteger, ForeignKey("orgs.id"), nullable=False),
    Column("buyer_org_id", BigInteger, ForeignKey("orgs.id")),
    Column("source", String(24), nullable=False),
    Column("source_ref", String(64), nullable=False),
    Column("price_fen", BigInteger, nullable=False),
    Column("stage", String(24), nullable=False, server_default="awaiting_payment"),
    Column("balance_due_at", TS),
    Column("transfer_recorded_at", TS),
    Column("created_at", TS, nullable=False, server_default=func.now()),
    Column("updated_at", TS, nullable=False, server_default=func.now()),
    CheckConstraint("price_fen > 0", name="price_positive"),
    CheckConstraint(
        "stage IN ('awaiting_payment','in_escrow','settled','defaulted','licensed')", name="stage"
    ),
    CheckConstraint(
        "source IN ('auction','negotiation','fixed_price','entrusted_acquisition')", name="source"
    ),
    UniqueConstraint("source", "source_ref", name="uq_disposals_source_source_ref"),
    Index("ix_disposals_listing_id", "listing_id"),
)

settlement_lots = Table(
    "settlement_lots",
    metadata,
    Column("listing_id", BigInteger, ForeignKey("listings.id"), primary_key=True),
    Column("state", JSONB, nullable=False),
    Column("version", BigInteger, nullable=False, server_default="0"),
    Column("finalized_at", TS),
    Column("updated_at", TS, nullable=False, server_default=func.now()),
)

risk_pools = Table(
    "risk_pools",
    metadata,
    Column("code", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("share_bp", Integer, nullable=False),
    Column("per_loan_cap_fen", BigInteger),
    Column("per_enterprise_cap_fen", BigInteger),
    Column("created_at", TS, nullable=False, server_default=func.now()),
    CheckConstraint("share_bp BETWEEN 0 AND 10000", name="share_bp"),
    CheckConstraint("per_loan_cap_fen IS NULL OR per_loan_cap_fen >= 0", name="per_loan_cap"),
    CheckConstraint(
        "per_enterprise_cap_fen IS NULL OR per_enterprise_cap_fen >= 0", name="per_enterprise_cap"
    ),
)

pledge_tasks = Table(
    "pledge_tasks",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("bank_org_id", BigInteger, ForeignKey("orgs.id"), nullable=False),
    Column("disposal_id", BigInteger, ForeignKey("disposals.id"), nullable=False),
    Column("asset_id", BigInteger, ForeignKey("assets.id"), nullable=False),
    Column("claim_id", BigInteger, ForeignKey("claims.id"), nullable=False),
    Column("status", String(16), nullable=False, server_default="open"),
    Column("created_at", TS, nullable=False, server_default=func.now()),
    Column("done_at", TS),
    CheckConstraint("status IN ('open','done')", name="status"),
    UniqueConstraint(
        "disposal_id", "asset_id", "claim_id", name="uq_pledge_tasks_disposal_id_asset_id_claim_id"
    ),
)
