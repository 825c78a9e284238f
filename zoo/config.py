"""Typed run configuration and type-checked `--set key.path=value` overrides.

A task's config is a frozen dataclass tree. Its harness sections (`train`, `optimizer`,
`early_stopping`) are shared by every task; the task adds its own fields beside them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from zoo.errors import ZooError, unknown

OptimizerName = Literal["sgd", "momentum", "nesterov", "adam", "adamw"]
ScheduleName = Literal["constant", "cosine", "step"]  # each after `warmup_epochs` of linear warm-up
DtypeName = Literal["float32", "bfloat16", "float16"]


@dataclass(frozen=True)
class Range:
    """Inclusive bounds of a numeric field, attached with `Annotated[int, Range(1)]`.

    `validate` checks every such field of a config tree in one pass, so a value out of
    range is one line naming the key, not a crash deep inside a run. Command-line
    options take the same bounds through `bounded`: this is the one place for them.
    """

    low: float | None = None
    high: float | None = None
    exclusive_low: bool = False  # `low` itself is out of range (a learning rate > 0)
    exclusive_high: bool = False  # `high` itself is out of range (a dropout rate < 1)

    def describe(self) -> str:
        low, high = _number(self.low), _number(self.high)
        if self.high is None:
            return f"> {low}" if self.exclusive_low else f">= {low}"
        if self.low is None:
            return f"< {high}" if self.exclusive_high else f"<= {high}"
        return (f"in {'(' if self.exclusive_low else '['}{low}, "
                f"{high}{')' if self.exclusive_high else ']'}")

    def contains(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        above = self.low is None or value > self.low or (value == self.low and not self.exclusive_low)
        below = self.high is None or value < self.high or (value == self.high and not self.exclusive_high)
        return above and below


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return str(value) if isinstance(value, int) else f"{value:g}"


def bounded(kind: type, bound: Range):
    """An argparse `type=` that parses `kind` and refuses values outside `bound`."""
    import argparse

    def parse(raw: str):
        try:
            value = kind(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {kind.__name__} value {raw!r}") from None
        if not bound.contains(value):
            raise argparse.ArgumentTypeError(f"{raw} is out of range: it must be {bound.describe()}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


Positive = Annotated[int, Range(1)]
NonNegative = Annotated[int, Range(0)]
NonNegativeFloat = Annotated[float, Range(0)]
PositiveFloat = Annotated[float, Range(0, exclusive_low=True)]
Fraction = Annotated[float, Range(0, 1)]
Rate = Annotated[float, Range(0, 1, exclusive_high=True)]  # a probability that must leave something
Seed = Annotated[int, Range(0, 2**32 - 1)]  # jax.random.key and numpy take 32-bit seeds exactly


@dataclass(frozen=True)
class OptimizerConfig:
    """Optimizer and learning-rate schedule (built with optax)."""

    name: OptimizerName = "adam"
    lr: PositiveFloat = 1e-3  # peak learning rate
    schedule: ScheduleName = "cosine"
    warmup_epochs: NonNegativeFloat = 0.0
    momentum: Fraction = 0.9  # SGD momentum; Adam's b1 (GANs use 0.5)
    weight_decay: NonNegativeFloat = 0.0
    grad_clip_norm: NonNegativeFloat = 0.0  # 0 disables clipping
    backbone_lr_scale: Annotated[float, Range(0, 1)] = 1.0  # lr multiplier of the model's `backbone` (0: frozen)


@dataclass(frozen=True)
class EarlyStoppingConfig:
    """Stop when the validation metric has not improved for `patience` epochs."""

    metric: str = ""  # empty: the task's primary metric
    patience: NonNegative = 5  # 0 disables early stopping
    min_delta: NonNegativeFloat = 0.0


@dataclass(frozen=True)
class TrainConfig:
    """The loop itself: epochs, batch size, seed, checkpoint and logging cadence."""

    epochs: Positive = 10
    batch_size: Positive = 128  # global: the same on any number of devices
    eval_batch_size: Positive = 256
    seed: Seed = 0
    log_every: Positive = 50  # steps between progress/TensorBoard updates
    max_examples: NonNegative = 0  # caps every split (0: all); smoke configs use it to keep tests quick
    dtype: DtypeName = "float32"  # compute dtype; parameters and optimizer state stay float32
    checkpoint_every_steps: NonNegative = 0  # also checkpoint every N steps mid-epoch (0: epoch ends only)
    on_nan: Literal["raise", "skip"] = "raise"  # a non-finite loss or update: stop, or drop that step
    max_bad_steps: Positive = 10  # on_nan=skip: stop after this many non-finite steps in a row
    workers: Annotated[int, Range(-1)] = -1  # input worker processes for streamed data (-1: from the core count, 0: none)
    on_bad_example: Literal["raise", "skip"] = "raise"  # an unreadable example: stop naming it, or leave it out


@dataclass(frozen=True)
class TaskConfig:
    """Base of every task config. Subclasses add task fields and override defaults."""

    model: str = ""
    data: str = ""
    train: TrainConfig = TrainConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()

    @classmethod
    def for_model(cls, model: str) -> TaskConfig:
        """The defaults a run of `model` starts from (`--model`; the command line's other
        settings go on top). A task overrides this where a model needs other training
        defaults than the task's default model, e.g. more epochs."""
        return dataclasses.replace(cls(), model=model)

    @classmethod
    def smoke(cls) -> TaskConfig:
        """A tiny variant that runs in seconds, for tests. Subclasses shrink further."""
        return cls(train=dataclasses.replace(cls().train, epochs=1, max_examples=256,
                                             batch_size=32, eval_batch_size=64, log_every=2))


