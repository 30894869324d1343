"""The pipeline's one definition: each step with its typed inputs and outputs and its checks.

`mushroom-pipeline run` (runner.py) executes `STEPS` in order in one process. The Vertex AI
(KFP v2) pipeline (kfp_pipeline.py) is generated from the same list: one container component per
step, each running `mushroom-pipeline step <name>` (cli.py), which executes the step through the
same `execute` as the local runner. Both therefore take the same arguments (`PARAMS`), resolve
their defaults the same way, run the same checks and write the same step records.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mushroom_common.registry import ModelRegistry
from mushroom_common.storage import Storage
from mushroom_pipeline.collect import (
    CollectOptions,
    PipelineError,
    build,
    build_inputs,
    check_feedback_splits,
    collect,
    collect_inputs,
    dataset_still_there,
    folder_fingerprint,
)
from mushroom_pipeline.config import Settings
from mushroom_pipeline.reload import reload_api
from mushroom_pipeline.steps import StepCache, StepOutcome, canonical_json, sha256_text
from mushroom_pipeline.training import TrainingSteps, phase_epochs

logger = logging.getLogger(__name__)

Values = dict[str, Any]
Kind = Literal["str", "int", "bool", "list", "dict"]
PYTHON_TYPES: dict[Kind, type] = {"str": str, "int": int, "bool": bool, "list": list, "dict": dict}


@dataclass(frozen=True)
class Param:
    """An argument of the whole pipeline (a `run` option, a Vertex AI pipeline parameter)."""

    name: str
    kind: Kind
    default: Any
    help: str


@dataclass(frozen=True)
class Input:
    """A step input: a pipeline parameter, or the output of the same name of an earlier step."""

    name: str
    source: str = "params"


@dataclass(frozen=True)
class Output:
    """A step output; `nullable` ones may be None (an empty string in a KFP parameter)."""

    name: str
    kind: Kind
    nullable: bool = False


@dataclass(frozen=True)
class StepContext:
    """What every step runs against: the storage root, the settings, the code version."""

    storage: Storage
    settings: Settings
    runs_dir: Path
    code_version: str
    command: str


@dataclass(frozen=True)
class Check:
    """A rule a step's result must keep; it raises PipelineError, else returns what it measured.

    Checks run in the step itself (before its record is written), so the local runner and the
    Vertex AI pipeline run the same ones.
    """

    name: str
    description: str
    run: Callable[[StepContext, Values, Values], Any]
    output: str


@dataclass(frozen=True)
class Step:
    """One step of the pipeline.

    `key` gives the inputs that decide the outputs (the step's content address); a step without
    one, or whose key is None for these inputs (nothing to do), runs every time and leaves no
    record. `did_nothing` tells such a step's `skipped` outcome from `done`. A
    `pure` step's outputs follow from its declared inputs alone, so KFP's execution cache may
    serve it; the others read the world (collected photos, the champion, the API).
    """

    name: str
    description: str
    inputs: tuple[Input, ...]
    outputs: tuple[Output, ...]
    run: Callable[[StepContext, Values], Values]
    summary: Callable[[Values], str]
    key: Callable[[StepContext, Values], Values | None] | None = None
    still_valid: Callable[[StepContext, Values], bool] | None = None
    did_nothing: Callable[[Values], bool] | None = None
    checks: tuple[Check, ...] = ()
    pure: bool = False
    cpu_limit: str | None = None
    memory_limit: str | None = None

    def output(self, name: str) -> Output:
        """The declaration of one output."""
        return next(o for o in self.outputs if o.name == name)


PARAMS: tuple[Param, ...] = (
    Param(
        "import_folders",
        "list",
        [],
        "class-folder trees to import: PATH/<species>/*.jpg or PATH/<split>/<species>/*.jpg",
    ),
    Param(
        "inat_species",
        "list",
        [],
        "species to collect from iNaturalist (with max_per_species alone: the whole catalog)",
    ),
    Param(
        "max_per_species",
        "int",
        0,
        "collect from iNaturalist, at most this many photos per species (0: the collector's cap "
        "when species are given, else no iNaturalist collection)",
    ),
    Param("with_feedback", "bool", False, "import the API's shared feedback photos first"),
    Param(
        "config",
        "str",
        "",
        "training config YAML (empty: PIPELINE_TRAIN_CONFIG, else model-training/configs/demo.yaml "
        "when present, else the training defaults)",
    ),
    Param("overrides", "list", [], "training config overrides section.key=value"),
    Param(
        "epochs",
        "int",
        0,
        "cap every training phase (head, fine-tune, distillation) at N epochs (0: the config's)",
    ),
    Param(
        "model_name",
        "str",
        "",
        "registry name of the bundle (empty: PIPELINE_MODEL_NAME, else the config's)",
    ),
    Param(
        "field_data_root",
        "str",
        "",
        "shared data folder with the field photos (web-species/, nordic-field/, field-extra/): "
        "tune the verdict thresholds on its field validation photos, and the gate judges that "
        "bundle (empty: PIPELINE_FIELD_DATA_ROOT, else no field step)",
    ),
    Param("force_promote", "bool", False, "promote even when the gate refuses (logged)"),
    Param(
        "api_url",
        "str",
        "",
        "base URL of a running API to reload afterwards (empty: PIPELINE_API_URL, else none)",
    ),
    Param("api_token", "str", "", "the API's admin token (empty: PIPELINE_API_ADMIN_TOKEN)"),
)
PARAMS_BY_NAME = {p.name: p for p in PARAMS}
SECRET_PARAMS = frozenset({"api_token"})


# --- how each step reads its inputs -----------------------------------------------------------


def _collect_options(context: StepContext, inputs: Values) -> CollectOptions:
    species = [str(s) for s in inputs["inat_species"]]
    # The database is not a parameter: its URL holds a password, so every step (and every
    # service) reads MUSHROOM_DATABASE_URL from its environment (a Secret on GKE and Vertex AI).
    return CollectOptions(
        import_folders=[Path(str(p)) for p in inputs["import_folders"]],
        inat_species=species or None,
        max_per_species=int(inputs["max_per_species"]) or None,
        with_feedback=bool(inputs["with_feedback"]),
    )


def _training(context: StepContext, inputs: Values) -> TrainingSteps:
    config = str(inputs.get("config", ""))
    return TrainingSteps(
        storage=context.storage,
        runs_dir=context.runs_dir,
        config_path=Path(config) if config else context.settings.train_config,
        overrides=[str(o) for o in inputs.get("overrides", [])],
        epochs=int(inputs.get("epochs", 0)) or None,
        model_name=str(inputs.get("model_name", "")) or context.settings.model_name,
        command=context.command,
    )


# --- the steps --------------------------------------------------------------------------------


def _collect(context: StepContext, inputs: Values) -> Values:
    summary = collect(context.storage, _collect_options(context, inputs))
    records = int(summary.pop("records"))
    return {"records": records, "sources": summary}


def _collect_key(context: StepContext, inputs: Values) -> Values:
    return collect_inputs(context.storage, _collect_options(context, inputs))


def _build(context: StepContext, inputs: Values) -> Values:
    outputs = build(context.storage)
    outputs["photos"] = int(outputs.get("photos") or 0)
    outputs["species"] = int(outputs.get("species") or 0)
    outputs["per_split"] = dict(outputs.get("per_split") or {})
    return outputs


def _feedback_only_trains(context: StepContext, inputs: Values, outputs: Values) -> Any:
    return check_feedback_splits(context.storage, str(outputs["dataset_version"]))


def _train_config(context: StepContext, inputs: Values) -> Values:
    return _training(context, inputs).resolved_config(str(inputs["dataset_version"]))


def _train_key(context: StepContext, inputs: Values) -> Values:
    config = _train_config(context, inputs)
    return {
        "dataset_version": inputs["dataset_version"],
        "config_sha256": sha256_text(canonical_json(config)),
        "config": config,
        "code_version": context.code_version,
    }


def _train(context: StepContext, inputs: Values) -> Values:
    return _training(context, inputs).train(_train_config(context, inputs))


def _epochs_cap_every_phase(context: StepContext, inputs: Values, outputs: Values) -> Any:
    from mushroom_training.config import TrainConfig

    epochs = phase_epochs(TrainConfig.model_validate(_train_config(context, inputs)))
    cap = int(inputs["epochs"])
    over = {phase: n for phase, n in epochs.items() if n > cap}
    if cap > 0 and over:
        raise PipelineError(f"epochs={cap} did not cap every training phase: {over} are longer")
    return epochs


def _export_key(context: StepContext, inputs: Values) -> Values:
    return {
        "run_id": inputs["run_id"],
        "run_dir": inputs["run_dir"],
        "code_version": context.code_version,
    }


def _export(context: StepContext, inputs: Values) -> Values:
    return _training(context, inputs).export({"run_dir": inputs["run_dir"]})


def _evaluate_key(context: StepContext, inputs: Values) -> Values:
    return {
        "bundle": f"{inputs['name']}/{inputs['version']}",
        "dataset_version": inputs["dataset_version"],
        "code_version": context.code_version,
    }


def _evaluate(context: StepContext, inputs: Values) -> Values:
    result = _training(context, inputs).evaluate(str(inputs["name"]), str(inputs["version"]))
    if result["dataset_version"] != inputs["dataset_version"]:
        raise PipelineError(
            f"bundle {inputs['name']}/{inputs['version']} was trained on "
            f"{result['dataset_version']}, not on {inputs['dataset_version']}"
        )
    return {k: result[k] for k in ("serving_variant", "metrics", "variants")}


def _field_data_root(context: StepContext, inputs: Values) -> Path | None:
    text = str(inputs["field_data_root"])
    return Path(text) if text else context.settings.field_data_root


def field_photos_fingerprint(data_root: Path) -> dict[str, str]:
    """`folder_fingerprint` of each field folder of the shared data folder.

    Raises:
        PipelineError: the folder holds none of them.
    """
    from mushroom_training.field import DATASET_FIELD_FOLDERS, FIELD_EXTRA

    folders = (*DATASET_FIELD_FOLDERS, FIELD_EXTRA)
    found = {name: folder_fingerprint(data_root / name) for name in folders}
    if not any((data_root / name).is_dir() for name in folders):
        raise PipelineError(f"field data root {data_root} holds none of {', '.join(folders)}")
    return found


def _field_key(context: StepContext, inputs: Values) -> Values | None:
    data_root = _field_data_root(context, inputs)
    if data_root is None:
        return None  # no field photos: nothing to tune, nothing to record
    return {
        "bundle": f"{inputs['name']}/{inputs['version']}",
        "field_photos": field_photos_fingerprint(data_root),
        "code_version": context.code_version,
    }


def _field(context: StepContext, inputs: Values) -> Values:
    name, version = str(inputs["name"]), str(inputs["version"])
    data_root = _field_data_root(context, inputs)
    if data_root is None:
        logger.info(
            "step field     skipped: no field data root (--field-data-root, "
            "PIPELINE_FIELD_DATA_ROOT): %s/%s goes to the gate unchanged, judged on its "
            "test-split numbers",
            name,
            version,
        )
        return {"candidate_version": version, "field_bundle": None, "field_metrics": {}}
    tuned = _training(context, inputs).field_tune(name, version, data_root)
    logger.info(
        "step field     %s/%s tuned on the field validation photos of %s: %s/%s goes to the gate",
        name,
        version,
        data_root,
        tuned["name"],
        tuned["version"],
    )
    return {
        "candidate_version": str(tuned["version"]),
        "field_bundle": f"{tuned['name']}/{tuned['version']}",
        "field_metrics": dict(tuned["metrics"]),
    }


def _field_summary(outputs: Values) -> str:
    if not outputs.get("field_bundle"):
        return f"no field data root: {outputs.get('candidate_version')} goes on unchanged"
    metrics = outputs.get("field_metrics", {})
    return (
        f"bundle {outputs['field_bundle']}: field-val top-1 "
        f"{metrics.get('field_val_top1', float('nan')):.3f} "
        f"({int(metrics.get('field_val_photos', 0))} photos)"
    )


def _promote_key(context: StepContext, inputs: Values) -> Values:
    # A bundle is put to the gate once (its record is kept); --force-promote asks again.
    return {
        "bundle": f"{inputs['name']}/{inputs['candidate_version']}",
        "force": inputs["force_promote"],
    }


def _promote(context: StepContext, inputs: Values) -> Values:
    return _training(context, inputs).promote(
        str(inputs["name"]), str(inputs["candidate_version"]), bool(inputs["force_promote"])
    )


def _current_champion(storage: Storage, name: str) -> str | None:
    """The registry's champion version of a model name, if any (raises when unreadable)."""
    pointer = ModelRegistry(storage).champion(name)
    return pointer.version if pointer is not None else None


def _reload(context: StepContext, inputs: Values) -> Values:
    # The champion is read when the step runs, not taken from promote's record, which may be
    # older than the last promotion.
    api_url = str(inputs["api_url"]) or context.settings.api_url or ""
    if not api_url:
        logger.info("step reload    skipped: no API URL")
        return {"serving": None, "reloaded": False}
    name = str(inputs["name"])
    outcome = reload_api(
        api_url,
        str(inputs["api_token"]) or context.settings.api_admin_token,
        name,
        _current_champion(context.storage, name),
        context.settings.api_timeout_s,
    )
    return {"serving": outcome.outputs.get("serving"), "reloaded": outcome.status == "done"}


def _bundle_still_valid(context: StepContext, outputs: Values) -> bool:
    return TrainingSteps(context.storage, context.runs_dir, None).bundle_still_there(outputs)


def _run_still_valid(context: StepContext, outputs: Values) -> bool:
    return TrainingSteps(context.storage, context.runs_dir, None).run_still_there(outputs)


def _field_bundle_still_valid(context: StepContext, outputs: Values) -> bool:
    name, _, version = str(outputs["field_bundle"]).partition("/")
    return _bundle_still_valid(context, {"name": name, "version": version})


# What a training container may use on Vertex AI (train and export load TensorFlow models).
TRAINING_CPU_LIMIT = "8"
TRAINING_MEMORY_LIMIT = "32G"

STEPS: tuple[Step, ...] = (
    Step(
        name="collect",
        description="Import class folders, collect from iNaturalist, import shared feedback.",
        inputs=tuple(
            Input(n)
            for n in (
                "import_folders",
                "inat_species",
                "max_per_species",
                "with_feedback",
            )
        ),
        outputs=(Output("records", "int"), Output("sources", "dict")),
        run=_collect,
        key=_collect_key,
        summary=lambda o: f"{o.get('records')} collected records",
    ),
    Step(
        name="build",
        description="Build the immutable dataset version of everything collected.",
        inputs=(),
        outputs=(
            Output("dataset_version", "str"),
            Output("created", "bool"),
            Output("photos", "int"),
            Output("species", "int"),
            Output("per_split", "dict"),
            Output("removed", "dict"),
            Output("feedback_per_split", "dict"),
        ),
        run=_build,
        key=lambda context, inputs: build_inputs(context.storage),
        still_valid=lambda context, outputs: dataset_still_there(context.storage)(outputs),
        checks=(
            Check(
                "unreviewed_feedback_only_trains",
                "unreviewed feedback photos sit in train only: they may teach, never grade",
                _feedback_only_trains,
                "feedback_per_split",
            ),
        ),
        summary=lambda o: f"dataset {o.get('dataset_version')} ({o.get('photos')} photos)",
    ),
    Step(
        name="train",
        description="Train on the dataset version; the run folder goes under runs_dir.",
        inputs=(
            Input("dataset_version", "build"),
            Input("config"),
            Input("overrides"),
            Input("epochs"),
            Input("model_name"),
        ),
        outputs=(
            Output("run_id", "str"),
            Output("run_dir", "str"),
            Output("metrics", "dict"),
            Output("phase_epochs", "dict"),
        ),
        run=_train,
        key=_train_key,
        still_valid=_run_still_valid,
        pure=True,
        checks=(
            Check(
                "epochs_cap_every_phase",
                "epochs > 0 caps head training, fine-tuning and distillation alike",
                _epochs_cap_every_phase,
                "phase_epochs",
            ),
        ),
        summary=lambda o: f"run {o.get('run_id')}",
        cpu_limit=TRAINING_CPU_LIMIT,
        memory_limit=TRAINING_MEMORY_LIMIT,
    ),
    Step(
        name="export",
        description="Export the training run as a bundle in the registry.",
        inputs=(Input("run_id", "train"), Input("run_dir", "train")),
        outputs=(
            Output("name", "str"),
            Output("version", "str"),
            Output("uri", "str"),
            Output("serving_variant", "str"),
            Output("metrics", "dict"),
        ),
        run=_export,
        key=_export_key,
        still_valid=_bundle_still_valid,
        pure=True,
        summary=lambda o: f"bundle {o.get('name')}/{o.get('version')}",
        cpu_limit=TRAINING_CPU_LIMIT,
        memory_limit=TRAINING_MEMORY_LIMIT,
    ),
    Step(
        name="evaluate",
        description="Evaluate every TFLite variant of the bundle on its test split.",
        inputs=(
            Input("name", "export"),
            Input("version", "export"),
            Input("dataset_version", "build"),
        ),
        outputs=(
            Output("serving_variant", "str"),
            Output("metrics", "dict"),
            Output("variants", "dict"),
        ),
        run=_evaluate,
        key=_evaluate_key,
        pure=True,
        summary=lambda o: (
            f"{o.get('serving_variant')}: top-1 "
            f"{o['metrics'].get('top1', float('nan')):.3f}, poison cost "
            f"{o['metrics'].get('poison_cost', float('nan')):.4f}"
        ),
    ),
    Step(
        name="field",
        description="Tune the bundle's verdict thresholds on field validation photos (when "
        "there is a field data root; else it goes on unchanged).",
        inputs=(Input("name", "export"), Input("version", "export"), Input("field_data_root")),
        outputs=(
            Output("candidate_version", "str"),
            Output("field_bundle", "str", nullable=True),
            Output("field_metrics", "dict"),
        ),
        run=_field,
        key=_field_key,
        still_valid=_field_bundle_still_valid,
        did_nothing=lambda o: not o.get("field_bundle"),
        # Not pure: the photos under the data root may change while its path stays the same.
        summary=_field_summary,
    ),
    Step(
        name="promote",
        description="Promote through the safety gate: on field validation when the candidate "
        "was measured there, else never worse on poison cost and macro-F1.",
        inputs=(
            Input("name", "export"),
            Input("candidate_version", "field"),
            Input("force_promote"),
        ),
        outputs=(
            Output("accepted", "bool"),
            Output("forced", "bool"),
            Output("reason", "str"),
            Output("candidate", "str"),
            Output("previous_champion", "str", nullable=True),
            Output("champion", "str", nullable=True),
            Output("metrics", "dict"),
            Output("previous_metrics", "dict"),
        ),
        run=_promote,
        key=_promote_key,
        summary=lambda o: f"champion {o.get('champion')} ({o.get('reason', '')})",
    ),
    Step(
        name="reload",
        description="POST /admin/reload on the API so it serves the champion.",
        inputs=(Input("name", "export"), Input("api_url"), Input("api_token")),
        outputs=(Output("serving", "str", nullable=True), Output("reloaded", "bool")),
        run=_reload,
        did_nothing=lambda o: not o.get("reloaded"),
        summary=lambda o: f"API serves {o['serving']}" if o.get("serving") else "nothing reloaded",
    ),
)
STEPS_BY_NAME = {s.name: s for s in STEPS}


def input_kind(step: Step, item: Input) -> Kind:
    """The kind of an input: its parameter's, or the kind of the output it takes."""
    if item.source == "params":
        return PARAMS_BY_NAME[item.name].kind
    return STEPS_BY_NAME[item.source].output(item.name).kind


# --- values across process boundaries (the `step` command, KFP parameters) ---------------------


def encode(value: Any, kind: Kind) -> str:
    """A value as a KFP output parameter file holds it: strings as they are, the rest as JSON."""
    if kind == "str":
        return "" if value is None else str(value)
    return json.dumps(value, sort_keys=True)


def decode(text: str, kind: Kind, nullable: bool = False) -> Any:
    """The value of a command-line or KFP parameter text of this kind.

    Raises:
        ValueError: the text is not a value of this kind (the message says which).
    """
    if kind == "str":
        return None if nullable and text == "" else text
    if kind == "int":
        number = float(text)
        if not number.is_integer():
            raise ValueError(f"{text!r} is not a whole number")
        return int(number)
    if kind == "bool":
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no", ""):
            return False
        raise ValueError(f"{text!r} is not true or false")
    value = json.loads(text)
    if not isinstance(value, PYTHON_TYPES[kind]):
        raise ValueError(f"{text!r} is not a JSON {'array' if kind == 'list' else 'object'}")
    return value


def _check_kind(where: str, value: Any, kind: Kind, nullable: bool) -> None:
    if value is None and nullable:
        return
    wanted = PYTHON_TYPES[kind]
    # bool is an int in Python; an int output must not be a bool and vice versa.
    if not isinstance(value, wanted) or (kind == "int" and isinstance(value, bool)):
        raise PipelineError(f"{where} should be {kind}, got {type(value).__name__} {value!r}")


def validate_outputs(step: Step, outputs: Values) -> None:
    """Every declared output is there with its kind; nothing undeclared.

    Raises:
        PipelineError: the outputs do not match the step's declaration.
    """
    declared = {o.name for o in step.outputs}
    if set(outputs) != declared:
        raise PipelineError(
            f"step {step.name} returned outputs {sorted(outputs)}, declared {sorted(declared)}"
        )
    for output in step.outputs:
        _check_kind(
            f"output {output.name} of step {step.name}",
            outputs[output.name],
            output.kind,
            output.nullable,
        )


def step_inputs(step: Step, params: Values, upstream: dict[str, Values]) -> Values:
    """A step's inputs from the pipeline parameters and the earlier steps' outputs."""
    values: Values = {}
    for item in step.inputs:
        if item.source == "params":
            values[item.name] = params.get(item.name, PARAMS_BY_NAME[item.name].default)
        else:
            values[item.name] = upstream[item.source][item.name]
    return values


def execute(step: Step, context: StepContext, inputs: Values, cache: StepCache) -> StepOutcome:
    """Run one step (or find its record), run its checks, and validate its outputs.

    Args:
        step: the step.
        context: storage, settings, runs folder, code version.
        inputs: one value per declared input.
        cache: the step records.

    Returns:
        The step's outcome.

    Raises:
        PipelineError: a check failed or the inputs or outputs do not match the declaration.
    """
    names = {i.name for i in step.inputs}
    if set(inputs) != names:
        raise PipelineError(f"step {step.name} takes {sorted(names)}, was given {sorted(inputs)}")
    for item in step.inputs:
        _check_kind(
            f"input {item.name} of step {step.name}",
            inputs[item.name],
            input_kind(step, item),
            False,
        )

    def compute() -> Values:
        outputs = step.run(context, inputs)
        for check in step.checks:
            logger.info("step %-9s check %s", step.name, check.name)
            outputs[check.output] = check.run(context, inputs, outputs)
        validate_outputs(step, outputs)
        return outputs

    key = step.key(context, inputs) if step.key is not None else None
    if key is None:
        started = time.monotonic()
        outputs = compute()
        idle = step.did_nothing is not None and step.did_nothing(outputs)
        return StepOutcome(
            step=step.name,
            key=None,
            status="skipped" if idle else "done",
            outputs=outputs,
            duration_s=time.monotonic() - started,
        )

    def still_valid(outputs: Values) -> bool:
        try:
            validate_outputs(step, outputs)
        except PipelineError:
            return False  # a record from older code: run the step again
        return step.still_valid is None or step.still_valid(context, outputs)

    return cache.run(step.name, key, compute, still_valid)
