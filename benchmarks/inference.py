"""Inference paths of a model bundle, side by side in one run.

For every variant of the bundle (the SavedModel in TensorFlow, each TFLite file in LiteRT, and the
float model converted to ONNX Runtime when that works) at each batch size and thread count:
p50/p95 latency per call, images/s, size on disk, and top-1 on a dataset version's test split.
Then JPEG decode + resize with the API's own decoder, with and without Pillow's draft mode.

TensorFlow runs in a child process per thread count (its thread pools are fixed once it starts),
so LiteRT and ONNX Runtime are measured in a process that never imported TensorFlow, as in the API.

    cd /work/main && uv run python benchmarks/inference.py --help
"""

from __future__ import annotations

import logging
import multiprocessing
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Protocol

import _common
import numpy as np
import numpy.typing as npt
import typer
from _common import DEMO_BUNDLE_DIR, RESULTS_DIR, TestPhoto, write_report

from mushroom_api.services.imaging import decode_photo
from mushroom_common.bundle import BundleMetadata, read_metadata
from mushroom_common.catalog import load_catalog
from mushroom_common.dataset import read_manifest
from mushroom_common.imaging import resize_for_model
from mushroom_common.runtime import BundleRuntime
from mushroom_common.storage import StorageError, open_storage

logger = logging.getLogger("benchmarks.inference")
app = typer.Typer(add_completion=False, help=__doc__)

Pixels = npt.NDArray[np.uint8]
MAX_PIXELS = 40_000_000  # the API's default pixel limit


# ----------------------------------------------------------------------------- evaluation photos


@dataclass
class EvalSet:
    """Photos resized for the model, their label indices, and where they came from."""

    images: Pixels
    labels: npt.NDArray[np.int64]
    source: str
    note: str = ""


def _to_model_input(data: bytes, size: tuple[int, int]) -> Pixels:
    """Photo bytes -> the served model's input, exactly as the API does it."""
    photo = decode_photo(data, MAX_PIXELS, size)
    return resize_for_model(photo.image, size[1], size[0])


def load_test_split(
    metadata: BundleMetadata, storage_uri: str | None, dataset_version: str | None
) -> EvalSet:
    """The test split of a dataset version in storage, resized for the bundle's input."""
    version = dataset_version or metadata.dataset_version
    storage = open_storage(storage_uri)
    rows = [row for row in read_manifest(storage, version) if row.split == "test"]
    if not rows:
        raise StorageError(f"dataset version {version} has no test photos")
    index = {label: i for i, label in enumerate(metadata.labels)}
    size = (metadata.input.width, metadata.input.height)
    images, labels, skipped = [], [], 0
    for row in rows:
        if row.species not in index:
            skipped += 1
            continue
        images.append(_to_model_input(storage.read_bytes(row.image_key), size))
        labels.append(index[row.species])
    note = f"{skipped} test photos of species outside the model skipped" if skipped else ""
    return EvalSet(
        np.stack(images), np.array(labels, np.int64), f"{storage.uri} dataset {version} test", note
    )


def load_folder_photos(metadata: BundleMetadata, data_dir: Path, per_species: int) -> EvalSet:
    """Photos under `data_dir` in species folders, labelled by folder name -> catalog id.

    Takes `mushroomvision/val/<species>/` and `nordic-field/<species>/`, at most `per_species`
    photos per species (sorted by path, so the same photos every run).
    """
    catalog = load_catalog()
    index = {label: i for i, label in enumerate(metadata.labels)}
    size = (metadata.input.width, metadata.input.height)
    folders = sorted((data_dir / "mushroomvision" / "val").glob("*/")) + sorted(
        (data_dir / "nordic-field").glob("*/")
    )
    by_label: dict[int, list[Path]] = {}
    for folder in folders:
        species = catalog.resolve(folder.name.replace("_", " ")) or catalog.resolve(folder.name)
        if species is None or species.id not in index:
            continue
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        by_label.setdefault(index[species.id], []).extend(files)
    images, labels = [], []
    for label, files in sorted(by_label.items()):
        for path in files[:per_species]:
            try:
                images.append(_to_model_input(path.read_bytes(), size))
            except ValueError as exc:
                logger.warning("skipping %s: %s", path, exc)
                continue
            labels.append(label)
    if not images:
        raise FileNotFoundError(f"no photos of the model's species under {data_dir}")
    return EvalSet(
        np.stack(images),
        np.array(labels, np.int64),
        f"{data_dir} (mushroomvision/val + nordic-field, <= {per_species} per species)",
        "NOT the test split: folder photos the demo model may have been trained on, so top-1 is "
        "optimistic; it still compares the variants with each other",
    )


