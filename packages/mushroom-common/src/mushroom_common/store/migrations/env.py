"""Alembic environment: run by `PredictionStore.upgrade()` with an open connection (no alembic.ini).

A new revision: `uv run alembic -x url=sqlite:///tmp/x.db revision --autogenerate -m "..."` is not
wired up; write revisions by hand in versions/ (they are small) and run the store's test suite,
which applies every migration from empty on SQLite and PostgreSQL and compares with the models.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from mushroom_common.store.models import Base

# Any constant: API replicas starting together take turns migrating instead of racing.
_PG_MIGRATION_LOCK = 0x6D757368


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
            )
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through mushroom_common.store (mushroom-db upgrade)")
_run(connection)
