"""Published weights for `--pretrained`: which card a spec names, and its weights.

A card carries the task config its weights were trained with and the data-set facts
(`info`) the model was built from, so `zoo.restore.from_hub` rebuilds the same model
with no access to the training run, and `eval` can check the card's metrics on the
card's data.
"""

from __future__ import annotations

import numpy as np

from zoo.errors import ZooError
from zoo.hub import cache, index
from zoo.hub.card import Card
from zoo.io import weights
from zoo.models.convert import from_torch_layout


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


def find_backbone(spec: str) -> tuple[index.Index, Card]:
    """The ImageNet classifier card `--pretrained-backbone MODEL[:TAG]` names.

    Raises:
      ZooError: one line naming the backbones the hub has, when there is no such card.
    """
    from zoo.models import IMAGENET

    name, _, tag = spec.partition(":")
    hub = index.load()
    found = [c for c in hub.cards if c.task == "classification" and c.model in IMAGENET]
    cards = [c for c in found if c.model == name and (not tag or c.tag == tag)]
    if not cards:
        choices = ", ".join(f"{c.model}:{c.tag}" for c in found) or "none"
        raise ZooError(f"--pretrained-backbone {spec}: no such ImageNet classifier in hub "
                       f"{hub.url}; backbones there: {choices}")
    return hub, cards[0]


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
    return from_torch_layout(card.model, weights.read_safetensors(file)[0])
