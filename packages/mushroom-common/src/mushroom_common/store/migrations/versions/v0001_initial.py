"""Predictions, feedback (idempotent per request and key) and writer heartbeats.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mushroom_common.store.models import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("photo_sha256", sa.String(64), nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(200), nullable=False),
        sa.Column("verdict", sa.String(32), nullable=False),
        sa.Column("top_species", sa.String(200), nullable=True),
        sa.Column("top_probability", sa.Float(), nullable=True),
        sa.Column("mushroom_score", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("request_id", name="pk_predictions"),
    )
    op.create_index("ix_predictions_created_at", "predictions", ["created_at"])
    op.create_table(
        "feedback",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=False),
        sa.Column("correct", sa.Boolean(), nullable=False),
        sa.Column("species", sa.String(200), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("share_photo", sa.Boolean(), nullable=False),
        sa.Column("photo_key", sa.String(300), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["predictions.request_id"],
            name="fk_feedback_request_id_predictions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_feedback"),
        sa.UniqueConstraint("request_id", "idempotency_key", name="uq_feedback_request_key"),
    )
    op.create_index("ix_feedback_created_at", "feedback", ["created_at"])
    op.create_index("ix_feedback_request_id", "feedback", ["request_id"])
    op.create_table(
        "store_heartbeats",
        sa.Column("writer_id", sa.String(64), nullable=False),
        sa.Column("beat_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("writer_id", name="pk_store_heartbeats"),
    )
    op.create_index("ix_store_heartbeats_beat_at", "store_heartbeats", ["beat_at"])


def downgrade() -> None:
    op.drop_table("store_heartbeats")
    op.drop_table("feedback")
    op.drop_table("predictions")
