"""Classification end to end through the CLI, its data sources and its bad input.

The commands run in this process (a fresh interpreter costs 3-9 CPU-s of JAX import);
test_cli checks a real `zoo` process's exit code and output."""

import json

import numpy as np
import pytest
from PIL import Image

from zoo.cli.main import main
from zoo.data import mnist
from zoo.data.image_sets import load_image_set
from zoo.errors import ZooError

from helpers import EXAMPLE_PLUGIN, cli_error, zoo_cli, zoo_here


def _digit_png(path, index=0, invert=False):
    images, labels = mnist.mnist_sample()
    image = images[index, ..., 0]
    Image.fromarray(255 - image if invert else image).resize((56, 56)).save(path)
    return int(labels[index])


def test_short_training_learns(trained_lenet):
    metrics = json.loads((trained_lenet / "metrics.json").read_text())
    assert metrics["metrics"]["accuracy"] > 0.85  # chance is 0.10
    assert metrics["epochs"] == 3 and metrics["dataset"] == "mnist-sample"


def test_eval_reproduces_the_test_metrics(trained_lenet, capsys):
    zoo_here("eval", "classification", "--workdir", str(trained_lenet), "--json")
    stored = json.loads((trained_lenet / "metrics.json").read_text())["metrics"]
    assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(stored["accuracy"])


def test_predict_prints_top_k_with_probabilities(trained_lenet, tmp_path, capsys):
    dark = _digit_png(tmp_path / "dark.png", index=0)
    light = _digit_png(tmp_path / "light.jpg", index=0, invert=True)  # black on white, RGB
    assert dark == light
    zoo_here("predict", "classification", str(tmp_path / "dark.png"),
             str(tmp_path / "light.jpg"), "--workdir", str(trained_lenet), "--top-k", "3")
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    for line in lines:
        ranked = line.split(": ", 1)[1].split(", ")
        assert len(ranked) == 3
        assert ranked[0].startswith(f"{dark} (p=")
        probs = [float(r.split("p=")[1].rstrip(")")) for r in ranked]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.001


@pytest.mark.parametrize("content, message", [
    (b"", "empty file, not an image"),
    (b"not an image at all", "not a readable image (corrupt, or an unsupported format)"),
])
def test_predict_bad_image_is_a_one_line_error(trained_lenet, tmp_path, capsys, content,
                                               message):
    """In this process: the command's exit code and its one line, without paying a fresh
    interpreter's JAX import per case (test_cli checks a real process's exit code)."""
    bad = tmp_path / "bad.png"
    bad.write_bytes(content)
    assert main(["predict", "classification", str(bad), "--workdir", str(trained_lenet)]) == 2
    assert capsys.readouterr().err.strip() == f"zoo: error: {bad}: {message}"


def test_truncated_png_is_refused(trained_lenet, tmp_path, capsys):
    good = tmp_path / "good.png"
    _digit_png(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:60])
    assert main(["predict", "classification", str(truncated), "--workdir",
                 str(trained_lenet)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(truncated) in err


def test_workdir_of_another_task_is_refused(trained_lenet, capsys):
    error = cli_error(capsys, "eval", "spirals", "--plugin", str(EXAMPLE_PLUGIN),
                      "--workdir", str(trained_lenet))
    assert "holds a 'classification' run, not 'spirals'" in error


def _folder(root, classes, per_class=4, size=(20, 30), mode="RGB"):
    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
            Image.fromarray(pixels).convert(mode).save(root / name / f"{i}.png")


def test_image_folder_loads_resized_three_way_split(tmp_path):
    _folder(tmp_path, ["cat", "dog"], per_class=10, mode="L")
    ds = load_image_set(f"folder:{tmp_path}", image_size=16, channels=3)
    assert ds.info["classes"] == ["cat", "dog"] and ds.info["input_shape"] == [16, 16, 3]
    sizes = [ds.size(s) for s in ("train", "val", "test")]
    assert sum(sizes) == 20 and min(sizes) >= 1


@pytest.mark.parametrize("classes, per_class, message", [
    (["only"], 3, "needs at least two"),
    (["a", "b"], 0, "has no images"),
])
def test_bad_image_folder_is_explained(tmp_path, classes, per_class, message):
    _folder(tmp_path, classes, per_class=per_class)
    with pytest.raises(ZooError, match=message):
        load_image_set(f"folder:{tmp_path}", image_size=16, channels=3)


@pytest.mark.slow  # ~30 CPU-s; folder streaming is checked by test_streaming, the ResNet by test_models
def test_cli_run_on_a_folder_with_resnet(tmp_path):
    _folder(tmp_path / "imgs", ["a", "b", "c"], per_class=12)
    zoo_here("run", "classification", "--model", "resnet", "--data", f"folder:{tmp_path / 'imgs'}",
             "--epochs", "1", "--batch-size", "8", "--set", "train.eval_batch_size=8",
             "--workdir", str(tmp_path / "run"), "--quiet")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["model"] == "resnet" and 0 <= metrics["metrics"]["accuracy"] <= 1


def test_unknown_dataset_suggests(tmp_path):
    with pytest.raises(ZooError, match="did you mean 'mnist-sample'"):
        load_image_set("mnist-sampel", 0, 0)


@pytest.mark.slow
def test_default_run_reaches_98_percent(tmp_path):
    """The README's claim: a fresh `zoo run classification` reaches >= 98% test accuracy."""
    zoo_cli("run", "classification", "--workdir", str(tmp_path), "--quiet", check=True,
            timeout=600)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["metrics"]["accuracy"] >= 0.98
