"""`PredictionStore`: the typed API over the prediction and feedback database.

Every service reaches the database through this class, never through SQL of its own. It is
thread-safe (SQLAlchemy's connection pool, one short transaction per call) and raises
`StoreUnavailableError` for anything the database refuses, so callers need no SQLAlchemy.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Engine, create_engine, delete, event, func, inspect, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from mushroom_common.store.models import Feedback, Heartbeat, Prediction
from mushroom_common.store.records import FeedbackRecord, PredictionRecord, PruneResult
from mushroom_common.store.settings import normalise_url

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)

T = TypeVar("T")


class StoreError(RuntimeError):
    """Base class of store failures."""


class StoreUnavailableError(StoreError):
    """The database cannot be reached, is full, locked, or refused the operation."""


class StoreFileGoneError(StoreUnavailableError):
    """The SQLite file this store opened was deleted or replaced under it.

    Open connections would go on writing into the deleted inode, and every row would be lost:
    nothing is read or written until the process is restarted on a good file.
    """


class StoreSchemaError(StoreError):
    """The database's schema is not the one this code needs (run `mushroom-db upgrade`)."""


# The newest migration shipped with this package (a test checks it is Alembic's head). Knowing it
# without Alembic lets a start against an up-to-date database skip importing Alembic, Mako and
# Pygments: a quarter of the API's cold start (benchmarks/RESULTS.md).
SCHEMA_REVISION = "0002"


