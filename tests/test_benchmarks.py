"""Benchmarks are never timed here: each one just runs a tiny step and writes a sane row."""

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from benchmarks import (extras, int8_inference, layer_ops, nan_guard, report, step_costs,
                        train_throughput)
from zoo.models import conv


@pytest.mark.slow  # ~40 CPU-s: compiles every peer; benchmarks run on demand
def test_every_peer_runs_one_tiny_window_or_is_skipped_with_a_note(tmp_path, capsys):
    out = tmp_path / "results.md"
    assert train_throughput.main(["--model", "lenet", "--steps", "1", "--windows", "1",
                                  "--batch-size", "32", "--out", str(out)]) == 0
    text = out.read_text()
    assert "| lenet | zoo harness |" in text and "| lenet | bare jax.jit |" in text
    for line in text.splitlines():
        if line.startswith("| lenet |") and "skipped" not in line:
            median = float(line.split("|")[6].replace(",", ""))
            assert median > 0
    printed = capsys.readouterr().out
    assert printed.count("lenet ") == len(train_throughput.DEFAULT_PEERS)


def test_rounds_report_the_median_process_and_the_spread():
    runs = [{"peer": "zoo harness", "model": "lenet", "median": m, "windows": [m]}
            for m in (300.0, 100.0, 200.0)]
    row = train_throughput._median_process(runs)
    assert row["median"] == 200.0 and row["note"] == "median of 3 processes (100-300)"
    assert "note" not in train_throughput._median_process(runs[:1])
    skipped = [{"peer": "keras 3 (jax) fit", "model": "crnn", "error": "no keras version of crnn"}]
    assert train_throughput._median_process(skipped) == skipped[0]


def test_peers_are_compared_round_by_round():
    def runs(peer, medians):
        return [{"peer": peer, "model": "lenet", "median": m, "windows": [m]} for m in medians]

    zoo, torch = runs("zoo harness", (400.0, 600.0, 500.0)), runs("pytorch eager", (500.0, 500.0, 1000.0))
    skipped = [{"peer": "keras 3 (jax) fit", "model": "lenet", "error": "not installed"}]
    assert train_throughput._paired_ratios([zoo, skipped, torch]) == [
        "zoo harness / pytorch eager: 1.00 by the median processes; by rounds 0.80, 1.20, 0.50 "
        "(median 0.80)"]
    assert train_throughput._paired_ratios([zoo[:1], torch[:1]]) == []  # one round: the row says it


def test_extras_measure_something_real():
    assert extras.matmul_peak(n=64, repeats=2) > 0
    latency = extras.inference_latency("lenet", requests=3)
    assert 0 < latency["p50_ms"] <= latency["p99_ms"] and latency["batch256_examples_per_s"] > 0
    assert extras.pipeline_throughput(batch_size=256, epochs=1) > 0


def test_report_lists_extras(tmp_path):
    row = {"model": "lenet", "peer": "bare jax.jit", "batch_size": 128, "median": 10.0, "windows": [9.0, 11.0],
           "compile_seconds": 1.0, "peak_rss_mb": 100.0}
    sections = {"training": [row], "extras": {
        "matmul_peak_gflops": 100.0, "pipeline_examples_per_s": 5.0, "pipeline_batch_size": 128,
        "inference": [{"model": "lenet", "p50_ms": 1.0, "p99_ms": 2.0, "batch256_examples_per_s": 3.0}],
        "start": {"cold_s": 6.0, "warm_s": 2.0, "speedup": 3.0}}}
    report.write(str(tmp_path / "r.md"), sections, "python -m benchmarks.train_throughput --all")
    text = (tmp_path / "r.md").read_text()
    assert "- command: `python -m benchmarks.train_throughput --all`" in text
    assert "| lenet | bare jax.jit | float32 | cpu | 128 | 10 | 1.00 |" in text and "cold 6.0 s, warm 2.0 s (3.0x)" in text


def test_gpu_rows_report_the_fraction_of_the_chips_peak():
    row = {"device": "gpu", "device_kind": "NVIDIA H200", "dtype": "bfloat16",
           "achieved_gflops": 98_940.0}
    assert report.peak_fraction(row) == pytest.approx(0.1)  # of 989.4 dense bf16 TFLOP/s
    assert report.peak_fraction({**row, "device": "cpu"}) is None
    assert report.peak_fraction({**row, "device_kind": "a chip nobody listed"}) is None


