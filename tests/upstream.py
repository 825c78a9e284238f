"""Random weights in the upstream (timm, torchvision) layouts and their reference
outputs, for the conversion tests.

`tests/fixtures/upstream/` holds, per case, the upstream state dict's names and shapes
(`CASE.json`) and what the upstream library computes on two sample photos with weights
drawn from a numpy seed in that layout (`CASE.npz`: logits, and each backbone feature
map averaged over space and over channels). A case is a zoo model name for timm's
layout (`resnet18`) and `torchvision-MODEL` for torchvision's. `test_reference.py -m
reference` writes them with torch, timm and torchvision; the default suite rebuilds
the same weights without torch, converts them and compares zoo's outputs with these
numbers. `photos.npz` holds the photos (scikit-learn's sample images, centre-cropped and
resized once with PIL) so no decoder version matters.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from zoo.io import weights
from zoo.hub.importer import IMAGENET_MEAN, IMAGENET_STD
from zoo.models import create_classifier
from zoo.models.convert import from_torch_layout
from zoo.models.torchvision_names import to_timm

FIXTURES = Path(__file__).parent / "fixtures" / "upstream"
SIZE = 64  # input side: small enough for the default suite, deep enough for every stage
SEED = 17
TOLERANCE = 1e-4  # max abs difference, float32
HEADS = ("fc.weight", "head.weight", "classifier.weight", "classifier.3.weight",
         "heads.head.weight")
TIMM_NAMES = {"resnet18": "resnet18", "resnet34": "resnet34", "resnet50": "resnet50",
              "resnet101": "resnet101", "vit-s16": "vit_small_patch16_224",
              "vit-b16": "vit_base_patch16_224", "mobilenetv3-large": "mobilenetv3_large_100"}
# The layouts torchvision names differently from timm (its ResNets are timm's).
TORCHVISION_NAMES = {"mobilenetv3-large": "mobilenet_v3_large", "vit-b16": "vit_b_16"}
CASES = [*TIMM_NAMES, *(f"torchvision-{m}" for m in TORCHVISION_NAMES)]


def zoo_model(case: str) -> str:
    return case.removeprefix("torchvision-")


def photos() -> np.ndarray:
    """The two sample photos, uint8 (2, SIZE, SIZE, 3)."""
    return np.load(FIXTURES / "photos.npz")["images"]


def model_inputs(images: np.ndarray) -> np.ndarray:
    """ImageNet-normalized float32 NHWC inputs."""
    x = images.astype(np.float32) / 255.0
    return (x - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)


def manifest(case: str) -> dict[str, list[int]]:
    """The upstream state dict's names and shapes (at SIZE for a ViT), in its order."""
    return json.loads((FIXTURES / f"{case}.json").read_text())["shapes"]


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
        else:  # class token, position embeddings, a fused attention projection
            state[key] = (0.02 * rng.standard_normal(shape)).astype(np.float32)
    return state


def to_zoo(case: str, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A case's upstream weights as zoo's, the way `zoo import` converts them."""
    model = zoo_model(case)
    return from_torch_layout(model, to_timm(model, state) if case != model else state)


def summaries(features: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Each NHWC feature map averaged over space (N, C) and over channels (N, H, W)."""
    out = {}
    for i, f in enumerate(features):
        out[f"spatial_mean_{i}"] = np.asarray(f, np.float32).mean(axis=(1, 2))
        out[f"channel_mean_{i}"] = np.asarray(f, np.float32).mean(axis=-1)
    return out


def loaded(build, tensors: dict[str, np.ndarray]) -> nnx.Module:
    """The module `build()` makes, holding `tensors` (every variable, strictly).

    Built abstractly (`nnx.eval_shape`): drawing an ImageNet model's random initial
    weights compiles for about a second per distinct weight shape on this CPU, and
    every one of them is replaced here.
    """
    module = nnx.eval_shape(build)
    weights.load_into(nnx.state(module), tensors, strict=True)
    return module


def zoo_outputs(case: str, state: dict[str, np.ndarray], inputs: np.ndarray
                ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """zoo's logits and its backbone's feature summaries (the module detection and
    segmentation take, `classifier.backbone`) for converted weights, in one compiled
    call."""
    model, tensors, shape = zoo_model(case), to_zoo(case, state), (SIZE, SIZE, 3)
    classifier = loaded(lambda: create_classifier(model, shape, 1000, rngs=nnx.Rngs(0)), tensors)
    classifier.eval()
    logits, features = _forward(*nnx.split(classifier), jnp.asarray(inputs))
    if model.startswith("vit"):
        features = features[2:3]  # the stride-16 map of patch tokens; the rest derive from it
    return np.asarray(logits), summaries([np.asarray(f) for f in features])


@functools.partial(jax.jit, static_argnums=0)  # compiled once per architecture
def _forward(graphdef: nnx.GraphDef, variables: nnx.State, x: jax.Array):
    net = nnx.merge(graphdef, variables)
    return net(x), net.backbone(x)


def reference(case: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / f"{case}.npz") as f:
        return dict(f)
