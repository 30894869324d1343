"""The observation study's pure parts: pseudo-observations, crops, the upload photo."""

from __future__ import annotations

import io
from pathlib import Path

from observation_timing import upload_photo
from observations import FieldPhoto, _crop, pseudo_observations
from PIL import Image


def _photo(species: str, source: str, part: str, index: int) -> FieldPhoto:
    return FieldPhoto(Path(f"{species}/{source}-{index}.jpg"), species, source, part)


def test_pseudo_observations_hold_one_species_from_one_source() -> None:
    photos = [_photo("boletus_edulis", "YaSeCA", "field test", i) for i in range(4)]
    photos += [_photo("boletus_edulis", "Bartekp26", "field test", i) for i in range(2)]
    photos += [_photo("amanita_virosa", "nordic-field", "field val", i) for i in range(3)]
    photos += [_photo("imleria_badia", "gcadet2016", "field test", 0)]
    found = pseudo_observations(photos, 3, per_group=2, seed=0)
    assert set(found) == {"field test", "field val"}
    assert (
        len(found["field test"]) == 2
    )  # C(4, 3) = 4, capped at 2; the pair of Bartekp26 is too few
    assert len(found["field val"]) == 1
    for observations in found.values():
        for observation in observations:
            assert len(set(observation)) == 3
            assert len({(photos[i].species, photos[i].source) for i in observation}) == 1
    assert pseudo_observations(photos, 3, per_group=2, seed=0) == found


def test_crops_grow_the_box_and_stay_inside_the_photo() -> None:
    image = Image.new("RGB", (200, 100))
    assert _crop(image, (0.25, 0.25, 0.75, 0.75), 0.0).size == (100, 50)
    assert _crop(image, (0.25, 0.25, 0.75, 0.75), 0.5).size == (200, 100)
    assert _crop(image, (0.0, 0.0, 0.5, 0.5), 1.0).size == (200, 100)


def test_upload_photo_is_1024_px_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "p.jpg"
    Image.new("RGB", (640, 480), (120, 80, 40)).save(path)
    with Image.open(io.BytesIO(upload_photo(path))) as image:
        assert image.format == "JPEG"
        assert image.size == (1024, 768)
