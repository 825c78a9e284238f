"""Pruning, quantization, the compressed file format, and `zoo compress` end to end."""

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from zoo.errors import ZooError
from zoo_hardware import compression, pruning
from zoo_hardware import quantization as qz

from helpers import zoo_cli


def _params(seed=0):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    return {"big": {"kernel": jax.random.normal(k1, (40, 30)), "bias": jax.random.normal(k2, (30,))},
            "small": {"kernel": 0.1 * jax.random.normal(k3, (3, 3, 2, 8))}}


def _run(tx, params, steps, seed=1):
    """`steps` optimizer updates with random gradients; the params after each."""
    state = tx.init(params)
    history = []
    for i in range(steps):
        grads = jax.tree.map(lambda x: jax.random.normal(jax.random.key(seed + i), x.shape), params)
        updates, state = jax.jit(tx.update)(grads, state, params)
        params = optax.apply_updates(params, updates)
        history.append(params)
    return history


def test_pruning_masks_survive_optimizer_steps():
    """Gradual pruning reaches its target, pruned weights never come back, biases stay dense."""
    inner = optax.chain(optax.add_decayed_weights(1e-2), optax.adam(0.1))  # momentum + decay
    tx = pruning.masked(inner, schedule=pruning.gradual_schedule(0.75, end_step=6, every=2), every=2)
    history = _run(tx, _params(), 12)
    zeros = [np.asarray(p["big"]["kernel"]) == 0 for p in history]
    for before, after in zip(zeros, zeros[1:]):
        assert np.all(after[before]), "a pruned weight was revived by the optimizer"
    assert pruning.sparsity(history[-1]) == pytest.approx(0.75, abs=0.01)
    assert pruning.sparsity(history[0]) == 0.0  # the schedule starts dense
    assert np.all(np.asarray(history[-1]["big"]["bias"]) != 0)


def test_fixed_masks_keep_an_already_pruned_model_sparse():
    params = pruning.apply_masks(_params(), pruning.magnitude_masks(_params(), 0.5))
    history = _run(pruning.masked(optax.adamw(0.1, weight_decay=0.1)), params, 5)
    zero = np.asarray(params["big"]["kernel"]) == 0
    final = np.asarray(history[-1]["big"]["kernel"])
    assert np.all(final[zero] == 0) and np.all(final[~zero] != np.asarray(params["big"]["kernel"])[~zero])


def test_global_scope_prunes_small_layers_harder_than_layer_scope():
    params = _params()
    per_layer = pruning.apply_masks(params, pruning.magnitude_masks(params, 0.5, scope="layer"))
    overall = pruning.apply_masks(params, pruning.magnitude_masks(params, 0.5, scope="global"))
    frac = lambda p, k: float(np.mean(np.asarray(p[k]["kernel"]) == 0))  # noqa: E731
    assert frac(per_layer, "big") == pytest.approx(0.5) and frac(per_layer, "small") == pytest.approx(0.5)
    assert frac(overall, "small") > 0.9 and pruning.sparsity(overall) == pytest.approx(0.5, abs=0.01)


def test_per_layer_targets_ramp_each_layer_to_its_own_sparsity():
    """With `per_layer` the schedule is the ramp's fraction; each kernel ends at its own target."""
    tx = pruning.masked(optax.adam(0.1), schedule=pruning.gradual_schedule(1.0, end_step=4),
                        scope="layer", per_layer={"big/kernel": 0.8, "small/kernel": 0.25})
    history = _run(tx, _params(), 6)
    frac = lambda p, k: float(np.mean(np.asarray(p[k]["kernel"]) == 0))  # noqa: E731
    assert frac(history[0], "big") == 0.0  # the ramp starts dense
    assert frac(history[-1], "big") == pytest.approx(0.8) and frac(history[-1], "small") == 0.25
    assert np.all(np.asarray(history[-1]["big"]["bias"]) != 0)


def test_pinned_layers_leave_the_others_the_share_that_keeps_the_total():
    from zoo.compress.pipeline import Plan, layer_targets

    kernels = {"conv1/kernel": 500, "conv2/kernel": 25000, "fc1/kernel": 400000, "fc2/kernel": 5000}
    pins = (("conv1", 0.25), ("conv2/kernel", 0.7), ("fc2", 0.75))
    targets = layer_targets(Plan(prune=0.92, layers=pins), kernels)
    assert [targets[k] for k in ("conv1/kernel", "conv2/kernel", "fc2/kernel")] == [0.25, 0.7, 0.75]
    total = sum(kernels[k] * targets[k] for k in kernels) / sum(kernels.values())
    assert total == pytest.approx(0.92) and targets["fc1/kernel"] == pytest.approx(0.9367125)
    assert layer_targets(Plan(prune=0.92), kernels) is None
    with pytest.raises(ZooError, match="conv3=0.5: give a fraction"):
        layer_targets(Plan(prune=0.9, layers=(("conv3", 0.5),)), kernels)
    with pytest.raises(ZooError, match="leaves the other layers"):
        layer_targets(Plan(prune=0.1, layers=(("fc1", 0.9),)), kernels)


