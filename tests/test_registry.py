import json
import subprocess
import sys
import textwrap

import pytest

import zoo
from zoo import registry
from zoo.errors import ZooError

from helpers import EXAMPLE_PLUGIN, zoo_cli


def _task_class(task_name):
    class _T(zoo.Task):
        name = task_name

        def load_data(self): ...
        def build_model(self, info, rngs): ...
        def loss(self, model, batch, rng): ...
        def eval_step(self, model, batch): ...

    return _T


def test_builtin_task_comes_from_the_entry_point_group():
    assert "classification" in registry.task_names()
    assert registry.get_task("classification").__module__ == "zoo_tasks.classification"


def test_import_zoo_imports_no_task_and_no_jax():
    code = "import sys, zoo; print(any(m.startswith(('zoo_tasks', 'jax')) for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_decorator_registers_and_duplicate_names_both_sources():
    with registry.temporary_registry():
        zoo.register_task()(_task_class("toy"))
        assert registry.get_task("toy").name == "toy"
        with pytest.raises(ZooError, match="clashes with .*_T in") as info:
            zoo.register_task()(_task_class("toy"))
        assert "replace=True" in str(info.value)
        zoo.register_task(replace=True)(_task_class("toy"))
    assert "toy" not in registry.task_names()


def test_unknown_task_suggests_closest_names():
    with pytest.raises(ZooError, match="did you mean 'classification'"):
        registry.get_task("clasification")


def test_non_task_and_incomplete_task_are_rejected_with_the_fix():
    with pytest.raises(ZooError, match="not a zoo.Task subclass"):
        zoo.register_task("bad")(object)

    class Incomplete(zoo.Task):
        name = "incomplete"

    with pytest.raises(ZooError, match=r"does not implement build_model, eval_step, load_data, loss \(or train_step\)"):
        zoo.register_task()(Incomplete)


def test_plugin_file_registers_its_tasks():
    with registry.temporary_registry():
        registry.load_plugin_file(EXAMPLE_PLUGIN)
        assert registry.get_task("spirals").name == "spirals"


def test_plugin_named_tasks_py_does_not_shadow_builtin_tasks(tmp_path):
    plugin = tmp_path / "tasks.py"
    plugin.write_text(EXAMPLE_PLUGIN.read_text())
    result = zoo_cli("list", "--plugin", str(plugin), cwd=tmp_path, check=True)
    assert "classification" in result.stdout and "spirals" in result.stdout


def test_broken_plugin_file_is_a_one_line_error(tmp_path):
    plugin = tmp_path / "broken.py"
    plugin.write_text("raise RuntimeError('boom')\n")
    result = zoo_cli("list", "--plugin", str(plugin))
    assert result.returncode == 2
    assert result.stderr.strip() == f"zoo: error: --plugin {plugin} failed to import: RuntimeError: boom"


def test_entry_point_of_an_installed_package(tmp_path):
    """A real distribution, pip-installed into a folder, adds a task through `zoo.tasks`.

    Its module keeps its `@register_task`: registering the class its own entry point
    names is no clash. run.json records the distribution and its version."""
    pkg = tmp_path / "src"
    (pkg / "zoo_spirals").mkdir(parents=True)
    (pkg / "zoo_spirals" / "__init__.py").write_text(EXAMPLE_PLUGIN.read_text())
    (pkg / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "zoo-spirals"
        version = "1.0"
        [project.entry-points."zoo.tasks"]
        spirals = "zoo_spirals:SpiralsTask"
    """))
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", "--target", str(site), str(pkg)],
                   check=True, capture_output=True, timeout=300)
    env = {"PYTHONPATH": str(site)}
    listed = zoo_cli("list", env=env, check=True)
    assert "spirals" in listed.stdout and "classification" in listed.stdout
    run = zoo_cli("run", "spirals", "--smoke", "--quiet", "--workdir", str(tmp_path / "run"),
                  env=env, check=True)
    assert (tmp_path / "run" / "metrics.json").exists(), run.stderr
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["plugin"] == {"distribution": "zoo-spirals", "version": "1.0"}


def test_a_broken_plugin_is_a_row_of_zoo_list_and_the_rest_still_lists(tmp_path):
    site = tmp_path / "site"
    dist = site / "broken_zoo-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-zoo\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[zoo.tasks]\nbroken = broken_zoo_tasks:Broken\n")
    (site / "broken_zoo_tasks.py").write_text("raise RuntimeError('boom')\n")
    result = zoo_cli("list", env={"PYTHONPATH": str(site)}, check=True)
    rows = " ".join(result.stdout.replace("│", " ").split())  # the table's wrapped cells
    assert ("broken: task plugin entry point broken = broken_zoo_tasks:Broken [broken-zoo] "
            "failed to import: RuntimeError: boom") in rows
    assert all(name in rows for name in ("classification", "gan", "translation"))


def test_clashing_entry_points_need_a_qualified_name(tmp_path):
    site = tmp_path / "site"
    dist = site / "other_zoo-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: other-zoo\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[zoo.tasks]\nclassification = zoo_tasks.classification:ClassificationTask2\n")
    result = zoo_cli("info", "classification", env={"PYTHONPATH": str(site)})
    assert result.returncode == 2
    assert "registered twice" in result.stderr and "zoo:classification" in result.stderr
    qualified = zoo_cli("info", "zoo:classification", env={"PYTHONPATH": str(site)})
    assert qualified.returncode == 0, qualified.stderr
