"""Pretrained weights end to end: weight files, publish -> serve -> pull -> eval, the
embedded hub's claims, and `--pretrained` in predict, eval and run."""

import importlib.metadata
import json
import os
import pathlib
import pickle
import subprocess
import sys

import numpy as np
import pytest
from flax import nnx
from PIL import Image

from zoo import registry, restore
from zoo.cli.main import main
from zoo.config import apply_overrides
from zoo.data import mnist
from zoo.errors import ZooError
from zoo.harness.trainer import fit
from zoo.hub import index, pretrained
from zoo.hub.publish import publish
from zoo.io import weights
from zoo.models import MLP, LeNet
from zoo.models.initialise import initialised

from helpers import EXAMPLE_PLUGIN, zoo_cli
from hub_server import HubServer

EMBEDDED = index.load(str(index.EMBEDDED))


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    for name in ("ZOO_HUB", "ZOO_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "home"


def test_weights_round_trip_and_a_new_head_reinitialises_only_the_head(tmp_path):
    source = initialised(lambda rngs: LeNet((28, 28, 1), 10, rngs=rngs), nnx.Rngs(0))
    weights.save(tmp_path / "w.safetensors", weights.arrays(nnx.state(source)), {})
    loaded = weights.load(tmp_path / "w.safetensors")
    target = initialised(lambda rngs: LeNet((28, 28, 1), 3, rngs=rngs), nnx.Rngs(1))
    fresh_head = np.asarray(target.fc2.kernel[...])
    report = weights.load_into(nnx.state(target), loaded, strict=False)
    assert list(report.reinitialised) == ["fc2"] and len(report.loaded) == 6
    assert "re-initialised fc2 (bias (10,) -> (3,), kernel (500, 10) -> (500, 3))" in str(report)
    for layer in ("conv1", "conv2", "fc1"):
        loaded_kernel = getattr(target, layer).kernel[...]
        assert np.array_equal(loaded_kernel, getattr(source, layer).kernel[...])
    assert np.array_equal(target.fc2.kernel[...], fresh_head)
    with pytest.raises(ZooError, match="do not fit this model.*fc2"):
        weights.load_into(nnx.state(target), loaded, strict=True)
    mlp = initialised(lambda rngs: MLP((28, 28, 1), 10, rngs=rngs), nnx.Rngs(1))
    with pytest.raises(ZooError, match="do not fit this model: loaded 0 of"):  # even to fine-tune
        weights.load_into(nnx.state(mlp), loaded, strict=False)


def test_pretrained_and_model_must_agree():
    with pytest.raises(ZooError, match="lenet weight but --model is mlp"):
        pretrained.find("classification", "lenet", model="mlp")


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def test_a_pickle_posing_as_weights_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(_RunsCode(marker)))
    with pytest.raises(ZooError, match="not a readable safetensors weights file"):
        weights.load(path)
    assert not marker.exists()


def test_publish_serve_pull_and_eval_reproduces_the_card(tmp_path, monkeypatch):
    """Any task publishes with one call; a static server of the folder is a working hub."""
    with registry.temporary_registry():
        registry.load_plugin_file(EXAMPLE_PLUGIN)
        spirals = registry.get_task("spirals")
        task = spirals(apply_overrides(spirals.Config(), ["points=1000", "train.epochs=3"]))
        fit(task, tmp_path / "run", quiet=True)
        run = restore.from_workdir(tmp_path / "run")
        card = publish(run, tmp_path / "hub", "v1", license="MIT")
        with pytest.raises(ZooError, match="already has spirals/mlp:v1.*--force"):
            publish(run, tmp_path / "hub", "v1")
        assert card.urls == ("spirals/mlp-v1.safetensors",) and card.license == "MIT"
        assert card.metrics["dataset"] == "spirals" and card.metrics["split"] == "test"
        assert card.params == 2 * 64 + 64 + 64 * 64 + 64 + 64 * 2 + 2
        assert card.plugin == {"file": str(EXAMPLE_PLUGIN.resolve())}  # from run.json
        server = HubServer()
        try:
            server.add_folder(tmp_path / "hub", "/zoo")
            monkeypatch.setenv("ZOO_HUB", server.url + "/zoo")
            restored = restore.from_hub("spirals", "mlp:v1")
            assert restored.card == card
            metrics = restored.evaluate("test")
        finally:
            server.stop()
    assert metrics["accuracy"] == pytest.approx(card.metrics["values"]["accuracy"], abs=1e-6)
    assert len(server.requests_for("/zoo/spirals/mlp-v1.safetensors")) == 1


def _reproducible(card):
    """A card as a test case. Each evaluates a whole test split (the GAN's sample and judge
    1,000 digits, the face tasks' first draw 10,000 faces): 10-45 CPU-s a card, so the
    default suite reproduces LeNet's and `-m slow` every other."""
    slow = card.task != "classification"
    return pytest.param(card, id=card.name, marks=[pytest.mark.slow] if slow else [])