@pytest.mark.parametrize("bits", [8, 4])
def test_int_quantization_error_is_at_most_half_a_step(bits):
    w = jnp.array([[1.0, -0.02], [-0.5, 0.3], [0.26, 0.0], [0.001, -0.9]])  # channels = columns
    q = qz.quantize(w, qz.Scheme("int", bits))
    qmax = 2 ** (bits - 1) - 1
    np.testing.assert_allclose(q.scale, np.abs(w).max(axis=0) / qmax, rtol=1e-6)
    assert np.abs(q.codes).max() <= qmax and q.codes[2, 1] == 0
    assert np.all(np.abs(q.values() - w) <= q.scale / 2 + 1e-7)
    assert q.values()[0, 0] == pytest.approx(1.0) and q.values()[3, 1] == pytest.approx(-0.9)


def test_binary_weights_are_sign_times_channel_mean_magnitude():
    w = jnp.array([[1.0, -2.0], [-3.0, 0.0], [2.0, 4.0]])  # a pruned zero stays zero
    q = qz.quantize(w, qz.Scheme("binary", 1))
    np.testing.assert_allclose(q.scale, [2.0, 3.0])
    np.testing.assert_allclose(q.values(), [[2.0, -3.0], [-2.0, 0.0], [2.0, 3.0]])


@pytest.mark.parametrize("bits", [1, 2, 5])
def test_kmeans_codebook_has_exactly_2_to_the_n_entries(bits):
    w = jnp.where(jnp.arange(500).reshape(50, 10) % 7 == 0, 0.0,
                  jax.random.normal(jax.random.key(0), (50, 10)))
    q = qz.quantize(w, qz.Scheme("kmeans", bits))
    assert q.codebook.shape == (2 ** bits,) and len(np.unique(q.codebook)) == 2 ** bits
    assert set(np.unique(q.codes)) <= set(range(2 ** bits + 1))
    values = q.values()
    assert np.all((values == 0) == (np.asarray(w) == 0))
    nearest = q.codebook[np.argmin(np.abs(np.asarray(w)[..., None] - q.codebook), -1)]
    live = np.asarray(w) != 0
    np.testing.assert_allclose(values[live], nearest[live])


def test_shared_updates_keep_clusters_tied_and_move_centroids():
    params = pruning.apply_masks(_params(), pruning.magnitude_masks(_params(), 0.6))
    q = qz.quantize(params["big"]["kernel"], qz.Scheme("kmeans", 3))
    start = {**params, "big": {**params["big"], "kernel": jnp.asarray(q.values())}}
    codes = {"big": {"kernel": q.codes, "bias": -1}, "small": {"kernel": -1}}
    final = _run(qz.shared(optax.adam(0.05), codes, bits=3), start, 5)[-1]["big"]["kernel"]
    final = np.asarray(final)
    assert np.all(final[q.codes == 0] == 0)
    used = [c for c in range(1, 9) if np.any(q.codes == c)]
    assert len(used) >= 4
    for c in used:
        assert len(np.unique(final[q.codes == c])) == 1, "a cluster came apart"
    assert not np.allclose(qz.codebook_from(final, q.codes, 3), q.codebook)


def test_fake_quant_passes_gradients_straight_through():
    w = jnp.linspace(-1, 1, 12).reshape(3, 4)
    grad = jax.grad(lambda w: jnp.sum(qz.fake_quant_weights(w, qz.Scheme("int", 4)) * 3.0))(w)
    np.testing.assert_allclose(grad, 3.0)
    x = jnp.array([-1.0, 0.5, 3.0])
    out = qz.fake_quant_activations(x, bits=8, amax=2.0, signed=False)
    np.testing.assert_allclose(out, [0.0, round(0.5 / (2 / 255)) * 2 / 255, 2.0], rtol=1e-6)
    g = jax.grad(lambda x: qz.fake_quant_activations(x, bits=8, amax=2.0, signed=False).sum())(x)
    np.testing.assert_allclose(g, [0.0, 1.0, 0.0])  # no gradient where clipped


