"""The example plugin's own tests: what a plugin author writes beside a task.

`zoo.testing` runs the checks zoo holds its built-in tasks to (build, train steps with
finite scalars that change the parameters, evaluation of the primary metric, checkpoint
round trip). Run with `python -m pytest docs/examples`; zoo's suite runs it too
(tests/test_conformance.py).
"""

from pathlib import Path

import zoo.testing

PLUGIN = Path(__file__).with_name("my_task.py")


def test_spirals_honours_the_task_contract(tmp_path):
    with zoo.testing.registered(PLUGIN):  # a class works too: registered(SpiralsTask)
        zoo.testing.check_task("spirals", tmp_path)
