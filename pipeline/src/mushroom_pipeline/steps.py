"""Content-addressed step records: a step whose inputs were seen before is not run again.

A step's key is the sha256 of its name and its inputs (dataset version id, config hash, code
version, ...). When it finishes, its outputs are written to `pipelines/steps/<step>/<key>.json`;
a later run with the same inputs finds the record, checks that the outputs still exist, and skips
the step. A run that failed half-way therefore resumes at the first step that has no record, and
a second identical run does no work.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mushroom_common.storage import Storage

logger = logging.getLogger(__name__)

STEPS_PREFIX = "pipelines/steps"
RUNS_PREFIX = "pipelines/runs"

StepStatus = Literal["done", "skipped", "failed"]


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def sha256_text(text: str) -> str:
    """Hex sha256 of UTF-8 text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def step_key(step: str, inputs: dict[str, Any]) -> str:
    """The content address of one step: sha256 of its name and canonical inputs (24 hex)."""
    return sha256_text(canonical_json({"step": step, "inputs": inputs}))[:24]


class StepRecord(BaseModel):
    """`pipelines/steps/<step>/<key>.json`: what a finished step was given and produced."""

    model_config = ConfigDict(extra="forbid")

    step: str
    key: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    pipeline_run_id: str
    started_at: datetime
    finished_at: datetime
    duration_s: float = Field(ge=0)


class StepOutcome(BaseModel):
    """What happened to one step in one pipeline run."""

    model_config = ConfigDict(extra="forbid")

    step: str
    key: str | None
    status: StepStatus
    outputs: dict[str, Any] = Field(default_factory=dict)
    duration_s: float = 0.0
    record_key: str | None = None
    error: str | None = None


def record_key(step: str, key: str) -> str:
    """Storage key of a step record."""
    return f"{STEPS_PREFIX}/{step}/{key}.json"


class StepCache:
    """Reads and writes step records in storage."""

    def __init__(self, storage: Storage, pipeline_run_id: str) -> None:
        self.storage = storage
        self.pipeline_run_id = pipeline_run_id

    def get(self, step: str, key: str) -> StepRecord | None:
        """The record of a finished step with this key, if any."""
        location = record_key(step, key)
        if not self.storage.exists(location):
            return None
        return StepRecord.model_validate_json(self.storage.read_bytes(location))

    def run(
        self,
        step: str,
        inputs: dict[str, Any],
        compute: Callable[[], dict[str, Any]],
        still_valid: Callable[[dict[str, Any]], bool] | None = None,
    ) -> StepOutcome:
        """Run a step unless a record with the same key exists and its outputs are still there.

        Args:
            step: the step's name (a folder under `pipelines/steps/`).
            inputs: everything that decides the step's outputs (JSON-serialisable).
            compute: does the work and returns the outputs (JSON-serialisable).
            still_valid: checks that recorded outputs still exist (e.g. the bundle's files).

        Returns:
            The outcome: `skipped` with the recorded outputs, or `done` with fresh ones.
        """
        key = step_key(step, inputs)
        location = record_key(step, key)
        previous = self.get(step, key)
        if previous is not None:
            if still_valid is None or still_valid(previous.outputs):
                logger.info("step %-9s skipped (already done; key %s)", step, key)
                return StepOutcome(
                    step=step,
                    key=key,
                    status="skipped",
                    outputs=previous.outputs,
                    record_key=location,
                )
            logger.info("step %-9s outputs of key %s are gone: running it again", step, key)
        logger.info("step %-9s running (key %s)", step, key)
        started_at = datetime.now(UTC)
        started = time.monotonic()
        outputs = compute()
        duration = time.monotonic() - started
        record = StepRecord(
            step=step,
            key=key,
            inputs=inputs,
            outputs=outputs,
            pipeline_run_id=self.pipeline_run_id,
            started_at=started_at,
            finished_at=datetime.now(UTC),
            duration_s=duration,
        )
        self.storage.write_text(
            location, record.model_dump_json(indent=2) + "\n", "application/json"
        )
        logger.info("step %-9s done in %.1f s", step, duration)
        return StepOutcome(
            step=step,
            key=key,
            status="done",
            outputs=outputs,
            duration_s=duration,
            record_key=location,
        )