def _state_and_codes():
    params = pruning.apply_masks(_params(), pruning.magnitude_masks(_params(), 0.7))
    quantized = {("big", "kernel"): qz.quantize(params["big"]["kernel"], qz.Scheme("kmeans", 4)),
                 ("small", "kernel"): qz.quantize(params["small"]["kernel"], qz.Scheme("int", 8))}
    return jax.tree.map(np.asarray, params), quantized


def test_artifact_round_trips_to_identical_effective_weights(tmp_path):
    state, quantized = _state_and_codes()
    quantized[("big", "kernel")] = qz.quantize(state["big"]["kernel"], qz.Scheme("binary", 1))
    size = compression.write(tmp_path / "m.zc", state, quantized, {"act_bits": 8})
    decoded, meta = compression.read(tmp_path / "m.zc")
    assert meta == {"act_bits": 8} and size == (tmp_path / "m.zc").stat().st_size
    for path, array in compression.flatten(state).items():
        expected = quantized[path].values() if path in quantized else array
        got = compression.flatten(decoded)[path]
        assert got.dtype == np.float32 and np.array_equal(got, expected), path


def test_sizes_are_bytes_on_disk(tmp_path):
    state, quantized = _state_and_codes()
    np.savez(tmp_path / "float32.npz", **{"/".join(p): a for p, a in compression.flatten(state).items()})
    assert compression.float32_bytes(state) == (tmp_path / "float32.npz").stat().st_size
    size = compression.write(tmp_path / "m.zc", state, quantized, {})
    per_tensor = compression.blob_bytes(tmp_path / "m.zc")
    assert sum(per_tensor.values()) < size == (tmp_path / "m.zc").stat().st_size
    assert per_tensor[("big", "kernel")] < 0.3 * 4 * state["big"]["kernel"].size  # 70% sparse, 4 bits


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage"])
def test_damaged_artifact_is_refused(tmp_path, damage):
    state, quantized = _state_and_codes()
    path = tmp_path / "m.zc"
    compression.write(path, state, quantized, {})
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[-5] ^= 0xFF
    path.write_bytes(bytes(data[:-20]) if damage == "truncate" else
                     b"not a model" if damage == "garbage" else bytes(data))
    with pytest.raises(ZooError, match=str(path)):
        compression.read(path)


@pytest.mark.parametrize("text, expected", [
    ("int8", qz.Scheme("int", 8, 8)), ("int4", qz.Scheme("int", 4, 4)),
    ("binary", qz.Scheme("binary", 1, 0)), ("kmeans:5", qz.Scheme("kmeans", 5, 0)),
])
def test_scheme_names(text, expected):
    assert qz.parse_scheme(text) == expected


@pytest.mark.parametrize("text", ["int3", "kmeans:9", "kmeans:", "float16"])
def test_bad_scheme_is_a_one_line_error(text):
    with pytest.raises(ZooError, match="choose int8, int4, binary or kmeans:N"):
        qz.parse_scheme(text)


# -- end to end, through the CLI ------------------------------------------------------------

def _report(out):
    return json.loads((out / "compression.json").read_text())


def _zoo(capsys, *args: str) -> str:
    """`zoo ARGS` in this process (no fresh interpreter's JAX import): its stdout, after
    checking it exited 0."""
    from zoo.cli.main import main

    code = main(list(args))
    printed = capsys.readouterr()
    assert code == 0, printed.err
    return printed.out


def test_prune_and_share_keeps_accuracy_through_eval_and_predict(trained_lenet, tmp_path, capsys):
    out = tmp_path / "small"
    printed = _zoo(capsys, "compress", "classification", "--workdir", str(trained_lenet),
                   "--prune", "0.75", "--quantize", "kmeans:4", "--finetune-epochs", "2",
                   "--out", str(out))
    assert "file on disk" in printed
    report = _report(out)
    assert report["total"]["bytes_after"] == (out / "model.zc").stat().st_size
    assert report["total"]["ratio"] > 12 and report["total"]["sparsity"] == pytest.approx(0.75, abs=0.01)
    assert all(row["codes"] == 16 for row in report["layers"])
    assert report["drop_points"] <= 1.5
    evaluated = _zoo(capsys, "eval", "classification", "--workdir", str(out), "--json")
    assert json.loads(evaluated)["accuracy"] == pytest.approx(report["after"]["accuracy"])
    assert not list(out.glob(".finetune-*")), "fine-tuning workdirs are removed when done"


