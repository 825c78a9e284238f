"""torchvision's state-dict names as timm's, so one converter (`zoo.models.convert`)
reads both.

ResNets share timm's names already. torchvision's MobileNetV3-Large (`features.N.block.J`)
and ViT-B/16 (`encoder.layers.encoder_layer_N`) hold the same tensors as timm's
`mobilenetv3_large_100` and `vit_base_patch16_224` under other names; their
correspondence is written out here. One numerical difference is a property of
torchvision's MobileNetV3 weights, not of the model: its batch norms divide by
sqrt(var + 1e-3) where timm's (and zoo's) use 1e-5, so the difference is added to the
running variances. Evaluation is then exact; fine-tuning normalises batches with
timm's epsilon.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from zoo.errors import ZooError
from zoo.models.mobilenetv3 import LARGE_STAGES
from zoo.models.torch_layers import TORCH_BN_EPSILON

MOBILENET_BN_EPSILON = 1e-3  # torchvision's MobileNetV3
VIT_RULES = (  # torchvision name (regex) -> timm name
    (r"class_token", "cls_token"),
    (r"conv_proj\.", "patch_embed.proj."),
    (r"encoder\.pos_embedding", "pos_embed"),
    (r"encoder\.layers\.encoder_layer_(\d+)\.ln_(\d)\.", r"blocks.\1.norm\2."),
    (r"encoder\.layers\.encoder_layer_(\d+)\.self_attention\.in_proj_(weight|bias)",
     r"blocks.\1.attn.qkv.\2"),
    (r"encoder\.layers\.encoder_layer_(\d+)\.self_attention\.out_proj\.", r"blocks.\1.attn.proj."),
    (r"encoder\.layers\.encoder_layer_(\d+)\.mlp\.0\.", r"blocks.\1.mlp.fc1."),
    (r"encoder\.layers\.encoder_layer_(\d+)\.mlp\.3\.", r"blocks.\1.mlp.fc2."),
    (r"encoder\.ln\.", "norm."),
    (r"heads\.head\.", "head."),
)


def to_timm(model: str, state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A torchvision state dict of zoo model `model` under timm's names (ResNets as
    they are)."""
    if model == "mobilenetv3-large":
        return _mobilenet(state)
    if model.startswith("vit"):
        return {_rename(key, VIT_RULES): value for key, value in state.items()}
    return dict(state)


def _rename(key: str, rules: tuple[tuple[str, str], ...]) -> str:
    for pattern, replacement in rules:
        if re.match(pattern, key):
            return re.sub(pattern, replacement, key, count=1)
    return key


def _mobilenet(state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    names = _mobilenet_modules()
    out = {}
    for key, value in state.items():
        module, _, leaf = key.rpartition(".")
        if module not in names:
            raise ZooError(f"{key}: not a tensor of torchvision's mobilenet_v3_large")
        name = names[module]
        value = np.asarray(value)
        if name == "conv_head" and leaf == "weight":
            value = value[:, :, None, None]  # torchvision's Linear is timm's 1x1 conv
        if leaf == "running_var":
            value = value + (MOBILENET_BN_EPSILON - TORCH_BN_EPSILON)
        out[f"{name}.{leaf}"] = value
    return out


def _mobilenet_modules() -> dict[str, str]:
    """torchvision module -> timm module, block by block (`features.N` is the N-th
    block: the stem, the depthwise-separable block, the inverted residuals of
    `LARGE_STAGES`, the last 1x1 conv)."""
    names = {"features.0.0": "conv_stem", "features.0.1": "bn1",
             "features.1.block.0.0": "blocks.0.0.conv_dw", "features.1.block.0.1": "blocks.0.0.bn1",
             "features.1.block.1.0": "blocks.0.0.conv_pw", "features.1.block.1.1": "blocks.0.0.bn2",
             "classifier.0": "conv_head", "classifier.3": "classifier"}
    n = 2
    for stage, specs in enumerate(LARGE_STAGES, start=1):
        for i, spec in enumerate(specs):
            timm, parts = f"blocks.{stage}.{i}", [("conv_pw", "bn1"), ("conv_dw", "bn2")]
            if spec.se:
                parts.append(("se.conv_reduce", "se.conv_expand"))
            parts.append(("conv_pwl", "bn3"))
            for j, (first, second) in enumerate(parts):
                kind = ("fc1", "fc2") if first.startswith("se.") else ("0", "1")
                names[f"features.{n}.block.{j}.{kind[0]}"] = f"{timm}.{first}"
                names[f"features.{n}.block.{j}.{kind[1]}"] = f"{timm}.{second}"
            n += 1
    names[f"features.{n}.0"], names[f"features.{n}.1"] = "blocks.6.0.conv", "blocks.6.0.bn1"
    return names
