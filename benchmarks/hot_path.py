"""The /predict hot path's levers, each measured alone, old and new taking turns in one run.

- decode: the API's Pillow decoder (draft mode: libjpeg-turbo's DCT scaling) against simplejpeg
  (the same library's scaled decode straight to numpy), both followed by the shared resize;
- multipart: Starlette parsing the 1 MB upload with its default 1 MB spool (the file spills to a
  temporary file) against a spool as large as the upload limit (stays in memory);
- thread hops: decode in one thread pool and the model in another (two hops) against both in
  one call on the model's thread;
- JSON: pydantic's own serializer against orjson for a /predict answer;
- model threads: one LiteRT thread per interpreter against two, for one photo at a time (wall
  time; the note gives the CPU each costs);
- prediction log: one insert per request against ten records per insert (the writer's linger);
- catalog parse at start: PyYAML's Python parser against libyaml's, with validation;
- test-time views: decode + resize + model + verdict for one photo with the bundle's model run
  on the photo alone against the photo and its mirror image (`runtime.run_views`), wall time and
  CPU per photo.

Each lever's alternatives run in rounds, alternately, so the shared machine's load falls on both.

    cd /work/main && uv run python benchmarks/hot_path.py --help
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import _common
import numpy as np
import numpy.typing as npt
import typer
from _common import DEMO_BUNDLE_DIR, RESULTS_DIR, write_report
from PIL import Image

from mushroom_api.services.imaging import decode_photo
from mushroom_common.bundle import read_metadata
from mushroom_common.imaging import resize_for_model

logger = logging.getLogger("benchmarks.hot_path")
app = typer.Typer(add_completion=False, help=__doc__)

PHOTOS = ("1MB-2000x1500", "upload-1024px")
MAX_PIXELS = 40_000_000


@dataclass
class LeverResult:
    """One alternative of one lever on one photo."""

    lever: str
    photo: str
    alternative: str
    calls: int
    p50_ms: float
    mean_ms: float
    note: str = ""


def time_alternatives(
    alternatives: dict[str, Callable[[], object]], rounds: int, calls_per_round: int
) -> dict[str, list[float]]:
    """Call each alternative `calls_per_round` times per round, the alternatives taking turns."""
    timings: dict[str, list[float]] = {name: [] for name in alternatives}
    for call in alternatives.values():
        call()  # warm-up: first-call allocations and lazy imports are not the steady state
    for _ in range(rounds):
        for name, call in alternatives.items():
            for _ in range(calls_per_round):
                started = time.perf_counter()
                call()
                timings[name].append((time.perf_counter() - started) * 1000)
    return timings


def summarize(
    lever: str, photo: str, timings: dict[str, list[float]], notes: dict[str, str] | None = None
) -> list[LeverResult]:
    return [
        LeverResult(
            lever,
            photo,
            name,
            len(values),
            _common.percentile(values, 50),
            sum(values) / len(values),
            (notes or {}).get(name, ""),
        )
        for name, values in timings.items()
    ]


# ----------------------------------------------------------------------------- decode


def pillow_pixels(data: bytes, size: tuple[int, int]) -> npt.NDArray[np.uint8]:
    """The served path: `decode_photo` (draft mode) then the shared resize."""
    photo = decode_photo(data, MAX_PIXELS, size)
    return resize_for_model(photo.image, size[1], size[0])


def simplejpeg_pixels(data: bytes, size: tuple[int, int]) -> npt.NDArray[np.uint8]:
    """simplejpeg's scaled decode (smallest 1/2^n scale covering the size) then the same resize."""
    # Optional: measured when installed (`uv pip install simplejpeg`), not a dependency.
    simplejpeg: Any = importlib.import_module("simplejpeg")
    pixels = simplejpeg.decode_jpeg(data, colorspace="RGB", min_width=size[0], min_height=size[1])
    return resize_for_model(Image.fromarray(pixels), size[1], size[0])


def decode_lever(photos: dict[str, bytes], size: tuple[int, int], rounds: int) -> list[LeverResult]:
    results = []
    have_simplejpeg = importlib.util.find_spec("simplejpeg") is not None
    for name, data in photos.items():

        def served(d: bytes = data) -> object:
            return pillow_pixels(d, size)

        def scaled(d: bytes = data) -> object:
            return simplejpeg_pixels(d, size)

        alternatives: dict[str, Callable[[], object]] = {"Pillow draft mode (served)": served}
        notes = {}
        if have_simplejpeg:
            alternatives["simplejpeg scaled decode"] = scaled
            diff = np.abs(
                pillow_pixels(data, size).astype(np.int16)
                - simplejpeg_pixels(data, size).astype(np.int16)
            )
            notes["simplejpeg scaled decode"] = (
                f"max |diff| {int(diff.max())}, mean {diff.mean():.2f} grey levels vs served"
            )
        results += summarize(
            "decode + resize", name, time_alternatives(alternatives, rounds, 10), notes
        )
    if not have_simplejpeg:
        logger.warning("simplejpeg is not installed: only the served decoder was measured")
    return results


