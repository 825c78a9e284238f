"""The models a server holds: each a predictor (`zoo.load`) with every batch bucket
compiled before the first request, behind its own dynamic batcher.

A model is served under a name in the URL (`/v1/models/NAME:predict`): `NAME=SOURCE`
names it; otherwise the source's last part, `:` made `-` (`classification/lenet:mnist-sample`
is `lenet-mnist-sample`, `runs/detection` is `detection`).
"""

from __future__ import annotations

import dataclasses
import functools
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.predictor import Predictor, load
from zoo.serve.batcher import Batcher
from zoo.serve.inputs import RequestError, typed_options
from zoo.serve.metrics import Metrics
from zoo.task import COMPILED, PredictOptions, compiled_part

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def buckets_for(max_batch: int) -> tuple[int, ...]:
    """Powers of two up to `max_batch`, and `max_batch`: padding wastes under half a batch."""
    sizes = {1 << i for i in range(max_batch.bit_length()) if 1 << i <= max_batch}
    return tuple(sorted(sizes | {max_batch}))


def parse_spec(spec: str) -> tuple[str, str]:
    """`NAME=SOURCE` or `SOURCE` as (name, source)."""
    name, sep, source = spec.partition("=")
    if not sep:
        source = spec
        name = re.sub(r"[^A-Za-z0-9._-]", "-", Path(spec.rstrip("/")).name.replace(":", "-"))
    if not NAME.fullmatch(name):
        raise ZooError(f"--model {spec}: {name!r} cannot name a model in a URL; name it "
                       f"with NAME=SOURCE (letters, digits, '.', '_', '-')")
    return name, source


@dataclasses.dataclass
class ServedModel:
    """One model behind the server: its predictor, the batcher that feeds it, and the
    compiled options its buckets were compiled for (the defaults, and `--compile`'s)."""

    name: str
    predictor: Predictor
    batcher: Batcher
    compiled: list[PredictOptions]

    @functools.cached_property
    def defaults(self) -> PredictOptions:
        """The task's default options (most requests set none: checked once, not each time)."""
        return self.predictor.options()

    def compiled_key(self, options: PredictOptions) -> PredictOptions:
        """The programs `options` run with; refused (400) if they were not compiled at
        start-up, since compiling now would stall every request of this model."""
        if options is self.defaults:
            return self.compiled[0]  # compiled_part(defaults), compiled first
        key = compiled_part(options)
        if key not in self.compiled:
            raise RequestError(400, f"{_settings(key)} is not compiled on this server (it "
                                    f"compiled {'; '.join(map(_settings, self.compiled))}); "
                                    f"start it with --compile {_settings(key)}")
        return key

    def describe(self) -> dict[str, Any]:
        """What `GET /v1/models` says of it: task, inputs, options, result type, card."""
        task, card = self.predictor.task, self.predictor.card
        options = dataclasses.asdict(task.PredictOptions())
        return {"name": self.name, "task": task.name, "model": task.config.model,
                "source": self.predictor.source, "inputs": task.inputs or "options only",
                "options": options, "result": task.Result.__name__ if task.Result else None,
                "classes": list(self.predictor.info.get("classes", [])),
                "buckets": list(self.predictor.programs.buckets),
                "max_batch": self.batcher.max_batch,
                "compiled": [_compiled_fields(key) for key in self.compiled],
                "card": card.to_json() if card is not None else None}


def load_models(specs: Sequence[str], *, max_batch: int, window_s: float, metrics: Metrics,
                compile_also: Sequence[str] = (),
                say: Callable[[str], None] = print) -> dict[str, ServedModel]:
    """Loads every model and compiles all its buckets, saying what it does.

    Args:
      compile_also: `NAME=VALUE` values of compiled options (`beam=1`) to compile too,
        each for every model that has the option.

    Raises:
      ZooError: two models of one name, a model `zoo.load` refuses, a `compile_also`
        that no model has or with a bad value.
    """
    named = [parse_spec(spec) for spec in specs]
    names = [name for name, _ in named]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ZooError(f"two models are named {twice[0]!r}; name them with "
                       f"--model NAME=SOURCE")
    extra = [setting.partition("=")[::2] for setting in compile_also]
    buckets = buckets_for(max_batch)
    models = {}
    for name, source in named:
        say(f"loading {name} from {source}")
        predictor = load(source, buckets=buckets)
        compiled = _compiled_options(predictor, extra)
        t0 = time.perf_counter()
        sets = f" x {len(compiled)} option sets" if len(compiled) > 1 else ""
        say(f"compiling {len(buckets)} batch buckets{sets} for {name} "
            f"({', '.join(map(str, buckets))})")
        for options in compiled:
            predictor.warm_up(options)
        metrics.compile_seconds.labels(name).set(predictor.programs.compile_seconds)
        say(f"  {name}: {predictor.task.name} {predictor.task.config.model}, compiled in "
            f"{time.perf_counter() - t0:.1f} s")
        models[name] = ServedModel(name, predictor, _batcher(name, predictor, max_batch,
                                                             window_s, metrics),
                                   [compiled_part(options) for options in compiled])
    unused = {key for key, _ in extra} - {
        key for model in models.values() for key in _compiled_fields(model.compiled[0])}
    if unused:
        raise ZooError(f"--compile {sorted(unused)[0]}=...: no served model has a compiled "
                       f"option of that name (GET /v1/models lists each model's)")
    return models


def _compiled_options(predictor: Predictor, extra: Sequence[tuple[str, str]]) -> list[PredictOptions]:
    """The default options, and one set per `extra` setting of this model's compiled options."""
    names = _compiled_fields(predictor.options())
    sets = [predictor.options()]
    for key, value in extra:
        if key in names:
            try:
                sets.append(predictor.options(**typed_options(predictor.task, {key: value})))
            except RequestError as e:
                raise ZooError(f"--compile {key}={value}: {e}") from None
    return sets


def _compiled_fields(options: PredictOptions) -> dict[str, Any]:
    return {f.name: getattr(options, f.name) for f in dataclasses.fields(options)
            if f.metadata.get(COMPILED)}


def _settings(options: PredictOptions) -> str:
    return ", ".join(f"{k}={v}" for k, v in _compiled_fields(options).items()) or "the defaults"


def _batcher(name: str, predictor: Predictor, max_batch: int, window_s: float,
             metrics: Metrics) -> Batcher:
    return Batcher(predictor.programs.run, max_batch=max_batch, window_s=window_s,
                   buckets=predictor.programs.buckets,
                   on_batch=metrics.batch_size.labels(name).observe,
                   on_queue=metrics.queue_depth.labels(name).set, name=name)

