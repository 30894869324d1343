"""The pipeline of definition.STEPS as a Vertex AI Pipelines (KFP v2) pipeline.

Nothing here is written per step: each step becomes a container component that runs
`mushroom-pipeline step <name>` in the training image (which carries the pipeline, the collector
and the training code), with the step's declared inputs as typed KFP input parameters and its
declared outputs as typed output parameters (the `step` command writes each one to its KFP
output file). A pipeline parameter feeds the inputs of the same name; every other input is the
output of the same name of the step that produces it. The steps run one after another, as
locally. KFP's execution cache may serve only the steps marked `pure` (whose outputs follow
from their inputs); the others read the world (collected photos, the champion, the API).

Compile with `mushroom-pipeline compile-kfp pipeline.yaml` (no cloud call); pipeline/README.md
shows how to submit the YAML to Vertex AI Pipelines.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kfp import compiler, dsl

from mushroom_pipeline.definition import PARAMS, PYTHON_TYPES, STEPS, Step, input_kind

PIPELINE_NAME = "mushroom-id-train-and-promote"
# Parameters of every component besides the step's inputs: where storage and training runs are.
# runs_dir is a Cloud Storage FUSE path on Vertex AI (/gcs/<bucket>/...), so that train, export
# and evaluate, each in its own container, see the same run folder.
CONTEXT_PARAMS = ("storage_uri", "runs_dir")


def _parameter(name: str, annotation: Any, default: Any = inspect.Parameter.empty) -> Any:
    return inspect.Parameter(
        name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=annotation, default=default
    )


def step_command(step: Step) -> list[str]:
    """The command of a step's component."""
    return ["mushroom-pipeline", "step", step.name]


def _component(step: Step, image: str) -> Any:
    """A container component of one step; its signature is made from the step's declaration."""
    inputs = [item.name for item in step.inputs]
    outputs = [output.name for output in step.outputs]
    clash = set(inputs) & set(outputs) | (set(inputs) | set(outputs)) & set(CONTEXT_PARAMS)
    if clash:
        raise ValueError(f"step {step.name}: inputs and outputs share names {sorted(clash)}")

    def container(*values: Any) -> dsl.ContainerSpec:
        storage_uri, runs_dir, *rest = values
        args = ["--storage", storage_uri, "--runs-dir", runs_dir]
        args += ["--pipeline-run-id", dsl.PIPELINE_JOB_NAME_PLACEHOLDER]
        for name, value in zip([*inputs, *outputs], rest, strict=True):
            args += ["--input" if name in inputs else "--output", f"{name}={value}"]
        return dsl.ContainerSpec(image=image, command=step_command(step), args=args)

    container.__name__ = step.name
    container.__doc__ = step.description
    container.__signature__ = inspect.Signature(  # type: ignore[attr-defined]  # read by KFP
        [
            *(_parameter(name, str) for name in CONTEXT_PARAMS),
            *(_parameter(i.name, PYTHON_TYPES[input_kind(step, i)]) for i in step.inputs),
            *(_parameter(o.name, dsl.OutputPath(PYTHON_TYPES[o.kind])) for o in step.outputs),
        ]
    )
    component: Any = dsl.container_component(container)
    return component


def build_pipeline(image: str) -> Any:
    """The KFP pipeline of definition.STEPS, every component in this image."""
    components = {step.name: _component(step, image) for step in STEPS}
    names = [*CONTEXT_PARAMS, *(p.name for p in PARAMS)]

    def pipeline(*values: Any) -> None:
        params = dict(zip(names, values, strict=True))
        tasks: dict[str, Any] = {}
        previous: Any = None
        for step in STEPS:
            arguments = {
                i.name: params[i.name] if i.source == "params" else tasks[i.source].outputs[i.name]
                for i in step.inputs
            }
            task = components[step.name](
                **{name: params[name] for name in CONTEXT_PARAMS}, **arguments
            )
            if previous is not None:
                task.after(previous)
            task.set_caching_options(step.pure)
            if step.cpu_limit:
                task.set_cpu_limit(step.cpu_limit)
            if step.memory_limit:
                task.set_memory_limit(step.memory_limit)
            tasks[step.name] = task
            previous = task

    pipeline.__name__ = PIPELINE_NAME.replace("-", "_")
    pipeline.__signature__ = inspect.Signature(  # type: ignore[attr-defined]  # read by KFP
        [
            *(_parameter(name, str) for name in CONTEXT_PARAMS),
            *(_parameter(p.name, PYTHON_TYPES[p.kind], p.default) for p in PARAMS),
        ]
    )
    decorator: Callable[[Callable[..., None]], Any] = dsl.pipeline(
        name=PIPELINE_NAME, description="Mushroom ID: " + ", ".join(s.name for s in STEPS)
    )
    return decorator(pipeline)


def compile_pipeline(output: Path, image: str) -> Path:
    """Compile the pipeline to KFP's YAML spec (no cloud call)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(image), str(output))
    return output
