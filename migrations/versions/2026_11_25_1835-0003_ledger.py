"""Ledger: accounts with guarded balances, immutable entries and lines, a deferred balance check.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 18:35:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ledger_accounts",
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("balance", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("may_go_negative", sa.Boolean(), nullable=False),
        sa.Column("ceiling", sa.BigInteger(), nullable=True),
        sa.Column("created_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("may_go_negative OR balance >= 0", name=op.f("ck_ledger_accounts_not_negative")),
        sa.CheckConstraint(
            "ceiling IS NULL OR balance <= ceiling", name=op.f("ck_ledger_accounts_within_ceiling")
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_ledger_accounts")),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("scope", sa.String(120), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("content", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("effective_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.Column("created_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.Column("reverses_entry_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["reverses_entry_id"],
            ["ledger_entries.id"],
            name=op.f("fk_ledger_entries_reverses_entry_id_ledger_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
        sa.UniqueConstraint("key", name=op.f("uq_ledger_entries_key")),
        sa.UniqueConstraint("reverses_entry_id", name=op.f("uq_ledger_entries_reverses_entry_id")),
    )
    op.create_index("ix_ledger_entries_scope", "ledger_entries", ["scope", "id"])
    op.create_table(
        "ledger_lines",
        sa.Column("entry_id", sa.BigInteger(), nullable=False),
        sa.Column("posting_no", sa.Integer(), nullable=False),
        sa.Column("side", sa.String(1), nullable=False),
        sa.Column("account", sa.String(120), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("memo", sa.Text(), server_default="", nullable=False),
        sa.CheckConstraint(
            "(side = 'D' AND amount_fen < 0) OR (side = 'C' AND amount_fen > 0)",
            name=op.f("ck_ledger_lines_side_sign"),
        ),
        sa.ForeignKeyConstraint(
            ["account"], ["ledger_accounts.name"], name=op.f("fk_ledger_lines_account_ledger_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["ledger_entries.id"], name=op.f("fk_ledger_lines_entry_id_ledger_entries")
        ),
        sa.PrimaryKeyConstraint("entry_id", "posting_no", "side", name=op.f("pk_ledger_lines")),
    )
    op.create_index("ix_ledger_lines_account", "ledger_lines", ["account", "entry_id"])
    # The journal is immutable: corrections are reversals.
    for table in ("ledger_entries", "ledger_lines"):
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION refuse_change()"
        )
    # Each line moves its account's balance; the account CHECKs then refuse overdrafts and overpayments.
    op.execute(
        """
        CREATE FUNCTION ledger_apply_line() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE ledger_accounts SET balance = balance + NEW.amount_fen WHERE name = NEW.account;
            RETURN NEW;
        END $$;
        """
    )
    op.execute(
        "CREATE TRIGGER ledger_lines_apply AFTER INSERT ON ledger_lines "
        "FOR EACH ROW EXECUTE FUNCTION ledger_apply_line()"
    )
    # Every entry balances: checked at COMMIT, so the lines of one entry may arrive in any order.
    op.execute(
        """
        CREATE FUNCTION ledger_check_entry_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE total bigint;
        BEGIN
            SELECT sum(amount_fen) INTO total FROM ledger_lines WHERE entry_id = NEW.entry_id;
            IF total <> 0 THEN
                RAISE EXCEPTION 'ledger entry % does not balance (sum %)', NEW.entry_id, total
                    USING ERRCODE = 'check_violation';
            END IF;
            RETURN NULL;
        END $$;
        """
    )
    op.execute(
        "CREATE CONSTRAINT TRIGGER ledger_lines_balanced AFTER INSERT ON ledger_lines "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_entry_balanced()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER ledger_lines_balanced ON ledger_lines")
    op.execute("DROP FUNCTION ledger_check_entry_balanced()")
    op.execute("DROP TRIGGER ledger_lines_apply ON ledger_lines")
    op.execute("DROP FUNCTION ledger_apply_line()")
    for table in ("ledger_entries", "ledger_lines"):
        op.execute(f"DROP TRIGGER {table}_no_truncate ON {table}")
        op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
    op.drop_index("ix_ledger_lines_account", table_name="ledger_lines")
    op.drop_table("ledger_lines")
    op.drop_index("ix_ledger_entries_scope", table_name="ledger_entries")
    op.drop_table("ledger_entries")
    op.drop_table("ledger_accounts")
