"""The same steps as a Vertex AI Pipelines (KFP v2) pipeline of container components.

Each component runs a service image's own CLI (`mushroom-collect`, `mushroom-train`), so the
cluster runs exactly the code the images were built from; step outputs (dataset version, run id,
bundle version) travel between components as KFP output parameters. KFP's execution cache plays
the role of the local step records: a component whose image, command and inputs were seen before
is not run again (collection is never cached, since its inputs live outside the pipeline).

Compile with `mushroom-pipeline compile-kfp pipeline.yaml` (no cloud call); pipeline/README.md
shows how to submit the YAML to Vertex AI Pipelines.
"""

# No `from __future__ import annotations`: KFP reads the annotations at decoration time.
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfp import compiler, dsl

PIPELINE_NAME = "mushroom-id-train-and-promote"

# Shell preamble of every component: the storage root and the local runs folder (a Cloud Storage
# FUSE path on Vertex AI, so that train, export and evaluate see the same run folder).
_ENV = 'export MUSHROOM_STORAGE_URI="$0" TRAIN_RUNS_DIR="$1"\n'

# POSIX sh has no pipefail: each CLI writes to a file first, so a failing CLI fails the step.
COLLECT_SCRIPT = (
    "set -eu\n"
    + _ENV
    + 'for folder in $2; do mushroom-collect import-folder "$folder" --quiet; done\n'
    + 'if [ "$4" -gt 0 ]; then\n'
    + '  if [ -n "$3" ]; then mushroom-collect inat --species "$3" --max-per-species "$4" --quiet\n'
    + '  else mushroom-collect inat --max-per-species "$4" --quiet; fi\n'
    + "fi\n"
    + 'case "$5" in true|True|1)\n'
    + '  if [ -n "$6" ]; then mushroom-collect import-feedback --database-url "$6" --quiet\n'
    + "  else mushroom-collect import-feedback --quiet; fi;;\n"
    + "esac\n"
    + 'mushroom-collect list > "$7"\n'
)
BUILD_SCRIPT = (
    "set -eu\n"
    + _ENV
    + 'test -n "$2"\n'
    + "mushroom-collect build --quiet > /tmp/build.out\n"
    + 'tail -n 1 /tmp/build.out > "$3"\n'
)
TRAIN_SCRIPT = (
    "set -eu\n"
    + _ENV
    + 'set -- "$@" -s "data.dataset_version=$3"\n'
    + 'if [ "$4" -gt 0 ]; then\n'
    + '  set -- "$@" -s "training.phase1_epochs=$4" -s "student.epochs=$4"\n'
    + "fi\n"
    + 'if [ -n "$5" ]; then set -- "$@" -s "export.name=$5"; fi\n'
    + 'config="$2"; out="$6"; shift 6\n'
    + 'mushroom-train train -c "$config" "$@" > /tmp/train.out\n'
    + 'awk \'$1 == "run" {print $3}\' /tmp/train.out | tail -n 1 > "$out"\n'
    + 'test -s "$out"\n'
)
EXPORT_SCRIPT = (
    "set -eu\n"
    + _ENV
    + 'mushroom-train export "$2" > /tmp/export.out\n'
    + 'awk \'$1 == "bundle" {print $2 "/" $3}\' /tmp/export.out | tail -n 1 > "$3"\n'
    + 'test -s "$3"\n'
)
EVALUATE_SCRIPT = (
    "set -eu\n" + _ENV + 'mushroom-train evaluate "${2%%/*}" "${2#*/}" --split test > "$3"\n'
)
# A refusal by the gate exits non-zero: the run stops at promote and nothing is reloaded.
PROMOTE_SCRIPT = (
    "set -eu\n"
    + _ENV
    + 'mushroom-train promote "${2%%/*}" "${2#*/}" --reason "vertex ai pipeline" > "$3"\n'
)
RELOAD_SCRIPT = (
    "set -eu\n"
    + 'if [ -z "$0" ]; then echo "no API URL: nothing to reload" > "$2"; exit 0; fi\n'
    + 'python - "$0" "$1" "$2" <<\'EOF\'\n'
    + "import sys, urllib.request\n"
    + "url, token, out = sys.argv[1:4]\n"
    + "request = urllib.request.Request(url.rstrip('/') + '/admin/reload', method='POST',\n"
    + "    headers={'Authorization': 'Bearer ' + token})\n"
    + "with urllib.request.urlopen(request, timeout=300) as response:\n"
    + "    open(out, 'w').write(response.read().decode())\n"
    + "EOF\n"
)


@dataclass(frozen=True)
class ServiceImages:
    """The service images the components run (see deployment/ for how they are built)."""

    collector: str
    training: str


def _component(function: Callable[..., Any]) -> Any:
    """`dsl.container_component`, typed for mypy (kfp ships no type information)."""
    component: Any = dsl.container_component(function)
    return component


def _pipeline(name: str, description: str) -> Callable[[Callable[..., None]], Any]:
    """`dsl.pipeline(name=..., description=...)`, typed for mypy."""
    decorator: Callable[[Callable[..., None]], Any] = dsl.pipeline(
        name=name, description=description
    )
    return decorator


