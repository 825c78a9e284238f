"""ResNet-18/34/50/101 in the torchvision/timm layout (ResNet v1.5: stride on the 3x3).

Module names follow torchvision's (`conv1`, `bn1`, `layer1.0.conv2`, `downsample.0`,
`fc`), so a timm or torchvision state dict converts by name (`zoo.models.convert`).
The backbone returns the output of each of the four stages (strides 4, 8, 16, 32):
detection and segmentation reuse it under an FPN.
"""

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from zoo.models.layers import global_avg_pool
from zoo.models.torch_layers import batch_norm, conv, max_pool_3x3_s2


@dataclasses.dataclass(frozen=True)
class ResNetSpec:
    """One ResNet variant: its block type and the number of blocks in each stage."""

    bottleneck: bool
    depths: tuple[int, int, int, int]


RESNETS = {
    "resnet18": ResNetSpec(bottleneck=False, depths=(2, 2, 2, 2)),
    "resnet34": ResNetSpec(bottleneck=False, depths=(3, 4, 6, 3)),
    "resnet50": ResNetSpec(bottleneck=True, depths=(3, 4, 6, 3)),
    "resnet101": ResNetSpec(bottleneck=True, depths=(3, 4, 23, 3)),
}
WIDTHS = (64, 128, 256, 512)  # planes of the four stages


class BasicBlock(nnx.Module):
    """Two 3x3 conv-BN layers (ResNet-18/34)."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int, *, dtype: Any, rngs: nnx.Rngs):
        self.conv1 = conv(cin, planes, 3, stride=stride, dtype=dtype, rngs=rngs)
        self.bn1 = batch_norm(planes, dtype=dtype, rngs=rngs)
        self.conv2 = conv(planes, planes, 3, dtype=dtype, rngs=rngs)
        self.bn2 = batch_norm(planes, zero_scale=True, dtype=dtype, rngs=rngs)
        self.downsample = _downsample(cin, planes, stride, dtype, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = jax.nn.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return jax.nn.relu(y + _shortcut(self.downsample, x))


class Bottleneck(nnx.Module):
    """1x1 reduce, 3x3 (carrying the stride), 1x1 expand by 4 (ResNet-50/101)."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, *, dtype: Any, rngs: nnx.Rngs):
        out = planes * self.expansion
        self.conv1 = conv(cin, planes, 1, dtype=dtype, rngs=rngs)
        self.bn1 = batch_norm(planes, dtype=dtype, rngs=rngs)
        self.conv2 = conv(planes, planes, 3, stride=stride, dtype=dtype, rngs=rngs)
        self.bn2 = batch_norm(planes, dtype=dtype, rngs=rngs)
        self.conv3 = conv(planes, out, 1, dtype=dtype, rngs=rngs)
        self.bn3 = batch_norm(out, zero_scale=True, dtype=dtype, rngs=rngs)
        self.downsample = _downsample(cin, out, stride, dtype, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = jax.nn.relu(self.bn1(self.conv1(x)))
        y = jax.nn.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return jax.nn.relu(y + _shortcut(self.downsample, x))


def _downsample(cin: int, cout: int, stride: int, dtype: Any, rngs: nnx.Rngs) -> nnx.List | None:
    """torchvision's `downsample = Sequential(conv1x1, bn)`, where the shapes change."""
    if stride == 1 and cin == cout:
        return None
    return nnx.List([conv(cin, cout, 1, stride=stride, dtype=dtype, rngs=rngs),
                     batch_norm(cout, dtype=dtype, rngs=rngs)])


def _shortcut(downsample: nnx.List | None, x: jax.Array) -> jax.Array:
    if downsample is None:
        return x
    projection, norm = downsample
    return norm(projection(x))


class ResNetV15Backbone(nnx.Module):
    """Stem (7x7/2 conv, 3x3/2 max pool) and four stages; returns each stage's map."""

    def __init__(self, input_shape: Sequence[int], spec: ResNetSpec, *,
                 dtype: Any = jnp.float32, rngs: nnx.Rngs):
        block = Bottleneck if spec.bottleneck else BasicBlock
        self.conv1 = conv(input_shape[-1], 64, 7, stride=2, dtype=dtype, rngs=rngs)
        self.bn1 = batch_norm(64, dtype=dtype, rngs=rngs)
        cin, stages = 64, []
        for i, (planes, depth) in enumerate(zip(WIDTHS, spec.depths)):
            blocks = []
            for j in range(depth):
                blocks.append(block(cin, planes, 2 if i > 0 and j == 0 else 1, dtype=dtype,
                                    rngs=rngs))
                cin = planes * block.expansion
            stages.append(nnx.List(blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.channels = tuple(w * block.expansion for w in WIDTHS)
        self.strides = (4, 8, 16, 32)

    def __call__(self, x: jax.Array) -> list[jax.Array]:
        x = max_pool_3x3_s2(jax.nn.relu(self.bn1(self.conv1(x))))
        features = []
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in stage:
                x = block(x)
            features.append(x)
        return features


class ResNetV15(nnx.Module):
    """A ResNet classifier: backbone, global average pool, `fc` (float32 logits).

    The activation is the architecture's own (ReLU): the weights were trained with it.
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int, *, arch: str,
                 dtype: Any = jnp.float32, rngs: nnx.Rngs):
        self.backbone = ResNetV15Backbone(input_shape, RESNETS[arch], dtype=dtype, rngs=rngs)
        self.fc = nnx.Linear(self.backbone.channels[-1], num_classes, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fc(global_avg_pool(self.backbone(x)[-1])).astype(jnp.float32)
