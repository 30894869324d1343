"""The prediction and feedback store, against SQLite and a real PostgreSQL server."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect

from mushroom_common.storage import open_storage
from mushroom_common.store import (
    DatabaseUrlError,
    FeedbackRecord,
    MissingPredictionError,
    PredictionRecord,
    PredictionStore,
    StoreSchemaError,
    StoreUnavailableError,
    redact,
    resolve_database_url,
)
from mushroom_common.store.models import Base
from mushroom_common.store.settings import StoreSettings, normalise_url
from mushroom_common.store.store import SCHEMA_REVISION, head_revision


def _prediction(request_id: str, created_at: datetime | None = None) -> PredictionRecord:
    return PredictionRecord(
        request_id=request_id,
        created_at=created_at or datetime.now(UTC),
        photo_sha256="ab" * 32,
        model_name="mushroom",
        model_version="1",
        verdict="dangerous",
        top_species="amanita_muscaria",
        top_probability=0.93,
        mushroom_score=0.8,
    )


def _feedback(
    feedback_id: str, request_id: str, key: str = "k1", **update: object
) -> FeedbackRecord:
    record = FeedbackRecord(
        id=feedback_id,
        created_at=datetime.now(UTC),
        request_id=request_id,
        idempotency_key=key,
        correct=False,
        species="amanita_pantherina",
        comment=None,
        share_photo=True,
        photo_key=None,
    )
    return record.model_copy(update=update)


@pytest.fixture
def store(database_url: str) -> Iterator[PredictionStore]:
    opened = PredictionStore(database_url)
    opened.upgrade()
    yield opened
    opened.close()


def test_migrations_from_empty_create_the_models_tables(database_url: str) -> None:
    empty = PredictionStore(database_url)
    assert empty.revision() is None
    with pytest.raises(StoreSchemaError, match="mushroom-db upgrade"):
        empty.require_schema()
    assert empty.upgrade() == head_revision() == SCHEMA_REVISION, "the constant is Alembic's head"
    assert empty.upgrade() == head_revision(), "a second upgrade is a no-op"
    empty.require_schema()
    inspector = inspect(empty.engine)
    for table in Base.metadata.sorted_tables:
        columns = {c["name"] for c in inspector.get_columns(table.name)}
        assert columns == {c.name for c in table.columns}, table.name
    unique = inspector.get_unique_constraints("feedback")
    assert {tuple(u["column_names"]) for u in unique} == {("request_id", "idempotency_key")}
    empty.close()


def test_an_up_to_date_database_is_opened_without_alembic(database_url: str) -> None:
    PredictionStore(database_url).upgrade()
    # A fresh interpreter: this test process has imported Alembic already.
    probe = (
        "import sys\n"
        "from mushroom_common.store import PredictionStore\n"
        f"assert PredictionStore({database_url!r}).upgrade() == {SCHEMA_REVISION!r}\n"
        "print('alembic' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "False", result.stderr


def test_round_trip_keeps_time_zones_and_values(store: PredictionStore) -> None:
    now = datetime.now(UTC)
    prediction = _prediction("r1", now)
    assert store.add_predictions([prediction]) == 1
    assert store.add_predictions([prediction]) == 0, "a logged request id is left as it is"
    assert store.get_prediction("r1") == prediction
    assert store.get_prediction("nope") is None
    assert store.predictions(since=now + timedelta(seconds=1)) == []
    assert store.predictions() == [prediction]
    feedback, created = store.add_feedback(_feedback("f1", "r1"))
    assert created
    updated = store.set_feedback_photo("f1", "feedback/photos/x.jpg")
    assert updated == feedback.model_copy(update={"photo_key": "feedback/photos/x.jpg"})
    assert store.get_feedback("f1") == updated
    assert [f.id for f in store.feedback()] == ["f1"]


def test_feedback_is_idempotent_per_request_and_key(store: PredictionStore) -> None:
    store.add_predictions([_prediction("r1")])
    first, created = store.add_feedback(_feedback("f1", "r1", "key-a"))
    replay, created_again = store.add_feedback(_feedback("f2", "r1", "key-a", correct=True))
    assert created
    assert not created_again
    assert replay == first, "a replay returns the stored record, not the new one"
    other, created_other = store.add_feedback(_feedback("f3", "r1", "key-b"))
    assert created_other
    assert other.id == "f3"
    assert [f.id for f in store.feedback()] == ["f1", "f3"]


def test_concurrent_replays_add_one_row(store: PredictionStore) -> None:
    store.add_predictions([_prediction("r1")])
    results: list[tuple[FeedbackRecord, bool]] = []
    barrier = threading.Barrier(6)

    def send(n: int) -> None:
        barrier.wait()
        results.append(store.add_feedback(_feedback(f"f{n}", "r1", "same-key")))

    threads = [threading.Thread(target=send, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(created for _, created in results) == 1
    assert len({record.id for record, _ in results}) == 1
    assert len(store.feedback()) == 1


def test_feedback_for_an_unknown_prediction_is_refused(store: PredictionStore) -> None:
    with pytest.raises(MissingPredictionError):
        store.add_feedback(_feedback("f1", "never-logged"))
    assert store.feedback() == []


def test_prune_deletes_old_predictions_with_their_feedback(store: PredictionStore) -> None:
    now = datetime.now(UTC)
    store.add_predictions([_prediction("old", now - timedelta(days=40)), _prediction("new", now)])
    store.add_feedback(_feedback("f-old", "old"))
    store.add_feedback(_feedback("f-new", "new"))
    store.heartbeat("writer-1")
    result = store.prune(30, now=now)
    assert (result.predictions, result.feedback) == (1, 1)
    assert [p.request_id for p in store.predictions()] == ["new"]
    assert [f.id for f in store.feedback()] == ["f-new"]
    assert store.prune(30, now=now).predictions == 0


def test_heartbeat_proves_writes(store: PredictionStore) -> None:
    store.heartbeat("writer-1")
    store.heartbeat("writer-1")
    assert store.count_predictions() == 0


def test_unreachable_postgres_is_unavailable_quickly() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = PredictionStore(f"postgresql://nobody@127.0.0.1:{port}/none", timeout_s=1)
    with pytest.raises(StoreUnavailableError):
        store.add_predictions([_prediction("r1")])
    with pytest.raises(StoreUnavailableError):
        store.heartbeat("w")


def test_url_setting_and_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MUSHROOM_DATABASE_URL", raising=False)
    storage = open_storage(str(tmp_path / "storage"))
    default = resolve_database_url(storage=storage)
    assert default == f"sqlite:///{(tmp_path / 'storage' / 'db' / 'mushroom.sqlite3').resolve()}"
    monkeypatch.setenv("MUSHROOM_DATABASE_URL", "postgresql://u:secret@db:5432/mushroom")
    assert resolve_database_url(storage=storage) == "postgresql+psycopg://u:secret@db:5432/mushroom"
    assert resolve_database_url("sqlite:///x.db", storage=storage) == "sqlite:///x.db"
    assert StoreSettings().database_url == "postgresql://u:secret@db:5432/mushroom"
    assert "secret" not in redact(resolve_database_url(storage=storage))
    assert normalise_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    with pytest.raises(DatabaseUrlError, match="sqlite:/// or postgresql://"):
        normalise_url("mysql://u@h/d")
    with pytest.raises(DatabaseUrlError, match="not a database URL"):
        normalise_url("not a url")


def test_cli_upgrades_and_prunes_and_says_how_many(database_url: str) -> None:
    from typer.testing import CliRunner

    from mushroom_common.store.cli import app

    runner = CliRunner()
    upgraded = runner.invoke(app, ["upgrade", "--database-url", database_url])
    assert upgraded.exit_code == 0, upgraded.output
    assert f"database at migration {head_revision()}" in upgraded.output
    store = PredictionStore(database_url)
    now = datetime.now(UTC)
    store.add_predictions([_prediction("old", now - timedelta(days=100)), _prediction("new", now)])
    store.add_feedback(_feedback("f-old", "old"))
    store.close()
    pruned = runner.invoke(app, ["prune", "--days", "90", "--database-url", database_url])
    assert pruned.exit_code == 0, pruned.output
    assert "deleted 1 predictions and 1 feedback older than 90 days" in pruned.output
    refused = runner.invoke(app, ["prune", "--database-url", "mysql://u@h/d"])
    assert refused.exit_code == 2
