import dataclasses
from typing import Literal

import pytest

from zoo.config import TaskConfig, apply_overrides, fields_table, from_dict, to_dict
from zoo.errors import ZooError


@dataclasses.dataclass(frozen=True)
class _Cfg(TaskConfig):
    width: int = 8  # channels of the first layer
    mode: Literal["a", "b"] = "a"
    flag: bool = False
    sizes: tuple[int, ...] = (1, 2)


@pytest.mark.parametrize("override, key, expected", [
    ("width=16", "width", 16),
    ("mode=b", "mode", "b"),
    ("flag=true", "flag", True),
    ("flag=0", "flag", False),
    ("sizes=3,4,5", "sizes", (3, 4, 5)),
    ("optimizer.lr=3e-4", "optimizer.lr", 3e-4),
    ("optimizer.name=adamw", "optimizer.name", "adamw"),
    ("train.epochs=7", "train.epochs", 7),
])
def test_override_converts_to_field_type(override, key, expected):
    config = apply_overrides(_Cfg(), [override])
    value = config
    for part in key.split("."):
        value = getattr(value, part)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("override, message", [
    ("width=wide", "expected int"),
    ("mode=c", "unknown value for mode"),
    ("flag=maybe", "expected true or false"),
    ("optimizer.lrr=1", "did you mean 'optimizer.lr'"),
    ("widht=3", "did you mean 'width'"),
    ("optimizer=1", "is a section"),
    ("width", "not of the form key.path=value"),
])
def test_bad_override_is_a_one_line_error(override, message):
    with pytest.raises(ZooError, match=message) as info:
        apply_overrides(_Cfg(), [override])
    assert "\n" not in str(info.value)


def test_config_round_trips_through_json_dict():
    config = apply_overrides(_Cfg(), ["sizes=9", "optimizer.lr=0.5"])
    assert from_dict(_Cfg, to_dict(config)) == config


def test_smoke_config_is_small():
    smoke = _Cfg.smoke()
    assert smoke.train.epochs == 1 and 0 < smoke.train.max_examples <= 1024


def test_fields_table_lists_leaves_with_docs():
    rows = {row[0]: row for row in fields_table(_Cfg())}
    assert rows["width"][3] == "channels of the first layer"
    assert rows["optimizer.lr"][1] == "float > 0"
    assert "train" not in rows
