"""Cost analysis, the hardware catalogue, roofline bounds, `zoo profile` and `zoo devices`."""

import json
import os

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from zoo.errors import ZooError
from zoo_hardware import catalogue, roofline

from helpers import EXAMPLE_PLUGIN, zoo_cli


def test_dense_layer_flops_equal_the_hand_count():
    batch, fan_in, fan_out = 16, 64, 32
    layer = nnx.Linear(fan_in, fan_out, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(layer)
    forward = jax.jit(lambda p, x: nnx.merge(graphdef, p)(x))
    compiled = forward.lower(params, jnp.ones((batch, fan_in))).compile()
    cost = roofline.step_cost(compiled)
    # x @ W: one multiply and one add per (row, in, out); + b: one add per output.
    assert cost.flops == 2 * batch * fan_in * fan_out + batch * fan_out
    # Reads x, W and b and writes y, all float32: a lower bound on the traffic.
    assert cost.bytes_accessed >= 4 * (batch * fan_in + fan_in * fan_out + fan_out + batch * fan_out)


def test_roofline_bound_is_the_slower_of_compute_and_memory():
    spec = catalogue.CATALOGUE["v100"]
    compute_heavy = roofline.StepCost(flops=15.7e12, bytes_accessed=9e9, transcendentals=0)
    bound = roofline.bound(compute_heavy, spec, "float32")
    assert bound.seconds == pytest.approx(1.0) and bound.limit == "compute"
    memory_heavy = roofline.StepCost(flops=1e9, bytes_accessed=1.8e12, transcendentals=0)
    bound = roofline.bound(memory_heavy, spec, "float16")
    assert bound.seconds == pytest.approx(2.0) and bound.limit == "memory"
    assert roofline.bound(memory_heavy, spec, "bfloat16") is None  # Volta has no bfloat16


def test_catalogue_has_the_decks_v100_and_every_chip_asked_for():
    v100 = catalogue.CATALOGUE["v100"]
    assert (v100.peak("float32"), v100.peak("float16")) == (15.7e12, 125e12)
    assert (v100.bandwidth, v100.memory) == (900e9, 16e9)
    assert set(catalogue.CATALOGUE) >= {"v100", "a100", "h100", "h200", "tpu-v4", "tpu-v5e",
                                        "tpu-v5p"}
    for spec in catalogue.CATALOGUE.values():
        assert spec.peak("float32") > 0 and spec.bandwidth > 0 and spec.memory > 0
    assert [s.name for s in catalogue.lookup("h100, tpu-v5e")] == ["h100", "tpu-v5e"]
    with pytest.raises(ZooError, match="did you mean 'a100'"):
        catalogue.lookup("a10")


def test_local_measurement_is_positive():
    local = catalogue.measure_local("float32", matmul_size=256, copy_bytes=2**20)
    assert local.peak("float32") > 1e8 and local.bandwidth > 1e8 and local.memory > 2**30


def test_profile_command_reports_costs_and_roofline_times(tmp_path):
    result = zoo_cli("profile", "spirals", "--plugin", str(EXAMPLE_PLUGIN), "--smoke",
                     "--hardware", "v100,h100", "--steps", "2", "--json", check=True)
    report = json.loads(result.stdout)
    assert set(report["hardware"]) == {"v100", "h100", "cpu (here)"}
    train = report["steps"]["train"]
    assert train["flops"] > report["steps"]["eval"]["flops"] > 0
    assert train["flops_per_example"] == pytest.approx(train["flops"] / train["batch_size"])
    v100 = train["roofline"]["v100"]
    assert v100["seconds"] == pytest.approx(max(train["flops"] / 15.7e12, train["bytes"] / 900e9))
    here = train["roofline"]["cpu (here)"]
    assert 0 < here["fraction_of_roofline"] and 0 < train["fraction_of_local_peak"]
    assert report["parameters"] == 2 * 64 + 64 + 64 * 64 + 64 + 64 * 2 + 2  # the MLP's weights
    assert report["memory_bytes"]["optimizer_state"] > report["memory_bytes"]["parameters"]


def test_devices_command_lists_every_simulated_device():
    info = json.loads(zoo_cli("devices", "--json", check=True).stdout)
    count = int(os.environ["ZOO_TEST_DEVICES"])
    assert info["device_count"] == count and info["process_count"] == 1
    assert [d["id"] for d in info["devices"]] == list(range(count))
    assert info["backends"]["cpu"] == count
