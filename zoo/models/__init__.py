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
from zoo.models.detector import CenterNet
from zoo.models.lenet import MLP, LeNet
from zoo.models.lstm import LSTM, BiLSTM
from zoo.models.resnet import BackboneConfig, ResNet, ResNetBackbone
from zoo.models.search import beam_search
from zoo.models.seq2seq import Seq2Seq
from zoo.models.unet import UNet, UNetDecoder

CLASSIFIERS: dict[str, Callable[..., nnx.Module]] = {
    "lenet": LeNet,
    "mlp": MLP,  # LeNet-300-100
    "resnet": ResNet,  # 3 stages of 2 blocks, widths 16/32/64 (ResNet-14)
    "resnet-wide": functools.partial(ResNet, widths=(32, 64, 128)),
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
    return CLASSIFIERS[name](tuple(input_shape), num_classes, activation=activation,
                             dtype=dtype, rngs=rngs)


# What a task plugin builds its model from (README, "Writing a task plugin").
__all__ = ["ACTIVATIONS", "Average", "BackboneConfig", "BiLSTM", "CLASSIFIERS", "CRNN", "CenterNet", "CondInst",
           "Discriminator", "Frozen", "Generator", "LSTM", "LeNet", "MLP", "ResNet", "ResNetBackbone",
           "Seq2Seq", "UNet", "UNetDecoder", "beam_search", "create_classifier", "ctc_beam_search",
           "ctc_greedy", "ctc_loss", "get_activation", "retyped_copy", "update_average"]
