"""Every registered task honours the Task contract: build, step, evaluate, checkpoint.

Parametrized over the whole registry (built-ins come through their entry points), so a
new task plugin is checked the moment it is registered. The checks are `zoo.testing`'s,
the ones plugin authors run; the example plugin's own test (docs/examples) runs here too.
"""

import importlib.util

import pytest

import zoo.testing
from zoo import registry

from helpers import EXAMPLE_PLUGIN

TASKS = registry.task_names()


def _example_tests():
    path = EXAMPLE_PLUGIN.with_name("test_my_task.py")
    spec = importlib.util.spec_from_file_location("zoo_example_plugin_tests", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


test_the_example_plugin_with_zoo_testing = _example_tests().test_spirals_honours_the_task_contract


@pytest.fixture(scope="module", params=TASKS)
def session(request):
    return zoo.testing.smoke_session(request.param)


def test_train_steps_give_finite_scalars_and_change_parameters(session):
    zoo.testing.check_train_steps(session)


def test_evaluate_reports_the_primary_metric(session):
    zoo.testing.check_evaluate(session)


def test_checkpoint_round_trip(session, tmp_path):
    zoo.testing.check_checkpoint_round_trip(session, tmp_path)


def test_a_broken_task_fails_the_checks_with_the_reason(spirals, tmp_path):
    """The checks can fail: a task whose loss never reaches the parameters."""

    class Frozen(spirals):
        def loss(self, model, batch, rng):
            loss, aux = super().loss(model, batch, rng)
            return loss * 0.0, aux

    session = zoo.testing.smoke_session(Frozen)
    with pytest.raises(AssertionError, match="left every model variable unchanged"):
        zoo.testing.check_train_steps(session)