def _migrations_config(connection: Any | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(files("mushroom_common.store") / "migrations"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest migration shipped with this package, as Alembic finds it."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_migrations_config()).get_current_head()
    if head is None:
        raise StoreSchemaError("the package ships no migrations")
    return head


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL: readers never wait for the writer; foreign keys are off in SQLite unless asked.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def create_store_engine(url: str, *, timeout_s: float = 5.0) -> Engine:
    """An engine for a SQLite or PostgreSQL URL, with bounded waits for locks and connections.

    Args:
        url: SQLAlchemy URL (plain `postgresql://` is mapped to psycopg 3).
        timeout_s: longest wait for a SQLite lock or a PostgreSQL connection.
    """
    normalised = normalise_url(url)
    parsed = make_url(normalised)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            # A folder that cannot be made is an unusable database, not a crash: the API still
            # answers /predict, and the first write reports the problem.
            with contextlib.suppress(OSError):
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            normalised,
            connect_args={"timeout": timeout_s, "check_same_thread": False},
            pool_pre_ping=True,
        )
        event.listen(engine, "connect", _set_sqlite_pragmas)
        return engine
    return create_engine(
        normalised,
        connect_args={"connect_timeout": max(1, round(timeout_s))},
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        pool_timeout=timeout_s,
    )


def _prediction(row: Prediction) -> PredictionRecord:
    return PredictionRecord.model_validate(row, from_attributes=True)


def _feedback(row: Feedback) -> FeedbackRecord:
    return FeedbackRecord.model_validate(row, from_attributes=True)


class PredictionStore:
    """Predictions the API answered and the feedback people gave on them."""

    def __init__(self, url: str, *, timeout_s: float = 5.0) -> None:
        """Open (lazily: no connection is made until the first call) the database at `url`."""
        self.engine = create_store_engine(url, timeout_s=timeout_s)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        database = self.engine.url.database
        # The SQLite file and its (device, inode) once a connection opened it.
        self._sqlite_file: Path | None = (
            Path(database).resolve()
            if self.backend == "sqlite" and database and database != ":memory:"
            else None
        )
        self._sqlite_identity: tuple[int, int] | None = None
        if self._sqlite_file is not None:
            event.listen(self.engine, "connect", self._note_file)

    def _note_file(self, _dbapi_connection: Any, _record: Any) -> None:
        if self._sqlite_file is None or self._sqlite_identity is not None:
            return
        with contextlib.suppress(OSError):
            found = self._sqlite_file.stat()
            self._sqlite_identity = (found.st_dev, found.st_ino)

    def file_problem(self) -> str | None:
        """Why the SQLite file can no longer be used (deleted or replaced), else None.

        A stat of one local file: cheap enough for every transaction and every readiness probe.
        """
        if self._sqlite_file is None or self._sqlite_identity is None:
            return None
        try:
            found = self._sqlite_file.stat()
        except FileNotFoundError:
            return "the database file was deleted"
        except OSError as exc:
            return f"the database file cannot be read ({exc.strerror})"
        if (found.st_dev, found.st_ino) != self._sqlite_identity:
            return "the database file was replaced by another file"
        return None

    def _check_file(self) -> None:
        problem = self.file_problem()
        if problem is not None:
            raise StoreFileGoneError(f"{problem}; restart on a good database file")

    @property
    def backend(self) -> str:
        """`sqlite` or `postgresql`."""
        return self.engine.dialect.name

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    @contextmanager
    def _session(self) -> Iterator[Session]:
        self._check_file()
        try:
            with self._sessions.begin() as session:
                yield session
        except IntegrityError:
            raise
        except SQLAlchemyError as exc:
            raise StoreUnavailableError(_reason(exc)) from exc

    def _run(self, work: Callable[[Session], T]) -> T:
        with self._session() as session:
            return work(session)

    # Schema

    def upgrade(self) -> str:
        """Apply every migration not applied yet (from empty, too); return the revision."""
        if self.revision() == SCHEMA_REVISION:
            return SCHEMA_REVISION
        from alembic import command

        try:
            with self.engine.begin() as connection:
                command.upgrade(_migrations_config(connection), "head")
        except SQLAlchemyError as exc:
            raise StoreUnavailableError(_reason(exc)) from exc
        return SCHEMA_REVISION

    def revision(self) -> str | None:
        """The applied migration (None: an empty database)."""
        try:
            with self.engine.connect() as connection:
                # Alembic's own table, read without Alembic (see SCHEMA_REVISION).
                if not inspect(connection).has_table("alembic_version"):
                    return None
                versions = connection.execute(text("SELECT version_num FROM alembic_version"))
                return next((str(row[0]) for row in versions), None)
        except SQLAlchemyError as exc:
            raise StoreUnavailableError(_reason(exc)) from exc

    def require_schema(self) -> None:
        """Raise `StoreSchemaError` unless every migration has been applied."""
        current = self.revision()
        if current != SCHEMA_REVISION:
            raise StoreSchemaError(
                f"the prediction database is at migration {current or 'none'}, not "
                f"{SCHEMA_REVISION}: run `mushroom-db upgrade` (the API does it at start)"
            )

    # Predictions

    def add_predictions(self, records: Sequence[PredictionRecord]) -> int:
        """Log predictions; a request id already logged is left as it is. Returns rows added."""
        if not records:
            return 0
        rows = [record.model_dump() for record in records]

        def work(session: Session) -> int:
            insert = postgresql.insert if self.backend == "postgresql" else sqlite.insert
            statement = (
                insert(Prediction)
                .values(rows)
                .on_conflict_do_nothing()
                .returning(Prediction.request_id)
            )
            return len(session.execute(statement).all())

        return self._run(work)

    def get_prediction(self, request_id: str) -> PredictionRecord | None:
        """The logged prediction with this request id."""

        def work(session: Session) -> PredictionRecord | None:
            row = session.get(Prediction, request_id)
            return _prediction(row) if row is not None else None

        return self._run(work)

    def predictions(self, since: datetime | None = None) -> list[PredictionRecord]:
        """Logged predictions, oldest first, optionally since a time."""

        def work(session: Session) -> list[PredictionRecord]:
            query = select(Prediction).order_by(Prediction.created_at, Prediction.request_id)
            if since is not None:
                query = query.where(Prediction.created_at >= since)
            return [_prediction(row) for row in session.scalars(query)]

        return self._run(work)

    def count_predictions(self) -> int:
        """How many predictions are logged."""
        return self._run(
            lambda session: int(session.scalar(select(func.count()).select_from(Prediction)) or 0)
        )

    # Feedback

    def add_feedback(
        self, record: FeedbackRecord, *, require_prediction: bool = True
    ) -> tuple[FeedbackRecord, bool]:
        """Store a feedback unless one with its (request_id, idempotency_key) exists.

        Args:
            record: the feedback.
            require_prediction: refuse feedback on a request id no logged prediction has; the
                API passes False for a request id it signed itself, whose prediction another
                replica may still be logging (the rows join on request_id once it lands).

        Returns:
            The stored record (the earlier one on a replay) and whether it was added now.

        Raises:
            MissingPredictionError: `require_prediction` and no prediction has the request id.
        """

        def existing(session: Session) -> FeedbackRecord | None:
            row = session.scalars(
                select(Feedback).where(
                    Feedback.request_id == record.request_id,
                    Feedback.idempotency_key == record.idempotency_key,
                )
            ).first()
            return _feedback(row) if row is not None else None

        earlier = self._run(existing)
        if earlier is not None:
            return earlier, False
        try:
            with self._session() as session:
                if require_prediction and session.get(Prediction, record.request_id) is None:
                    raise MissingPredictionError(record.request_id)
                session.add(Feedback(**record.model_dump()))
        except IntegrityError as exc:
            # A concurrent replay won the unique constraint.
            earlier = self._run(existing)
            if earlier is not None:
                return earlier, False
            raise StoreUnavailableError(_reason(exc)) from exc
        return record, True

    def get_feedback(self, feedback_id: str) -> FeedbackRecord | None:
        """One feedback record."""

        def work(session: Session) -> FeedbackRecord | None:
            row = session.get(Feedback, feedback_id)
            return _feedback(row) if row is not None else None

        return self._run(work)

    def feedback(self) -> list[FeedbackRecord]:
        """All feedback, oldest first."""

        def work(session: Session) -> list[FeedbackRecord]:
            query = select(Feedback).order_by(Feedback.created_at, Feedback.id)
            return [_feedback(row) for row in session.scalars(query)]

        return self._run(work)

    def set_feedback_photo(self, feedback_id: str, photo_key: str) -> FeedbackRecord | None:
        """Record where the shared photo of a feedback was stored; return the updated record."""

        def work(session: Session) -> FeedbackRecord | None:
            session.execute(
                update(Feedback).where(Feedback.id == feedback_id).values(photo_key=photo_key)
            )
            row = session.get(Feedback, feedback_id)
            return _feedback(row) if row is not None else None

        return self._run(work)

    # Health and retention

    def heartbeat(self, writer_id: str) -> None:
        """Write one tiny row: proves the database takes writes right now (full disk, lock)."""
        now = datetime.now(UTC)

        def work(session: Session) -> None:
            insert = postgresql.insert if self.backend == "postgresql" else sqlite.insert
            statement = insert(Heartbeat).values(writer_id=writer_id, beat_at=now)
            session.execute(
                statement.on_conflict_do_update(
                    index_elements=[Heartbeat.writer_id], set_={"beat_at": now}
                )
            )

        self._run(work)

    def prune(self, older_than_days: int, *, now: datetime | None = None) -> PruneResult:
        """Delete predictions (with their feedback) and feedback older than the retention."""
        cutoff = (now or datetime.now(UTC)) - timedelta(days=older_than_days)

        def work(session: Session) -> PruneResult:
            old_requests = select(Prediction.request_id).where(Prediction.created_at < cutoff)
            feedback = session.execute(
                delete(Feedback).where(
                    (Feedback.created_at < cutoff) | Feedback.request_id.in_(old_requests)
                )
            )
            predictions = session.execute(delete(Prediction).where(Prediction.created_at < cutoff))
            session.execute(delete(Heartbeat).where(Heartbeat.beat_at < cutoff))
            return PruneResult(
                cutoff=cutoff,
                predictions=int(getattr(predictions, "rowcount", 0) or 0),
                feedback=int(getattr(feedback, "rowcount", 0) or 0),
            )

        return self._run(work)


class MissingPredictionError(StoreError):
    """Feedback names a request id that no logged prediction has."""

    def __init__(self, request_id: str) -> None:
        super().__init__(f"no logged prediction has request id {request_id!r}")
        self.request_id = request_id


def _reason(exc: SQLAlchemyError) -> str:
    """The database's own complaint without the SQL statement or parameters (no data in logs)."""
    original = getattr(exc, "orig", None)
    text = str(original if original is not None else exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
