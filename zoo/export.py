"""`zoo export`: a trained model as a file that another runtime runs without zoo.

- `stablehlo`: `jax.export` of the task's `infer` (the network's outputs and its
  on-device decoding: probabilities, peaks and NMS, CTC or beam search), weights inside,
  the batch dimension symbolic where the model allows it. Runs with `jax` alone
  (`jax.export.deserialize(...).call(inputs)`), and `zoo.load(DIR)` wraps it with the
  task's preprocessing and typed results.
- `onnx`: jax2onnx's conversion of the task's `forward` (the network's raw outputs:
  logits, detection heads, CTC logits) for onnxruntime and the tools that read ONNX.
  A task with no `forward` (its output is a decoding loop) or an operation the
  converter cannot express is refused in one line.

Beside the model: `export.json` (task, config, data-set facts, options, the inputs and
outputs with shapes and dtypes, the preprocessing) and a README.md saying how to feed it.
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jax.extend.core import jaxpr_as_fun

from zoo.batching import stack
from zoo.config import to_dict
from zoo.errors import ZooError
from zoo.io.files import write_json
from zoo.predictor import EXPORT_FORMAT, EXPORT_RECORD, FILES, Predictor
from zoo.task import PredictOptions, Task, compiled_part

RUNTIMES = tuple(FILES)


def export(predictor: Predictor, out: str | Path, runtime: str, *,
           options: PredictOptions | None = None, batch: int = 0) -> dict[str, Any]:
    """Writes `predictor`'s model for `runtime` (stablehlo | onnx) into the directory `out`.

    Args:
      options: the task's predict options; those that change the compiled program
        (a beam width) are fixed in the export.
      batch: a fixed batch size; 0 makes it symbolic (any size) where the model allows,
        else 1.

    Returns:
      The record written to export.json.

    Raises:
      ZooError: an unknown runtime, or a model the runtime cannot express (one line).
    """
    if runtime not in RUNTIMES:
        raise ZooError(f"unknown export format {runtime!r}; choose from {', '.join(RUNTIMES)}")
    task, info = predictor.task, predictor.info
    options = compiled_part(predictor.options(options))
    example = stack(task.prepare(info, task.example_input(info), options)[:1], 1)
    if runtime == "stablehlo":
        fn = lambda inputs: task.infer(predictor.model, info, inputs, options)  # noqa: E731
        data, batch, outputs = _stablehlo(fn, example, batch)
    else:
        fn = _network_outputs(predictor)
        data, batch, outputs = _onnx(fn, example, batch or 1, task.name)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / FILES[runtime]).write_bytes(data)
    record = _record(predictor, runtime, options, batch, example, outputs)
    write_json(out / EXPORT_RECORD, record)
    (out / "README.md").write_text(_readme(record))
    return record


def _stablehlo(fn: Callable, example: dict[str, np.ndarray], batch: int):
    """Serialized `jax.export` of `fn`, symbolic in the batch unless `batch` is given
    (or the model needs a fixed one); returns (bytes, batch, output shapes)."""
    fixed = batch or 1
    if not batch:
        try:
            (b,) = jax.export.symbolic_shape("batch")
            exported = jax.export.export(jax.jit(fn))(_specs(example, b))
            return bytes(exported.serialize()), "any", _shapes(exported.out_avals, exported.out_tree)
        except Exception:  # noqa: BLE001  a shape-specific operation: export a fixed batch
            pass
    exported = jax.export.export(jax.jit(fn))(_specs(example, fixed))
    return bytes(exported.serialize()), fixed, _shapes(exported.out_avals, exported.out_tree)


def _network_outputs(predictor: Predictor) -> Callable:
    task, model, info = predictor.task, predictor.model, predictor.info
    if type(task).forward is Task.forward:
        raise ZooError(f"{task.name}: ONNX export takes the network's outputs (`forward`), and "
                       f"this task's output is its decoding loop; use --format stablehlo")
    return lambda inputs: task.forward(model, info, inputs)


def _onnx(fn: Callable, example: dict[str, np.ndarray], batch: int, task_name: str):
    """An ONNX model of `fn` by jax2onnx, for a fixed batch; (bytes, batch, output shapes).

    `fn` is traced to a jaxpr first and jax2onnx converts its primitives: its own
    replacements of flax layers (a LayerNorm over (height, channels), say) cover fewer
    cases than the primitives they stand for.
    """
    try:
        from jax2onnx import to_onnx
    except ImportError:
        raise ZooError("ONNX export needs jax2onnx: pip install 'zoo[onnx]' && pip install "
                       "--no-deps jax2onnx (see pyproject.toml)") from None
    names = sorted(example)
    specs = [jax.ShapeDtypeStruct((batch, *example[n].shape[1:]), example[n].dtype) for n in names]
    out_tree = jax.eval_shape(lambda *arrays: fn(dict(zip(names, arrays))), *specs)
    keys = sorted(out_tree)
    traced = jax.make_jaxpr(lambda *arrays: tuple(fn(dict(zip(names, arrays)))[k] for k in keys))
    primitives = jaxpr_as_fun(traced(*specs))
    try:
        model = to_onnx(lambda *arrays: tuple(primitives(*arrays)), specs, input_names=names,
                        output_names=keys)
    except Exception as e:  # noqa: BLE001  the converter names the primitive it lacks
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ZooError(f"{task_name}: jax2onnx {metadata.version('jax2onnx')} cannot convert "
                       f"this model ({reason}); use --format stablehlo") from None
    return model.SerializeToString(), batch, {k: _shape(out_tree[k]) for k in keys}


def _specs(example: dict[str, np.ndarray], batch: Any) -> dict[str, jax.ShapeDtypeStruct]:
    return {k: jax.ShapeDtypeStruct((batch, *v.shape[1:]), v.dtype) for k, v in example.items()}


def _shape(aval) -> dict[str, Any]:
    dims = ["batch" if not isinstance(d, int) else d for d in aval.shape]
    return {"shape": dims, "dtype": str(np.dtype(aval.dtype))}


def _shapes(avals, tree) -> dict[str, Any]:
    return {k: _shape(v) for k, v in jax.tree.unflatten(tree, avals).items()}


def _record(predictor: Predictor, runtime: str, options: PredictOptions, batch: Any,
            example: dict[str, np.ndarray], outputs: dict[str, Any]) -> dict[str, Any]:
    task = predictor.task
    dims = "batch" if batch == "any" else batch
    inputs = {k: {"shape": [dims, *v.shape[1:]], "dtype": str(v.dtype)} for k, v in example.items()}
    versions = {p: metadata.version(p) for p in ("zoo", "jax", "jaxlib")}
    if runtime == "onnx":
        versions["jax2onnx"] = metadata.version("jax2onnx")
    return {
        "format": EXPORT_FORMAT, "runtime": runtime, "file": FILES[runtime],
        "task": task.name, "model": task.config.model, "source": predictor.source,
        "batch": batch, "inputs": inputs, "outputs": outputs,
        "preprocessing": inspect.getdoc(type(task).prepare),
        "options": dataclasses.asdict(options), "config": to_dict(task.config),
        "info": predictor.info, "card": predictor.card.to_json() if predictor.card else None,
        "versions": versions, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _readme(record: dict[str, Any]) -> str:
    """How to feed the exported model, for someone who has only this directory."""
    feed = ", ".join(f'"{k}": {v["dtype"]} array of shape ({", ".join(map(str, v["shape"]))})'
                     for k, v in record["inputs"].items())
    outputs = "\n".join(f"- `{k}`: {v['dtype']} ({', '.join(map(str, v['shape']))})"
                        for k, v in record["outputs"].items())
    if record["runtime"] == "stablehlo":
        run = ("import jax\n"
               "exported = jax.export.deserialize(bytearray(open(\"model.stablehlo\", \"rb\").read()))\n"
               "outputs = exported.call(inputs)  # a dict of arrays")
    else:
        run = ("import onnxruntime\n"
               "session = onnxruntime.InferenceSession(\"model.onnx\")\n"
               "outputs = dict(zip([o.name for o in session.get_outputs()], "
               "session.run(None, inputs)))")
    return (f"# {record['task']}: {record['model']} from {record['source']} ({record['runtime']})\n\n"
            f"Inputs: {{{feed}}} (\"batch\": any size).\n\n"
            f"How zoo prepares them: {record['preprocessing']}\n\n"
            f"Data-set facts (classes, input shape, vocabulary...): `info` in export.json.\n\n"
            f"Outputs:\n{outputs}\n\n```python\n{run}\n```\n\n"
            f"With zoo installed, `zoo.load(\"THIS_DIRECTORY\").predict(...)` takes image "
            f"files or text and returns typed results (StableHLO only).\n")