# ----------------------------------------------------------------------------- multipart


def multipart_request(data: bytes) -> tuple[bytes, str]:
    boundary = "hot-path-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="p.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    return (
        head + data + f"\r\n--{boundary}--\r\n".encode(),
        f"multipart/form-data; boundary={boundary}",
    )


async def parse_form(body: bytes, content_type: str, spool_bytes: int) -> int:
    """Starlette's form parsing of one upload, as FastAPI runs it for `UploadFile` parameters."""
    from starlette.formparsers import MultiPartParser
    from starlette.requests import Request

    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]

    async def receive() -> dict[str, Any]:
        chunk = chunks.pop(0) if chunks else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/predict",
        "headers": [(b"content-type", content_type.encode())],
    }
    default_spool = MultiPartParser.spool_max_size
    MultiPartParser.spool_max_size = spool_bytes
    try:
        form = await Request(scope, receive).form()
    finally:
        MultiPartParser.spool_max_size = default_spool
    upload = form["file"]
    size = len(await upload.read())  # type: ignore[union-attr]  # a file field is an UploadFile
    await form.close()
    return size


def multipart_lever(photos: dict[str, bytes], rounds: int) -> list[LeverResult]:
    from starlette.formparsers import MultiPartParser

    default_spool = MultiPartParser.spool_max_size
    loop = asyncio.new_event_loop()
    results = []
    try:
        for name, data in photos.items():
            body, content_type = multipart_request(data)

            def parse(spool: int, b: bytes = body, c: str = content_type) -> int:
                return loop.run_until_complete(parse_form(b, c, spool))

            alternatives: dict[str, Callable[[], object]] = {
                f"spool {default_spool >> 20} MB (Starlette default)": lambda: parse(default_spool),
                "spool 16 MB (in memory)": lambda: parse(16 << 20),
            }
            results += summarize(
                "multipart parse", name, time_alternatives(alternatives, rounds, 10)
            )
    finally:
        MultiPartParser.spool_max_size = default_spool
        loop.close()
    return results


# ----------------------------------------------------------------------------- thread hops


class Model:
    """The bundle's served LiteRT model: one interpreter per model thread."""

    def __init__(self, bundle_dir: Path, threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        metadata = read_metadata(bundle_dir)
        tflite = next(
            bundle_dir / v.path
            for v in metadata.variants
            if v.format == "tflite" and (bundle_dir / v.path).is_file()
        )
        self.size = (metadata.input.width, metadata.input.height)
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="model")
        self._interpreters: dict[int, Any] = {}
        self._path = str(tflite)
        self._interpreter_cls = Interpreter

    def run(self, pixels: npt.NDArray[np.uint8]) -> float:
        import threading

        ident = threading.get_ident()
        interpreter = self._interpreters.get(ident)
        if interpreter is None:
            interpreter = self._interpreter_cls(model_path=self._path, num_threads=1)
            interpreter.allocate_tensors()
            self._interpreters[ident] = interpreter
        inp = interpreter.get_input_details()[0]["index"]
        interpreter.set_tensor(inp, pixels[np.newaxis, ...])
        interpreter.invoke()
        return float(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).max())


def hops_lever(
    photos: dict[str, bytes], bundle_dir: Path, rounds: int, concurrency: int
) -> list[LeverResult]:
    model = Model(bundle_dir, threads=2)
    decode_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="decode")
    loop = asyncio.new_event_loop()

    async def two_hops(data: bytes) -> float:
        pixels = await loop.run_in_executor(decode_pool, pillow_pixels, data, model.size)
        return await loop.run_in_executor(model.pool, model.run, pixels)

    async def one_call(data: bytes) -> float:
        return await loop.run_in_executor(
            model.pool, lambda: model.run(pillow_pixels(data, model.size))
        )

    def batch(fn: Callable[[bytes], Any], data: bytes) -> Callable[[], object]:
        # `concurrency` requests at once, as under load; the time is per request.
        async def many() -> None:
            await asyncio.gather(*(fn(data) for _ in range(concurrency)))

        return lambda: loop.run_until_complete(many())

    results = []
    try:
        for name, data in photos.items():
            timings = time_alternatives(
                {
                    "decode pool, then model pool (two hops)": batch(two_hops, data),
                    "decode + model in one model-thread call": batch(one_call, data),
                },
                rounds,
                5,
            )
            per_request = {k: [v / concurrency for v in vs] for k, vs in timings.items()}
            results += summarize(
                f"thread hops (concurrency {concurrency}, ms/request)", name, per_request
            )
    finally:
        loop.close()
        decode_pool.shutdown()
        model.pool.shutdown()
    return results


