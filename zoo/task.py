"""The Task contract: everything the harness needs to know about one kind of problem.

A task supplies data, a model, a loss and metrics; the harness (`zoo.harness`) owns the
loop, compilation, devices, checkpoints and logging. Every method that runs on device is
written for one batch and traced once under `jax.jit` by the harness, so it must be pure
JAX (no Python branching on array values, no host I/O).

The kinds of task that fit it (see docs/architecture.md): classification, detection and
segmentation use the default `train_step`; OCR and translation put padding masks in
their batches and decode inside `eval_step`; a GAN overrides `make_optimizer` (two
optimizers) and `train_step` (two alternating updates in one compiled step), and
writes sample images from `on_epoch_end`; face attributes and verification choose
decision thresholds on validation data with `calibrate`.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from zoo.batching import BUCKETS, Prepared, Programs
from zoo.config import TaskConfig
from zoo_hardware import precision

if TYPE_CHECKING:
    from zoo.predictions import Result

Batch = dict[str, jax.Array]


@dataclasses.dataclass
class Dataset:
    """The splits plus the facts a model and `predict` need about them.

    Attributes:
      splits: "train", "val", "test" -> either {field: array with a leading example
        axis} (in memory) or a `zoo.data.Source` (random access, read on demand in the
        input worker processes: data sets larger than memory).
      info: JSON-able facts saved with every checkpoint (class names, input shape,
        vocabulary...), so `eval` and `predict` need no access to the data.
    """

    splits: dict[str, Any]
    info: dict[str, Any]

    def size(self, split: str) -> int:
        data = self.splits[split]
        return len(next(iter(data.values()))) if isinstance(data, Mapping) else len(data)


class Buckets(NamedTuple):
    """A task's buckets of training examples (`Task.buckets`)."""

    key: Callable[[Mapping[str, np.ndarray]], np.ndarray]  # {field: [n, ...]} -> bucket [n]
    shape: Callable[[dict[str, np.ndarray], int], dict[str, np.ndarray]]  # a host batch at
    # bucket b's shapes (cut, or padded when it is narrower)


