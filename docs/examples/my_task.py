"""A complete third-party task in one file: `zoo run spirals --plugin my_task.py`, then
`zoo predict spirals 0.1,0.2 --plugin my_task.py --workdir runs/spirals`.

Two interleaved spirals, told apart by a small MLP. Everything else (loop, early
stopping, checkpoints, resume, metrics.json, TensorBoard, --set overrides, devices,
input worker processes) comes from the zoo harness.

Data comes two ways: generated arrays in memory (the default), or your own points from
a file larger than memory, `--data jsonl:points.jsonl` with one `{"x": [x, y], "label":
0 or 1}` per line, read on demand by zoo's input workers (a `zoo.data.Source`).
"""

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import zoo
import zoo.data
from zoo.batching import Prepared
from zoo.predictions import Classification


@dataclass(frozen=True)
class SpiralsConfig(zoo.TaskConfig):
    model: str = "mlp"
    data: str = "spirals"
    points: int = 2000  # points per split
    hidden: int = 64  # width of the two hidden layers
    train: zoo.TrainConfig = zoo.TrainConfig(epochs=30, batch_size=64)
    optimizer: zoo.OptimizerConfig = zoo.OptimizerConfig(lr=0.01)


class SpiralsMLP(nnx.Module):
    def __init__(self, hidden: int, dtype, rngs: nnx.Rngs):
        # Layers compute in `dtype` (--dtype); their parameters stay float32.
        self.layers = nnx.List([nnx.Linear(2, hidden, dtype=dtype, rngs=rngs),
                                nnx.Linear(hidden, hidden, dtype=dtype, rngs=rngs),
                                nnx.Linear(hidden, 2, dtype=dtype, rngs=rngs)])

    def __call__(self, x):
        for layer in self.layers[:-1]:
            x = jnp.tanh(layer(x))
        return self.layers[-1](x).astype(jnp.float32)


def spirals(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    t = rng.uniform(0.5, 3.5 * np.pi, n)
    angle = t + np.pi * label
    xy = np.stack([t * np.cos(angle), t * np.sin(angle)], 1) / 10 + rng.normal(0, 0.02, (n, 2))
    return {"x": xy.astype(np.float32), "label": label.astype(np.int32)}


@zoo.register_task()
class SpiralsTask(zoo.Task):
    name = "spirals"
    description = "two interleaved spirals (an example plugin)"
    Config = SpiralsConfig
    models = ("mlp",)
    datasets = {"spirals": "generated on the fly",
                "jsonl:FILE": 'your points, one {"x": [x, y], "label": 0 or 1} a line (streamed)'}
    metric, metric_mode = "accuracy", "max"
    Result = Classification  # what predict returns per input (zoo.predictions)
    inputs = "X,Y"  # what `zoo predict spirals` takes: points

    def load_data(self):
        info = {"classes": ["a", "b"]}
        if self.config.data.startswith("jsonl:"):  # a Source: each line read when needed
            points = zoo.data.JsonLines(self.config.data.removeprefix("jsonl:"),
                                        {"x": ("float32", (2,)), "label": ("int32", ())})
            n = len(points)
            split = zoo.data.split_indices(n, zoo.data.holdout_sizes(n), seed=0)
            return zoo.Dataset({name: points.subset(rows) for name, rows in split.items()}, info)
        n = self.config.points
        return zoo.Dataset({"train": spirals(n, 0), "val": spirals(n // 4, 1),
                            "test": spirals(n // 4, 2)}, info)

    def build_model(self, info, rngs):
        return SpiralsMLP(self.config.hidden, self.compute_dtype, rngs)

    def loss(self, model, batch, rng):
        logits = model(batch["x"])
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
        return zoo.row_mean(losses, batch), {}  # rows a "mask" leaves out do not count

    def eval_step(self, model, batch):
        correct = jnp.argmax(model(batch["x"]), -1) == batch["label"]
        return {"count": batch["mask"].sum(), "accuracy": (correct * batch["mask"]).sum()}

    # -- predict: inputs -> fixed-shape arrays (host) -> network (compiled) -> results --

    def prepare(self, info, inputs, options):
        """A point as (x, y) numbers, or "x,y" as typed on the command line."""
        points = [p.split(",") if isinstance(p, str) else p for p in inputs]
        bad = [p for p in points if len(p) != 2]
        if bad:
            raise zoo.ZooError(f"a point is two numbers x,y, not {bad[0]!r}")
        return [Prepared({"x": np.asarray(p, np.float32)}) for p in points]

    def example_input(self, info):
        return [(0.0, 0.0)]

    def forward(self, model, info, batch):
        return {"logits": model(batch["x"])}

    def infer(self, model, info, batch, options):
        return {"probabilities": jax.nn.softmax(self.forward(model, info, batch)["logits"])}

    def to_result(self, info, outputs, prepared, options):
        return Classification(outputs["probabilities"], tuple(info["classes"]))
