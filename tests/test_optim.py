"""Every optimizer and schedule, table-driven: each one minimises a quadratic."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from zoo.config import OptimizerConfig
from zoo.errors import ZooError
from zoo.harness.optim import make_optimizer, make_schedule

OPTIMIZERS = ["sgd", "momentum", "nesterov", "adam", "adamw"]
SCHEDULES = ["constant", "cosine", "step"]


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_optimizer_minimises_a_quadratic(name, schedule):
    cfg = OptimizerConfig(name=name, lr=0.05, schedule=schedule, warmup_epochs=1.0,
                          weight_decay=1e-4, grad_clip_norm=10.0)
    tx = make_optimizer(cfg, total_steps=200, steps_per_epoch=10)
    params = jnp.array([3.0, -2.0])
    state = tx.init(params)
    loss = lambda p: jnp.sum((p - 1.0) ** 2)  # noqa: E731
    for _ in range(200):
        updates, state = tx.update(jax.grad(loss)(params), state, params)
        params = optax.apply_updates(params, updates)
    assert loss(params) < 0.05 * loss(jnp.array([3.0, -2.0]))


def test_warmup_starts_at_zero_and_reaches_the_peak():
    cfg = OptimizerConfig(lr=0.1, schedule="cosine", warmup_epochs=2.0)
    lr = make_schedule(cfg, total_steps=100, steps_per_epoch=10)
    assert lr(0) == 0.0 and lr(20) == pytest.approx(0.1) and lr(99) < 0.01


def test_step_schedule_divides_by_ten_twice():
    lr = make_schedule(OptimizerConfig(lr=1.0, schedule="step"), total_steps=100, steps_per_epoch=10)
    assert [float(lr(s)) for s in (0, 60, 90)] == pytest.approx([1.0, 0.1, 0.01])


def test_non_positive_learning_rate_is_refused():
    """The bound is the config's Range: the same line from --set and from code."""
    with pytest.raises(ZooError, match=r"optimizer.lr=0.0 is out of range: it must be > 0 "
                                       r"\(--set optimizer.lr=...\)"):
        make_optimizer(dataclasses.replace(OptimizerConfig(), lr=0.0), 10, 1)


@pytest.mark.parametrize("name, reference", [
    ("adam", optax.adam(0.1, b1=0.5)),
    ("adamw", optax.adamw(0.1, b1=0.5, weight_decay=0.0)),
])
def test_adam_b1_is_the_momentum_field(name, reference):
    cfg = OptimizerConfig(name=name, lr=0.1, schedule="constant", momentum=0.5)
    ours = make_optimizer(cfg, 10, 10)
    params = jnp.ones(3)
    s1, s2 = ours.init(params), reference.init(params)
    for grad in (jnp.array([1.0, -2.0, 3.0]), jnp.array([-3.0, 1.0, 0.5])):
        (u1, s1), (u2, s2) = ours.update(grad, s1, params), reference.update(grad, s2, params)
    np.testing.assert_allclose(u1, u2, rtol=1e-6)  # b1=0.9 would differ at step 2
