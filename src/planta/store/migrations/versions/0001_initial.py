"""The first schema: dataset and model versions, aliases, transitions, trials, batches, audit.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen copies of the types used in planta.store.metadata at this revision: a migration must
# not change when the application's table definitions move on.
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "dataset_versions",
        sa.Column("usecase", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("snapshot_digest", sa.String(64)),
        sa.Column("profile_digest", sa.String(64)),
        sa.Column("contract_digest", sa.String(64)),
        sa.Column("source_name", sa.String(500), nullable=False),
        sa.Column("source_hash", sa.String(64)),
        sa.Column("n_rows", sa.Integer, nullable=False),
        sa.Column("n_accepted", sa.Integer, nullable=False),
        sa.Column("n_rejected", sa.Integer, nullable=False),
        sa.Column("report", sa.JSON, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("usecase", "version", name="pk_dataset_versions"),
        sa.UniqueConstraint("usecase", "content_hash",
                            name="uq_dataset_versions_usecase_content_hash"),
    )
    op.create_table(
        "model_versions",
        sa.Column("usecase", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("bundle_digest", sa.String(64), nullable=False),
        sa.Column("bundle_size", sa.BigInteger, nullable=False),
        sa.Column("dataset_version", sa.Integer),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("gate", sa.JSON, nullable=False),
        sa.Column("trained_by", sa.String(200), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("summary", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("usecase", "version", name="pk_model_versions"),
        sa.CheckConstraint("state IN ('candidate', 'rejected', 'shadow', 'canary', "
                           "'production', 'archived')", name="ck_model_versions_state"),
        sa.ForeignKeyConstraint(
            ["usecase", "dataset_version"],
            ["dataset_versions.usecase", "dataset_versions.version"],
            name="fk_model_versions_usecase_dataset_version_dataset_versions"),
    )
    op.create_table(
        "aliases",
        sa.Column("usecase", sa.String(100), nullable=False),
        sa.Column("alias", sa.String(50), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("set_by", sa.String(200), nullable=False),
        sa.Column("set_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("usecase", "alias", name="pk_aliases"),
        sa.ForeignKeyConstraint(["usecase", "version"],
                                ["model_versions.usecase", "model_versions.version"],
                                name="fk_aliases_usecase_version_model_versions"),
    )
    op.create_table(
        "transitions",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("usecase", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("from_state", sa.String(20)),
        sa.Column("to_state", sa.String(20), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("exception", sa.Boolean, nullable=False),
        sa.Column("previous_version", sa.Integer),
        sa.Column("at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_transitions"),
        sa.ForeignKeyConstraint(["usecase", "version"],
                                ["model_versions.usecase", "model_versions.version"],
                                name="fk_transitions_usecase_version_model_versions"),
    )
    op.create_index("ix_transitions_usecase_version", "transitions", ["usecase", "version"])
    op.create_table(
        "trials",
        sa.Column("usecase", sa.String(100), nullable=False),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("n", sa.Integer, nullable=False),
        sa.Column("estimator", sa.String(100), nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("cv_scores", sa.JSON, nullable=False),
        sa.Column("score", sa.Float),
        sa.Column("duration_s", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("usecase", "model_version", "n", name="pk_trials"),
        sa.ForeignKeyConstraint(["usecase", "model_version"],
                                ["model_versions.usecase", "model_versions.version"],
                                name="fk_trials_usecase_model_version_model_versions"),
    )
    op.create_table(
        "batches",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("usecase", sa.String(100), nullable=False),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("input_name", sa.String(500), nullable=False),
        sa.Column("input_hash", sa.String(64)),
        sa.Column("n_rows", sa.Integer, nullable=False),
        sa.Column("n_ok", sa.Integer, nullable=False),
        sa.Column("n_rejected", sa.Integer, nullable=False),
        sa.Column("output_digest", sa.String(64)),
        sa.Column("output", sa.Text),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("duration_s", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_batches"),
        sa.ForeignKeyConstraint(["usecase", "model_version"],
                                ["model_versions.usecase", "model_versions.version"],
                                name="fk_batches_usecase_model_version_model_versions"),
    )
    op.create_index("ix_batches_usecase_created_at", "batches", ["usecase", "created_at"])
    op.create_table(
        "audit_events",
        sa.Column("seq", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("subject", sa.String(500), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_events"),
        sa.UniqueConstraint("id", name="uq_audit_events_id"),
        sa.UniqueConstraint("prev_hash", name="uq_audit_events_prev_hash"),
        sa.UniqueConstraint("hash", name="uq_audit_events_hash"),
    )


def downgrade() -> None:
    for name in ("audit_events", "batches", "trials", "transitions", "aliases",
                 "model_versions", "dataset_versions"):
        op.drop_table(name)
