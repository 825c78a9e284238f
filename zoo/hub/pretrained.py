"""Published weights as tasks and models: what `--pretrained` does in run, eval, predict.

A card carries the task config its weights were trained with and the data-set facts
(`info`) the model was built from, so the same model is rebuilt here with no access to
the training run, and `eval` can check the card's metrics on the card's data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from flax import nnx

from zoo.config import TaskConfig, from_dict
from zoo.errors import ZooError
from zoo.hub import cache, index, weights
from zoo.hub.card import Card
from zoo.task import Task


def find(task_name: str, spec: str, *, model: str | None = None) -> tuple[index.Index, Card]:
    """The card `--pretrained [MODEL][:TAG]` names for `task_name` in the current hub.

    An empty spec takes the first card of the task (of `model`, when the command line
    names one); a spec without a tag the first card of that model.

    Raises:
      ZooError: no such card, or `spec` and `model` name different models.
    """
    name, _, tag = spec.partition(":")
    if name and model and name != model:
        raise ZooError(f"--pretrained {spec} is a {name} weight but --model is {model}; "
                       f"drop one of them")
    hub = index.load()
    return hub, hub.find(task_name, name or model, tag or None)


def task_config(task_cls: type[Task], card: Card) -> TaskConfig:
    """The config the card's weights were trained with."""
    return from_dict(task_cls.Config, card.config)


def load_weights(hub: index.Index, card: Card, *, allow_unverified: bool = False
                 ) -> dict[str, np.ndarray]:
    """The card's weights (fetched, verified and cached as needed), by variable path.

    A card in an upstream layout (`layout: timm`: the very file timm publishes) is
    converted here, on every load; the cache keeps the upstream bytes, verifiable
    against the upstream sha256.
    """
    path = cache.fetch_card(card, hub.url, allow_unverified=allow_unverified)
    file = path / "weights.safetensors" if path.is_dir() else path
    if card.layout == "zoo":
        return weights.load(file)
    from zoo.models.convert import from_torch_layout

    return from_torch_layout(card.model, weights.read_safetensors(file)[0])


def load_model(task_cls: type[Task], hub: index.Index, card: Card, *,
               allow_unverified: bool = False) -> tuple[Task, nnx.Module, dict[str, Any]]:
    """The card's model with its weights, ready for prediction, and its data-set info."""
    from zoo.harness.inference import inference_view

    from zoo.models import IMAGENET

    task = task_cls(task_config(task_cls, card))
    model = build_for_weights(lambda: task.build_model(card.info, nnx.Rngs(0)),
                              abstract=card.model in IMAGENET)
    weights.load_into(nnx.state(model), load_weights(hub, card, allow_unverified=allow_unverified),
                      strict=True)
    return task, inference_view(model), card.info


def build_for_weights(build: Callable[[], nnx.Module], *, abstract: bool) -> nnx.Module:
    """A model whose every variable is about to be loaded (strictly). An ImageNet
    family's is built `abstract` (shapes only: `nnx.eval_shape`): drawing its random
    initial weights compiles for up to a second per distinct weight shape on a CPU (a
    ResNet-18 15 CPU-s, a MobileNetV3-Large 36 on 2 cores, every first run), all of it
    thrown away."""
    return nnx.eval_shape(build) if abstract else build()


def evaluate(task_cls: type[Task], hub: index.Index, card: Card, *, split: str,
             data: str | None = None, device: str = "auto", mesh: str | None = None,
             allow_unverified: bool = False) -> dict[str, Any]:
    """The card's weights evaluated on the card's data set: its claim, checked. With
    `data` (the user's copy of that data set, e.g. ImageNet's validation folder), on
    every example of it instead, whatever `split` says (see `zoo.hub.card_data`)."""
    from zoo.config import apply_overrides
    from zoo.harness.trainer import evaluate as evaluate_split
    from zoo.harness.trainer import open_session
    from zoo.hub import card_data
    from zoo_hardware import distributed, placement

    config = task_config(task_cls, card)
    task = task_cls(config if data is None else apply_overrides(config, [f"data={data}"]))
    with distributed.primary_first("load data"):  # before the download: it may be missing
        dataset = task.load_data() if data is None else card_data.evaluation_data(task, card)
    with distributed.primary_first("download weights"):
        tensors = load_weights(hub, card, allow_unverified=allow_unverified)
    session = open_session(task, device=device, mesh=mesh, training=False, data=dataset)
    weights.load_into(session.state["model"], tensors, strict=True)
    session.state = placement.place_state(session.state, session.mesh)
    return evaluate_split(session, split)
