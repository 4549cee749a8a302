"""Edge devices: enrolled devices with their token and last heartbeat, and device groups
pinned to a model version.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("usecase", sa.String(100), nullable=False),
        sa.Column("device_group", sa.String(100)),
        sa.Column("token_id", sa.String(26), nullable=False),
        sa.Column("enrolled_by", sa.String(200), nullable=False),
        sa.Column("enrolled_at", _TS, nullable=False),
        sa.Column("revoked_by", sa.String(200)),
        sa.Column("revoked_at", _TS),
        sa.Column("last_seen_at", _TS),
        sa.Column("model_version", sa.Integer),
        sa.Column("model_digest", sa.String(64)),
        sa.Column("outbox_depth", sa.BigInteger),
        sa.Column("outbox_dropped", sa.BigInteger),
        sa.Column("received", sa.BigInteger, nullable=False),
        sa.Column("status", sa.JSON),
        sa.PrimaryKeyConstraint("name", name="pk_devices"),
    )
    op.create_index("ix_devices_token_id", "devices", ["token_id"])
    op.create_table(
        "device_pins",
        sa.Column("usecase", sa.String(100), nullable=False),
        sa.Column("device_group", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("set_by", sa.String(200), nullable=False),
        sa.Column("set_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("usecase", "device_group", name="pk_device_pins"),
    )


def downgrade() -> None:
    op.drop_table("device_pins")
    op.drop_index("ix_devices_token_id", table_name="devices")
    op.drop_table("devices")
