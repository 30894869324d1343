"""The model bundle contract: what `metadata.json` says about a trained, exported model."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

METADATA_FILE = "metadata.json"

# Model names and versions become storage keys and local folder names, so they are plain
# identifiers: a letter or digit, then letters, digits, '.', '_' or '-', and never '..'.
IDENTIFIER_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_identifier(value: str, what: str = "identifier") -> str:
    """Return `value` if it is a valid model name or version, else raise ValueError.

    Args:
        value: the text to check.
        what: what the value is, for the error message ("version", "model name").

    Returns:
        The value unchanged.
    """
    if not IDENTIFIER_PATTERN.fullmatch(value) or ".." in value:
        raise ValueError(
            f"{what} {value[:80]!r} is not a valid identifier: use 1-128 letters, digits, "
            "'.', '_' or '-', starting with a letter or digit, without '..'"
        )
    return value


def check_relative_path(value: str) -> str:
    """Return `value` if it is a relative '/'-separated path inside a bundle, else raise."""
    parts = value.split("/")
    if (
        not value
        or value.startswith("/")
        or "\\" in value
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise ValueError(f"bundle path {value[:80]!r} must be relative and stay inside the bundle")
    return value


Identifier = Annotated[str, AfterValidator(check_identifier)]
BundlePath = Annotated[str, AfterValidator(check_relative_path)]


class InputSpec(BaseModel):
    """What the exported model takes: uint8 RGB pixels at this size; preprocessing is inside."""

    model_config = ConfigDict(extra="forbid")

    height: int = Field(gt=0)
    width: int = Field(gt=0)
    channels: Literal[3] = 3
    dtype: Literal["uint8"] = "uint8"
    pixel_format: Literal["RGB"] = "RGB"
    resize: Literal["bilinear"] = "bilinear"


class MushroomDetectorSpec(BaseModel):
    """How the model says whether the photo shows a mushroom at all."""

    model_config = ConfigDict(extra="forbid")

    method: str = Field(
        description="e.g. 'imagenet_fungus_head': summed fungus-class probabilities"
    )
    output_index: int = Field(
        1, description="index of the [1, 1] output holding the score in [0, 1]"
    )
    threshold: float = Field(ge=0, le=1, description="scores below this mean 'not a mushroom'")
    false_rejection_rate: float | None = Field(
        None, description="mushroom photos called not-a-mushroom"
    )
    false_acceptance_rate: float | None = Field(None, description="other photos called a mushroom")


class OpenSetSpec(BaseModel):
    """How the bundle flags photos of species it never learned (see mushroom_common.verdict)."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["max_logit", "energy", "max_probability"]
    threshold: float = Field(description="scores at or above this mean 'maybe an unknown species'")
    auroc: float | None = Field(None, description="known vs left-out species, open-set run")


class InferenceView(StrEnum):
    """A view of the photo the model also runs on, answers averaged (`runtime.run_views`)."""

    ORIGINAL = "original"
    # Flipped left to right.
    MIRROR = "mirror"


class DecisionRulesSpec(BaseModel):
    """The verdict thresholds the bundle was tuned with (on validation photos).

    The danger rule warns by severity: `deadly_threshold` on the summed probability of the deadly
    labels (lower: a deadly candidate warns sooner) and `poisonous_threshold` on the summed
    probability of the deadly and poisonous labels. Bundles written before these existed carry
    only `danger_threshold`; both then default to it (and a bundle that gives
    `poisonous_threshold` but no `danger_threshold` gets it as its `danger_threshold`).
    """

    model_config = ConfigDict(extra="forbid")

    danger_threshold: float = Field(
        0.05,
        gt=0,
        le=1,
        description="summed deadly/poisonous probability that means 'dangerous' (the default of "
        "both severity thresholds; bundles written before them have only this one)",
    )
    deadly_threshold: float = Field(
        0.05,
        gt=0,
        le=1,
        description="summed deadly probability that means 'dangerous' (default: danger_threshold)",
    )
    poisonous_threshold: float = Field(
        0.05,
        gt=0,
        le=1,
        description="summed deadly + poisonous probability that means 'dangerous' (default: "
        "danger_threshold)",
    )
    caution_threshold: float = Field(
        0.02,
        gt=0,
        le=1,
        description="a dangerous species this likely is not ruled out: a harmless top species "
        "gets 'do not eat, could be ...' (verdict uncertain with a caution block)",
    )
    edible_threshold: float = Field(
        0.90,
        gt=0,
        le=1.01,
        description="the top species' probability needed for 'edible' (above 1: never edible)",
    )
    genus_threshold: float = Field(
        0.6,
        gt=0,
        le=1,
        description="a genus this likely is named when the species is not clear, and makes the "
        "answer 'dangerous' when its species are mostly dangerous",
    )
    genus_danger_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description="a genus is mostly dangerous when more than this share of its catalog "
        "species of known edibility are deadly or poisonous (1: never)",
    )
    lookalike_threshold: float | None = Field(
        None,
        gt=0,
        le=1,
        description="a deadly or poisonous catalog look-alike of the top species that the model "
        "learned, this likely on its own, forbids 'edible' (a caution names it); null: no such "
        "rule (bundles written before it)",
    )
    edible_mushroom_score: float | None = Field(
        None,
        ge=0,
        le=1,
        description="'edible' needs the mushroom detector's score to reach this: a photo the "
        "detector barely accepts (blurry, badly framed, maybe no mushroom at all) is answered "
        "'uncertain' (unclear photo) instead; null: no such rule (bundles written before it, "
        "or without a detector)",
    )
    unseen_lookalike_blocks_edible: bool = True
    open_set: OpenSetSpec | None = None
    test_time_views: list[InferenceView] = Field(
        default_factory=lambda: [InferenceView.ORIGINAL],
        min_length=1,
        description="the views the served answer averages (the API and the phone run them all); "
        "'edible' needs them to agree",
    )

    @model_validator(mode="before")
    @classmethod
    def _severity_defaults(cls, data: Any) -> Any:
        """Old bundles: both severity thresholds default to the single danger threshold."""
        if not isinstance(data, dict):
            return data
        filled = dict(data)
        if "danger_threshold" not in filled and "poisonous_threshold" in filled:
            filled["danger_threshold"] = filled["poisonous_threshold"]
        danger = filled.get("danger_threshold", cls.model_fields["danger_threshold"].default)
        filled.setdefault("deadly_threshold", danger)
        filled.setdefault("poisonous_threshold", danger)
        return filled


