"""The NaN/Inf policy: a bad update is never applied; `raise`, `skip` and `--debug-nans`.

NaN is planted in chosen training examples of the spirals example, so it reaches the
loss at a step we can compute from the (seeded, random-access) data order.
"""

import dataclasses
import json

import jax
import numpy as np
import pytest
from flax import nnx

from zoo.config import apply_overrides
from zoo.data import loader
from zoo.errors import ZooError
from zoo.harness.steps import FINITE
from zoo.harness.trainer import fit, open_session
from zoo_hardware import placement

from helpers import checkpoint_steps, example_task, latest_params

BATCH = 64


@pytest.fixture(scope="module")
def poisoned():
    """The spirals task with `poison`: training examples whose inputs are NaN."""
    spirals = example_task()

    @dataclasses.dataclass(frozen=True)
    class Config(spirals.Config):
        poison: tuple[int, ...] = ()

    class Poisoned(spirals):
        name = "poisoned"

        def load_data(self):
            data = super().load_data()
            data.splits["train"]["x"][list(self.config.poison)] = np.nan
            return data

    Poisoned.Config = Config
    return Poisoned


def _task(cls, *overrides):
    return cls(apply_overrides(cls.Config(), ["points=1000", "train.epochs=2", *overrides]))


def _example_seen_at(step: int, n: int = 1000) -> int:
    """A training example in batch `step` of epoch 0 that epoch 1 uses too (seed 0)."""
    def batches(epoch):
        return [b["i"] for b in loader.train_batches({"i": np.arange(n)}, BATCH, seed=0,
                                                     epoch=epoch)]
    used_later = np.concatenate(batches(1))
    return int(next(i for i in batches(0)[step] if i in used_later))


def test_a_non_finite_update_is_flagged_and_under_skip_leaves_the_state_untouched(poisoned):
    raising = open_session(_task(poisoned))  # on_nan=raise: flagged (the run stops there)
    batch = next(loader.train_batches(raising.data.splits["train"], BATCH, seed=0, epoch=0))
    bad = {**batch, "x": np.full_like(batch["x"], np.nan)}
    _, out = raising.steps.train(raising.state, placement.put_batch(bad, raising.mesh), np.int32(0))
    assert not bool(out[FINITE])

    session = open_session(_task(poisoned, "train.on_nan=skip"))
    before = jax.tree.map(np.asarray, nnx.to_pure_dict(session.state))
    state, out = session.steps.train(session.state, placement.put_batch(bad, session.mesh),
                                     np.int32(0))
    after = jax.tree.map(np.asarray, nnx.to_pure_dict(state))
    assert not bool(out[FINITE]) and np.isnan(float(out["loss"]))
    assert all(jax.tree.leaves(jax.tree.map(np.array_equal, before, after)))  # incl. the step count
    state, out = session.steps.train(state, placement.put_batch(batch, session.mesh), np.int32(1))
    assert bool(out[FINITE]) and int(nnx.to_pure_dict(state)["optimizer"]["step"]) == 1


def test_raise_stops_at_the_step_and_keeps_the_last_good_checkpoint(poisoned, tmp_path):
    bad_step = 12
    task = _task(poisoned, f"poison={_example_seen_at(bad_step)}",
                 "train.checkpoint_every_steps=5", "train.log_every=100")
    with pytest.raises(ZooError, match=f"step {bad_step}: the loss or update is not finite") as e:
        fit(task, tmp_path, quiet=True)
    assert "checkpoint latest/10 is intact" in str(e.value) and "--on-nan skip" in str(e.value)
    assert checkpoint_steps(tmp_path) == [5, 10] and not (tmp_path / "metrics.json").exists()
    assert all(np.isfinite(v).all() for v in latest_params(tmp_path).values())
    # The same run, told to skip bad steps, resumes from step 10 and finishes.
    result = fit(_task(poisoned, f"poison={_example_seen_at(bad_step)}",
                       "train.checkpoint_every_steps=5", "train.on_nan=skip"), tmp_path, quiet=True)
    assert result["epochs"] == 2


def test_skip_drops_the_bad_step_without_advancing_the_optimizer(poisoned, tmp_path):
    fit(_task(poisoned, f"poison={_example_seen_at(3)}", "train.on_nan=skip"), tmp_path, quiet=True)
    rows = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert [row["skipped_steps"] for row in rows] == [1, 1]  # the example is in both epochs
    assert all(np.isfinite(row["train/loss"]) for row in rows)
    steps = 2 * (1000 // BATCH)
    import orbax.checkpoint as ocp

    with ocp.CheckpointManager((tmp_path / "checkpoints" / "latest").absolute()) as manager:
        state = manager.restore(steps, args=ocp.args.Composite(
            state=ocp.args.StandardRestore()))["state"]
    assert int(state["optimizer"]["step"]) == steps - 2


def test_skip_gives_up_after_max_bad_steps_in_a_row(poisoned, tmp_path):
    task = _task(poisoned, "poison=" + ",".join(map(str, range(1000))), "train.on_nan=skip",
                 "train.max_bad_steps=3")
    with pytest.raises(ZooError, match="step 2: 3 non-finite steps in a row"):
        fit(task, tmp_path, quiet=True)


def test_debug_nans_names_the_operation_and_the_line(poisoned, tmp_path):
    task = _task(poisoned, f"poison={_example_seen_at(4)}")
    with jax.debug_nans(True), pytest.raises(ZooError) as e:
        fit(task, tmp_path, quiet=True)
    message = str(e.value)
    assert message.startswith("step 4: invalid value (nan) encountered in"), message
    assert "my_task.py:" in message and "--debug-nans" in message and "\n" not in message