# ----------------------------------------------------------------------------- model threads


def model_threads_lever(bundle_dir: Path, rounds: int) -> list[LeverResult]:
    from mushroom_common.runtime import BundleRuntime

    metadata = read_metadata(bundle_dir)
    pixels = np.random.default_rng(0).integers(
        0, 256, (metadata.input.height, metadata.input.width, 3), dtype=np.uint8
    )
    runtimes = {
        threads: BundleRuntime.for_variant(bundle_dir, metadata, num_threads=threads)
        for threads in (1, 2)
    }
    notes = {}
    for threads, runtime in runtimes.items():
        started = time.process_time()
        for _ in range(50):
            runtime.run(pixels)
        notes[f"{threads} thread(s)"] = f"{(time.process_time() - started) * 20:.2f} ms CPU/call"
    alternatives: dict[str, Callable[[], object]] = {
        f"{threads} thread(s)": partial(runtime.run, pixels)
        for threads, runtime in runtimes.items()
    }
    return summarize(
        "model threads (one photo at a time)",
        "-",
        time_alternatives(alternatives, rounds, 10),
        notes,
    )


# ----------------------------------------------------------------------------- test-time views


def views_lever(photos: dict[str, bytes], bundle_dir: Path, rounds: int) -> list[LeverResult]:
    from mushroom_common.bundle import InferenceView
    from mushroom_common.catalog import load_catalog
    from mushroom_common.runtime import BundleRuntime
    from mushroom_common.verdict import VerdictRules, judge

    metadata = read_metadata(bundle_dir)
    runtime = BundleRuntime.for_variant(bundle_dir, metadata)
    catalog = load_catalog()
    rules = VerdictRules.from_bundle(metadata)
    size = (metadata.input.width, metadata.input.height)
    choices = {
        "1 view (photo)": (InferenceView.ORIGINAL,),
        "2 views (photo + mirror)": (InferenceView.ORIGINAL, InferenceView.MIRROR),
    }

    def answer(data: bytes, views: tuple[InferenceView, ...]) -> object:
        output = runtime.run_views(pillow_pixels(data, size), views)
        return judge(
            output.probabilities,
            metadata.labels,
            output.mushroom_score,
            catalog,
            rules,
            3,
            unknown_score=rules.unknown_score(output.logits),
            view_probabilities=output.view_probabilities,
        )

    results = []
    for name, data in photos.items():
        notes = {}
        for label, views in choices.items():
            started = time.process_time()
            for _ in range(30):
                answer(data, views)
            notes[label] = f"{(time.process_time() - started) * 1000 / 30:.2f} ms CPU/photo"
        alternatives: dict[str, Callable[[], object]] = {
            label: partial(answer, data, views) for label, views in choices.items()
        }
        results += summarize(
            "test-time views (decode + model + verdict)",
            name,
            time_alternatives(alternatives, rounds, 10),
            notes,
        )
    return results


# ----------------------------------------------------------------------------- prediction log


def prediction_log_lever(rounds: int) -> list[LeverResult]:
    import itertools
    import tempfile

    from mushroom_common.store import PredictionRecord, PredictionStore

    numbers = itertools.count()

    def record() -> PredictionRecord:
        return _common.bench_record(next(numbers))

    with tempfile.TemporaryDirectory() as folder:
        store = PredictionStore(f"sqlite:///{folder}/log.sqlite3")
        store.upgrade()
        timings = time_alternatives(
            {
                "1 record per insert": lambda: store.add_predictions([record()]),
                "10 records per insert": lambda: store.add_predictions(
                    [record() for _ in range(10)]
                ),
            },
            rounds,
            10,
        )
        store.close()
    per_record = {
        "1 record per insert": timings["1 record per insert"],
        "10 records per insert": [t / 10 for t in timings["10 records per insert"]],
    }
    return summarize("prediction log (SQLite), ms per record", "-", per_record)


# ----------------------------------------------------------------------------- catalog