def to_dict(config: Any) -> dict[str, Any]:
    """The config as plain JSON-able data."""
    return dataclasses.asdict(config)


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Rebuilds a config of type `cls` from `to_dict` output, ignoring unknown keys."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        if dataclasses.is_dataclass(hints[f.name]) and isinstance(value, dict):
            value = from_dict(hints[f.name], value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def validate(config: Any, prefix: str = "", *,
             fix: Callable[[str], str] = lambda key: f" (--set {key}=...)",
             show: Callable[[str, Any], str] = lambda key, value: f"{key}={value}") -> None:
    """Checks every field of a config tree: `Range` bounds (on tuple items too), and
    that no float is NaN or infinite, bounded or not.

    Args:
      fix: how the user sets a key, for the end of the message.
      show: how the message names a key and its value.

    Raises:
      ZooError: naming the first key whose value is out of range, and the range.
    """
    hints = typing.get_type_hints(type(config), include_extras=True)
    for f in dataclasses.fields(config):
        value, key = getattr(config, f.name), prefix + f.name
        if dataclasses.is_dataclass(value):
            validate(value, key + ".", fix=fix, show=show)
            continue
        annotation = hints[f.name]
        if isinstance(value, tuple) and typing.get_origin(_base(annotation)) is tuple:
            annotation = typing.get_args(_base(annotation))[0]
        for item in value if isinstance(value, tuple) else (value,):
            if item is not None:
                _check_value(key, item, annotation, fix, show)


def replace_fields(options: Any, values: Mapping[str, Any], *, command_line: bool) -> Any:
    """A flat dataclass (a task's predict options) with `values` replaced and checked:
    an unknown name is refused with the closest ones, strings from the command line
    are converted to the field's type (`top_k` is the flag `--top-k`), ranges validated.

    Raises:
      ZooError: an unknown field, a value of the wrong type, or one out of range.
    """
    def name(key: str) -> str:
        return "--" + key.replace("_", "-") if command_line else key

    hints = typing.get_type_hints(type(options))
    names = [f.name for f in dataclasses.fields(options)]
    for key in values:
        if key not in names:
            raise unknown("option", name(key), [name(n) for n in names])
    if command_line:
        values = {k: parse_value(v, hints[k], name(k)) for k, v in values.items()}
    options = dataclasses.replace(options, **values)
    if command_line:  # "--top-k: 0 is out of range: ..."
        validate(options, fix=lambda key: "", show=lambda key, value: f"{name(key)}: {value}")
    else:
        validate(options, fix=lambda key: f" ({key}=...)")
    return options


def _check_value(key: str, value: Any, annotation: Any, fix: Callable[[str], str],
                 show: Callable[[str, Any], str]) -> None:
    for bound in getattr(annotation, "__metadata__", ()):
        if isinstance(bound, Range) and not bound.contains(value):
            raise ZooError(f"{show(key, value)} is out of range: it must be "
                           f"{bound.describe()}{fix(key)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ZooError(f"{show(key, value)} is out of range: it must be a finite number{fix(key)}")


def _base(annotation: Any) -> Any:
    """`Annotated[T, ...]` -> T."""
    return typing.get_args(annotation)[0] if typing.get_origin(annotation) is Annotated else annotation


def fields_table(config: Any, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """Rows of (key, type, default, doc) for every leaf field, for `zoo info`."""
    rows = []
    hints = typing.get_type_hints(type(config), include_extras=True)
    docs = _field_comments(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        key = prefix + f.name
        if dataclasses.is_dataclass(value):
            rows.extend(fields_table(value, key + "."))
        else:
            rows.append((key, _type_name(hints[f.name]), json.dumps(value), docs.get(f.name, "")))
    return rows


def apply_overrides(config: Any, overrides: list[str]) -> Any:
    """Applies `key.path=value` strings, converting each value to the field's type.

    Raises:
      ZooError: for a malformed override, an unknown key or a value of the wrong type.
    """
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ZooError(f"--set {item!r} is not of the form key.path=value "
                           f"(e.g. --set optimizer.lr=3e-4)")
        config = _replace_path(config, key.strip().split("."), raw.strip(), key.strip())
    return config


def _replace_path(config: Any, path: list[str], raw: str, full_key: str) -> Any:
    names = [f.name for f in dataclasses.fields(config)]
    name = path[0]
    if name not in names:
        prefix = full_key[: len(full_key) - len(".".join(path))]
        raise unknown("config key", full_key, [prefix + n for n in names])
    current = getattr(config, name)
    if len(path) > 1:
        if not dataclasses.is_dataclass(current):
            raise ZooError(f"config key {full_key!r}: {name!r} has no sub-fields")
        return dataclasses.replace(config, **{name: _replace_path(current, path[1:], raw, full_key)})
    if dataclasses.is_dataclass(current):
        raise ZooError(f"config key {full_key!r} is a section; set one of its fields, "
                       f"e.g. {full_key}.{dataclasses.fields(current)[0].name}=...")
    annotation = typing.get_type_hints(type(config))[name]
    return dataclasses.replace(config, **{name: parse_value(raw, annotation, full_key)})


def parse_value(raw: str, annotation: Any, key: str) -> Any:
    """Converts the string `raw` to `annotation` (bool, int, float, str, Literal, tuple,
    or one of them or None: "none" or an empty string gives None).

    Args:
      key: a config key (`optimizer.lr`, set with --set) or a flag (`--top-k`), for errors.
    """
    flag = key if key.startswith("-") else f"--set {key}"
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and type(None) in typing.get_args(annotation):
        if raw.strip().lower() in ("", "none"):
            return None
        (inner,) = [a for a in typing.get_args(annotation) if a is not type(None)]
        return parse_value(raw, inner, key)
    if origin is Literal:
        choices = typing.get_args(annotation)
        if raw not in choices:
            raise unknown(f"value for {key}:", raw, choices)
        return raw
    if origin is tuple:
        (item_type, *_) = typing.get_args(annotation)
        parts = [p for p in raw.strip("()[] ").split(",") if p.strip()]
        return tuple(parse_value(p.strip(), item_type, key) for p in parts)
    if annotation is bool:
        lowered = raw.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ZooError(f"{flag}={raw}: expected true or false")
    if annotation in (int, float, str):
        try:
            value = annotation(raw)
        except ValueError:
            raise ZooError(f"{flag}={raw}: expected {annotation.__name__}, "
                           f"e.g. {flag}={annotation(1)}") from None
        return value
    raise ZooError(f"{flag}: fields of type {annotation} cannot be set from the command line")


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "None"
    if typing.get_origin(annotation) is Annotated:
        base, *extras = typing.get_args(annotation)
        return " ".join([_type_name(base), *(e.describe() for e in extras if isinstance(e, Range))])
    if typing.get_origin(annotation) is Literal:
        return "|".join(typing.get_args(annotation))
    if typing.get_origin(annotation) is tuple:
        return f"tuple[{_type_name(typing.get_args(annotation)[0])}]"
    return getattr(annotation, "__name__", str(annotation))


def _field_comments(cls: type) -> dict[str, str]:
    """Field docs: the trailing `# comment` on each field's line in the class source."""
    import inspect

    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            lines = inspect.getsource(klass).splitlines()
        except (OSError, TypeError):
            continue
        for line in lines:
            head, _, comment = line.partition("#")
            name = head.split(":")[0].strip()
            if comment and name.isidentifier() and ":" in head:
                docs[name] = comment.strip()
    return docs
