"""Optimizers and learning-rate schedules from an `OptimizerConfig`, with optax."""

import optax

from zoo.config import OptimizerConfig, TaskConfig, validate
from zoo.errors import ZooError
from zoo_hardware.precision import get_policy


def make_schedule(cfg: OptimizerConfig, total_steps: int, steps_per_epoch: int) -> optax.Schedule:
    """The learning rate as a function of the global step."""
    total_steps = max(total_steps, 1)
    warmup = min(int(cfg.warmup_epochs * steps_per_epoch), total_steps - 1)
    if cfg.schedule == "constant":
        decay = optax.constant_schedule(cfg.lr)
    elif cfg.schedule == "cosine":
        decay = optax.cosine_decay_schedule(cfg.lr, max(total_steps - warmup, 1))
    elif cfg.schedule == "step":  # x0.1 at 50% and 75% of training
        decay = optax.piecewise_constant_schedule(
            cfg.lr, {int(total_steps * 0.5) - warmup: 0.1, int(total_steps * 0.75) - warmup: 0.1})
    else:
        raise ZooError(f"unknown schedule {cfg.schedule!r}")
    if warmup <= 0:
        return decay
    ramp = optax.linear_schedule(0.0, cfg.lr, warmup)
    return optax.join_schedules([ramp, decay], [warmup])


def make_optimizer(cfg: OptimizerConfig, total_steps: int, steps_per_epoch: int) -> optax.GradientTransformation:
    """The optax transformation for `cfg`: sgd, momentum, nesterov, adam or adamw.

    Raises:
      ZooError: a field out of its config `Range` (e.g. lr <= 0), named as --set takes it.
    """
    validate(cfg, "optimizer.")
    lr = make_schedule(cfg, total_steps, steps_per_epoch)
    if cfg.name == "sgd":
        tx = optax.sgd(lr)
    elif cfg.name in ("momentum", "nesterov"):
        tx = optax.sgd(lr, momentum=cfg.momentum, nesterov=cfg.name == "nesterov")
    elif cfg.name == "adam":
        tx = optax.adam(lr, b1=cfg.momentum)
    elif cfg.name == "adamw":
        tx = optax.adamw(lr, b1=cfg.momentum, weight_decay=cfg.weight_decay)
    else:
        raise ZooError(f"unknown optimizer {cfg.name!r}")
    if cfg.weight_decay and cfg.name != "adamw":
        tx = optax.chain(optax.add_decayed_weights(cfg.weight_decay), tx)
    if cfg.grad_clip_norm > 0:
        tx = optax.chain(optax.clip_by_global_norm(cfg.grad_clip_norm), tx)
    return tx


def make_run_optimizer(config: TaskConfig, total_steps: int,
                       steps_per_epoch: int) -> optax.GradientTransformation:
    """A run's transformation: `config.optimizer`, wrapped by the `train.dtype` policy
    (float16 adds dynamic loss scaling)."""
    tx = make_optimizer(config.optimizer, total_steps, steps_per_epoch)
    return get_policy(config.train.dtype).wrap_optimizer(tx)
