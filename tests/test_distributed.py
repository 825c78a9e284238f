"""One code path from one device to many devices and processes: same training, same result.

A few steps of the example task with the same global batch and seed train to the same
losses and parameters (within float tolerance: only the order of reductions differs) on
1 and 2 devices and a 2x2 data x model mesh (this process), 8 devices (a subprocess) and
2 processes on localhost. A
checkpoint saved on 8 devices restores on 1. Compiled programs are cached across runs.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from flax import nnx

from zoo.config import apply_overrides
from zoo.errors import ZooError
from zoo.harness.checkpoints import BEST, CheckpointStore
from zoo.harness.trainer import evaluate, fit, open_session
from zoo_hardware import distributed

from helpers import (EXAMPLE_PLUGIN, cli_error, flatten, free_port, latest_params,
                     run_two_processes, zoo_cli)

OVERRIDES = ["points=512", "hidden=128", "train.epochs=2", "train.batch_size=32"]
CLI_ARGS = ["run", "spirals", "--plugin", str(EXAMPLE_PLUGIN),
            *[a for o in OVERRIDES for a in ("--set", o)]]


def _xla_devices(n: int) -> dict[str, str]:
    return {"XLA_FLAGS": f"--xla_force_host_platform_device_count={n}"}


def _task(spirals):
    return spirals(apply_overrides(spirals.Config(), OVERRIDES))


@pytest.fixture(scope="module")
def one_device(spirals, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("one-device")
    fit(_task(spirals), workdir, mesh="data=1", quiet=True)
    return workdir


def _run_on_8_devices(workdir: Path, home: Path) -> str:
    """`zoo run` on 8 simulated devices in a fresh process; returns its log, one line."""
    result = zoo_cli(*CLI_ARGS, "--mesh", "data=8", "--workdir", str(workdir),
                     env={"ZOO_HOME": str(home), **_xla_devices(8)}, check=True)
    return " ".join(result.stderr.split())


@pytest.fixture(scope="module")
def eight_devices(tmp_path_factory):
    """A run on 8 devices, with its own (so far empty) zoo home and compilation cache."""
    root = tmp_path_factory.mktemp("eight-devices")
    log = _run_on_8_devices(root / "run", root / "home")
    return root, log


def assert_same_training(expected: Path, actual: Path) -> None:
    """Equal per-epoch losses and metrics, and equal final parameters, within tolerance."""
    rows = [[json.loads(line) for line in (w / "history.jsonl").read_text().splitlines()]
            for w in (expected, actual)]
    assert len(rows[0]) == len(rows[1])
    for a, b in zip(*rows):
        for key in ("train/loss", "train/grad_norm", "val/accuracy"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), key
    params = [latest_params(w) for w in (expected, actual)]
    assert params[0].keys() == params[1].keys()
    for key in params[0]:
        np.testing.assert_allclose(params[1][key], params[0][key], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mesh", ["data=2", "data=2,model=2"])  # 128x128 kernels split
def test_more_devices_train_like_one(spirals, one_device, tmp_path, mesh):
    fit(_task(spirals), tmp_path, mesh=mesh, quiet=True)
    assert_same_training(one_device, tmp_path)


def test_eight_devices_train_like_one_and_their_checkpoint_restores_on_one(
        spirals, one_device, eight_devices):
    workdir = eight_devices[0] / "run"
    assert_same_training(one_device, workdir)
    session = open_session(_task(spirals), mesh="data=1", training=False)
    target = nnx.to_pure_dict(session.state)
    store = CheckpointStore(workdir)
    restored, _ = store.restore(BEST, target)
    store.close()
    saved, wanted = latest_params(workdir, BEST), flatten(target["model"])
    for key, value in flatten(restored["model"]).items():
        assert value.sharding == wanted[key].sharding  # on the one-device mesh asked for
        np.testing.assert_array_equal(np.asarray(value), saved[key])
    nnx.replace_by_pure_dict(session.state, restored)
    written = json.loads((workdir / "metrics.json").read_text())["metrics"]
    assert evaluate(session, "test") == pytest.approx(written)


def test_two_processes_train_like_one_and_only_process_0_writes_reports(one_device, tmp_path):
    command = [sys.executable, "-m", "zoo.cli.main", *CLI_ARGS, "--quiet", "--workdir",
               str(tmp_path), "--num-processes", "2", "--coordinator",
               f"127.0.0.1:{free_port()}"]
    run_two_processes(lambda rank: [*command, "--process-id", str(rank)])
    assert_same_training(one_device, tmp_path)
    assert len(list((tmp_path / "tb").iterdir())) == 1  # one TensorBoard writer, process 0's
    assert (tmp_path / "metrics.json").exists() and (tmp_path / "run.json").exists()


def test_second_run_loads_its_programs_from_the_compilation_cache(eight_devices):
    root, first = eight_devices
    assert "compiled in" in first and "from the compilation cache" not in first
    assert any((root / "home" / "jax-cache").iterdir()), "the first run cached nothing"
    second = _run_on_8_devices(root / "again", root / "home")
    assert "(2 program(s) from the compilation cache)" in second, second



@pytest.mark.parametrize("count, index, coordinator, message", [
    (2, 0, None, "needs HOST:PORT"),
    (2, 2, "h:1", "between 0 and 1"),
    (2, 0, "h", "'h' is not HOST:PORT"),
    (None, 1, None, "needs --num-processes"),
])
def test_bad_multi_process_options_are_refused_before_connecting(count, index, coordinator,
                                                                  message):
    with pytest.raises(ZooError, match=message):
        distributed.initialize(count, index, coordinator)


def test_bad_mesh_is_a_one_line_error(capsys):
    assert "did you mean 'model'" in cli_error(capsys, *CLI_ARGS, "--mesh", "data=2,modle=2")