# ----------------------------------------------------------------------------- runners


class Runner(Protocol):
    """One way of running the model: pixels [n, h, w, 3] uint8 -> logits [n, labels]."""

    input_size: tuple[int, int]  # (height, width)
    batched: bool  # False: a batch is run photo by photo

    def __call__(self, pixels: Pixels) -> npt.NDArray[np.float32]: ...


def _logits_index(outputs: Sequence[dict[str, Any]], num_labels: int) -> int:
    """Position of the [n, num_labels] logits among a model's outputs (output 0 otherwise)."""
    for position, output in enumerate(outputs):
        shape = [int(d) for d in np.asarray(output["shape"]).reshape(-1)]
        if shape and shape[-1] == num_labels:
            return position
    return 0


class LiteRTRunner:
    """The served runtime (mushroom_common.runtime), resized to the batch when the model allows."""

    def __init__(
        self, bundle_dir: Path, metadata: BundleMetadata, variant: str, threads: int, batch: int
    ) -> None:
        self.runtime = BundleRuntime.for_variant(
            bundle_dir, metadata, variant, num_threads=threads, batch_size=batch
        )
        self.input_size = self.runtime.input_size
        self.batched = self.runtime.batch_size > 1

    def __call__(self, pixels: Pixels) -> npt.NDArray[np.float32]:
        return self.runtime.run_batch(pixels).logits.astype(np.float32)


def _litert_for_batch(
    bundle_dir: Path, metadata: BundleMetadata, variant: str, threads: int, batch: int
) -> Runner:
    return LiteRTRunner(bundle_dir, metadata, variant, threads, batch)


def _same_runner(runner: Runner, _batch: int) -> Runner:
    return runner


