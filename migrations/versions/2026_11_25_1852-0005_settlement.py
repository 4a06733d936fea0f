"""Settlement: per-lot settlement state, risk pools, pledge-cancellation tasks, disposal stages.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 18:52:20.537926
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "risk_pools",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("share_bp", sa.Integer(), nullable=False),
        sa.Column("per_loan_cap_fen", sa.BigInteger(), nullable=True),
        sa.Column("per_enterprise_cap_fen", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "per_enterprise_cap_fen IS NULL OR per_enterprise_cap_fen >= 0",
            name=op.f("ck_risk_pools_per_enterprise_cap"),
        ),
        sa.CheckConstraint(
            "per_loan_cap_fen IS NULL OR per_loan_cap_fen >= 0", name=op.f("ck_risk_pools_per_loan_cap")
        ),
        sa.CheckConstraint("share_bp BETWEEN 0 AND 10000", name=op.f("ck_risk_pools_share_bp")),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_risk_pools")),
    )
    op.create_table(
        "settlement_lots",
        sa.Column("listing_id", sa.BigInteger(), nullable=False),
        sa.Column("state", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("version", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("finalized_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["listing_id"], ["listings.id"], name=op.f("fk_settlement_lots_listing_id_listings")
        ),
        sa.PrimaryKeyConstraint("listing_id", name=op.f("pk_settlement_lots")),
    )
    op.create_table(
        "pledge_tasks",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("bank_org_id", sa.BigInteger(), nullable=False),
        sa.Column("disposal_id", sa.BigInteger(), nullable=False),
        sa.Column("asset_id", sa.BigInteger(), nullable=False),
        sa.Column("claim_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="open", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('open','done')", name=op.f("ck_pledge_tasks_status")),
        sa.ForeignKeyConstraint(["asset_id"], ["assets.id"], name=op.f("fk_pledge_tasks_asset_id_assets")),
        sa.ForeignKeyConstraint(["bank_org_id"], ["orgs.id"], name=op.f("fk_pledge_tasks_bank_org_id_orgs")),
        sa.ForeignKeyConstraint(["claim_id"], ["claims.id"], name=op.f("fk_pledge_tasks_claim_id_claims")),
        sa.ForeignKeyConstraint(
            ["disposal_id"], ["disposals.id"], name=op.f("fk_pledge_tasks_disposal_id_disposals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pledge_tasks")),
        sa.UniqueConstraint(
            "disposal_id", "asset_id", "claim_id", name="uq_pledge_tasks_disposal_id_asset_id_claim_id"
        ),
    )
    op.add_column("disposals", sa.Column("balance_due_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("disposals", sa.Column("transfer_recorded_at", sa.DateTime(timezone=True), nullable=True))
    op.create_check_constraint(
        "ck_disposals_stage",
        "disposals",
        "stage IN ('awaiting_payment','in_escrow','settled','defaulted','licensed')",
    )


def downgrade() -> None:
    op.drop_constraint("ck_disposals_stage", "disposals", type_="check")
    op.drop_column("disposals", "transfer_recorded_at")
    op.drop_column("disposals", "balance_due_at")
    op.drop_table("pledge_tasks")
    op.drop_table("settlement_lots")
    op.drop_table("risk_pools")