# The ImageNet cards (layout timm) point at timm's files online: test_imagenet_models.py.
@pytest.mark.parametrize("card", [_reproducible(card) for card in EMBEDDED.cards
                                  if card.layout == "zoo"])
def test_embedded_cards_reproduce_their_metrics_offline(card, capsys, monkeypatch):
    """`zoo eval TASK --pretrained` in this process (a fresh one per card would pay JAX's
    import each time)."""
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    assert main(["eval", card.task, "--pretrained", f"{card.model}:{card.tag}", "--split",
                 card.metrics["split"], "--json"]) == 0
    measured, claimed = json.loads(capsys.readouterr().out), card.metrics["values"]
    assert claimed and card.metrics["dataset"] == card.config["data"]
    for name, value in claimed.items():
        assert measured[name] == pytest.approx(value, rel=0.01, abs=0.002), name


def test_embedded_lenet_card():
    card = EMBEDDED.find("classification", "lenet", "mnist-sample")
    assert card.metrics["values"]["accuracy"] >= 0.98 and card.size < 2_000_000


def test_every_built_in_task_has_an_embedded_weight():
    built_in = [ep.name for ep in importlib.metadata.entry_points(group=registry.ENTRY_POINT_GROUP)
                if ep.value.startswith("zoo_tasks.")]
    missing = sorted(set(built_in) - {card.task for card in EMBEDDED.cards})
    assert not missing, (f"publish a weight for {missing}: zoo run TASK --workdir runs/TASK && "
                         f"zoo publish runs/TASK --hub zoo/hub/embedded --tag TAG (docs/hub.md)")


def _digits(folder, labels_wanted, per_class):
    images, labels = mnist.mnist_sample()
    for label in labels_wanted:
        (folder / str(label)).mkdir(parents=True)
        for i in np.flatnonzero(labels == label)[:per_class]:
            Image.fromarray(images[i, ..., 0]).save(folder / str(label) / f"{i}.png")


def test_predict_with_pretrained_weights_offline(tmp_path):
    _digits(tmp_path, [3, 7], per_class=1)
    three, seven = (next((tmp_path / d).iterdir()) for d in ("3", "7"))
    result = zoo_cli("predict", "classification", str(three), str(seven), "--pretrained",
                     env={"ZOO_OFFLINE": "1"}, check=True)
    predicted = [line.split(": ")[1].split(" ")[0] for line in result.stdout.splitlines()]
    assert predicted == ["3", "7"]


def test_fine_tune_with_a_new_head_reinitialises_only_the_head(tmp_path):
    _digits(tmp_path / "digits", [0, 1, 2], per_class=12)
    result = zoo_cli("run", "classification", "--pretrained", "--data",  # no image_size:
                     f"folder:{tmp_path / 'digits'}", "--epochs", "1", "--batch-size", "8",
                     "--set", "train.eval_batch_size=8", "--workdir", str(tmp_path / "run"),
                     env={"ZOO_OFFLINE": "1"}, check=True)  # the card's 28x28x1 is applied
    log = " ".join(result.stderr.split())  # rich wraps long lines when not on a terminal
    assert ("fine-tuning from classification/lenet:mnist-sample: your images are resized to "
            "its 28x28x1 inputs") in log
    assert ("initialised from pretrained weights: loaded 6 of 8 variables; re-initialised fc2 "
            "(bias (10,) -> (3,), kernel (500, 10) -> (500, 3))") in log
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["info"]["classes"] == ["0", "1", "2"] and run["config"]["model"] == "lenet"
    assert tuple(run["info"]["input_shape"]) == (28, 28, 1)


def test_hub_list_and_pull_load_no_jax(home):
    listed = zoo_cli("hub", "list", check=True).stdout
    assert "classification/lenet:mnist-sample" in listed and "1.7 MB" in listed
    assert "accuracy 0.987" in listed and "(mnist-sample test)" in listed
    code = ("import sys; from zoo.cli.main import main; main(['pull', 'classification/lenet']);"
            "print('jax' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "ZOO_OFFLINE": "1"}, check=True)
    path_line, jax_loaded = result.stdout.splitlines()
    assert path_line.startswith("classification/lenet:mnist-sample: " + str(home))
    assert "verified" in path_line and jax_loaded == "False"


@pytest.mark.parametrize("args, message", [
    (["pull", "classification/lenett"], "did you mean 'lenet'"),
    (["pull", "spirals", "--plugin", str(EXAMPLE_PLUGIN)], "no published weights for task 'spirals'"),
    (["eval", "classification", "--pretrained", "--workdir", "x"], "drop --workdir"),
    (["publish", "/nonexistent/run", "--hub", "h", "--tag", "v1"], "no such run directory"),
])
def test_hub_misuse_is_one_line_exit_2(args, message, capsys):
    """In this process (test_cli checks a real process's exit code); a --plugin it loads
    is registered for the case only."""
    with registry.temporary_registry():
        assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
