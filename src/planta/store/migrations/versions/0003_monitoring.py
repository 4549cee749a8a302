"""Monitoring: alerts, the streaks behind ``for N windows`` rules, alert actions (an outbox,
so no webhook, MQTT message or retrain is dropped), scheduled jobs, and leases.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("usecase", sa.String(100), nullable=False),
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("condition", sa.Text, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("open_key", sa.String(310)),
        sa.Column("first_seen", _TS, nullable=False),
        sa.Column("last_seen", _TS, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("acknowledged_by", sa.String(200)),
        sa.Column("acknowledged_at", _TS),
        sa.Column("acknowledged_reason", sa.Text),
        sa.Column("resolved_by", sa.String(200)),
        sa.Column("resolved_at", _TS),
        sa.Column("resolved_reason", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
        sa.UniqueConstraint("open_key", name="uq_alerts_open_key"),
        sa.CheckConstraint("state IN ('open', 'acknowledged', 'resolved')",
                           name="ck_alerts_state"),
    )
    op.create_index("ix_alerts_usecase_state", "alerts", ["usecase", "state"])
    op.create_index("ix_alerts_state_last_seen", "alerts", ["state", "last_seen"])
    op.create_table(
        "rule_states",
        sa.Column("usecase", sa.String(100), nullable=False),
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("true_streak", sa.Integer, nullable=False),
        sa.Column("false_streak", sa.Integer, nullable=False),
        sa.Column("last_result", sa.String(20), nullable=False),
        sa.Column("last_window", sa.String(100)),
        sa.Column("evaluated_at", _TS, nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("usecase", "rule", name="pk_rule_states"),
    )
    op.create_table(
        "alert_actions",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("alert_id", sa.String(26), nullable=False),
        sa.Column("usecase", sa.String(100), nullable=False),
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("event", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", _TS, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("finished_at", _TS),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("result", sa.JSON),
        sa.Column("last_error", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_alert_actions"),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"],
                                name="fk_alert_actions_alert_id_alerts"),
        sa.CheckConstraint("status IN ('pending', 'done', 'failed')",
                           name="ck_alert_actions_status"),
    )
    op.create_index("ix_alert_actions_status_next_attempt_at", "alert_actions",
                    ["status", "next_attempt_at"])
    op.create_index("ix_alert_actions_alert_id", "alert_actions", ["alert_id"])
    op.create_table(
        "scheduler_jobs",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("usecase", sa.String(100)),
        sa.Column("schedule", sa.String(100), nullable=False),
        sa.Column("lease_owner", sa.String(100)),
        sa.Column("lease_until", _TS),
        sa.Column("last_due", _TS),
        sa.Column("last_started_at", _TS),
        sa.Column("last_finished_at", _TS),
        sa.Column("last_status", sa.String(20)),
        sa.Column("last_error", sa.Text),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("retry_at", _TS),
        sa.Column("next_due", _TS),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_scheduler_jobs"),
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("holder", sa.String(100), nullable=False),
        sa.Column("acquired_at", _TS, nullable=False),
        sa.Column("until", _TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_leases"),
    )


def downgrade() -> None:
    for name in ("leases", "scheduler_jobs", "alert_actions", "rule_states", "alerts"):
        op.drop_table(name)
