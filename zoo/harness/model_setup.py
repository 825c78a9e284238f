"""How a session's model is built beyond what its task builds: weights, edits, optimizer.

Restoring a model (`zoo.restore`), fine-tuning and compression all build theirs here,
so a model from any source is made in one place (`ModelSetup.build`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import optax
from flax import nnx

from zoo.io import weights
from zoo.models.convert import fit_to_model
from zoo.models.initialise import initialised
from zoo.task import Task


@dataclasses.dataclass(frozen=True)
class ModelSetup:
    """Starting weights, layer edits and an optimizer wrapper for a task's model.

    Attributes:
      weights: variables by path (`zoo.io.weights`), loaded into the built model before
        the optimizer is made, so optimizer wrappers initialise from them.
      strict: the weights are the whole model (a restored one): every variable must
        load and every weight be used, and the task's `pretrained_parts` are not
        fetched (the weights hold them). Otherwise (fine-tuning) layers that do not
        fit keep their initialisation and the load report says which.
      edit_model: changes the built model in place (e.g. quantized layer ops).
      wrap_optimizer: wraps the run's optax transformation (e.g. to keep masks).
    """

    weights: Mapping[str, np.ndarray] | None = None
    strict: bool = True
    edit_model: Callable[[nnx.Module], None] | None = None
    wrap_optimizer: Callable[[optax.GradientTransformation], optax.GradientTransformation] | None = None

    def build(self, task: Task, info: Mapping[str, Any],
              rngs: nnx.Rngs) -> tuple[nnx.Module, weights.LoadReport | None]:
        """The task's model with this setup's edits and weights, and what loading did.

        A restored model (strict weights) is built from shapes alone: its initializers
        never run (compiling them cost a GAN's predict ~20 CPU-seconds), since every
        variable is about to be replaced. A model holding random streams (RNG state is
        not a weight) is built for real.
        """
        model = _shapes_only(task, info) if self.weights is not None and self.strict else None
        if model is None:
            model = initialised(lambda streams: task.build_model(info, streams), rngs)
        if self.edit_model is not None:
            self.edit_model(model)
        if self.weights is None or not self.strict:
            for part, tensors in task.pretrained_parts(info).items():
                weights.load_into(nnx.state(getattr(model, part)), tensors, strict=True)
        if self.weights is None:
            return model, None
        state = nnx.state(model)
        shapes = {path: tuple(np.shape(var.get_value()))
                  for path, var in weights.variables(state).items()}
        # a ViT's position embeddings resampled to its patch grid, an RGB stem made grey
        tensors = fit_to_model(self.weights, shapes)
        return model, weights.load_into(state, tensors, strict=self.strict)

    def fine_tuning(self) -> ModelSetup:
        """These weights as a start to train from: layers of another shape are re-initialised."""
        return dataclasses.replace(self, strict=False)


def _shapes_only(task: Task, info: Mapping[str, Any]) -> nnx.Module | None:
    """The task's model with abstract values (no initializer run), or None if it holds
    random streams, which no weights file restores."""
    model = nnx.eval_shape(lambda: task.build_model(info, nnx.Rngs(0)))
    return None if nnx.state(model, nnx.RngState) else model
