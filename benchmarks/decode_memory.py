"""How much memory does decoding one worst-case photo of each format really take?

For each format the script makes a photo at the API's worst case (progressive JPEG 6300x6300,
with and without chroma subsampling, WebP 4890x4890, PNG at the 40-megapixel limit, 16-megapixel
HEIC and AVIF when the Pillow plugins in the lock can write them), decodes it in a fresh child
process exactly as the API does (`mushroom_common.imaging.plan_decode` + `decode_planned`,
reduced for a 224-pixel model) and reads the child's peak resident memory (VmHWM after a reset)
against the plan's `peak_bytes` estimate, which the API's per-photo and per-worker budgets count.
deployment/tests/test_decode_budget.py reads the latest report to check that the pod's workers,
each holding its whole decode budget, fit the k8s memory limit: 8 concurrent worst-case photos
wait for budget instead of adding up.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pillow_heif
import typer
from _common import describe_machine, format_table, machine_info, write_report
from PIL import Image

pillow_heif.register_heif_opener()
logger = logging.getLogger("benchmarks.decode_memory")
app = typer.Typer(add_completion=False, help=__doc__)
MB = 1024 * 1024

_CHILD = r"""
import json, sys, time
from pathlib import Path
import pillow_heif
pillow_heif.register_heif_opener()
from mushroom_common.imaging import decode_planned, open_image, plan_decode

def status(name):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(name)

data = Path(sys.argv[1]).read_bytes()
warm = Path(sys.argv[2]).read_bytes()
side = int(sys.argv[3])
with open_image(warm) as image:
    plan_decode(image, side, warm)
    decode_planned(image, side)
time.sleep(0.05)
Path("/proc/self/clear_refs").write_text("5")
before = status("VmRSS")
started = time.process_time()
with open_image(data) as image:
    plan = plan_decode(image, side, data)
    decoded = decode_planned(image, side)
cpu = time.process_time() - started
print(json.dumps({
    "format": plan.source_format, "size": list(plan.source_size), "mode": plan.mode,
    "decoded_size": list(plan.decoded_size), "estimate": plan.peak_bytes, "scans": plan.scans,
    "measured": status("VmHWM") - before, "cpu_s": cpu, "out": list(decoded.size),
}))
"""


def _smooth(width: int, height: int, seed: int) -> Image.Image:
    """A smooth colour photo-like picture that compresses to a small file (as a bomb would)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(max(2, height // 512), max(2, width // 512), 3))
    return Image.fromarray(small.astype(np.uint8)).resize(
        (width, height), Image.Resampling.BILINEAR
    )


def make_photos(folder: Path, *, full: bool) -> dict[str, Path]:
    """The worst-case photo of each format (plus a small warm-up one), written under folder."""
    scale = 1.0 if full else 0.5
    sizes = {
        "progressive JPEG": ("JPEG", int(6300 * scale), {"progressive": True, "quality": 85}),
        "progressive JPEG 4:4:4": (
            "JPEG",
            int(6300 * scale),
            {"progressive": True, "quality": 85, "subsampling": 0},
        ),
        "baseline JPEG": ("JPEG", int(6300 * scale), {"quality": 85}),
        "WebP": ("WEBP", int(4890 * scale), {"quality": 80}),
        "PNG RGB": ("PNG", int(6300 * scale), {"compress_level": 1}),
        "HEIC": ("HEIF", int(4000 * scale), {"quality": 50}),
        "AVIF": ("AVIF", int(4000 * scale), {"quality": 50, "speed": 10}),
    }
    written: dict[str, Path] = {}
    for name, (fmt, side, options) in sizes.items():
        for label, edge in ((name, side), (f"{name} warm-up", 256)):
            path = folder / f"{label.replace(' ', '_')}.{fmt.lower()}"
            try:
                _smooth(edge, edge, 7).save(path, format=fmt, **options)
            except (KeyError, OSError, ValueError) as exc:
                logger.warning("cannot write %s here (%s): skipped", name, exc)
                break
            written[label] = path
    return written


def measure(path: Path, warm: Path, side: int) -> dict[str, Any]:
    """Decode `path` in a fresh process; its plan's estimate and its peak RSS growth."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), str(warm), str(side)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["file_bytes"] = path.stat().st_size
    return result


@app.command()
def main(
    full: Annotated[bool, typer.Option(help="the real worst cases (else half-size photos)")] = True,
    side: Annotated[int, typer.Option(help="the model's input side")] = 224,
    out_dir: Annotated[Path, typer.Option(help="where the JSON report goes")] = Path(
        __file__
    ).parent
    / "results",
) -> None:
    """Measure decode memory per format against the estimate; write a JSON report."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        photos = make_photos(Path(tmp), full=full)
        logger.info("photos written in %.1f s", time.monotonic() - started)
        for name, path in photos.items():
            if name.endswith("warm-up"):
                continue
            result = measure(path, photos[f"{name} warm-up"], side)
            result["photo"] = name
            rows.append(result)
    table = format_table(
        ["photo", "size", "file KB", "scans", "estimate MB", "measured MB", "ratio", "CPU s"],
        [
            [
                row["photo"],
                "x".join(map(str, row["size"])),
                round(row["file_bytes"] / 1024),
                row["scans"],
                round(row["estimate"] / MB, 1),
                round(row["measured"] / MB, 1),
                round(row["measured"] / max(row["estimate"], 1), 2),
                round(row["cpu_s"], 2),
            ]
            for row in rows
        ],
    )
    logger.info("%s\n%s", describe_machine(machine_info()), table)
    path = write_report("decode_memory", {"rows": rows, "side": side, "full": full}, out_dir)
    logger.info("wrote %s", path)


if __name__ == "__main__":
    app()