class Metrics:
    """Host-side accumulator of `eval_step` outputs over a split.

    The default sums every output and divides by the summed "count": right for any
    metric that is a mean over examples. Tasks whose metrics need every prediction at
    once (mAP, BLEU, CER) subclass it.
    """

    def __init__(self) -> None:
        self._sums: dict[str, float] = {}

    def update(self, batch: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> None:
        del batch
        for key, value in outputs.items():
            self._sums[key] = self._sums.get(key, 0.0) + float(np.sum(value))

    def compute(self) -> dict[str, Any]:
        count = max(self._sums.get("count", 0.0), 1.0)
        return {k: v / count for k, v in self._sums.items() if k != "count"}


COMPILED = "zoo.compiled"  # dataclass field metadata: the option changes the compiled program


@dataclasses.dataclass(frozen=True)
class PredictOptions:
    """Per-call prediction options. A task subclasses it (frozen, typed fields with
    defaults, each with a trailing `# comment`): `zoo predict` offers each field as a
    flag (`top_k` as `--top-k`), type-checked like `--set`, and `zoo.load(...).predict`
    takes them as keyword arguments. Most options only change how outputs become
    results; one that changes the device program (a beam width) is declared with
    `compiled(default)`, and each of its values compiles its own programs."""


def compiled(default: Any) -> Any:
    """A `PredictOptions` field that `infer` reads, e.g. `beam: int = compiled(1)`."""
    return dataclasses.field(default=default, metadata={COMPILED: True})


def compiled_part(options: PredictOptions) -> PredictOptions:
    """`options` with every field `infer` may not read reset to its default: the key of
    the compiled programs, so changing `top_k` never compiles anything."""
    defaults = type(options)()
    return dataclasses.replace(defaults, **{
        f.name: getattr(options, f.name) for f in dataclasses.fields(options)
        if f.metadata.get(COMPILED)})


class Task(abc.ABC):
    """Base class of every task plugin. Subclass it and register it.

    Class attributes describe the task for `zoo list` / `zoo info`; the config instance
    given to the constructor selects model and data.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Config: ClassVar[type[TaskConfig]] = TaskConfig
    models: ClassVar[tuple[str, ...]] = ()
    datasets: ClassVar[Mapping[str, str]] = {}  # data spec -> one-line description
    metric: ClassVar[str] = "loss"  # primary validation metric: early stopping, best checkpoint
    metric_mode: ClassVar[Literal["min", "max"]] = "min"
    PredictOptions: ClassVar[type[PredictOptions]] = PredictOptions  # per-call options
    Result: ClassVar[type[Result] | None] = None  # what predict returns per input (zoo.predictions)
    inputs: ClassVar[str] = "IMAGE"  # what predict takes: IMAGE, SENTENCE... ("": options only)

    def __init__(self, config: TaskConfig | None = None):
        self.config = config if config is not None else self.Config()

    @property
    def compute_dtype(self) -> Any:
        """The dtype `build_model` gives the model's layers (`--dtype`, `train.dtype`)."""
        return precision.get_policy(self.config.train.dtype).compute_dtype

    # -- data and model ---------------------------------------------------------------

    @abc.abstractmethod
    def load_data(self) -> Dataset:
        """Loads (or generates) the splits named by `config.data`. Runs on the host."""

    @abc.abstractmethod
    def build_model(self, info: Mapping[str, Any], rngs: nnx.Rngs) -> nnx.Module:
        """Builds `config.model` from the shared model library for data described by `info`.

        Pass `dtype=self.compute_dtype` to the model's layers (parameters stay float32).
        """

    def host_augment(self, info: Mapping[str, Any]) -> Callable | None:
        """Training-time augmentation of each example on the host, in the input workers
        (e.g. a random-resized crop from the full-size image). Default: none.

        Returns `fn(example, rng) -> example` or None: `example` is a training example
        as its source reads it (images at their file's own size; arrays and packed data
        at their stored shape), `rng` a `numpy.random.Generator` seeded from (seed,
        step, row), and `fn` returns the split's fixed shapes. It runs in worker
        processes: a module-level function (or a `functools.partial` of one) from a
        module that does not import JAX. The on-device `augment` still runs after it.
        """
        del info
        return None

    def buckets(self, info: Mapping[str, Any]) -> Buckets | None:
        """Buckets of training examples, e.g. text lines by width: each training batch
        then draws its rows from one bucket (`zoo.data.loader.bucketed_batches`) and is
        cut to that bucket's shapes, so a batch of short lines is computed on their
        width, by one compiled train step per bucket. Default: none (one shape).
        """
        del info
        return None

    def pretrained_parts(self, info: Mapping[str, Any]) -> Mapping[str, Mapping[str, np.ndarray]]:
        """Weights a fresh model loads into parts it does not train (a GAN's judge).

        Returns {attribute name of a submodule: its weights by variable path}. Read when
        a run starts from scratch; a restored model's own weights already hold these
        parts, so eval and predict never fetch them.
        """
        del info
        return {}

    def make_optimizer(self, model: nnx.Module, tx: optax.GradientTransformation) -> nnx.Object:
        """Wraps `tx` around the trainable parameters. A GAN returns one per network."""
        return nnx.Optimizer(model, tx, wrt=nnx.Param)

    # -- compiled per-batch functions ----------------------------------------------------

    def augment(self, batch: Batch, rng: jax.Array) -> Batch:
        """Training-time augmentation on device, inside the compiled step. Default: none."""
        del rng
        return batch

    def loss(self, model: nnx.Module, batch: Batch, rng: jax.Array) -> tuple[jax.Array, dict]:
        """Mean training loss of one batch, and extra scalars to log.

        Average per-example losses with `row_mean(losses, batch)`: a batch may carry a
        "mask" of rows that must not count (padding, skipped unreadable examples).
        Needed by the default `train_step`; a task that overrides `train_step` with
        losses of its own (a GAN) need not define it.
        """
        raise NotImplementedError(f"task {self.name!r} defines neither loss nor train_step")

    def train_step(self, model: nnx.Module, optimizer: nnx.Object, batch: Batch,
                   rng: jax.Array) -> dict[str, jax.Array]:
        """One update: mutates `model` and `optimizer` in place, returns scalars to log.

        The harness traces this once under `jax.jit` with the state donated. Override it
        for anything other than one loss and one optimizer (e.g. a GAN). Under float16 the
        optimizer carries a loss scale: multiply the loss by `precision.loss_scale`
        before differentiating, as here; the optimizer divides it out again. Whatever it
        does, the harness commits the update only if the new state and every returned
        scalar whose name contains "loss" are finite (`train.on_nan`).
        """
        aug_rng, loss_rng = jax.random.split(rng)
        batch = self.augment(batch, aug_rng)
        scale = precision.loss_scale(optimizer)

        def scaled_loss(m):
            loss, aux = self.loss(m, batch, loss_rng)
            return loss * scale, (loss, aux)

        (_, (loss, aux)), grads = nnx.value_and_grad(scaled_loss, has_aux=True)(model)
        optimizer.update(model, grads)
        return {"loss": loss, "grad_norm": optax.tree.norm(grads) / scale, **aux}

    @abc.abstractmethod
    def eval_step(self, model: nnx.Module, batch: Batch) -> dict[str, jax.Array]:
        """Outputs for one evaluation batch, fed to `Metrics.update` on the host.

        Batches carry a float "mask" (0 for padding rows): sum only over real rows. With
        the default `Metrics`, return sums and a "count".
        """

    def new_metrics(self, info: Mapping[str, Any]) -> Metrics:
        """A fresh accumulator for one pass over a split."""
        del info
        return Metrics()

    # -- host-side hooks ----------------------------------------------------------------

    def calibrate(self, model: nnx.Module, metrics: Metrics) -> bool:
        """Sets model state chosen on validation data, e.g. decision thresholds.

        Called after every validation pass, before that epoch's checkpoint, with the
        validation split's filled `Metrics` (before `compute`): what it sets is saved with
        the weights, so eval, predict and published weights decide as validation chose.

        Args:
          model: the current model in evaluation mode; set its (non-trained) variables.
          metrics: the accumulator `new_metrics` returned, updated with the whole split.

        Returns:
          Whether the model was changed. The default changes nothing.
        """
        del model, metrics
        return False

    def on_epoch_end(self, model: nnx.Module, info: Mapping[str, Any], workdir: Path,
                     epoch: int) -> None:
        """Called on process 0 after each epoch's validation and checkpoint, e.g. to
        write sample images.

        Args:
          model: the current model in evaluation mode; read it, do not keep it.
          info: `Dataset.info`.
          workdir: the run directory.
          epoch: the number of epochs completed (1 after the first).
        """
        del model, info, workdir, epoch

    # -- prediction --------------------------------------------------------------------
    #
    # Three hooks turn inputs into typed results, so a predictor can batch any number of
    # inputs into fixed shapes and compile once (`zoo.batching`): `prepare` (host, per
    # input) -> `infer` (device, one padded batch) -> `to_result` (host, per input).
    # `zoo predict`, `zoo.load(...).predict`, `zoo export` and a server all use them.

    def prepare(self, info: Mapping[str, Any], inputs: Sequence[Any],
                options: PredictOptions) -> list[Prepared]:
        """Each input as fixed-shape arrays (no batch axis) and the context to map the
        outputs back onto it. Runs on the host.

        Inputs are what a user holds: image paths, PIL images or numpy arrays for image
        tasks (`zoo.data.as_image` reads any of them), strings for text tasks. A task
        whose inputs come from its options (a GAN's count and labels) makes them here
        when `inputs` is empty.

        Raises:
          ZooError: naming the input that cannot be used, and why.
        """
        raise NotImplementedError(f"task {self.name!r} has no predict")

    def example_input(self, info: Mapping[str, Any]) -> list[Any]:
        """One input `prepare` accepts, for compiling ahead of any request (a server's
        start-up) and for export's input shapes. Default: a black image."""
        return [np.zeros(info["input_shape"], np.uint8)]

    def forward(self, model: nnx.Module, info: Mapping[str, Any], batch: Batch) -> dict[str, jax.Array]:
        """The network's raw outputs for a prepared batch (logits, heads): what
        `zoo export --format onnx` exports. Pure JAX, traced once per batch shape."""
        raise NotImplementedError(f"task {self.name!r} has no forward")

    def infer(self, model: nnx.Module, info: Mapping[str, Any], batch: Batch,
              options: PredictOptions) -> dict[str, jax.Array]:
        """Everything `to_result` needs for a prepared batch, on device: the network's
        outputs plus any decoding (peaks and NMS, CTC, beam search). Pure JAX, compiled
        once per batch bucket and per value of the `compiled` options, which are the only
        ones it may read. What `zoo export --format stablehlo` exports. Default: `forward`."""
        del options
        return self.forward(model, info, batch)

    def to_result(self, info: Mapping[str, Any], outputs: Mapping[str, np.ndarray],
                  prepared: Prepared, options: PredictOptions) -> Result:
        """One input's typed result from its row of `infer`'s outputs (numpy)."""
        raise NotImplementedError(f"task {self.name!r} has no predict")

    def predict(self, model: nnx.Module | None, info: Mapping[str, Any], inputs: Sequence[Any],
                options: PredictOptions | None = None, *,
                programs: Programs | None = None) -> list[Result]:
        """Typed results for `inputs`: prepare, infer in padded batches, convert.

        Args:
          programs: compiled `infer` programs to reuse (a predictor keeps them across
            calls); by default they are built for `model` and dropped after the call.
        """
        options = self.PredictOptions() if options is None else options
        prepared = self.prepare(info, inputs, options)
        if not prepared:
            return []
        programs = self.programs(model, info) if programs is None else programs
        rows = programs.run(prepared, compiled_part(options))
        return [self.to_result(info, row, p, options) for row, p in zip(rows, prepared)]

    def programs(self, model: nnx.Module, info: Mapping[str, Any], *,
                 buckets: Sequence[int] = BUCKETS) -> Programs:
        """`infer` for `model`, compiled on first use per batch bucket and options."""
        return Programs(functools.partial(_infer, task=self, info=info), model, buckets=buckets)


def _infer(model: nnx.Module, batch: Batch, options: PredictOptions, *, task: Task,
           info: Mapping[str, Any]) -> dict[str, jax.Array]:
    return task.infer(model, info, batch, options)


def row_mean(values: jax.Array, batch: Batch) -> jax.Array:
    """Mean of per-row `values` over a training batch's real rows.

    A batch carries a float "mask" when some rows must not count: the repeats that fill
    a split smaller than one batch, or examples left out by `--on-bad-example skip`.
    Without one, this is `values.mean()` exactly.
    """
    if "mask" not in batch:
        return values.mean()
    values = values.astype(jnp.promote_types(values.dtype, jnp.float32))
    mask = batch["mask"].reshape(-1, *[1] * (values.ndim - 1)) * jnp.ones_like(values)
    return masked_mean(values, mask)


def masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean of `values` over rows where `mask` is 1 (safe when the mask is all zero)."""
    mask = mask.astype(values.dtype)
    return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)