def build_pipeline(images: ServiceImages) -> Any:
    """The KFP pipeline function for these images (images are fixed at compile time)."""

    @_component
    def collect(
        storage_uri: str,
        runs_dir: str,
        import_folders: str,
        inat_species: str,
        max_per_species: int,
        with_feedback: bool,
        feedback_db: str,
        summary: dsl.OutputPath(str),  # type: ignore[valid-type]  # KFP's output annotation
    ) -> dsl.ContainerSpec:
        """Import class folders, collect from iNaturalist, import shared feedback photos."""
        return dsl.ContainerSpec(
            image=images.collector,
            command=["sh", "-c", COLLECT_SCRIPT],
            args=[
                storage_uri,
                runs_dir,
                import_folders,
                inat_species,
                max_per_species,
                with_feedback,
                feedback_db,
                summary,
            ],
        )

    @_component
    def build(
        storage_uri: str,
        runs_dir: str,
        collected: str,
        dataset_version: dsl.OutputPath(str),  # type: ignore[valid-type]  # KFP's output annotation
    ) -> dsl.ContainerSpec:
        """Build the immutable dataset version of everything collected."""
        return dsl.ContainerSpec(
            image=images.collector,
            command=["sh", "-c", BUILD_SCRIPT],
            args=[storage_uri, runs_dir, collected, dataset_version],
        )

    @_component
    def train(
        storage_uri: str,
        runs_dir: str,
        config: str,
        dataset_version: str,
        epochs: int,
        model_name: str,
        run_dir: dsl.OutputPath(str),  # type: ignore[valid-type]  # KFP's output annotation
    ) -> dsl.ContainerSpec:
        """Train on the dataset version; outputs the run folder (under runs_dir)."""
        return dsl.ContainerSpec(
            image=images.training,
            command=["sh", "-c", TRAIN_SCRIPT],
            args=[storage_uri, runs_dir, config, dataset_version, epochs, model_name, run_dir],
        )

    @_component
    def export(
        storage_uri: str,
        runs_dir: str,
        run_dir: str,
        bundle: dsl.OutputPath(str),  # type: ignore[valid-type]  # KFP's output annotation
    ) -> dsl.ContainerSpec:
        """Export the run as a bundle in the registry; outputs name/version."""
        return dsl.ContainerSpec(
            image=images.training,
            command=["sh", "-c", EXPORT_SCRIPT],
            args=[storage_uri, runs_dir, run_dir, bundle],
        )

    @_component
    def evaluate(
        storage_uri: str,
        runs_dir: str,
        bundle: str,
        metrics: dsl.OutputPath(str),  # type: ignore[valid-type]  # KFP's output annotation
    ) -> dsl.ContainerSpec:
        """Evaluate the bundle (and the champion) on the test split."""
        return dsl.ContainerSpec(
            image=images.training,
            command=["sh", "-c", EVALUATE_SCRIPT],
            args=[storage_uri, runs_dir, bundle, metrics],
        )

    @_component
    def promote(
        storage_uri: str,
        runs_dir: str,
        bundle: str,
        evaluation: str,
        decision: dsl.OutputPath(str),  # type: ignore[valid-type]  # KFP's output annotation
    ) -> dsl.ContainerSpec:
        """Promote through the safety gate (never worse on poison cost and macro-F1)."""
        return dsl.ContainerSpec(
            image=images.training,
            command=["sh", "-c", PROMOTE_SCRIPT],
            args=[storage_uri, runs_dir, bundle, decision, evaluation],
        )

    @_component
    def reload(
        api_url: str,
        api_admin_token: str,
        decision: str,
        served: dsl.OutputPath(str),  # type: ignore[valid-type]  # KFP's output annotation
    ) -> dsl.ContainerSpec:
        """POST /admin/reload on the API so it serves the champion."""
        return dsl.ContainerSpec(
            image=images.training,
            command=["sh", "-c", RELOAD_SCRIPT],
            args=[api_url, api_admin_token, served, decision],
        )

    @_pipeline(
        PIPELINE_NAME, "Mushroom ID: collect, build, train, export, evaluate, promote, reload"
    )
    def mushroom_pipeline(
        storage_uri: str,
        runs_dir: str,
        import_folders: str = "",
        inat_species: str = "",
        max_per_species: int = 0,
        with_feedback: bool = False,
        feedback_db: str = "",
        config: str = "/app/model-training/configs/demo.yaml",
        epochs: int = 0,
        model_name: str = "",
        api_url: str = "",
        api_admin_token: str = "",
    ) -> None:
        collected = collect(
            storage_uri=storage_uri,
            runs_dir=runs_dir,
            import_folders=import_folders,
            inat_species=inat_species,
            max_per_species=max_per_species,
            with_feedback=with_feedback,
            feedback_db=feedback_db,
        )
        collected.set_caching_options(False)
        built = build(storage_uri=storage_uri, runs_dir=runs_dir, collected=collected.output)
        built.set_caching_options(False)
        trained = train(
            storage_uri=storage_uri,
            runs_dir=runs_dir,
            config=config,
            dataset_version=built.output,
            epochs=epochs,
            model_name=model_name,
        )
        trained.set_cpu_limit("8").set_memory_limit("32G")
        exported = export(storage_uri=storage_uri, runs_dir=runs_dir, run_dir=trained.output)
        exported.set_cpu_limit("8").set_memory_limit("32G")
        evaluated = evaluate(storage_uri=storage_uri, runs_dir=runs_dir, bundle=exported.output)
        decided = promote(
            storage_uri=storage_uri,
            runs_dir=runs_dir,
            bundle=exported.output,
            evaluation=evaluated.output,
        )
        decided.set_caching_options(False)
        reloaded = reload(api_url=api_url, api_admin_token=api_admin_token, decision=decided.output)
        reloaded.set_caching_options(False)

    return mushroom_pipeline


def compile_pipeline(output: Path, images: ServiceImages) -> Path:
    """Compile the pipeline to KFP's YAML spec (no cloud call)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(images), str(output))
    return output
