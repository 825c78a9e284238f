"""Meshes, batch sharding and parameter sharding rules, on this process's CPU devices.

The default run has the 4 devices of conftest.py; `test_the_same_tests_pass_on_8_devices`
runs this whole file again in a test process with 8.
"""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

from zoo.errors import ZooError
from zoo.models import create_classifier
from zoo.harness.optim import make_optimizer
from zoo.config import OptimizerConfig
from zoo_hardware import placement, sharding

from helpers import ROOT

N = jax.device_count()


def test_the_test_process_has_the_devices_it_asked_for():
    assert N == int(os.environ["ZOO_TEST_DEVICES"]) and jax.default_backend() == "cpu"


@pytest.mark.parametrize("spec, shape", [
    (None, {"data": N, "model": 1}),
    ("data=1", {"data": 1, "model": 1}),
    (f"data={N // 2},model=2", {"data": N // 2, "model": 2}),
    ("model=2", {"data": N // 2, "model": 2}),
    (f" data = {N} ", {"data": N, "model": 1}),
])
def test_mesh_shapes(spec, shape):
    mesh = placement.make_mesh("cpu", spec)
    assert dict(mesh.shape) == shape
    assert mesh.axis_names == ("data", "model")


@pytest.mark.parametrize("spec, message", [
    ("data=0", "positive size"),
    ("data=2,data=2", "each axis once"),
    ("dta=2", "did you mean 'data'"),
    ("data=x", "positive size"),
    (f"data={N + 1}", f"needs {N + 1} devices"),
    ("model=3", "does not divide"),
])
def test_bad_meshes_are_one_line_errors(spec, message):
    with pytest.raises(ZooError, match=message):
        placement.make_mesh("cpu", spec)


@pytest.mark.parametrize("spec", [f"data={N}", f"data={N // 2},model=2"])
def test_each_device_holds_its_rows_of_the_global_batch(spec):
    mesh = placement.make_mesh("cpu", spec)
    rows = 4 * N
    batch = {"x": np.arange(rows * 3, dtype=np.float32).reshape(rows, 3)}
    placed = placement.put_batch(batch, mesh)["x"]
    assert placed.shape == (rows, 3)  # the global batch means the same on any mesh
    per_device = rows // mesh.shape["data"]
    for shard in placed.addressable_shards:
        start = shard.index[0].start or 0
        assert shard.data.shape == (per_device, 3)
        np.testing.assert_array_equal(np.asarray(shard.data), batch["x"][start:start + per_device])
    assert placement.process_rows(mesh, rows) == slice(0, rows)  # one process holds them all


def test_batch_size_must_divide_over_the_data_axis():
    mesh = placement.make_mesh("cpu", f"data={N}")
    with pytest.raises(ZooError, match=f"does not divide over {N} devices"):
        placement.check_batch_size(N + 1, mesh)


@pytest.mark.parametrize("shape, model, spec", [
    ((800, 500), 2, P("model", None)),  # the largest dimension that divides
    ((5, 5, 20, 50), 2, P(None, None, None, "model")),  # of 20 and 50, the larger
    ((300, 4096), 4, P(None, "model")),
    ((127, 129), 2, P()),  # nothing divides
    ((128, 128), 1, P()),  # no model axis
    ((64, 64), 2, P()),  # too small to be worth a collective
    ((), 2, P()),
])
def test_parameter_sharding_rule(shape, model, spec):
    assert sharding.partition_spec(shape, model) == spec


def test_optimizer_state_follows_its_parameters_and_small_ones_are_replicated():
    mesh = placement.make_mesh("cpu", f"data={N // 2},model=2")
    model = create_classifier("mlp", (28, 28, 1), 10, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, make_optimizer(OptimizerConfig(), 10, 10), wrt=nnx.Param)
    _, state = nnx.split({"model": model, "optimizer": optimizer})
    specs = nnx.to_pure_dict(jax.tree.map(lambda s: s.spec, sharding.state_shardings(state, mesh)))
    assert specs["model"]["hidden"][0]["kernel"] == P("model", None)  # 784 x 300
    assert specs["model"]["head"]["kernel"] == P()  # 100 x 10
    adam = specs["optimizer"]["opt_state"][0]
    assert adam["mu"]["hidden"][0]["kernel"] == adam["nu"]["hidden"][0]["kernel"] == P("model", None)
    placed = placement.put_state(state, sharding.state_shardings(state, mesh))
    kernel = nnx.to_pure_dict(placed)["model"]["hidden"][0]["kernel"]
    assert {s.data.shape for s in kernel.addressable_shards} == {(392, 300)}


@pytest.mark.skipif(N == 8, reason="already the 8-device run")
def test_the_same_tests_pass_on_8_devices():
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
         "-k", "not optimizer_state"],
        cwd=ROOT, env={**os.environ, "ZOO_TEST_DEVICES": "8",
                       "XLA_FLAGS": os.environ.get("XLA_FLAGS", "").replace(
                           f"device_count={N}", "device_count=8")},
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "1 skipped" in result.stdout  # this test itself