class ModelVariant(BaseModel):
    """One exported form of the model (a TFLite file or the SavedModel folder)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="float32, float16, int8, student_int8, saved_model, ...")
    path: BundlePath = Field(description="file or folder, relative to the bundle folder")
    format: Literal["tflite", "saved_model"]
    size_bytes: int = Field(ge=0)
    temperature: float | None = Field(
        None,
        gt=0,
        description="this variant's own calibration temperature (divide logits by it before "
        "softmax); None in bundles written before it existed: the bundle's `temperature` applies",
    )
    metrics: dict[str, float] = Field(default_factory=dict)

    def effective_temperature(self, bundle_temperature: float) -> float:
        """The temperature that calibrates this variant (its own, else the bundle's)."""
        return self.temperature if self.temperature is not None else bundle_temperature


class BundleFile(BaseModel):
    """A file of the bundle with its hash, so a copy can be verified."""

    model_config = ConfigDict(extra="forbid")

    path: BundlePath
    sha256: str
    size_bytes: int = Field(ge=0)


class BundleMetadata(BaseModel):
    """The contents of a bundle's `metadata.json`."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    schema_version: Literal[1] = 1
    name: Identifier
    version: Identifier
    labels: list[str] = Field(min_length=1, description="catalog ids in the model's output order")
    input: InputSpec
    temperature: float = Field(
        1.0,
        gt=0,
        description="the serving variant's temperature; variants without their own use it",
    )
    serving_variant: str = Field(description="name of the variant the API serves")
    variants: list[ModelVariant]
    mushroom_detector: MushroomDetectorSpec | None = None
    decision_rules: DecisionRulesSpec = Field(default_factory=DecisionRulesSpec)
    backbone: str
    dataset_version: str
    git_revision: str
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    tracking_run_id: str | None = None
    parent_run_id: str | None = None
    command: str = ""
    data_status: str = ""
    metrics: dict[str, float] = Field(
        default_factory=dict, description="test-split metrics of the serving variant"
    )
    files: list[BundleFile] = Field(default_factory=list)

    def variant(self, name: str | None = None) -> ModelVariant:
        """Return the named variant (the serving one by default)."""
        wanted = name or self.serving_variant
        for variant in self.variants:
            if variant.name == wanted:
                return variant
        raise KeyError(f"bundle {self.name}/{self.version} has no variant {wanted!r}")


class ChampionPointer(BaseModel):
    """`models/<name>/champion.json`: the version the API serves."""

    model_config = ConfigDict(extra="forbid")

    name: Identifier
    version: Identifier
    promoted_at: datetime
    reason: str


class PromotionEvent(BaseModel):
    """One line of `models/<name>/promotions.jsonl`."""

    model_config = ConfigDict(extra="forbid")

    name: Identifier
    version: Identifier
    previous_version: Identifier | None
    promoted_at: datetime
    forced: bool
    accepted: bool
    reason: str
    metrics: dict[str, float] = Field(default_factory=dict)
    previous_metrics: dict[str, float] = Field(default_factory=dict)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hash_bundle_files(bundle_dir: Path) -> list[BundleFile]:
    """Hash every file of a bundle folder except metadata.json itself."""
    return [
        BundleFile(
            path=path.relative_to(bundle_dir).as_posix(),
            sha256=sha256_file(path),
            size_bytes=path.stat().st_size,
        )
        for path in sorted(bundle_dir.rglob("*"))
        if path.is_file() and path.name != METADATA_FILE
    ]


class BundleIntegrityError(ValueError):
    """A bundle's files do not match the hashes in its metadata."""


def verify_bundle(
    bundle_dir: Path, metadata: BundleMetadata, paths: list[str] | None = None
) -> None:
    """Check the listed files (all by default) against their recorded sha256."""
    recorded = {f.path: f for f in metadata.files}
    for rel in paths if paths is not None else list(recorded):
        entry = recorded.get(rel)
        if entry is None:
            raise BundleIntegrityError(f"{rel} is not listed in the bundle's metadata")
        actual = bundle_dir / rel
        if not actual.is_file():
            raise BundleIntegrityError(f"bundle file {rel} is missing")
        if sha256_file(actual) != entry.sha256:
            raise BundleIntegrityError(f"bundle file {rel} does not match its sha256")


def read_metadata(bundle_dir: Path) -> BundleMetadata:
    """Read and validate `metadata.json` from a local bundle folder."""
    return BundleMetadata.model_validate_json((bundle_dir / METADATA_FILE).read_text("utf-8"))


def write_metadata(bundle_dir: Path, metadata: BundleMetadata) -> None:
    """Write `metadata.json` (pretty, stable) into a local bundle folder."""
    (bundle_dir / METADATA_FILE).write_text(metadata.model_dump_json(indent=2) + "\n", "utf-8")