def catalog_lever(rounds: int) -> list[LeverResult]:
    from importlib import resources

    import yaml

    from mushroom_common.catalog import parse_catalog

    text = resources.files("mushroom_common").joinpath("data/species.yaml").read_text("utf-8")
    alternatives: dict[str, Callable[[], object]] = {
        "PyYAML SafeLoader (Python)": lambda: parse_catalog(yaml.load(text, Loader=yaml.SafeLoader))
    }
    if hasattr(yaml, "CSafeLoader"):
        alternatives["PyYAML CSafeLoader (libyaml, served)"] = lambda: parse_catalog(
            yaml.load(text, Loader=yaml.CSafeLoader)
        )
    return summarize("catalog parse at start", "-", time_alternatives(alternatives, rounds, 1))


# ----------------------------------------------------------------------------- JSON


def json_lever(rounds: int) -> list[LeverResult]:
    from mushroom_api.schemas import DISCLAIMER, IdentificationPublic

    answer = IdentificationPublic.model_validate(
        {
            "request_id": "0" * 32,
            "verdict": "dangerous",
            "message": "This could be a deadly mushroom: do not eat it.",
            "disclaimer": DISCLAIMER,
            "predictions": [
                {
                    "species": f"species-{i}",
                    "scientific_name": "Amanita phalloides",
                    "common_names": ["death cap"],
                    "probability": 0.3,
                    "edibility": "deadly",
                }
                for i in range(3)
            ],
            "lookalikes": [],
            "genera": [],
            "possibly_unknown_species": False,
            "mushroom_score": 0.97,
            "model": {"name": "mushroom-classifier", "version": "v1"},
        }
    )
    alternatives: dict[str, Callable[[], object]] = {
        "pydantic model_dump_json (FastAPI's path)": answer.model_dump_json
    }
    if importlib.util.find_spec("orjson") is not None:
        orjson: Any = importlib.import_module("orjson")  # optional, like simplejpeg
        alternatives["orjson.dumps(model_dump(mode='json'))"] = lambda: orjson.dumps(
            answer.model_dump(mode="json")
        )
    return summarize("JSON response", "-", time_alternatives(alternatives, rounds, 200))


@app.command()
def main(
    bundle_dir: Annotated[Path, typer.Option(help="bundle whose model is run")] = DEMO_BUNDLE_DIR,
    rounds: Annotated[int, typer.Option(min=1, help="rounds of each alternative")] = 20,
    concurrency: Annotated[int, typer.Option(min=1, help="requests at once (thread hops)")] = 4,
    results_dir: Annotated[Path, typer.Option(help="where the JSON report goes")] = RESULTS_DIR,
    levers: Annotated[
        list[str] | None,
        typer.Option(
            "--lever",
            help="measure only these levers (decode, multipart, hops, json, threads, log, "
            "catalog, views); all by default",
        ),
    ] = None,
) -> None:
    """Measure each lever's alternatives; print one table."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    machine = _common.machine_info()
    photos = {n: p.data for n, p in _common.standard_photos().items() if n in PHOTOS}
    size = (read_metadata(bundle_dir).input.width, read_metadata(bundle_dir).input.height)
    chosen: dict[str, Callable[[], list[LeverResult]]] = {
        "decode": lambda: decode_lever(photos, size, rounds),
        "multipart": lambda: multipart_lever(photos, rounds),
        "hops": lambda: hops_lever(photos, bundle_dir, rounds, concurrency),
        "json": lambda: json_lever(rounds),
        "threads": lambda: model_threads_lever(bundle_dir, rounds),
        "log": lambda: prediction_log_lever(rounds),
        "catalog": lambda: catalog_lever(rounds),
        "views": lambda: views_lever(photos, bundle_dir, rounds),
    }
    unknown = sorted(set(levers or []) - set(chosen))
    if unknown:
        raise typer.BadParameter(f"unknown levers {unknown}; choose from {sorted(chosen)}")
    results = [r for name, run in chosen.items() if not levers or name in levers for r in run()]
    typer.echo(f"Machine: {_common.describe_machine(machine)}")
    typer.echo(
        _common.format_table(
            ["lever", "photo", "alternative", "calls", "p50 ms", "mean ms", "note"],
            [
                [r.lever, r.photo, r.alternative, r.calls, r.p50_ms, r.mean_ms, r.note]
                for r in results
            ],
        )
    )
    typer.echo(
        f"JSON: {write_report('hot_path', {'machine': machine, 'levers': results}, results_dir)}"
    )


if __name__ == "__main__":
    app()
