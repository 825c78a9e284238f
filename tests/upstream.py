"""Random weights in the upstream (timm) layout and their reference outputs, for the
conversion tests.

`tests/fixtures/upstream/` holds, per model, the upstream state dict's names and shapes
(`MODEL.json`) and what timm computes on two sample photos with weights drawn from a
numpy seed in that layout (`MODEL.npz`: logits, and each backbone feature map averaged
over space and over channels). `test_reference.py -m reference` writes them with torch
and timm; the default suite rebuilds the same weights without torch, converts them and
compares zoo's outputs with these numbers. `photos.npz` holds the photos (scikit-learn's
sample images, centre-cropped and resized once with PIL) so no decoder version matters.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from flax import nnx

from zoo.hub import weights
from zoo.hub.importer import IMAGENET_MEAN, IMAGENET_STD
from zoo.models import create_backbone, create_classifier
from zoo.models.convert import from_torch_layout

FIXTURES = Path(__file__).parent / "fixtures" / "upstream"
SIZE = 64  # input side: small enough for the default suite, deep enough for every stage
SEED = 17
TOLERANCE = 1e-4  # max abs difference, float32
HEADS = ("fc.weight", "head.weight", "classifier.weight")
TIMM_NAMES = {"resnet18": "resnet18", "resnet34": "resnet34", "resnet50": "resnet50",
              "resnet101": "resnet101", "vit-s16": "vit_small_patch16_224",
              "vit-b16": "vit_base_patch16_224", "mobilenetv3-large": "mobilenetv3_large_100"}


def photos() -> np.ndarray:
    """The two sample photos, uint8 (2, SIZE, SIZE, 3)."""
    return np.load(FIXTURES / "photos.npz")["images"]


def model_inputs(images: np.ndarray) -> np.ndarray:
    """ImageNet-normalized float32 NHWC inputs."""
    x = images.astype(np.float32) / 255.0
    return (x - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)


def manifest(model: str) -> dict[str, list[int]]:
    """The upstream state dict's names and shapes (at SIZE for a ViT), in its order."""
    return json.loads((FIXTURES / f"{model}.json").read_text())["shapes"]


def random_state(shapes: dict[str, list[int]], seed: int = SEED) -> dict[str, np.ndarray]:
    """Upstream-layout weights drawn from `seed`, scaled to keep activations O(1) (so a
    1e-4 tolerance means float32 rounding): He-normal kernels, norm scales in
    [0.3, 0.7] (residual sums stay small), positive running variances, a head scaled to
    give logits of a few units."""
    rng = np.random.default_rng(seed)
    state = {}
    for key, shape in shapes.items():
        leaf = key.rsplit(".", 1)[-1]
        if leaf == "num_batches_tracked":
            state[key] = np.zeros(shape, np.int64)
        elif leaf == "running_var" or (leaf == "weight" and len(shape) == 1):
            low, high = (0.5, 1.5) if leaf == "running_var" else (0.3, 0.7)
            state[key] = rng.uniform(low, high, shape).astype(np.float32)
        elif leaf in ("running_mean", "bias"):
            state[key] = (0.1 * rng.standard_normal(shape)).astype(np.float32)
        elif leaf == "weight":
            fan_in = int(np.prod(shape[1:]))
            gain = 0.1 if key in HEADS else 1.0
            state[key] = (gain * rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
                          ).astype(np.float32)
        else:  # cls_token, pos_embed
            state[key] = (0.02 * rng.standard_normal(shape)).astype(np.float32)
    return state


def summaries(features: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Each NHWC feature map averaged over space (N, C) and over channels (N, H, W)."""
    out = {}
    for i, f in enumerate(features):
        out[f"spatial_mean_{i}"] = np.asarray(f, np.float32).mean(axis=(1, 2))
        out[f"channel_mean_{i}"] = np.asarray(f, np.float32).mean(axis=-1)
    return out


def zoo_outputs(model: str, state: dict[str, np.ndarray], inputs: np.ndarray
                ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """zoo's logits (classifier) and backbone feature summaries (a detection or
    segmentation backbone loaded as --pretrained-backbone does) for converted weights."""
    tensors = from_torch_layout(model, state)
    shape = (SIZE, SIZE, 3)
    classifier = create_classifier(model, shape, 1000, rngs=nnx.Rngs(0))
    weights.load_into(nnx.state(classifier), tensors, strict=True)
    classifier.eval()
    backbone = create_backbone(model, shape, rngs=nnx.Rngs(1))
    weights.load_into(nnx.state(backbone), {k.removeprefix("backbone/"): v for k, v in
                                            tensors.items() if k.startswith("backbone/")},
                      strict=True)
    backbone.eval()
    x = jnp.asarray(inputs)
    features = backbone(x)
    if model.startswith("vit"):
        features = features[2:3]  # the stride-16 map of patch tokens; the rest derive from it
    return np.asarray(classifier(x)), summaries([np.asarray(f) for f in features])


def reference(model: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / f"{model}.npz") as f:
        return dict(f)
