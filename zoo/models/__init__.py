"""The shared model library. Architectures here know nothing of tasks.

`CLASSIFIERS` maps a model name to its class and the arguments of that variant: a table,
not one function per variant. Every classifier takes `(input_shape, num_classes, *,
activation, dtype, rngs)` and maps NHWC images to float32 logits, computing in `dtype`.
"""

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax.numpy as jnp
from flax import nnx

from zoo.errors import unknown
from zoo.models.activations import ACTIVATIONS, get_activation
from zoo.models.condinst import CondInst
from zoo.models.copies import Average, Frozen, retyped_copy, update_average
from zoo.models.crnn import CRNN
from zoo.models.ctc import ctc_beam_search, ctc_greedy, ctc_loss
from zoo.models.dcgan import Discriminator, Generator
from zoo.models.detector import CenterNet, box_heads
from zoo.models.heads import EmbeddingNet, MultiLabelNet, Thresholds, arcface_logits
from zoo.models.lenet import MLP, LeNet
from zoo.models.lstm import LSTM, BiLSTM
from zoo.models.mobilenetv3 import MobileNetV3, MobileNetV3Backbone
from zoo.models.resnet import BackboneConfig, ResNet, ResNetBackbone
from zoo.models.resnet_v15 import RESNETS, ResNetV15, ResNetV15Backbone
from zoo.models.search import beam_search
from zoo.models.seq2seq import Seq2Seq
from zoo.models.unet import UNet, UNetDecoder
from zoo.models.vit import VITS, ViT, ViTBackbone

# The ImageNet families, in timm's layouts (their weights convert by name, see
# zoo.models.convert): name -> (classifier, backbone for detection and segmentation).
# Each takes `(input_shape, ..., *, dtype, rngs)`; their activations are their own.
IMAGENET: dict[str, tuple[Callable[..., nnx.Module], Callable[..., nnx.Module]]] = {
    **{name: (functools.partial(ResNetV15, arch=name),
              functools.partial(ResNetV15Backbone, spec=spec)) for name, spec in RESNETS.items()},
    **{name: (functools.partial(ViT, arch=name),
              functools.partial(ViTBackbone, spec=spec)) for name, spec in VITS.items()},
    "mobilenetv3-large": (MobileNetV3, MobileNetV3Backbone),
}

CLASSIFIERS: dict[str, Callable[..., nnx.Module]] = {
    "lenet": LeNet,
    "mlp": MLP,  # LeNet-300-100
    "resnet": ResNet,  # 3 stages of 2 blocks, widths 16/32/64 (ResNet-14)
    "resnet-wide": functools.partial(ResNet, widths=(32, 64, 128)),
    **{name: classifier for name, (classifier, _) in IMAGENET.items()},
}


def create_classifier(name: str, input_shape: Sequence[int], num_classes: int, *,
                      activation: str = "relu", dtype: Any = jnp.float32,
                      rngs: nnx.Rngs) -> nnx.Module:
    """Builds the classifier called `name` (see `CLASSIFIERS`).

    Example:
      model = create_classifier("lenet", (28, 28, 1), 10, rngs=nnx.Rngs(0))
    """
    if name not in CLASSIFIERS:
        raise unknown("model", name, CLASSIFIERS)
    get_activation(activation)  # fail early, with suggestions, on a bad name
    extra = {} if name in IMAGENET else {"activation": activation}
    return CLASSIFIERS[name](tuple(input_shape), num_classes, dtype=dtype, rngs=rngs, **extra)


def create_backbone(name: str, input_shape: Sequence[int], *, dtype: Any = jnp.float32,
                    rngs: nnx.Rngs) -> nnx.Module:
    """The backbone of ImageNet family `name`: maps NHWC images to feature maps at
    strides `backbone.strides` with `backbone.channels` channels."""
    if name not in IMAGENET:
        raise unknown("backbone", name, IMAGENET)
    return IMAGENET[name][1](tuple(input_shape), dtype=dtype, rngs=rngs)


# What a task plugin builds its model from (README, "Writing a task plugin").
__all__ = ["ACTIVATIONS", "Average", "BackboneConfig", "BiLSTM", "CLASSIFIERS", "CRNN", "CenterNet", "CondInst",
           "Discriminator", "EmbeddingNet", "Frozen", "Generator", "IMAGENET", "LSTM", "LeNet",
           "MLP", "MobileNetV3", "MultiLabelNet", "ResNet", "ResNetBackbone", "ResNetV15",
           "Seq2Seq", "Thresholds", "UNet", "UNetDecoder", "ViT", "arcface_logits",
           "beam_search", "box_heads", "create_backbone", "create_classifier", "ctc_beam_search",
           "ctc_greedy", "ctc_loss", "get_activation", "retyped_copy", "update_average"]
