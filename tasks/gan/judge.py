"""The judge: a trained LeNet classifier whose features measure sample quality.

`GanConfig.judge` names it: a published weight (by default the embedded
`classification/lenet:mnist-sample`, the very judge inside the published GAN weights)
or a classification workdir, both restored through `zoo.restore`. The GAN module keeps
a copy (`GAN.judge`), so its checkpoints and published weights hold their judge:
restoring a GAN for eval or predict never fetches one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from flax import nnx

from zoo.errors import ZooError
from zoo.models import create_classifier

SEED = 0  # initialises the judge's place in a new GAN; its weights always replace it


def untrained(info: Mapping[str, Any]) -> nnx.Module:
    """A LeNet for the images `info` describes, to hold the judge's weights."""
    return create_classifier("lenet", info["input_shape"], len(info["classes"]),
                             rngs=nnx.Rngs(SEED))


def judge_weights(source: str, info: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The weights of the judge `source` names, checked to fit the data `info` describes.

    Raises:
      ZooError: no such judge, or one that is not a LeNet for these images and classes.
    """
    from zoo.restore import restore

    judge = restore(source)
    shape, classes = tuple(info["input_shape"]), len(info["classes"])
    model = judge.task.config.model
    fits = (tuple(judge.info.get("input_shape", ())), len(judge.info.get("classes", ())))
    if model != "lenet" or fits != (shape, classes):
        h, w, c = shape
        raise ZooError(
            f"judge {source} is a {model} for {fits[0]} images of {fits[1]} classes; data "
            f"{info['data']} needs a LeNet for {shape} images of {classes}: train one with "
            f"`zoo run classification --model lenet --data {info['data']} --set image_size={h} "
            f"--set channels={c} --workdir runs/judge` and pass --set judge=runs/judge")
    return judge.setup.weights
