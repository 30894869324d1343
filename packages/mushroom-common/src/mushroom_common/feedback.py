"""Feedback and prediction log: written by the API, read by the collector and drift monitoring.

A SQLite file (by default `<local storage root>/feedback/feedback.sqlite3`). Shared photos are
stored through `Storage` under `feedback/photos/<sha256>.jpg`.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict

FEEDBACK_PHOTOS_PREFIX = "feedback/photos"
DEFAULT_DB_NAME = "feedback/feedback.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    request_id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    photo_sha256 TEXT NOT NULL,
    model_name TEXT NOT NULL,
    model_version TEXT NOT NULL,
    verdict TEXT NOT NULL,
    top_species TEXT,
    top_probability REAL,
    mushroom_score REAL
);
CREATE INDEX IF NOT EXISTS predictions_created_at ON predictions (created_at);
CREATE TABLE IF NOT EXISTS feedback (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    request_id TEXT NOT NULL REFERENCES predictions (request_id),
    correct INTEGER NOT NULL,
    species TEXT,
    comment TEXT,
    share_photo INTEGER NOT NULL,
    photo_key TEXT
);
"""


class PredictionRecord(BaseModel):
    """One answered /predict request."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    request_id: str
    created_at: datetime
    photo_sha256: str
    model_name: str
    model_version: str
    verdict: str
    top_species: str | None
    top_probability: float | None
    mushroom_score: float | None


class FeedbackRecord(BaseModel):
    """What a person said about one answer."""

    model_config = ConfigDict(extra="forbid")

    id: str
    created_at: datetime
    request_id: str
    correct: bool
    species: str | None
    comment: str | None
    share_photo: bool
    photo_key: str | None


class FeedbackStore:
    """Thread-safe access to the feedback database (one connection, serialised)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._connection.close()

    @contextmanager
    def _cursor(self) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            cursor = self._connection.cursor()
            try:
                yield cursor
            finally:
                cursor.close()

    def add_prediction(self, record: PredictionRecord) -> None:
        """Log one prediction."""
        with self._cursor() as cur:
            cur.execute(
                "INSERT OR REPLACE INTO predictions VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    record.request_id,
                    record.created_at.isoformat(),
                    record.photo_sha256,
                    record.model_name,
                    record.model_version,
                    record.verdict,
                    record.top_species,
                    record.top_probability,
                    record.mushroom_score,
                ),
            )

    def get_prediction(self, request_id: str) -> PredictionRecord | None:
        """The logged prediction with this request id."""
        with self._cursor() as cur:
            row = cur.execute(
                "SELECT * FROM predictions WHERE request_id = ?", (request_id,)
            ).fetchone()
        return _prediction(row) if row else None

    def predictions(self, since: datetime | None = None) -> list[PredictionRecord]:
        """Logged predictions, oldest first, optionally since a time."""
        with self._cursor() as cur:
            rows = cur.execute(
                "SELECT * FROM predictions WHERE created_at >= ? ORDER BY created_at",
                ((since or datetime(1970, 1, 1, tzinfo=UTC)).isoformat(),),
            ).fetchall()
        return [_prediction(row) for row in rows]

    def add_feedback(self, record: FeedbackRecord) -> None:
        """Store one feedback record."""
        with self._cursor() as cur:
            cur.execute(
                "INSERT INTO feedback VALUES (?,?,?,?,?,?,?,?)",
                (
                    record.id,
                    record.created_at.isoformat(),
                    record.request_id,
                    int(record.correct),
                    record.species,
                    record.comment,
                    int(record.share_photo),
                    record.photo_key,
                ),
            )

    def set_feedback_photo(self, feedback_id: str, photo_key: str) -> None:
        """Record where the shared photo of a feedback was stored."""
        with self._cursor() as cur:
            cur.execute("UPDATE feedback SET photo_key = ? WHERE id = ?", (photo_key, feedback_id))

    def get_feedback(self, feedback_id: str) -> FeedbackRecord | None:
        """One feedback record."""
        with self._cursor() as cur:
            row = cur.execute("SELECT * FROM feedback WHERE id = ?", (feedback_id,)).fetchone()
        return _feedback(row) if row else None

    def feedback(self) -> list[FeedbackRecord]:
        """All feedback, oldest first."""
        with self._cursor() as cur:
            rows = cur.execute("SELECT * FROM feedback ORDER BY created_at").fetchall()
        return [_feedback(row) for row in rows]


def _prediction(row: tuple[object, ...]) -> PredictionRecord:
    names = list(PredictionRecord.model_fields)
    return PredictionRecord.model_validate(dict(zip(names, row, strict=True)))


def _feedback(row: tuple[object, ...]) -> FeedbackRecord:
    names = list(FeedbackRecord.model_fields)
    return FeedbackRecord.model_validate(dict(zip(names, row, strict=True)))
