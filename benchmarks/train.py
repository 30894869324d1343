"""Training throughput of the Lite0 classifier: fp32 against bf16, two ways of training.

A small fixed number of steps on synthetic 224x224 photos with the network built by
mushroom_training (random weights: throughput does not depend on them), for each phase:

- end to end, the textbook way: every step runs the photo through the whole backbone;
  `head` trains the species head on the frozen backbone, `fine-tune` also the top blocks;
- the project's way (mushroom_training.train): the frozen trunk runs once per photo view
  (`extract`), then phase 1 trains the head on pooled features (`head (cached)`) and phase 2 the
  top blocks and head on the trunk's feature maps (`fine-tune (cached)`).

Each (phase, precision) runs in a fresh TensorFlow process, so the dtype policy and thread pools
are its own. bf16 (Keras `mixed_bfloat16`) runs only where the CPU has bf16 instructions
(avx512_bf16 or amx_bf16). TensorFlow decides the device: on a machine with a GPU it trains there.

    cd /work/main && uv run python benchmarks/train.py --help
"""

from __future__ import annotations

import logging
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import _common
import numpy as np
import typer
from _common import RESULTS_DIR, write_report

logger = logging.getLogger("benchmarks.train")
app = typer.Typer(add_completion=False, help=__doc__)

PHASES = ("head", "fine-tune", "extract", "head (cached)", "fine-tune (cached)")
PRECISIONS = ("float32", "bfloat16")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
NUM_CLASSES = 9
DEMO_CONFIG = _common.REPO_ROOT / "model-training" / "configs" / "demo.yaml"


@dataclass(frozen=True)
class Job:
    """One phase at one precision."""

    phase: str
    precision: str
    batch_size: int
    steps: int
    warmup_steps: int
    image_size: int
    fine_tune_blocks: int
    threads: int
    seed: int


@dataclass
class PhaseResult:
    """Throughput of one job."""

    phase: str
    precision: str
    device: str
    batch_size: int
    steps: int
    step: _common.LatencySummary
    images_per_s: float
    trainable_params: int
    build_s: float
    first_step_s: float


def bf16_supported(flags: list[str]) -> bool:
    """Whether the CPU has instructions that make bfloat16 matmuls fast."""
    return any(flag in flags for flag in BF16_FLAGS)


def run_job(job: Job) -> PhaseResult:
    """In a fresh process: build the phase's model at the precision and time its steps."""
    import keras
    import tensorflow as tf

    from mushroom_training import efficientnet_lite as lite
    from mushroom_training.config import load_config
    from mushroom_training.model import build_network, set_top_trainable

    if job.threads:
        tf.config.threading.set_intra_op_parallelism_threads(job.threads)
    keras.utils.set_random_seed(job.seed)
    keras.mixed_precision.set_dtype_policy(
        "mixed_bfloat16" if job.precision == "bfloat16" else "float32"
    )
    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    started = time.perf_counter()
    config = load_config(
        None,
        [
            "model.weights=none",
            "model.detector=none",
            f"model.fine_tune_blocks={job.fine_tune_blocks}",
            f"data.image_size={job.image_size}",
            f"data.batch_size={job.batch_size}",
        ],
    )
    network = build_network(config, NUM_CLASSES, Path("/nonexistent"))
    rng = np.random.default_rng(job.seed)
    batch = job.batch_size
    size = job.image_size
    labels = np.eye(NUM_CLASSES, dtype=np.float32)[rng.integers(0, NUM_CLASSES, batch)]

    def pixels_model() -> Any:
        pixels = keras.Input((size, size, 3), dtype="uint8", name="pixels")
        x = keras.ops.cast(pixels, "float32")
        trunk = network.trunk(network.preprocessing(x), training=False)
        return keras.Model(pixels, network.head(network.top(trunk)))

    inputs: Any
    if job.phase in ("head", "fine-tune"):
        set_top_trainable(network, job.phase == "fine-tune")
        model = pixels_model()
        inputs = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    elif job.phase == "extract":
        pixels = keras.Input((size, size, 3), dtype="uint8", name="pixels")
        features = network.trunk(network.preprocessing(keras.ops.cast(pixels, "float32")))
        model = keras.Model(pixels, features)
        inputs = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    elif job.phase == "head (cached)":
        pooled = keras.Input((lite.FEATURES,), name="pooled")
        head = network.head
        model = keras.Model(
            pooled, head.get_layer("species_logits")(head.get_layer("head_dropout")(pooled))
        )
        inputs = rng.normal(0, 1, (batch, lite.FEATURES)).astype(np.float32)
    elif job.phase == "fine-tune (cached)":
        set_top_trainable(network, True)
        first_top = lite.NUM_BLOCKS - job.fine_tune_blocks
        shape = lite.cut_shape(first_top, size)
        trunk_out = keras.Input(shape, name="trunk_features")
        model = keras.Model(trunk_out, network.head(network.top(trunk_out)))
        inputs = rng.normal(0, 1, (batch, *shape)).astype(np.float32)
    else:
        raise ValueError(f"unknown phase {job.phase!r}")

    if job.phase == "extract":
        step = tf.function(lambda x: model(x, training=False))

        def call() -> None:
            np.asarray(step(inputs))

    else:
        model.compile(
            optimizer=keras.optimizers.AdamW(1e-4, weight_decay=1e-4),
            loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
        )

        def call() -> None:
            model.train_on_batch(inputs, labels)

    build_s = time.perf_counter() - started
    started = time.perf_counter()
    call()
    first_step_s = time.perf_counter() - started
    for _ in range(max(job.warmup_steps - 1, 0)):
        call()
    samples = []
    for _ in range(job.steps):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return PhaseResult(
        phase=job.phase,
        precision=job.precision,
        device=device,
        batch_size=batch,
        steps=job.steps,
        step=_common.summarize_latencies(samples),
        images_per_s=batch * len(samples) / sum(samples),
        trainable_params=trainable if job.phase != "extract" else 0,
        build_s=build_s,
        first_step_s=first_step_s,
    )


