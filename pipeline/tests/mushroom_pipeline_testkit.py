"""Test helpers shared by the pipeline tests: generated photos and the tiny training config.

(Kept out of conftest.py so test modules can import it by a name no other package uses.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SPECIES_COLOURS = {
    "amanita_muscaria": (220, 40, 30),
    "boletus_edulis": (130, 90, 50),
    "cantharellus_cibarius": (240, 190, 40),
}

# The training engineer's seconds-long smoke config (random tiny CNN, 32x32 inputs), made
# smaller still: one float32 TFLite variant, no SavedModel, no Grad-CAM plots.
TINY_CONFIG = Path(__file__).resolve().parents[2] / "model-training" / "configs" / "tiny.yaml"
TINY_OVERRIDES = [
    "export.variants=[float32]",
    "export.serving_variant=float32",
    "export.saved_model=false",
    "export.gradcam_examples=0",
]


def species_photo(species: str, seed: int, size: int = 96) -> Image.Image:
    """A smooth random picture tinted with the species' colour (pHashes far apart per seed)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    pattern = np.asarray(
        Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC), np.float32
    )
    tinted = 0.5 * pattern + 0.5 * np.array(SPECIES_COLOURS[species], np.float32)
    return Image.fromarray(tinted.astype(np.uint8))


def write_photo_tree(root: Path, per_species: int = 14, first_seed: int = 0) -> Path:
    """root/<species>/<n>.jpg for the three species."""
    seed = first_seed
    for species in SPECIES_COLOURS:
        (root / species).mkdir(parents=True, exist_ok=True)
        for index in range(per_species):
            species_photo(species, seed).save(root / species / f"{index}.jpg", quality=90)
            seed += 1
    return root
