"""A card's task config, checked against the task's typed `Config` before it is used.

`zoo.config.from_dict` trusts its input (run.json, written by zoo itself); a card comes
from any hub, so here every value must have its field's type (a string where a size
belongs, a list where a section belongs, 10**30 where a bounded count belongs are
refused in one line naming the card and the key) and pass the config's own ranges.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, Union

from zoo.config import from_dict, validate
from zoo.errors import ZooError
from zoo.hub.card import short_repr


def task_config(config_cls: type, card_config: dict[str, Any], label: str) -> Any:
    """`config_cls` from a card's `config`, each value of the type its field declares.

    Raises:
      ZooError: `label: config KEY=VALUE is not ...`, or a value out of its range.
    """
    try:
        _check_types(config_cls, card_config, "")
        config = from_dict(config_cls, card_config)
        validate(config, fix=lambda key: "")
    except ZooError as e:
        raise ZooError(f"{label}: config {e}") from None
    return config


def _check_types(cls: type, data: dict[str, Any], prefix: str) -> None:
    hints = typing.get_type_hints(cls)  # Annotated[...] stripped to its type
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value, hint, key = data[f.name], hints[f.name], prefix + f.name
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ZooError(f"{key} must be a JSON object, not {short_repr(value)}")
            _check_types(hint, value, key + ".")
        elif not _fits(value, hint):
            raise ZooError(f"{key}={short_repr(value)}: expected {_name(hint)}")


def _fits(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return any(_fits(value, arm) for arm in args)
    if origin is Literal:
        return any(value == choice and type(value) is type(choice) for choice in args)
    if origin is tuple or hint is tuple:
        if not isinstance(value, (list, tuple)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_fits(item, args[0]) for item in value)
        return not args or (len(value) == len(args) and all(map(_fits, value, args)))
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63
    simple = {bool: (bool,), float: (int, float), str: (str,), type(None): (type(None),)}
    if hint in simple:
        return isinstance(value, simple[hint]) and (hint is bool or not isinstance(value, bool))
    return True  # an annotation zoo does not use in configs: the task checks it


def _name(hint: Any) -> str:
    if hint is int:
        return "a 64-bit integer"
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
