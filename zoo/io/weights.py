"""Weights on disk: safetensors of a model's variables by `/`-joined path. Never pickle.

A safetensors file is a JSON header (names, dtypes, shapes, offsets) and raw bytes:
loading it runs no code. The file holds the model's variables (parameters and
statistics such as batch-norm means), not the optimizer and not RNG state, keyed by
their path in the model (`conv1/kernel`, `layers/0/bias`), so a model built by the
same code loads them whatever the NNX version's checkpoint layout.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from zoo.errors import ZooError

FORMAT_KEY, FORMAT = "zoo.format", "1"


def variables(state: nnx.State) -> dict[str, nnx.Variable]:
    """A model state's variables by path, RNG state left out (it is not a weight)."""
    return {"/".join(map(str, path)): var for path, var in nnx.to_flat_state(state)
            if not isinstance(var, nnx.RngState)}


def arrays(state: nnx.State) -> dict[str, np.ndarray]:
    """The host copies of a model state's weights, by path."""
    return {path: np.asarray(var.get_value()) for path, var in variables(state).items()}


def by_path(tree: Mapping) -> dict[str, Any]:
    """The leaves of a nested dict of weights (a pure-dict model state) by `/`-joined path."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update({f"{key}/{path}": leaf for path, leaf in by_path(value).items()})
        else:
            flat[str(key)] = value
    return flat


def save(path: Path, tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> None:
    from safetensors.numpy import save_file

    # ascontiguousarray makes a scalar 1-d; the reshape keeps it a scalar (a threshold)
    contiguous = {k: np.ascontiguousarray(v).reshape(np.shape(v)) for k, v in tensors.items()}
    save_file(contiguous, str(path), metadata={FORMAT_KEY: FORMAT, **metadata})
    os.chmod(path, 0o644)  # safetensors writes 0600; a hub folder is served to others


def load(path: Path) -> dict[str, np.ndarray]:
    """Reads a weights file.

    Raises:
      ZooError: naming the file, if it is not a well-formed zoo safetensors file.
    """
    tensors, metadata = read_safetensors(path)
    fmt = metadata.get(FORMAT_KEY)
    if fmt != FORMAT:
        raise ZooError(f"{path}: weights format {fmt!r}, this zoo reads {FORMAT!r}")
    return tensors


def read_safetensors(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Any safetensors file (zoo's or upstream's): its tensors and its metadata.

    Raises:
      ZooError: naming the file, if it is unreadable or holds a dtype numpy lacks.
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            return {key: f.get_tensor(key) for key in f.keys()}, dict(f.metadata() or {})
    except (SafetensorError, OSError, TypeError) as e:
        raise ZooError(f"{path}: not a readable safetensors weights file ({e})") from None


@dataclass(frozen=True)
class LoadReport:
    """What `load_into` did: variables loaded, layers left as initialised, extras."""

    loaded: tuple[str, ...]
    reinitialised: Mapping[str, str]  # layer path -> why (shapes or missing variables)
    unused: tuple[str, ...]  # variables in the weights that the model does not have
    total: int  # variables in the model
    new: tuple[str, ...] = ()  # top-level modules none of whose variables are in the weights

    def __str__(self) -> str:
        text = f"loaded {len(self.loaded)} of {self.total} variables"
        if self.reinitialised:
            text += "; re-initialised " + "; ".join(
                f"{layer} ({why})" for layer, why in self.reinitialised.items())
        if self.new:
            text += f"; new (not in the weights): {', '.join(self.new)}"
        if self.unused:
            text += f"; unused: {', '.join(self.unused)}"
        return text


def load_into(state: nnx.State, tensors: Mapping[str, np.ndarray], *,
              strict: bool) -> LoadReport:
    """Sets a model state's variables, in place, from weights by path.

    A layer (the variables under one parent path) is loaded whole or not at all: when
    any of its variables is missing or has another shape (a new head, another input
    size), the whole layer keeps its fresh initialisation. Values take the model's
    dtype. Top-level modules the weights know nothing of (a detector's neck and heads
    under a pretrained backbone) are reported once, by name.

    Args:
      strict: raise unless every variable loads and every weight is used (for eval
        and predict); otherwise report (for fine-tuning).

    Raises:
      ZooError: naming what does not fit, in strict mode or when nothing fits at all.
    """
    targets = variables(state)
    known = {path.split("/")[0] for path in tensors}
    new = sorted({path.split("/")[0] for path in targets} - known)
    mismatched: dict[str, list[str]] = {}
    for path, var in targets.items():
        layer, _, leaf = path.rpartition("/")
        shape = tuple(np.shape(var.get_value()))
        if path not in tensors:
            mismatched.setdefault(layer or leaf, []).append(f"{leaf} missing")
        elif tensors[path].shape != shape:
            mismatched.setdefault(layer or leaf, []).append(
                f"{leaf} {tensors[path].shape} -> {shape}")
    loaded = []
    for path, var in targets.items():
        layer, _, leaf = path.rpartition("/")
        if (layer or leaf) not in mismatched:
            # a copy: a train step donates (consumes) the state it is given
            var.set_value(jnp.array(tensors[path], dtype=var.get_value().dtype))
            loaded.append(path)
    report = LoadReport(tuple(loaded), {k: ", ".join(v) for k, v in mismatched.items()
                                        if k.split("/")[0] not in new},
                        tuple(sorted(set(tensors) - set(targets))), len(targets), tuple(new))
    if (strict and (report.reinitialised or report.unused or report.new)) or not loaded:
        raise ZooError(f"the weights do not fit this model: {report}")
    return report
