"""`zoo.load`: any trained model as a predictor, typed results out.

    predictor = zoo.load("classification/lenet:mnist-sample")
    predictor.predict("digit.png")            # Classification(label '7', p=0.998 ...)

A source is a hub weight (`TASK/MODEL[:TAG]`, or `MODEL[:TAG]` with `task=`), a trained
or compressed workdir (both through `zoo.restore`), or a directory written by
`zoo export --format stablehlo` (run with `jax.export`, no model code needed). Either
way the task's own `prepare` and `to_result` apply the preprocessing recorded with the
weights (input size, channels, background polarity, letterboxing) and map outputs back
onto each input, and the `infer` programs are compiled once per batch bucket and kept
(`zoo.batching`), with JAX's persistent compilation cache on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from zoo import restore
from zoo.batching import BUCKETS, Programs
from zoo.config import from_dict, replace_fields
from zoo.errors import ZooError
from zoo.hub.card import Card
from zoo.paths import cache_dir
from zoo.predictions import Result
from zoo.registry import get_task
from zoo.task import PredictOptions, Task, compiled_part
from zoo_hardware import compilation

EXPORT_RECORD = "export.json"  # beside every exported model: task, config, info, inputs
EXPORT_FORMAT = 1
FILES = {"stablehlo": "model.stablehlo", "onnx": "model.onnx"}


class Predictor:
    """One trained model ready to predict: `predict(inputs, **options)`.

    Attributes:
      task: the task, configured as the model was trained (`task.PredictOptions` lists
        the options, `task.Result` the result type).
      info: the data-set facts the model was built from (classes, input shape...).
      model: the NNX module in evaluation mode; None for an exported artifact.
      card: the hub card the weights came with (None for a workdir).
      source: where the model came from ("hub:classification/lenet:mnist-sample").
      programs: the compiled `infer` programs, one per batch bucket and compiled option
        value; `programs.buckets` are the batch sizes.
    """

    def __init__(self, task: Task, info: dict[str, Any], programs: Programs, *,
                 model: Any = None, source: str = "", card: Card | None = None,
                 fixed: PredictOptions | None = None):
        self.task, self.info, self.programs, self.model = task, info, programs, model
        self.source, self.card = source, card
        self._fixed = fixed  # an export's compiled options: the only ones it can run

    def __repr__(self) -> str:
        return (f"Predictor({self.task.name}: {self.task.config.model} from {self.source}, "
                f"buckets {self.programs.buckets})")

    def options(self, options: PredictOptions | None = None, **values: Any) -> PredictOptions:
        """The task's options with `values` replaced, checked (names, ranges)."""
        base = self.task.PredictOptions() if options is None else options
        options = replace_fields(base, values, command_line=False)
        if self._fixed is not None and compiled_part(options) != self._fixed:
            raise ZooError(f"{self.source} was exported with {self._fixed}; export again "
                           f"with the options you want, or load the weights themselves")
        return options

    def predict(self, inputs: Any = None, options: PredictOptions | None = None,
                **values: Any) -> Result | list[Result]:
        """Typed results for `inputs`, with the task's options as keyword arguments.

        Args:
          inputs: one input (an image path, PIL image or HxWxC array; a sentence) or a
            list of them (a 4-D array is a batch of images). A GAN takes class labels,
            or none and `count=`.

        Returns:
          One result for one input, else a list in input order.
        """
        items, single = _items(inputs)
        results = self.task.predict(self.model, self.info, items, self.options(options, **values),
                                    programs=self.programs)
        return results[0] if single else results

    def warm_up(self, options: PredictOptions | None = None, **values: Any) -> float:
        """Compiles every batch bucket for `options` now (a server's start-up); returns
        the seconds spent compiling so far."""
        options = self.options(options, **values)
        example = self.task.prepare(self.info, self.task.example_input(self.info), options)[0]
        self.programs.warm_up(example, compiled_part(options))
        return self.programs.compile_seconds


def load(source: str | Path, *, task: str | None = None, buckets: Sequence[int] = BUCKETS,
         allow_unverified: bool = False) -> Predictor:
    """A predictor for the model `source` names.

    Args:
      source: a hub weight `TASK/MODEL[:TAG]` (`MODEL[:TAG]` with `task=`; `zoo hub list`
        shows them), a workdir of `zoo run` or `zoo compress`, or a directory (or its
        model file) written by `zoo export --format stablehlo`.
      task: the task, when `source` does not say it.
      buckets: the batch sizes to compile (each compiled on first use).

    Raises:
      ZooError: nothing there, a model of another task, damaged or unverified weights.
    """
    path = Path(source).expanduser()
    exported = path if path.is_dir() else path.parent
    if (exported / EXPORT_RECORD).is_file():
        return _from_export(exported, task, buckets)
    if task is not None and not path.is_dir() and "/" not in str(source):
        source = f"{task}/{source}"
    restored = restore.restore(source, allow_unverified=allow_unverified)
    if task is not None and restored.task.name != task:
        raise ZooError(f"{source} holds a {restored.task.name!r} model, not {task!r}")
    return from_restored(restored, buckets=buckets)


def from_restored(restored: restore.Restored, *, buckets: Sequence[int] = BUCKETS) -> Predictor:
    """A predictor for a restored model (the command line's `--workdir`/`--pretrained`)."""
    compilation.enable_persistent_cache(cache_dir("jax-cache"))
    model = restored.inference_model()
    info = dict(restored.info)
    return Predictor(restored.task, info, restored.task.programs(model, info, buckets=buckets),
                     model=model, source=restored.source, card=restored.card)


def read_export(directory: Path) -> dict[str, Any]:
    """The record beside an exported model, checked."""
    record_path = directory / EXPORT_RECORD
    try:
        record = json.loads(record_path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ZooError(f"{record_path}: not a readable export record ({e})") from None
    if not isinstance(record, dict) or record.get("format", 0) > EXPORT_FORMAT:
        raise ZooError(f"{record_path}: written by a newer zoo (export format "
                       f"{record.get('format')!r}); upgrade zoo")
    return record


def _from_export(directory: Path, task_name: str | None, buckets: Sequence[int]) -> Predictor:
    compilation.enable_persistent_cache(cache_dir("jax-cache"))
    record = read_export(directory)
    if record["runtime"] != "stablehlo":
        raise ZooError(f"{directory} holds an {record['runtime']} model: zoo.load runs "
                       f"StableHLO exports; run it with onnxruntime ({directory / 'README.md'})")
    if task_name is not None and record["task"] != task_name:
        raise ZooError(f"{directory} holds a {record['task']!r} model, not {task_name!r}")
    task_cls = get_task(record["task"])
    task = task_cls(from_dict(task_cls.Config, record["config"]))
    exported = jax.export.deserialize(bytearray((directory / FILES["stablehlo"]).read_bytes()))
    batch = record["batch"]
    programs = Programs(lambda model, inputs, options: exported.call(inputs),
                        buckets=buckets if batch == "any" else (batch,))
    card = Card.from_json(record["card"], str(directory)) if record.get("card") else None
    return Predictor(task, record["info"], programs, source=str(directory), card=card,
                     fixed=from_dict(task_cls.PredictOptions, record["options"]))


def _items(inputs: Any) -> tuple[list[Any], bool]:
    """The inputs as a list, and whether one input was given (not a list of one)."""
    if inputs is None:
        return [], False
    if isinstance(inputs, (list, tuple)):
        return list(inputs), False
    if isinstance(inputs, np.ndarray) and inputs.ndim == 4:
        return list(inputs), False
    return [inputs], True
