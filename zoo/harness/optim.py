"""Optimizers and learning-rate schedules from an `OptimizerConfig`, with optax."""

from typing import Any

import jax
import optax
from flax import nnx

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
    """A run's transformation: `config.optimizer` (with its backbone scaled or frozen),
    wrapped by the `train.dtype` policy (float16 adds dynamic loss scaling)."""
    tx = make_optimizer(config.optimizer, total_steps, steps_per_epoch)
    scale = config.optimizer.backbone_lr_scale
    if scale != 1.0:
        backbone = optax.set_to_zero() if scale == 0 else optax.chain(
            make_optimizer(config.optimizer, total_steps, steps_per_epoch), optax.scale(scale))
        tx = optax.multi_transform({"backbone": backbone, "rest": tx}, backbone_labels)
    return get_policy(config.train.dtype).wrap_optimizer(tx)


def backbone_labels(params: Any) -> Any:
    """"backbone" for the parameters under the model's top-level `backbone` module (the
    pretrained part of a fine-tuned model), "rest" for the others (its new head).

    Raises:
      ZooError: the model has no `backbone` module.
    """
    def label(path, _) -> str:
        first = path[0]
        return "backbone" if getattr(first, "key", getattr(first, "name", None)) == "backbone" else "rest"

    labels = jax.tree_util.tree_map_with_path(label, params)
    if "backbone" not in jax.tree.leaves(labels):
        raise ZooError("optimizer.backbone_lr_scale (--freeze backbone) needs a model with a "
                       "`backbone` module: the ImageNet families (resnet18...101, vit-s16, "
                       "vit-b16, mobilenetv3-large) and the detection models have one")
    return labels


def hold_frozen_backbone(model: nnx.Module, config: OptimizerConfig) -> None:
    """A frozen backbone (`backbone_lr_scale=0`, `--freeze backbone`) also keeps its
    batch-norm statistics and drops no activations: its batch norms use their running
    statistics and its dropout is off in training too, what a timm or torchvision user
    who freezes a module (`requires_grad_(False)` and `.eval()`) expects. Only the head
    then changes. Call it on a freshly built model, before compiling its train step.
    """
    if config.backbone_lr_scale != 0 or not hasattr(model, "backbone"):
        return
    for _, module in nnx.iter_modules(model.backbone):
        if isinstance(module, nnx.BatchNorm):
            module.use_running_average = True
        elif isinstance(module, nnx.Dropout):
            module.deterministic = True