def test_int8_post_training_quantization_of_weights_and_activations(trained_lenet, tmp_path,
                                                                    capsys, monkeypatch):
    out = tmp_path / "int8"
    _zoo(capsys, "compress", "classification", "--workdir", str(trained_lenet), "--quantize",
         "int8", "--out", str(out))
    report = _report(out)
    assert report["plan"]["scheme"] == "int8+a8" and abs(report["drop_points"]) <= 1.0
    assert 3.5 < report["total"]["ratio"]
    latency = report["latency_ms"]  # float vs both activation paths, at batch 256 and 1
    assert set(latency) == {"float", "compressed, fake-quant activations",
                            "compressed, float activations"}
    assert all(len(t) == 2 and min(t["256"].values()) > 0 for t in latency.values())
    activations = report["activations"]  # the path served is the one `zoo eval` runs
    served = activations["served"]
    assert report["after"] == activations["accuracy"][served]
    evaluated = _zoo(capsys, "eval", "classification", "--workdir", str(out), "--json")
    assert json.loads(evaluated)["accuracy"] == pytest.approx(report["after"]["accuracy"])
    png = tmp_path / "digit.png"
    from PIL import Image
    from zoo.data.mnist import mnist_sample

    images, labels = mnist_sample()
    Image.fromarray(images[0, ..., 0]).save(png)
    predicted = _zoo(capsys, "predict", "classification", str(png), "--workdir", str(out))
    assert predicted.strip().startswith(f"{png}: {labels[0]} (p=")
    _publish_and_pull_back(out, tmp_path / "hub", monkeypatch)


def _publish_and_pull_back(out, hub, monkeypatch):
    """A compressed workdir publishes (its metrics.json has no epochs) and the hub's copy
    restores to the same effective weights."""
    from flax import nnx

    from zoo import restore
    from zoo.hub.publish import publish

    report = _report(out)
    assert report["file"] == "model.zc" and isinstance(report["weights"], int)
    assert report["weights"] + report["other_tensors"]["params"] == report["total"]["params"]
    run = restore.from_workdir(out, "classification")
    card = publish(run, hub, "int8")
    assert card.source.startswith("zoo compress classification of ") and "int8+a8" in card.source
    monkeypatch.setenv("ZOO_HUB", str(hub))
    pulled = restore.from_hub("classification", "lenet:int8")
    ours, theirs = (nnx.to_pure_dict(nnx.state(r.model(), nnx.Param)) for r in (run, pulled))
    jax.tree.map(np.testing.assert_array_equal, ours, theirs)


def test_compress_misuse_is_a_one_line_error(trained_lenet, tmp_path, capsys):
    from zoo.cli.main import main

    cases = [
        (["--prune", "1.5"], "in [0, 1)"),
        (["--prune", "0.9", "--prune-layers", "conv9=0.5"], "one of the layers conv1/kernel"),
        ([], "nothing to do"),
        (["--quantize", "int3"], "choose int8, int4, binary or kmeans:N"),
        (["--quantize", "int8", "--out", str(trained_lenet)], "is inside the source"),
        (["--quantize", "int8", "--out", str(tmp_path / "y")], "already holds a run"),
    ]
    shutil.copytree(trained_lenet, tmp_path / "y")
    for args, message in cases:
        out = [] if "--out" in args else ["--out", str(tmp_path / "x")]
        code = main(["compress", "classification", "--workdir", str(trained_lenet), *args, *out])
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (args, err)


@pytest.mark.slow
def test_lenet_beats_deep_compression_within_half_a_point(tmp_path):
    """The README's claims: >= 40x on disk with <= 0.5 point drop; int8 PTQ <= 0.3 point drop."""
    source = tmp_path / "cls"
    zoo_cli("run", "classification", "--workdir", str(source), "--quiet", check=True, timeout=1200)
    zoo_cli("compress", "classification", "--workdir", str(source), "--prune", "0.92",
            "--prune-layers", "conv1=0.25,conv2=0.7,fc2=0.75", "--quantize", "kmeans:5",
            "--finetune-epochs", "8", "--finetune-lr", "2e-3", "--out", str(tmp_path / "small"),
            check=True, timeout=1200)
    report = _report(tmp_path / "small")
    assert report["total"]["ratio"] >= 40 and report["drop_points"] <= 0.5
    zoo_cli("compress", "classification", "--workdir", str(source), "--quantize", "int8",
            "--out", str(tmp_path / "int8"), check=True, timeout=1200)
    assert _report(tmp_path / "int8")["drop_points"] <= 0.3
