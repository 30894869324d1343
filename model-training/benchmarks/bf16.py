"""Does mixed bfloat16 speed up training on this CPU? Times phase-2 steps and trunk inference.

Prints one line per (dtype policy, workload) with the median time per batch.
Run: uv run python model-training/benchmarks/bf16.py [--batch 32] [--repeats 5]
"""

from __future__ import annotations

import argparse
import logging
import time

import keras
import numpy as np

from mushroom_training import efficientnet_lite as lite

logger = logging.getLogger("bf16")


def _median_seconds(step: object, repeats: int) -> float:
    assert callable(step)
    step()  # trace and warm up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def main() -> None:
    """Run the benchmark and log the results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--fine-tune-blocks", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rng = np.random.default_rng(0)
    first_top = lite.NUM_BLOCKS - args.fine_tune_blocks
    pixels = rng.uniform(-1, 1, (args.batch, 224, 224, 3)).astype(np.float32)
    features = rng.normal(0, 1, (args.batch, *lite.cut_shape(first_top))).astype(np.float32)
    labels = np.eye(9, dtype=np.float32)[rng.integers(0, 9, args.batch)]
    results = {}
    for policy in ("float32", "mixed_bfloat16"):
        keras.mixed_precision.set_dtype_policy(policy)
        trunk = lite.build_trunk(first_top)
        top = lite.build_top(first_top)
        inputs = keras.Input(features.shape[1:])
        x = keras.layers.GlobalAveragePooling2D()(top(inputs))
        model = keras.Model(inputs, keras.layers.Dense(9, dtype="float32")(x))
        model.compile(
            optimizer=keras.optimizers.AdamW(1e-4),
            loss=keras.losses.CategoricalCrossentropy(from_logits=True),
        )
        train_step = _median_seconds(
            lambda m=model: m.train_on_batch(features, labels), args.repeats
        )
        infer = _median_seconds(lambda t=trunk: t.predict_on_batch(pixels), args.repeats)
        results[policy] = (train_step, infer)
        logger.info(
            "%-15s phase-2 train step %.3f s/batch  trunk inference %.3f s/batch (batch %d)",
            policy,
            train_step,
            infer,
            args.batch,
        )
    keras.mixed_precision.set_dtype_policy("float32")
    f32, bf16 = results["float32"], results["mixed_bfloat16"]
    logger.info(
        "speed-up with bfloat16: train step x%.2f, trunk inference x%.2f",
        f32[0] / bf16[0],
        f32[1] / bf16[1],
    )


if __name__ == "__main__":
    main()
