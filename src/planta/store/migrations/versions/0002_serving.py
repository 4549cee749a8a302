"""Serving: the prediction log, feedback, rejected requests, the job queue, API tokens, and
the canary share on aliases.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("aliases", sa.Column("share", sa.Float))
    op.create_table(
        "predictions",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("last_id", sa.String(26), nullable=False),
        sa.Column("n", sa.Integer, nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("usecase", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("route", sa.String(20), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("caller", sa.String(200), nullable=False),
        sa.Column("request_id", sa.String(64)),
        sa.Column("latency_ms", sa.Float),
        sa.Column("device", sa.String(100)),
        sa.Column("entities", sa.JSON),
        sa.Column("inputs", sa.Text, nullable=False),
        sa.Column("outputs", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_predictions"),
    )
    op.create_index("ix_predictions_usecase_at", "predictions", ["usecase", "at"])
    op.create_index("ix_predictions_at", "predictions", ["at"])
    op.create_index("ix_predictions_last_id", "predictions", ["last_id"])
    op.create_table(
        "feedback",
        sa.Column("usecase", sa.String(100), nullable=False),
        sa.Column("prediction_id", sa.String(26), nullable=False),
        sa.Column("value", sa.JSON, nullable=False),
        sa.Column("entity", sa.String(200)),
        sa.Column("event_time", _TS),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("received_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("usecase", "prediction_id", name="pk_feedback"),
    )
    op.create_index("ix_feedback_usecase_received_at", "feedback", ["usecase", "received_at"])
    op.create_table(
        "rejections",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("usecase", sa.String(100), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("caller", sa.String(200), nullable=False),
        sa.Column("n_records", sa.Integer, nullable=False),
        sa.Column("rules", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rejections"),
    )
    op.create_index("ix_rejections_usecase_at", "rejections", ["usecase", "at"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("usecase", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("caller", sa.String(200), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("started_at", _TS),
        sa.Column("finished_at", _TS),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("lease_owner", sa.String(100)),
        sa.Column("lease_until", _TS),
        sa.Column("input_digest", sa.String(64), nullable=False),
        sa.Column("input_name", sa.String(500), nullable=False),
        sa.Column("options", sa.JSON, nullable=False),
        sa.Column("result_digest", sa.String(64)),
        sa.Column("result_name", sa.String(500)),
        sa.Column("summary", sa.JSON),
        sa.Column("error", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed', 'cancelled')",
                           name="ck_jobs_status"),
    )
    op.create_index("ix_jobs_status_created_at", "jobs", ["status", "created_at"])
    op.create_index("ix_jobs_usecase_created_at", "jobs", ["usecase", "created_at"])
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("revoked_by", sa.String(200)),
        sa.Column("revoked_at", _TS),
        sa.Column("last_used_at", _TS),
        sa.PrimaryKeyConstraint("id", name="pk_tokens"),
        sa.UniqueConstraint("hash", name="uq_tokens_hash"),
        sa.CheckConstraint("role IN ('viewer', 'operator', 'approver', 'admin')",
                           name="ck_tokens_role"),
    )


def downgrade() -> None:
    for name in ("tokens", "jobs", "rejections", "feedback", "predictions"):
        op.drop_table(name)
    with op.batch_alter_table("aliases") as batch:
        batch.drop_column("share")