def run_isolated(job: Job) -> PhaseResult:
    """`run_job` in a spawned child process."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(run_job, job).result()


def speedups(results: list[PhaseResult]) -> dict[str, float]:
    """bf16 images/s over fp32 images/s per phase (phases with both precisions only)."""
    by_key = {(r.phase, r.precision): r.images_per_s for r in results}
    return {
        phase: by_key[(phase, "bfloat16")] / by_key[(phase, "float32")]
        for phase in dict.fromkeys(r.phase for r in results)
        if (phase, "bfloat16") in by_key and by_key.get((phase, "float32"))
    }


@app.command()
def main(
    phases: Annotated[
        str, typer.Option(help="comma-separated phases: " + ", ".join(PHASES))
    ] = ",".join(PHASES),
    precisions: Annotated[
        str, typer.Option(help="comma-separated: float32, bfloat16 (skipped without CPU support)")
    ] = ",".join(PRECISIONS),
    config: Annotated[
        Path | None,
        typer.Option(
            help="training config whose batch size, image size and fine-tuned blocks "
            "are used (default: the demo model's, when present)"
        ),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(min=1, help="photos per step (default: the config's)")
    ] = None,
    steps: Annotated[int, typer.Option(min=1, help="timed steps per phase")] = 5,
    warmup_steps: Annotated[
        int, typer.Option(min=1, help="untimed steps first (the first one traces the graph)")
    ] = 2,
    image_size: Annotated[
        int | None, typer.Option(min=32, help="input height and width (default: the config's)")
    ] = None,
    fine_tune_blocks: Annotated[
        int | None,
        typer.Option(
            min=1, max=16, help="Lite0 blocks trained when fine-tuning (default: the config's)"
        ),
    ] = None,
    threads: Annotated[int, typer.Option(min=0, help="TF intra-op threads (0: TF default)")] = 0,
    force_bf16: Annotated[
        bool, typer.Option(help="run bfloat16 even when the CPU flags do not list bf16")
    ] = False,
    seed: Annotated[int, typer.Option(help="seed of the synthetic data and weights")] = 42,
    results_dir: Annotated[Path, typer.Option(help="where the JSON report goes")] = RESULTS_DIR,
) -> None:
    """Time training steps per phase and precision; print images/s and the bf16 speed-up."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    from mushroom_training.config import load_config

    if config is None and DEMO_CONFIG.is_file():
        config = DEMO_CONFIG
    run_config = load_config(config)
    batch_size = batch_size or run_config.data.batch_size
    image_size = image_size or run_config.data.image_size
    fine_tune_blocks = fine_tune_blocks or run_config.model.fine_tune_blocks or 3
    machine = _common.machine_info()
    wanted_phases = [p.strip() for p in phases.split(",") if p.strip()]
    unknown = [p for p in wanted_phases if p not in PHASES]
    if unknown:
        raise typer.BadParameter(f"unknown phases {unknown}; choose from {', '.join(PHASES)}")
    wanted_precisions = [p.strip() for p in precisions.split(",") if p.strip()]
    notes = []
    if "bfloat16" in wanted_precisions and not (force_bf16 or bf16_supported(machine.cpu_flags)):
        wanted_precisions.remove("bfloat16")
        notes.append(f"bfloat16 skipped: the CPU has none of {', '.join(BF16_FLAGS)}")
    results: list[PhaseResult] = []
    for phase in wanted_phases:
        for precision in wanted_precisions:
            job = Job(
                phase,
                precision,
                batch_size,
                steps,
                warmup_steps,
                image_size,
                fine_tune_blocks,
                threads,
                seed,
            )
            result = run_isolated(job)
            logger.info("%s %s: %.1f images/s", phase, precision, result.images_per_s)
            results.append(result)
    devices = sorted({r.device for r in results})
    if "GPU" not in devices:
        notes.append(
            "GPU: not measured; TensorFlow sees no GPU on this machine (run this script "
            "where one is visible and it trains there)"
        )
    ratio = speedups(results)

    echo = typer.echo
    echo(f"\nMachine: {_common.describe_machine(machine)}")
    echo(
        f"EfficientNet-Lite0 at {image_size}x{image_size}, {NUM_CLASSES} classes, batch "
        f"{batch_size}, {steps} timed steps after {warmup_steps} untimed; synthetic data"
    )
    echo(
        _common.format_table(
            [
                "phase",
                "precision",
                "device",
                "step p50 s",
                "step p95 s",
                "images/s",
                "bf16 speed-up",
                "trainable params",
                "first step s",
            ],
            [
                [
                    r.phase,
                    r.precision,
                    r.device,
                    r.step.p50_ms / 1000,
                    r.step.p95_ms / 1000,
                    r.images_per_s,
                    ratio.get(r.phase) if r.precision == "bfloat16" else None,
                    r.trainable_params or None,
                    r.first_step_s,
                ]
                for r in results
            ],
        )
    )
    for note in notes:
        echo(f"note: {note}")
    path = write_report(
        "train",
        {
            "machine": machine,
            "image_size": image_size,
            "batch_size": batch_size,
            "fine_tune_blocks": fine_tune_blocks,
            "results": [asdict(r) for r in results],
            "bf16_speedup": ratio,
            "notes": notes,
        },
        results_dir,
    )
    echo(f"\nJSON: {path}")


if __name__ == "__main__":
    app()
