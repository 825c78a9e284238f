"""One way to restore a trained model, whatever holds it.

A model comes from a trained workdir (its best checkpoint), a compressed workdir
(`zoo compress`' model.zc) or a published hub weight. Each becomes a `Restored`: the
task with the config its weights were trained with, the data-set facts the model was
built from, and a `ModelSetup` holding every weight and layer edit, so `zoo eval`,
`predict`, `publish`, `compress` and fine-tuning all build the model the same way
(`ModelSetup.build`). A workdir's run.json says how its weights are stored
(`"weights": {"format": ...}`); `FORMATS` reads each, so the harness never needs to
know compression.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flax import nnx

from zoo.config import from_dict
from zoo.errors import ZooError
from zoo.harness.model_setup import ModelSetup
from zoo.harness.steps import inference_view
from zoo.harness.workdir import CHECKPOINT, require_run
from zoo.hub import card_config, card_data, pretrained
from zoo.hub.card import Card
from zoo.io.weights import by_path
from zoo.registry import failure, get_task
from zoo.task import Dataset, Task
from zoo_hardware import compression, distributed, quantization

if TYPE_CHECKING:  # orbax loads only where a checkpoint is read:
    # `zoo predict --pretrained` starts faster without it
    from zoo.harness.trainer import Session


@dataclasses.dataclass(frozen=True)
class Restored:
    """A trained model ready to build: task, data-set facts and weights.

    Attributes:
      task: the task, configured as the weights were trained.
      info: the data-set facts (`Dataset.info`) the model was built from.
      setup: every weight of the model (strict) and any layer edit.
      source: where it came from, for messages and reports ("runs/cls",
        "hub:classification/lenet:mnist-sample").
      record: the run record: run.json, or a card's versions and plugin.
      workdir: the workdir it was read from (None for a hub weight).
      card: the hub card it was read from (None for a workdir).
    """

    task: Task
    info: Mapping[str, Any]
    setup: ModelSetup
    source: str
    record: Mapping[str, Any]
    workdir: Path | None = None
    card: Card | None = None

    def model(self) -> nnx.Module:
        """The model with its weights, in training mode.

        Raises:
          ZooError: a hub card whose info or config does not build its task's model
            (a malformed card: one line naming it, not the task's traceback).
        """
        try:
            model, _ = self.setup.build(self.task, self.info, nnx.Rngs(0))
        except ZooError:
            raise
        except Exception as e:
            if self.card is None:
                raise
            raise ZooError(f"{self.source}: the card's info and config do not build a "
                           f"{self.task.name} model ({failure(e)}); the card is malformed, "
                           f"tell its publisher") from e
        return model

    def inference_model(self) -> nnx.Module:
        """The model with its weights, ready for prediction."""
        return inference_view(self.model())

    def session(self, *, device: str = "auto", mesh: str | None = None,
                data: Dataset | None = None) -> Session:
        """An evaluation session of the model on `data` (default: freshly loaded), placed
        on `mesh` (whatever mesh the weights were saved from)."""
        from zoo.harness.trainer import open_session

        return open_session(self.task, device=device, mesh=mesh, training=False, setup=self.setup,
                            data=data)

    def evaluate(self, split: str = "test", *, device: str = "auto", mesh: str | None = None,
                 data: Dataset | None = None) -> dict[str, Any]:
        """The task's metrics of the model on `split` of `data` (default: the task's)."""
        from zoo.harness.trainer import evaluate

        return evaluate(self.session(device=device, mesh=mesh, data=data), split)


def from_workdir(workdir: str | Path, task_name: str | None = None) -> Restored:
    """The model of a trained (or compressed) workdir.

    Raises:
      ZooError: no run there, a run of another task, no finished epoch yet, damaged or
        unknown weights.
    """
    workdir = Path(workdir)
    record = require_run(workdir, task_name)
    stored = stored_weights(record)
    read = FORMATS.get(stored.get("format"))
    if read is None:
        raise ZooError(f"{workdir}: weights stored as {stored.get('format')!r}, which this "
                       f"zoo cannot read (upgrade zoo)")
    return Restored(_task(record["task"], record["config"]), record["info"], read(workdir, stored),
                    str(workdir), record, workdir=workdir)


def from_hub(task_name: str, spec: str = "", *, model: str | None = None,
             allow_unverified: bool = False) -> Restored:
    """The model of the published weight `--pretrained [MODEL][:TAG]` names for `task_name`."""
    hub, card = pretrained.find(task_name, spec, model=model)
    task = _card_task(task_name, card)
    with distributed.primary_first("download weights"):
        tensors = pretrained.load_weights(hub, card, allow_unverified=allow_unverified)
    return Restored(task, card.info, ModelSetup(weights=tensors), f"hub:{card.name}",
                    {"versions": card.versions, "plugin": card.plugin}, card=card)


def hub_data(task_name: str, spec: str = "", data: str | None = None) -> Dataset:
    """What the published weight `--pretrained SPEC` is evaluated on: its card's data set,
    or with `data` the user's copy of it (`zoo.hub.card_data`: every example, labelled
    with the card's classes). Loaded before the weights are downloaded, so a data set zoo
    cannot fetch (ImageNet) is named first.
    """
    _, card = pretrained.find(task_name, spec)
    task = _card_task(task_name, card if data is None else
                      dataclasses.replace(card, config={**card.config, "data": data}))
    with distributed.primary_first("load data"):
        return task.load_data() if data is None else card_data.evaluation_data(task, card)


def restore(source: str | Path, *, allow_unverified: bool = False) -> Restored:
    """The model `source` names: a workdir path, or a hub weight `TASK/MODEL[:TAG]`."""
    path = Path(source).expanduser()
    if path.is_dir():
        return from_workdir(path)
    task_name, slash, spec = str(source).partition("/")
    if not slash or not task_name:
        raise ZooError(f"{source!r} names neither a workdir nor a published weight "
                       f"TASK/MODEL[:TAG] (see `zoo hub list`)")
    return from_hub(task_name, spec, allow_unverified=allow_unverified)


def stored_weights(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """How a workdir's weights are stored: run.json's "weights" entry."""
    if "weights" in record:
        return record["weights"]
    if "compressed" in record:  # written before run.json named the format
        return {"format": compression.FORMAT_NAME, "file": record["compressed"]["weights"]}
    return {"format": CHECKPOINT}


def _task(name: str, config: Mapping[str, Any]) -> Task:
    task_cls = get_task(name)
    return task_cls(from_dict(task_cls.Config, dict(config)))


def _card_task(name: str, card: Card) -> Task:
    """The task configured from a card's config, every value type- and range-checked."""
    task_cls = get_task(name)
    return task_cls(card_config.task_config(task_cls.Config, card.config, card.name))


def _checkpoint(workdir: Path, stored: Mapping[str, Any]) -> ModelSetup:
    from zoo.harness.checkpoints import model_weights

    del stored
    return ModelSetup(weights=model_weights(workdir))


def _compressed(workdir: Path, stored: Mapping[str, Any]) -> ModelSetup:
    state, meta = compression.read(workdir / stored["file"])
    return ModelSetup(weights=by_path(state), edit_model=quantization.activation_edit(meta))


FORMATS: dict[str, Callable[[Path, Mapping[str, Any]], ModelSetup]] = {
    CHECKPOINT: _checkpoint,
    compression.FORMAT_NAME: _compressed,
}