class OnnxRunner:
    """An ONNX Runtime session on the CPU with a fixed number of intra-op threads."""

    def __init__(self, path: Path, threads: int, num_labels: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.input_dtype = np.uint8 if "uint8" in model_input.type else np.float32
        shape = model_input.shape
        self.input_size = (int(shape[1]), int(shape[2]))
        self.batched = not isinstance(shape[0], int)
        outputs = [
            {"shape": [-1 if not isinstance(d, int) else d for d in o.shape]}
            for o in self.session.get_outputs()
        ]
        self.output_position = _logits_index(outputs, num_labels)

    def _run(self, pixels: Pixels) -> npt.NDArray[np.float32]:
        feed = {self.input_name: pixels.astype(self.input_dtype, copy=False)}
        return np.asarray(self.session.run(None, feed)[self.output_position], np.float32)

    def __call__(self, pixels: Pixels) -> npt.NDArray[np.float32]:
        if self.batched:
            return self._run(pixels)
        return np.concatenate([self._run(pixels[i : i + 1]) for i in range(len(pixels))])


class SavedModelRunner:
    """The SavedModel's serving signature in TensorFlow (call only in a TF child process)."""

    def __init__(self, path: Path, num_labels: int) -> None:
        import tensorflow as tf

        self.tf = tf
        self.function = tf.saved_model.load(str(path)).signatures["serving_default"]
        _, kwargs = self.function.structured_input_signature
        (self.input_name, spec), *_ = kwargs.items()
        self.input_dtype = spec.dtype
        self.input_size = (int(spec.shape[1]), int(spec.shape[2]))
        self.batched = spec.shape[0] is None
        outputs = self.function.structured_outputs
        keys = sorted(outputs)
        shaped = [{"shape": [-1 if d is None else d for d in outputs[k].shape]} for k in keys]
        self.output_key = (
            "logits" if "logits" in outputs else keys[_logits_index(shaped, num_labels)]
        )

    def _run(self, pixels: Pixels) -> npt.NDArray[np.float32]:
        tensor = self.tf.constant(pixels, dtype=self.input_dtype)
        return np.asarray(self.function(**{self.input_name: tensor})[self.output_key], np.float32)

    def __call__(self, pixels: Pixels) -> npt.NDArray[np.float32]:
        if self.batched:
            return self._run(pixels)
        return np.concatenate([self._run(pixels[i : i + 1]) for i in range(len(pixels))])


# ----------------------------------------------------------------------------- measuring


@dataclass
class CaseResult:
    """One variant at one batch size and thread count."""

    variant: str
    runtime: str
    batch: int
    threads: int
    latency: _common.LatencySummary
    images_per_s: float
    batched: bool


@dataclass
class VariantResult:
    """Everything measured for one variant."""

    variant: str
    runtime: str
    size_bytes: int
    load_s: float | None = None
    top1: float | None = None
    evaluated: int = 0
    recorded_metrics: dict[str, float] = field(default_factory=dict)
    cases: list[CaseResult] = field(default_factory=list)
    skipped: str = ""
    source: str = ""  # empty: the bundle folder


def fit_input(pixels: Pixels, size: tuple[int, int]) -> Pixels:
    """Resize model-sized photos to a runner's own input size when it differs (height, width)."""
    if pixels.shape[1:3] == size:
        return pixels
    from PIL import Image

    return np.stack(
        [
            np.asarray(Image.fromarray(p).resize((size[1], size[0]), Image.Resampling.BILINEAR))
            for p in pixels
        ]
    )


def time_calls(call: Callable[[], object], warmup: int, runs: int) -> list[float]:
    """Seconds per call for `runs` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def sample_batch(pool: Pixels, batch: int) -> Pixels:
    """The first `batch` photos of the pool, repeated when the pool is smaller."""
    reps = -(-batch // len(pool))
    return np.ascontiguousarray(np.concatenate([pool] * reps)[:batch])


def top1(runner: Runner, eval_set: EvalSet, batch: int = 16) -> float:
    """Share of photos whose highest logit is their label."""
    images = fit_input(eval_set.images, runner.input_size)
    predicted = np.concatenate(
        [np.argmax(runner(images[i : i + batch]), axis=-1) for i in range(0, len(images), batch)]
    )
    return float(np.mean(predicted == eval_set.labels))


def measure_runner(
    make: Callable[[int], Runner],
    variant: str,
    runtime: str,
    threads: int,
    batches: Sequence[int],
    pool: Pixels,
    warmup: int,
    runs: int,
) -> list[CaseResult]:
    """Time one runner factory (batch -> runner) at each batch size."""
    results = []
    for batch in batches:
        runner = make(batch)
        pixels = fit_input(sample_batch(pool, batch), runner.input_size)
        samples = time_calls(partial(runner, pixels), warmup, runs)
        results.append(
            CaseResult(
                variant=variant,
                runtime=runtime,
                batch=batch,
                threads=threads,
                latency=_common.summarize_latencies(samples),
                images_per_s=batch * len(samples) / sum(samples),
                batched=runner.batched or batch == 1,
            )
        )
        logger.info(
            "%s/%s batch %d threads %d: p50 %.1f ms",
            variant,
            runtime,
            batch,
            threads,
            results[-1].latency.p50_ms,
        )
    return results


@dataclass
class SavedModelJob:
    """What a TensorFlow child process measures."""

    path: Path
    variant: str
    num_labels: int
    threads: int
    batches: list[int]
    pool: Pixels
    warmup: int
    runs: int
    eval_images: Pixels | None
    eval_labels: npt.NDArray[np.int64] | None
    decode_photos: list[TestPhoto]
    decode_runs: int
    input_size: tuple[int, int]


def measure_thread_counts(
    make: Callable[[int], Callable[[int], Runner]],
    variant: str,
    runtime: str,
    thread_counts: Sequence[int],
    batches: Sequence[int],
    pool: Pixels,
    warmup: int,
    runs: int,
) -> list[CaseResult]:
    """`measure_runner` at each thread count, `make(threads)` giving the runner factory."""
    cases: list[CaseResult] = []
    for count in thread_counts:
        cases += measure_runner(make(count), variant, runtime, count, batches, pool, warmup, runs)
    return cases


def saved_model_worker(job: SavedModelJob) -> dict[str, Any]:
    """In a fresh process: TF with `job.threads` threads, the SavedModel timed (and evaluated)."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(job.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    started = time.perf_counter()
    runner = SavedModelRunner(job.path, job.num_labels)
    load_s = time.perf_counter() - started
    cases = measure_runner(
        partial(_same_runner, runner),
        job.variant,
        "tensorflow",
        job.threads,
        job.batches,
        job.pool,
        job.warmup,
        job.runs,
    )
    accuracy = None
    if job.eval_images is not None and job.eval_labels is not None:
        accuracy = top1(runner, EvalSet(job.eval_images, job.eval_labels, ""))
    decode = [
        _tf_decode_case(tf, photo, job.input_size, job.decode_runs) for photo in job.decode_photos
    ]
    return {"cases": cases, "load_s": load_s, "top1": accuracy, "decode": decode}


def _tf_decode_case(tf: Any, photo: TestPhoto, size: tuple[int, int], runs: int) -> DecodeResult:
    """The course app's path: tf.io.decode_jpeg at full size, tf.image.resize, /255."""
    data = tf.constant(photo.data)
    decode_s, total_s = [], []
    for run in range(runs + 2):  # the first two are warm-up
        started = time.perf_counter()
        image = tf.io.decode_jpeg(data, channels=3)
        image.numpy()
        decoded_at = time.perf_counter()
        (tf.image.resize(image, size) / 255.0).numpy()
        if run >= 2:
            decode_s.append(decoded_at - started)
            total_s.append(time.perf_counter() - started)
    return DecodeResult(
        photo.name,
        photo.kib,
        "tf.io.decode_jpeg + tf.image.resize (course)",
        f"{photo.width}x{photo.height}",
        _common.summarize_latencies(total_s),
        _common.summarize_latencies(decode_s).p50_ms,
    )


def run_saved_model(job: SavedModelJob) -> dict[str, Any]:
    """Run `saved_model_worker` in a spawned child so its TF thread settings are its own."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(saved_model_worker, job).result()


def convert_to_onnx(
    bundle_dir: Path, metadata: BundleMetadata, saved_model: Path | None, target: Path
) -> str:
    """Convert the float model to ONNX with tf2onnx; return '' on success or why it failed.

    Tries the SavedModel first (its batch dimension stays free), then the float32 TFLite file.
    """
    sources: list[list[str]] = []
    variants = {v.name: v for v in metadata.variants}
    if saved_model is not None:
        sources.append(["--saved-model", str(saved_model)])
    if "float32" in variants:
        sources.append(["--tflite", str(bundle_dir / variants["float32"].path)])
    if not sources:
        return "the bundle has neither a SavedModel nor a float32 TFLite file"
    reasons = []
    for source in sources:
        command = [
            sys.executable,
            "-m",
            "tf2onnx.convert",
            *source,
            "--output",
            str(target),
            "--opset",
            "17",
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            reasons.append(f"{source[0]}: timed out")
            continue
        if done.returncode == 0 and target.is_file():
            logger.info("converted %s to ONNX (%s)", source[1], target)
            return ""
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        reasons.append(f"{source[0]}: {last[:200]}")
    return "tf2onnx failed: " + "; ".join(reasons)


# ----------------------------------------------------------------------------- decoding


@dataclass
class DecodeResult:
    """Decode + resize of one photo in one mode."""

    photo: str
    kib: float
    mode: str
    decoded_at: str
    latency: _common.LatencySummary
    decode_p50_ms: float | None = None  # the decode alone, without the resize


def decode_cases(
    photos: Sequence[TestPhoto], size: tuple[int, int], runs: int
) -> list[DecodeResult]:
    """The API's decode_photo + resize_for_model, with draft mode (as served) and without.

    Without draft mode means asking decode_photo for a target as large as the photo, so its
    draft request cannot reduce the scale: the same code path, decoding every pixel.
    """
    results = []
    for photo in photos:
        for mode, target in (
            ("API decode, draft mode (served)", size),
            ("API decode, no draft (full size)", (photo.width, photo.height)),
        ):
            decoded = decode_photo(photo.data, MAX_PIXELS, target)
            decode_s, total_s = [], []
            for run in range(runs + 2):  # the first two are warm-up
                started = time.perf_counter()
                image = decode_photo(photo.data, MAX_PIXELS, target).image
                decoded_at = time.perf_counter()
                resize_for_model(image, size[1], size[0])
                if run >= 2:
                    decode_s.append(decoded_at - started)
                    total_s.append(time.perf_counter() - started)
            width, height = decoded.image.size
            results.append(
                DecodeResult(
                    photo.name,
                    photo.kib,
                    mode,
                    f"{width}x{height}",
                    _common.summarize_latencies(total_s),
                    _common.summarize_latencies(decode_s).p50_ms,
                )
            )
            logger.info("decode %s %s: p50 %.1f ms", photo.name, mode, results[-1].latency.p50_ms)
    return results


# ----------------------------------------------------------------------------- the command


def _path_size(path: Path) -> int:
    """Bytes of a model file, or of every file in a SavedModel folder."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


def _eval_set(
    metadata: BundleMetadata,
    storage_uri: str | None,
    dataset_version: str | None,
    data_dir: Path,
    per_species: int,
) -> EvalSet | None:
    try:
        return load_test_split(metadata, storage_uri, dataset_version)
    except (StorageError, OSError, ValueError) as exc:
        logger.warning("test split unavailable (%s); using folder photos", exc)
    try:
        return load_folder_photos(metadata, data_dir, per_species)
    except (OSError, ValueError) as exc:
        logger.warning("no photos to measure top-1 on: %s", exc)
        return None


@app.command()
def main(
    bundle_dir: Annotated[Path, typer.Option(help="model bundle folder")] = DEMO_BUNDLE_DIR,
    storage_uri: Annotated[
        str | None, typer.Option(help="storage holding the dataset (default MUSHROOM_STORAGE_URI)")
    ] = None,
    dataset_version: Annotated[
        str | None,
        typer.Option(help="dataset version whose test split is scored (default: the bundle's)"),
    ] = None,
    batch_sizes: Annotated[str, typer.Option(help="comma-separated batch sizes")] = "1,16",
    threads: Annotated[str, typer.Option(help="comma-separated thread counts")] = "1,2",
    warmup: Annotated[int, typer.Option(min=0, help="untimed calls before each case")] = 3,
    runs: Annotated[int, typer.Option(min=1, help="timed calls per case")] = 20,
    variants: Annotated[
        str | None, typer.Option(help="comma-separated variant names to keep (default: all)")
    ] = None,
    onnx: Annotated[bool, typer.Option(help="also convert to ONNX and time ONNX Runtime")] = True,
    accuracy: Annotated[bool, typer.Option(help="score top-1 of each variant")] = True,
    max_photos: Annotated[
        int | None, typer.Option(min=1, help="score at most this many photos (default: all)")
    ] = None,
    data_dir: Annotated[
        Path, typer.Option(help="fallback photos in species folders when the dataset is missing")
    ] = _common.SHARED_DATA_DIR,
    per_species: Annotated[int, typer.Option(min=1, help="fallback photos per species")] = 40,
    decode: Annotated[bool, typer.Option(help="also time JPEG decode + resize")] = True,
    decode_runs: Annotated[int, typer.Option(min=1, help="timed decodes per photo and mode")] = 15,
    results_dir: Annotated[Path, typer.Option(help="where the JSON report goes")] = RESULTS_DIR,
) -> None:
    """Time and score every variant of a bundle; time the API's JPEG decoding."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    if not (bundle_dir / "metadata.json").is_file():
        raise typer.BadParameter(f"no bundle at {bundle_dir} (metadata.json missing)")
    metadata = read_metadata(bundle_dir)
    batches, thread_counts = _common.parse_int_list(batch_sizes), _common.parse_int_list(threads)
    wanted = set(variants.split(",")) if variants else None
    num_labels = len(metadata.labels)
    size = (metadata.input.width, metadata.input.height)
    machine = _common.machine_info()

    eval_set = (
        _eval_set(metadata, storage_uri, dataset_version, data_dir, per_species)
        if accuracy
        else None
    )
    if eval_set is not None and max_photos is not None and len(eval_set.labels) > max_photos:
        keep = np.random.default_rng(0).permutation(len(eval_set.labels))[:max_photos]
        eval_set = EvalSet(
            eval_set.images[keep],
            eval_set.labels[keep],
            eval_set.source + f" (random {max_photos})",
            eval_set.note,
        )
    pool = (
        eval_set.images[:16]
        if eval_set is not None
        else np.random.default_rng(0).integers(0, 256, (16, size[1], size[0], 3), dtype=np.uint8)
    )
    photos = list(_common.standard_photos().values()) if decode else []

    results: list[VariantResult] = []
    tf_decode: list[DecodeResult] = []
    saved_model, saved_model_where = _common.locate_saved_model(
        bundle_dir,
        metadata.name,
        metadata.version,
        [v.path for v in metadata.variants if v.format == "saved_model"],
        storage_uri,
    )
    # (variant, the folder its path is relative to, where that folder came from)
    variant_list = [(v, bundle_dir, "") for v in metadata.variants]
    copy, copy_where = _common.registry_copy(metadata.name, metadata.version, storage_uri)
    notes = []
    if copy is None:
        notes.append(
            f"only the bundle folder's variants are measured: {copy_where} (the repository's demo "
            "bundle leaves out float32 and the SavedModel; pass --storage-uri of the registry)"
        )
    else:
        local_names = {v.name for v in metadata.variants}
        variant_list += [
            (v, copy, copy_where) for v in read_metadata(copy).variants if v.name not in local_names
        ]
    order = ["float32", "float16", "int8", "student_float32", "student_int8", "saved_model"]
    variant_list.sort(key=lambda item: order.index(item[0].name) if item[0].name in order else 99)
    for variant, base_dir, where in variant_list:
        if wanted is not None and variant.name not in wanted:
            continue
        path = base_dir / variant.path
        if variant.format == "saved_model":
            if saved_model is None:
                results.append(
                    VariantResult(variant.name, "tensorflow", 0, skipped=saved_model_where)
                )
                continue
            path = saved_model
            where = (
                ""
                if path.is_relative_to(bundle_dir)
                else saved_model_where.removeprefix("registry copy ")
            )
        result = VariantResult(
            variant.name, "", _path_size(path), recorded_metrics=variant.metrics, source=where
        )
        if variant.format == "saved_model":
            result.runtime = "tensorflow"
            for count in thread_counts:
                last = count == max(thread_counts)
                job = SavedModelJob(
                    path,
                    variant.name,
                    num_labels,
                    count,
                    batches,
                    pool,
                    warmup,
                    runs,
                    eval_set.images if (eval_set is not None and last) else None,
                    eval_set.labels if (eval_set is not None and last) else None,
                    photos if last else [],
                    decode_runs,
                    (size[1], size[0]),
                )
                out = run_saved_model(job)
                result.cases += out["cases"]
                result.load_s = out["load_s"]
                if out["top1"] is not None and eval_set is not None:
                    result.top1, result.evaluated = out["top1"], len(eval_set.labels)
                tf_decode += out["decode"]
        else:
            result.runtime = "litert"
            # The variant's own folder and metadata (the repository's bundle or the registry copy).
            base_metadata = read_metadata(base_dir)
            started = time.perf_counter()
            LiteRTRunner(base_dir, base_metadata, variant.name, 1, 1)
            result.load_s = time.perf_counter() - started
            result.cases += measure_thread_counts(
                # called within this iteration, so the loop's current values are the right ones
                lambda count: partial(
                    _litert_for_batch,
                    base_dir,  # noqa: B023
                    base_metadata,  # noqa: B023
                    variant.name,  # noqa: B023
                    count,
                ),
                variant.name,
                "litert",
                thread_counts,
                batches,
                pool,
                warmup,
                runs,
            )
            if eval_set is not None:
                result.top1 = top1(
                    LiteRTRunner(base_dir, base_metadata, variant.name, max(thread_counts), 16),
                    eval_set,
                )
                result.evaluated = len(eval_set.labels)
        results.append(result)

    if onnx and (wanted is None or "onnx" in wanted):
        results.append(
            _onnx_result(
                bundle_dir,
                metadata,
                saved_model,
                thread_counts,
                batches,
                pool,
                warmup,
                runs,
                eval_set,
            )
        )

    decoded = decode_cases(photos, size, decode_runs) + tf_decode if decode else []
    _report(results, decoded, eval_set, metadata, bundle_dir, machine, results_dir, notes)


def _onnx_result(
    bundle_dir: Path,
    metadata: BundleMetadata,
    saved_model: Path | None,
    thread_counts: list[int],
    batches: list[int],
    pool: Pixels,
    warmup: int,
    runs: int,
    eval_set: EvalSet | None,
) -> VariantResult:
    num_labels = len(metadata.labels)
    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as tmp:
        target = Path(tmp) / "model.onnx"
        reason = convert_to_onnx(bundle_dir, metadata, saved_model, target)
        if reason:
            logger.warning("ONNX Runtime skipped: %s", reason)
            return VariantResult("onnx (float32)", "onnxruntime", 0, skipped=reason)
        result = VariantResult(
            "onnx (float32)",
            "onnxruntime",
            target.stat().st_size,
            source="converted with tf2onnx from the SavedModel or the float32 TFLite file",
        )
        started = time.perf_counter()
        OnnxRunner(target, 1, num_labels)
        result.load_s = time.perf_counter() - started
        result.cases += measure_thread_counts(
            lambda count: partial(_same_runner, OnnxRunner(target, count, num_labels)),
            result.variant,
            "onnxruntime",
            thread_counts,
            batches,
            pool,
            warmup,
            runs,
        )
        if eval_set is not None:
            result.top1 = top1(OnnxRunner(target, max(thread_counts), num_labels), eval_set)
            result.evaluated = len(eval_set.labels)
    return result


def _report(
    results: list[VariantResult],
    decoded: list[DecodeResult],
    eval_set: EvalSet | None,
    metadata: BundleMetadata,
    bundle_dir: Path,
    machine: Any,
    results_dir: Path,
    notes: list[str],
) -> None:
    echo = typer.echo
    echo(
        f"\nBundle {metadata.name}/{metadata.version} at {bundle_dir} "
        f"(serving variant {metadata.serving_variant})"
    )
    echo(f"Machine: {_common.describe_machine(machine)}")
    if eval_set is not None:
        echo(f"Top-1 on {len(eval_set.labels)} photos: {eval_set.source}")
        if eval_set.note:
            echo(f"  note: {eval_set.note}")
    else:
        echo("Top-1: not measured (no dataset and no folder photos)")
    echo("\nVariants")
    echo(
        _common.format_table(
            [
                "variant",
                "from",
                "runtime",
                "size MB",
                "load s",
                "top-1",
                "recorded top-1",
                "skipped",
            ],
            [
                [
                    r.variant,
                    ("converted" if r.runtime == "onnxruntime" else "registry copy")
                    if r.source
                    else "bundle",
                    r.runtime,
                    r.size_bytes / 1e6,
                    r.load_s,
                    r.top1,
                    r.recorded_metrics.get("top1", r.recorded_metrics.get("accuracy")),
                    r.skipped or None,
                ]
                for r in results
            ],
        )
    )
    for source in sorted({r.source for r in results if r.source and r.runtime != "onnxruntime"}):
        echo(f"registry copy: {source}")
    for note in notes:
        echo(f"note: {note}")
    echo("\nLatency per call (a call is one batch)")
    echo(
        _common.format_table(
            ["variant", "runtime", "batch", "threads", "p50 ms", "p95 ms", "images/s", "batched"],
            [
                [
                    c.variant,
                    c.runtime,
                    c.batch,
                    c.threads,
                    c.latency.p50_ms,
                    c.latency.p95_ms,
                    c.images_per_s,
                    c.batched,
                ]
                for r in results
                for c in r.cases
            ],
        )
    )
    if decoded:
        echo(f"\nDecode + resize to {metadata.input.width}x{metadata.input.height}")
        echo(
            _common.format_table(
                [
                    "photo",
                    "KiB",
                    "mode",
                    "decoded at",
                    "decode p50 ms",
                    "p50 ms",
                    "p95 ms",
                    "photos/s",
                ],
                [
                    [
                        d.photo,
                        d.kib,
                        d.mode,
                        d.decoded_at,
                        d.decode_p50_ms,
                        d.latency.p50_ms,
                        d.latency.p95_ms,
                        1000.0 / d.latency.mean_ms,
                    ]
                    for d in decoded
                ],
            )
        )
    path = write_report(
        "inference",
        {
            "machine": machine,
            "bundle": {
                "dir": bundle_dir,
                "name": metadata.name,
                "version": metadata.version,
                "serving_variant": metadata.serving_variant,
            },
            "eval": None
            if eval_set is None
            else {"source": eval_set.source, "photos": len(eval_set.labels), "note": eval_set.note},
            "variants": [asdict(r) for r in results],
            "decode": [asdict(d) for d in decoded],
            "notes": notes,
        },
        results_dir,
    )
    echo(f"\nJSON: {path}")


if __name__ == "__main__":
    app()
