"""Feedback may land before its prediction: no foreign key from feedback to predictions.

A prediction is logged off the request path by the replica that answered it; feedback on a
signed request id may reach another replica first. The feedback row keeps its request_id (and its
index), and joins its prediction once that row lands; prune deletes both explicitly.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.drop_constraint("fk_feedback_request_id_predictions", type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.create_foreign_key(
            "fk_feedback_request_id_predictions",
            "predictions",
            ["request_id"],
            ["request_id"],
            ondelete="CASCADE",
        )
