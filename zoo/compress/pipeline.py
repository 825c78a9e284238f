"""`zoo compress`: prune, quantize and encode a trained workdir into a compressed one.

Deep Compression's recipe, on any task: (1) magnitude pruning, gradual over a
fine-tuning run with the masks kept by the optimizer; (2) quantization: k-means weight
sharing with the centroids fine-tuned, or int8/int4/binary weights with activations
calibrated on training data, post-training or with quantization-aware fine-tuning;
(3) the `compression` file format. Each fine-tuning phase is an ordinary `fit` of the
task through a `ModelSetup` (starting weights, layer edits, an optimizer wrapper), in a
workdir of its own under OUT, so a killed compression resumes like any run.

The output workdir holds run.json (its weights stored in the "compressed" format),
model.zc, compression.json and metrics.json; `zoo eval`/`zoo predict` load it through
`zoo.restore` like any workdir.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from zoo.compress.report import build_report, latency_ms
from zoo.data import loader
from zoo.data.sources import as_source
from zoo.errors import ZooError
from zoo.harness.checkpoints import LATEST, CheckpointStore
from zoo.harness.model_setup import ModelSetup
from zoo.harness.steps import inference_view
from zoo.harness.trainer import Session, evaluate, fit, open_session
from zoo.harness.workdir import read_run, write_run
from zoo.io.files import write_json
from zoo.io.weights import by_path
from zoo.restore import Restored, from_workdir
from zoo.task import Task
from zoo_hardware import compression, pruning
from zoo_hardware.quantization import (ActRange, Quantized, Scheme, activation_meta, calibrate,
                                       codebook_from, quantize, quantize_layers, shared)

WEIGHTS = "model.zc"
PRUNE_RAMP = 0.5  # fraction of the pruning phase spent raising sparsity; the rest recovers


@dataclasses.dataclass(frozen=True)
class Plan:
    """What `zoo compress` does.

    Attributes:
      prune: fraction of the weights (kernels) to remove by magnitude (0: none).
      scope: rank weights "global"ly or per "layer".
      layers: (layer, sparsity) pins, e.g. ("conv1", 0.25): each named layer is pruned
        to its own sparsity and every other layer to the one sparsity that keeps the
        total at `prune` (for layers that a sensitivity scan shows cannot lose as much).
      scheme: weight/activation quantization (None: float weights).
      finetune_epochs: epochs of fine-tuning per phase (0: one-shot / post-training).
      finetune_lr: peak learning rate of fine-tuning (0: half the task's).
      calibration_batches: training batches used to calibrate activation ranges.
    """

    prune: float = 0.0
    scope: pruning.Scope = "global"
    layers: tuple[tuple[str, float], ...] = ()
    scheme: Scheme | None = None
    finetune_epochs: int = 0
    finetune_lr: float = 0.0
    calibration_batches: int = 8

    def describe(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["scheme"] = str(self.scheme) if self.scheme else None
        return out


def compress(source: Restored, out: Path, plan: Plan, *, device: str = "auto",
             log: Callable[[str], None] = print) -> dict[str, Any]:
    """Compresses a trained model into the workdir `out`; returns the report.

    Args:
      source: the model to compress, from a workdir or the hub (`zoo.restore`).

    Raises:
      ZooError: for a bad plan or an `out` that already holds a run.
    """
    if not 0.0 <= plan.prune < 1.0:
        raise ZooError(f"--prune {plan.prune}: give the fraction of weights to remove, in [0, 1)")
    if plan.prune == 0 and plan.scheme is None:
        raise ZooError("nothing to do: give --prune FRACTION and/or --quantize SCHEME")
    if (out / "run.json").exists():
        raise ZooError(f"{out} already holds a run (run.json); choose a new --out")
    task, info, model = source.task, source.info, source.inference_model()
    state = nnx.to_pure_dict(nnx.state(model))
    params = set(compression.flatten(nnx.to_pure_dict(nnx.state(model, nnx.Param))))
    targets = layer_targets(plan, _named_kernels(state, params))
    work = out / f".finetune-{_digest(source.source, plan)}"
    tuner = _Tuner(task, plan, work, device)
    before = open_session(task, device=device, training=False, setup=_setup(state))
    acc_before = evaluate(before, "test")
    log(f"{task.name}: source {source.source} test {_fmt(acc_before)}")

    if plan.prune:
        state = tuner.prune(state, targets)
        log(f"pruned to {pruning.sparsity(_kernels(state, params)):.1%} sparsity")
    quantized: dict[tuple, Quantized] = {}
    ranges: dict[str, ActRange] = {}
    if plan.scheme is not None:
        state, quantized, ranges = tuner.quantize(state, params, info)
        log(f"quantized {len(quantized)} kernels to {plan.scheme}")

    acc_after, latency, activations = _write_and_time(
        out, source, plan, (state, quantized, ranges), before, device)
    log(f"test {_fmt(acc_after)}")
    report = build_report(task, source.source, out / WEIGHTS, plan, state, quantized, params,
                          (acc_before, acc_after), latency, activations)
    write_json(out / "compression.json", report)
    write_json(out / "metrics.json", {"task": task.name, "model": task.config.model,
                                              "dataset": task.config.data, "split": "test",
                                              "metrics": acc_after, "compressed": True})
    shutil.rmtree(work, ignore_errors=True)
    return report


def _write_and_time(out: Path, source: Restored, plan: Plan, compressed: tuple,
                    before: Session, device: str) -> tuple[Mapping[str, Any], dict, dict]:
    """Writes the compressed workdir and evaluates it as `zoo eval` loads it; the test
    metrics, the eval latencies (float vs compressed, one run) and how activations run."""
    state, quantized, ranges = compressed
    task, act_bits = source.task, plan.scheme.act_bits if plan.scheme else 0

    def write_weights(act_eval: str) -> None:
        compression.write(out / WEIGHTS, state, quantized, {
            "scheme": str(plan.scheme) if plan.scheme else None,
            **activation_meta(act_bits, ranges, act_eval)})

    out.mkdir(parents=True, exist_ok=True)
    write_weights("fake-quant")
    write_run(out, task, source.info)
    record = read_run(out)
    record["weights"] = {"format": compression.FORMAT_NAME, "file": WEIGHTS}
    record["compressed"] = {"source": source.source, "plan": plan.describe()}
    write_json(out / "run.json", record)

    after = from_workdir(out, task.name).session(device=device)  # the `zoo eval` path
    acc_after = evaluate(after, "test")
    if not act_bits:
        return acc_after, latency_ms({"float": before, "compressed": after}), {
            "served": None, "note": "Weights are decoded to float32 once, on load: XLA runs "
            "the same dense float kernels as the float model, so compression saves size, "
            "not time, here."}
    acc_after, latency, activations = _pick_activations(
        task, after, acc_after, before, device, lambda: compression.read(out / WEIGHTS)[0])
    if activations["served"] == "float":
        write_weights("float")
    return acc_after, latency, activations


def _pick_activations(task: Task, fake_quant: Session, acc_fake_quant: Mapping[str, Any],
                      before: Session, device: str, decoded: Callable[[], dict]
                      ) -> tuple[Mapping[str, Any], dict, dict[str, Any]]:
    """Times the compressed model with fake-quantized and with float activations against
    the float model, in one run; serves float activations where they are faster (CPU
    time at the eval batch size) and no less accurate. Returns the served accuracy, the
    latencies and the report's "activations" entry."""
    folded = open_session(task, device=device, training=False, setup=_setup(decoded()))
    acc_float = evaluate(folded, "test")
    latency = latency_ms({"float": before, "compressed, fake-quant activations": fake_quant,
                          "compressed, float activations": folded})
    size = str(task.config.train.eval_batch_size)
    cpu = {k: latency[f"compressed, {k} activations"][size]["cpu"] for k in ("fake-quant", "float")}
    metric = task.metric
    served = "float" if (cpu["float"] <= cpu["fake-quant"]
                         and acc_float[metric] >= acc_fake_quant[metric]) else "fake-quant"
    how = ("in float32 (measured faster here than rounding them to the calibrated grid, at "
           "no lower accuracy)" if served == "float" else
           "rounded to the calibrated grid in float32 (fake quantization)")
    note = (f"Integer weights are decoded to float32 once, on load; activations evaluate {how}. "
            f"Nothing runs as integers: zoo's eval path has no integer kernels (XLA's int8 "
            f"ones measured slower than float32 on an AVX2 CPU: benchmarks/int8_inference.py). "
            f"The activation ranges stay in the file for an integer back end.")
    return ((acc_float if served == "float" else acc_fake_quant), latency,
            {"served": served, "accuracy": {"fake-quant": dict(acc_fake_quant),
                                            "float": dict(acc_float)}, "note": note})


class _Tuner:
    """The fine-tuning phases of one plan, each an ordinary `fit` in a workdir of its own."""

    def __init__(self, task: Task, plan: Plan, work: Path, device: str):
        self.task, self.plan, self.work, self.device = task, plan, work, device
        cfg = task.config
        self.finetune = type(task)(dataclasses.replace(
            cfg, train=dataclasses.replace(cfg.train, epochs=max(plan.finetune_epochs, 1)),
            optimizer=dataclasses.replace(cfg.optimizer, lr=plan.finetune_lr or cfg.optimizer.lr / 2,
                                          warmup_epochs=0.0),
            early_stopping=dataclasses.replace(cfg.early_stopping, patience=0)))

    def prune(self, state: dict, targets: dict[str, float] | None) -> dict:
        """Gradual magnitude pruning while fine-tuning (or one-shot without epochs); with
        `targets` (`layer_targets`) each layer ramps to its own sparsity.

        The masks follow the schedule at every step of the ramp: cut in 16 larger steps
        instead, one cut took LeNet at 92% from 98.0% to 83.4% validation accuracy, and
        the compressed model ended with a higher test loss (README, Compression).
        """
        plan = self.plan
        target, scope = (1.0, "layer") if targets else (plan.prune, plan.scope)
        if not plan.finetune_epochs:
            return pruning.apply_masks(state, pruning.magnitude_masks(
                state, target, scope=scope, per_layer=targets))
        end = max(1, int(self._steps() * plan.finetune_epochs * PRUNE_RAMP))
        schedule = pruning.gradual_schedule(target, end_step=end)
        return self._fit("prune", _setup(state, wrap_optimizer=lambda tx: pruning.masked(
            tx, schedule=schedule, scope=scope, per_layer=targets)))

    def quantize(self, state: dict, params: set, info: Mapping[str, Any]
                 ) -> tuple[dict, dict[tuple, Quantized], dict[str, ActRange]]:
        """Quantized kernels (fine-tuned if asked) and calibrated activation ranges."""
        scheme, flat = self.plan.scheme, compression.flatten(state)
        kernels = [p for p in flat if p in params and pruning.prunable(flat[p])]
        if scheme.kind == "kmeans":
            quantized = {p: quantize(flat[p], scheme) for p in kernels}
            state = _with_values(state, quantized)
            ranges = self._ranges(state, info)
            if self.plan.finetune_epochs:
                codes = compression.unflatten({p: quantized[p].codes if p in quantized else
                                               jnp.array(-1) for p in flat if p in params})
                state = self._fit("kmeans", _setup(
                    state, edit_model=self._edit(ranges),
                    wrap_optimizer=lambda tx: shared(tx, codes, bits=scheme.bits)))
                tuned = compression.flatten(state)
                quantized = {p: q._replace(codebook=codebook_from(tuned[p], q.codes, scheme.bits))
                             for p, q in quantized.items()}
        else:
            ranges = self._ranges(state, info)
            if self.plan.finetune_epochs:
                state = self._fit(str(scheme), _setup(
                    state, edit_model=self._edit(ranges, weights=scheme),
                    wrap_optimizer=lambda tx: pruning.masked(tx)))
            flat = compression.flatten(state)
            quantized = {p: quantize(flat[p], scheme) for p in kernels}
        return _with_values(state, quantized), quantized, ranges

    def _edit(self, ranges: Mapping[str, ActRange], weights: Scheme | None = None):
        act_bits = self.plan.scheme.act_bits
        if not act_bits and weights is None:
            return None
        return lambda model: quantize_layers(model, act_bits=act_bits, ranges=ranges, weights=weights)

    def _ranges(self, state: dict, info: Mapping[str, Any]) -> dict[str, ActRange]:
        """Activation ranges from the first training batches (none for float activations)."""
        if not self.plan.scheme.act_bits:
            return {}
        model = inference_view(_setup(state).build(self.task, info, nnx.Rngs(0))[0])
        train = self.task.load_data().splits["train"]
        batches = list(itertools.islice(loader.eval_batches(
            train, self.task.config.train.eval_batch_size), self.plan.calibration_batches))

        def run(m):
            for batch in batches:
                self.task.eval_step(m, {k: jnp.asarray(v) for k, v in batch.items()})

        return calibrate(model, run, bits=self.plan.scheme.act_bits)

    def _steps(self) -> int:
        cfg = self.finetune.config
        train = self.task.load_data().splits["train"]
        return loader.steps_per_epoch(as_source(train).spread(cfg.train.max_examples),
                                      cfg.train.batch_size)

    def _fit(self, phase: str, setup: ModelSetup) -> dict:
        """Fine-tunes in work/PHASE (resuming if killed); the final model state."""
        workdir = self.work / phase.replace(":", "")
        fit(self.finetune, workdir, device=self.device, setup=setup)
        session = open_session(self.finetune, device=self.device, training=False, setup=setup)
        store = CheckpointStore(workdir)
        try:
            restored, _ = store.restore(LATEST, nnx.to_pure_dict(session.state))
        finally:
            store.close()
        return jax.tree.map(lambda x: jnp.asarray(x), restored["model"])


def _setup(state: dict, **changes: Any) -> ModelSetup:
    """A setup starting from `state` (a pure-dict model state), with `changes`."""
    return ModelSetup(weights=by_path(state), **changes)


def layer_targets(plan: Plan, kernels: Mapping[str, int]) -> dict[str, float] | None:
    """Each kernel's sparsity under `plan.layers` pins (None without pins): a pin names a
    layer ("conv1") or a kernel ("conv1/kernel"); the unpinned kernels share the sparsity
    that keeps the total at `plan.prune`. `kernels` maps each kernel's name to its size.

    Raises:
      ZooError: for a pin that names no layer, or pins that leave the rest no valid share.
    """
    if not plan.layers:
        return None
    targets: dict[str, float] = {}
    for layer, fraction in plan.layers:
        hits = [k for k in kernels if k == layer or k.startswith(layer + "/")]
        if not hits or not 0.0 <= fraction < 1.0:
            raise ZooError(f"--prune-layers {layer}={fraction}: give a fraction in [0, 1) for "
                           f"one of the layers {', '.join(kernels)}")
        targets.update(dict.fromkeys(hits, fraction))
    rest = [k for k in kernels if k not in targets]
    left = plan.prune * sum(kernels.values()) - sum(kernels[k] * f for k, f in targets.items())
    share = left / max(sum(kernels[k] for k in rest), 1)
    if rest and not 0.0 <= share < 1.0:
        raise ZooError(f"--prune {plan.prune} with --prune-layers leaves the other layers "
                       f"{share:.1%} sparsity: lower the pins or change --prune")
    return {**targets, **dict.fromkeys(rest, share)}


def _named_kernels(state: dict, params: set) -> dict[str, int]:
    """Each prunable parameter's `pruning.leaf_names` name and size."""
    return {"/".join(map(str, p)): a.size for p, a in compression.flatten(state).items()
            if p in params and pruning.prunable(a)}


def _with_values(state: dict, quantized: Mapping[tuple, Quantized]) -> dict:
    """`state` with each quantized kernel replaced by the values its codes stand for."""
    flat = compression.flatten(state)
    flat.update({p: q.values() for p, q in quantized.items()})
    return compression.unflatten(flat)


def _kernels(state: dict, params: set) -> list:
    return [a for p, a in compression.flatten(state).items() if p in params]


def _digest(source: str, plan: Plan) -> str:
    text = json.dumps({"source": source, **plan.describe()}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def _fmt(metrics: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, float))


