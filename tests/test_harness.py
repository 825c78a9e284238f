"""The harness through a tiny task: learning, early stopping, resume, reproducibility.

Kills, signals and other faults are in test_faults.py.
"""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo.config import apply_overrides
from zoo.errors import ZooError
from zoo.harness.steps import Steps, compile_steps
from zoo.harness.trainer import fit

from helpers import latest_params


def _task(spirals, *overrides):
    return spirals(apply_overrides(spirals.Config(), ["points=1000", *overrides]))


def test_fit_learns_and_writes_every_report(spirals, tmp_path):
    result = fit(_task(spirals, "points=2000", "train.epochs=30"), tmp_path, quiet=True)
    assert result["metrics"]["accuracy"] > 0.8  # chance is 0.5
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["task"] == "spirals" and written["split"] == "test"
    assert set(written) >= {"task", "model", "dataset", "split", "metrics", "epochs", "train_seconds"}
    history = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in history] == list(range(1, len(history) + 1))
    assert history[-1]["train/loss"] < history[0]["train/loss"]
    assert (tmp_path / "curves.png").stat().st_size > 1000
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "tb").iterdir())


def test_early_stopping_stops_after_patience(spirals, tmp_path):
    # A zero learning rate never improves validation accuracy after epoch 1.
    task = _task(spirals, "train.epochs=30", "optimizer.lr=1e-12", "optimizer.schedule=constant",
                 "early_stopping.patience=3")
    result = fit(task, tmp_path, quiet=True)
    assert result["epochs"] == 4 and result["best_epoch"] == 1


def test_bad_early_stopping_metric_names_the_choices(spirals, tmp_path):
    with pytest.raises(ZooError, match="choose from accuracy"):
        fit(_task(spirals, "early_stopping.metric=f1"), tmp_path, quiet=True)


def test_seeded_runs_are_bitwise_reproducible(spirals, tmp_path):
    fit(_task(spirals, "train.epochs=2"), tmp_path / "a", quiet=True)
    fit(_task(spirals, "train.epochs=2"), tmp_path / "b", quiet=True)
    fit(_task(spirals, "train.epochs=2", "train.seed=1"), tmp_path / "c", quiet=True)
    a, b, c = (latest_params(tmp_path / x) for x in "abc")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a)


def test_rerun_of_a_finished_workdir_resumes_without_training(spirals, tmp_path):
    fit(_task(spirals, "train.epochs=2"), tmp_path, quiet=True)
    before = latest_params(tmp_path)
    result = fit(_task(spirals, "train.epochs=2"), tmp_path, quiet=True)
    assert result["epochs"] == 2
    after = latest_params(tmp_path)
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_resume_refuses_a_different_config(spirals, tmp_path):
    fit(_task(spirals, "train.epochs=1"), tmp_path, quiet=True)
    with pytest.raises(ZooError, match="different config .*optimizer.name"):
        fit(_task(spirals, "train.epochs=1", "optimizer.name=sgd"), tmp_path, quiet=True)


def test_batch_size_must_divide_over_devices(spirals, tmp_path):
    task = spirals(dataclasses.replace(spirals.Config(), train=dataclasses.replace(
        spirals.Config().train, batch_size=6)))
    with pytest.raises(ZooError, match="does not divide over 4 devices"):
        fit(task, tmp_path, quiet=True)


def test_on_epoch_end_sees_each_epoch_once_with_the_trained_model(spirals, tmp_path):
    calls = []

    class Recording(spirals):
        def on_epoch_end(self, model, info, workdir, epoch):
            calls.append((epoch, workdir, info["classes"], float(np.abs(model.layers[0].kernel[...]).sum())))

    task = Recording(_task(spirals, "train.epochs=3").config)
    fit(task, tmp_path, quiet=True)
    assert [c[0] for c in calls] == [1, 2, 3]
    assert all(c[1] == tmp_path and c[2] == ["a", "b"] for c in calls)
    assert calls[0][3] != calls[1][3]  # the model of that epoch, not a stale copy
    fit(task, tmp_path, quiet=True)  # a finished run resumes without training: no more calls
    assert len(calls) == 3


def test_train_step_is_compiled_for_each_bucket_shape_and_refuses_others():
    steps = Steps(train=jax.jit(lambda state, batch, step: (state + 1, {"sum": batch["x"].sum()})),
                  evaluate=jax.jit(lambda state, batch: {"sum": batch["x"].sum()}))
    buckets = [{"x": np.ones((2, 3), np.float32)}, {"x": np.ones((2, 5), np.float32)}]
    compiled = compile_steps(steps, jnp.float32(0), buckets, buckets[0])
    for batch in buckets:
        state, out = compiled.train(jnp.float32(0), batch, jnp.int32(0))
        assert float(out["sum"]) == batch["x"].size and float(state) == 1
    with pytest.raises(ValueError, match="no train step compiled"):
        compiled.train(jnp.float32(0), {"x": np.ones((2, 4), np.float32)}, jnp.int32(0))
