"""Test-wide JAX settings: several simulated CPU devices and strict rank promotion.

Set before JAX initialises its backends, so every test (and the harness's mesh) sees
the same 4 CPU devices: sharding code paths are exercised on a 2-core machine.
"""

import os

os.environ.setdefault("ZOO_TEST_DEVICES", "4")
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           f" --xla_force_host_platform_device_count={os.environ['ZOO_TEST_DEVICES']}")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(autouse=True)
def _isolated_zoo_home(tmp_path_factory, monkeypatch):
    """Each test session gets its own cache, shared across tests (data caches are reused)."""
    home = tmp_path_factory.getbasetemp() / "zoo-home"
    monkeypatch.setenv("ZOO_HOME", str(home))


@pytest.fixture(autouse=True)
def _run_in_a_scratch_directory(tmp_path, monkeypatch):
    """Tests run outside the checkout, so a default `runs/` workdir left there by
    `zoo run` (the README's first command) can never leak into a test, nor a test's into it."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def trained_lenet(tmp_path_factory):
    """A LeNet trained for 3 epochs on the embedded digits (about 15 s), shared by the
    tests that only read it: never write into this workdir. `zoo run` in this process
    (real `zoo` processes run in test_cli, test_registry and test_faults)."""
    from helpers import zoo_here

    workdir = tmp_path_factory.mktemp("cls")
    zoo_here("run", "classification", "--workdir", str(workdir), "--epochs", "3", "--quiet")
    return workdir


@pytest.fixture(scope="session")
def spirals():
    """The example plugin's task class, registered once for the whole session (a plugin
    file is imported, and so registers, only once per process)."""
    import zoo.testing
    from zoo import registry

    from helpers import EXAMPLE_PLUGIN

    with zoo.testing.registered(EXAMPLE_PLUGIN):
        yield registry.get_task("spirals")


def pytest_runtest_setup(item):
    """`device` tests need a GPU or TPU (benchmarks/device_check.sh runs them)."""
    if item.get_closest_marker("device") and jax.default_backend() == "cpu":
        pytest.skip("needs a GPU or TPU: run benchmarks/device_check.sh on one")
