"""Core tables of the shared kernel: parties, sessions, throttling, idempotency, audit."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

from market.db import metadata

orgs = Table(
    "orgs",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("credit_code", String(18), nullable=False),
    Column("verified", Boolean, nullable=False, server_default="false"),
    Column("verified_at", DateTime(timezone=True)),
    Column("related_org_ids", JSONB, nullable=False, server_default="[]"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("kind IN ('bank','buyer','operator')", name="kind"),
    UniqueConstraint("credit_code", name="uq_orgs_credit_code"),
)

users = Table(
    "users",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("org_id", BigInteger, ForeignKey("orgs.id"), nullable=False, index=True),
    Column("email", String(254), nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("role", String(16), nullable=False),
    Column("active", Boolean, nullable=False, server_default="true"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("role IN ('bank','buyer','operator')", name="role"),
    CheckConstraint("email = lower(email)", name="email_lower"),
    UniqueConstraint("email", name="uq_users_email"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("token_hash", LargeBinary(32), nullable=False),
    Column("user_id", BigInteger, ForeignKey("users.id"), nullable=False, index=True),
    Column("kind", String(8), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
    CheckConstraint("kind IN ('cookie','bearer')", name="kind"),
    UniqueConstraint("token_hash", name="uq_sessions_token_hash"),
)

login_failures = Table(
    "login_failures",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("key", String(300), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_login_failures_key_at", "key", "at"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("scope", String(64), nullable=False),
    Column("key", String(200), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("scope", "key", name="uq_idempotency_keys_scope_key"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor_user_id", BigInteger),
    Column("actor_org_id", BigInteger),
    Column("action", String(100), nullable=False),
    Column("entity", String(50), nullable=False),
    Column("entity_id", String(100), nullable=False),
    Column("before", JSONB),
    Column("after", JSONB),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_log_entity", "entity", "entity_id"),
    Index("ix_audit_log_actor", "actor_user_id"),
    CheckConstraint("seq > 0", name="seq_positive"),
)
