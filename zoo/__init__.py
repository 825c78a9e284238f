"""zoo: a plugin-based deep-learning task zoo on JAX.

Importing `zoo` is cheap: it loads neither JAX nor any task. The public API:

  zoo.Task, zoo.Dataset, zoo.Metrics   the task contract (zoo.task)
  zoo.TaskConfig, zoo.TrainConfig ...  typed configs (zoo.config); zoo.Range bounds a field
  zoo.register_task, zoo.get_task      the registry (zoo.registry)
  zoo.fit, zoo.Callback                training from Python, with your own hooks (zoo.harness)
  zoo.load                             any trained model as a predictor (zoo.predictor)

For task plugins, `zoo.data` and `zoo.models` export (`__all__`) the helpers a task
builds on, `zoo.restore` brings back any trained model and `zoo.testing` holds the
conformance checks (README, "Writing a task plugin").
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Task": "zoo.task", "Dataset": "zoo.task", "Metrics": "zoo.task", "masked_mean": "zoo.task",
    "row_mean": "zoo.task",
    "TaskConfig": "zoo.config", "TrainConfig": "zoo.config", "OptimizerConfig": "zoo.config",
    "EarlyStoppingConfig": "zoo.config", "Range": "zoo.config",
    "register_task": "zoo.registry", "get_task": "zoo.registry", "task_names": "zoo.registry",
    "fit": "zoo.harness.trainer", "Callback": "zoo.harness.callbacks",
    "load": "zoo.predictor", "Predictor": "zoo.predictor",
    "ZooError": "zoo.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
