"""Alembic migrations; ``market migrate`` applies them (see ``market.migrate``)."""