def test_nan_guard_times_both_steps(capsys):
    assert nan_guard.main(["--steps", "1", "--rounds", "1", "--set", "model=mlp",
                           "--set", "train.max_examples=256", "--set", "train.batch_size=32"]) == 0
    assert "skip costs" in capsys.readouterr().out


def test_layer_ops_times_every_layer_every_way(capsys):
    assert layer_ops.main(["--model", "lenet", "--batch-size", "2", "--repeats", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines()
            if line.startswith(("| conv", "| fc1", "| **one step"))]
    assert len(rows) == 8  # three layers and the step's sum, in wall and in CPU time
    peers = 3 if importlib.util.find_spec("torch") else 2
    for row in rows:
        forward, weights, inputs = row.strip("|").split("|")[2:]
        assert len(weights.split("/")) == peers  # XLA, zoo (and PyTorch)
        assert "not needed" in inputs or len(inputs.split("/")) == peers
        for cell in (forward, weights) + (() if "not needed" in inputs else (inputs,)):
            assert all(float(part) > 0 for part in cell.split("/")), row
    assert "conv1" in rows[0] and "not needed" in rows[0]  # a first layer's input gradient


@pytest.mark.slow  # ~20 CPU-s: compiles LeNet's step four times; the stand-ins are tested below
def test_step_costs_time_the_parts_the_model_has(capsys):
    assert step_costs.main(["--model", "lenet", "--batch-size", "8", "--rounds", "1",
                            "--steps", "1"]) == 0
    rows = [line.split("|")[1:5] for line in capsys.readouterr().out.splitlines()
            if line.startswith("| ") and not line.startswith("| variant")]
    # LeNet's two convolutions have more than 16 channels, no stride and no batch norm:
    assert [(name.strip(), layers.strip()) for name, layers, _, _ in rows] == [
        ("whole step", ""), ("conv weight gradients", "2"), ("conv input gradients", "2"),
        ("whole step, compiled again", "")]
    assert all(float(ms) > 0 for _, _, ms, _ in rows)


def test_a_left_out_part_is_gone_only_while_left_out():
    x, kernel = jnp.ones((2, 8, 8, 3)), jnp.ones((3, 3, 3, 4))

    def loss(kernel):
        return conv.conv_general_dilated(x, kernel, (1, 1), "SAME",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC")).sum()

    replaced = []
    with step_costs.without("conv weight gradients", replaced):
        assert not jnp.any(jax.grad(loss)(kernel))
    assert replaced == [1] and bool(jnp.all(jax.grad(loss)(kernel) > 0))
    norm, x = nnx.BatchNorm(3, rngs=nnx.Rngs(0)), jnp.arange(24.0).reshape(2, 4, 3)
    with step_costs.without("batch norm statistics", replaced):
        np.testing.assert_array_equal(norm(x), x)  # scale 1, bias 0: no statistics taken
    assert abs(float(norm(x).mean())) < 1e-5  # normalized again outside


def test_int8_inference_runs_on_integer_codes_and_agrees_with_fake_quant():
    images = jax.random.uniform(jax.random.key(0), (16, 28, 28, 1))
    models = int8_inference.variants(images, with_qwix=False)
    logits, programs = {}, {}
    for name in ("int8 fake-quant", "int8 integer"):
        graphdef, state = nnx.split(models[name])
        forward = jax.jit(lambda s, g=graphdef: nnx.merge(g, s)(images))
        logits[name], programs[name] = forward(state), forward.lower(state).as_text()
    assert "xi8>" in programs["int8 integer"] and "xi8>" not in programs["int8 fake-quant"]
    np.testing.assert_allclose(logits["int8 integer"], logits["int8 fake-quant"], atol=1e-3)


@pytest.mark.slow  # ~45 CPU-s: compiling the CRNN twice (zoo and the bare loop in a child)
def test_sequence_workload_runs_on_zoo_and_bare_jax_only(tmp_path):
    out = tmp_path / "results.md"
    assert train_throughput.main(["--task", "ocr", "--steps", "1", "--windows", "1",
                                  "--batch-size", "4", "--peers", "bare,keras",
                                  "--out", str(out)]) == 0
    text = out.read_text()
    assert "| crnn | bare jax.jit | float32 | cpu | 4 |" in text and "no keras version of crnn" in text


@pytest.mark.slow
def test_start_times_cold_then_warm():
    start = extras.start_times()
    assert start["cold_s"] > 0 and start["warm_s"] > 0
