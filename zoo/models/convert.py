"""Upstream (timm, torchvision) state dicts to zoo's parameter tree, by name.

zoo's ImageNet families use upstream's module names, so one rule converts them all:
`layer1.0.conv1.weight` becomes `backbone/layer1/0/conv1/kernel`. Names outside the
family's head go under `backbone/`; weights are transposed from PyTorch's layouts
(convolutions OIHW to HWIO, Linear (out, in) to (in, out)); a rank-1 `weight` is a
norm's `scale`; batch norm's `running_mean`/`running_var` are `mean`/`var`; its
`num_batches_tracked` counter is dropped. A ViT's position embeddings are resampled
(bicubically, as timm does) when the model's patch grid differs from the weights'.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from zoo.errors import ZooError

# Top-level modules of each family's classifier that are not its backbone.
HEADS = {"resnet": ("fc",), "vit": ("head",), "mobilenetv3": ("conv_head", "classifier")}
FAMILIES = {"resnet18": "resnet", "resnet34": "resnet", "resnet50": "resnet",
            "resnet101": "resnet", "vit-s16": "vit", "vit-b16": "vit",
            "mobilenetv3-large": "mobilenetv3"}
LEAVES = {"running_mean": "mean", "running_var": "var", "bias": "bias"}
DROPPED = ("num_batches_tracked",)


def family(model: str) -> str:
    """The converter family of a zoo model name.

    Raises:
      ZooError: the model has no upstream layout.
    """
    if model not in FAMILIES:
        raise ZooError(f"model {model!r} has no upstream (timm/torchvision) layout; "
                       f"convertible models: {', '.join(FAMILIES)}")
    return FAMILIES[model]


def from_torch_layout(model: str, state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A timm/torchvision state dict of `model` as zoo weights by path (float32)."""
    heads = HEADS[family(model)]
    out = {}
    for key, value in state.items():
        *modules, leaf = key.split(".")
        if leaf in DROPPED:
            continue
        array = np.asarray(value, dtype=np.float32)
        if leaf == "weight":
            leaf = {4: "kernel", 2: "kernel", 1: "scale"}[array.ndim]
            array = _to_flax(array)
        else:
            leaf = LEAVES.get(leaf, leaf)
        path = "/".join([*modules, leaf])
        out[path if modules and modules[0] in heads else f"backbone/{path}"] = array
    return out


def _to_flax(weight: np.ndarray) -> np.ndarray:
    if weight.ndim == 4:
        return weight.transpose(2, 3, 1, 0)  # OIHW -> HWIO
    if weight.ndim == 2:
        return weight.T  # (out, in) -> (in, out)
    return weight


def fit_to_model(tensors: Mapping[str, np.ndarray],
                 shapes: Mapping[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """Weights fitted to a model of another input size or channel count (others as is).

    `shapes` are the model's variable shapes by path. ViT position embeddings are
    resampled to the model's patch grid; a stem convolution trained on RGB is adapted
    to grey (or 4-channel) input as timm's `adapt_input_conv` does.
    """
    out = dict(tensors)
    for path, value in tensors.items():
        if path not in shapes or value.shape == shapes[path]:
            continue
        if path.endswith("pos_embed"):
            out[path] = _resample_position_embeddings(value, shapes[path])
        elif _rgb_stem_for_other_channels(value.shape, shapes[path]):
            out[path] = adapt_input_channels(value, shapes[path][2])
    return out


def _rgb_stem_for_other_channels(trained: tuple[int, ...], wanted: tuple[int, ...]) -> bool:
    """An HWIO kernel over 3 (RGB) input channels where the model has another count."""
    return (len(trained) == 4 and trained[2] == 3 and len(wanted) == 4
            and trained[:2] + trained[3:] == tuple(wanted[:2]) + tuple(wanted[3:]))


def adapt_input_channels(kernel: np.ndarray, channels: int) -> np.ndarray:
    """An HWIO kernel trained on `kernel.shape[2]` input channels, for `channels` ones:
    summed over them for grey input (grey repeated thrice gives the same output),
    otherwise cycled and rescaled to keep the output's scale (timm's rule)."""
    trained = kernel.shape[2]
    if channels == 1:
        return kernel.sum(axis=2, keepdims=True)
    cycled = np.tile(kernel, (1, 1, -(-channels // trained), 1))[:, :, :channels]
    return cycled * (trained / channels)


def _resample_position_embeddings(value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The class token's embedding kept, the patch grid resized bicubically (timm's
    `resample_abs_pos_embed` does the same with PyTorch's kernel, so the values differ
    slightly). Non-square grids are returned as they are: `load_into` then
    re-initialises them and says so."""
    import jax

    old, new = value.shape[1] - 1, shape[1] - 1
    old_side, new_side = round(old ** 0.5), round(new ** 0.5)
    if old_side ** 2 != old or new_side ** 2 != new:
        return value
    grid = value[0, 1:].reshape(old_side, old_side, -1)
    resized = jax.image.resize(grid, (new_side, new_side, grid.shape[-1]), "bicubic",
                               antialias=False)
    return np.concatenate([value[:, :1], np.asarray(resized).reshape(1, new, -1)], 1)
