"""Face attributes: metrics and thresholds, the CelebA layout, a short run, predict."""

import json

import numpy as np
import pytest
from PIL import Image

import zoo.testing
from zoo.data import faces
from zoo.errors import ZooError
from zoo.harness.trainer import fit
from zoo.registry import get_task
from zoo.restore import from_workdir
from zoo_tasks.attributes import AttributesConfig, AttributesTask, data
from zoo_tasks.attributes.metrics import AttributeMetrics
from zoo_tasks.attributes.results import Attributes

from helpers import cli_error, latest_params

NAMES = ["Smiling", "Wearing_Hat"]


def _metrics(probs, labels, thresholds=(0.5, 0.5)):
    metrics = AttributeMetrics(NAMES)
    probs, labels = np.asarray(probs, np.float32), np.asarray(labels, np.uint8)
    mask = np.ones(len(probs), np.float32)
    metrics.update({"attributes": labels, "mask": np.append(mask[:-1], 0.0)},
                   {"probability": probs, "threshold": np.tile(thresholds, (len(probs), 1)),
                    "loss": 1.0, "count": len(probs) - 1.0})
    return metrics


def test_metrics_score_the_model_thresholds_then_the_chosen_ones():
    probs = [[0.9, 0.2], [0.4, 0.6], [0.3, 0.1], [0.35, 0.7], [0.99, 0.99]]  # last row: padding
    labels = [[1, 0], [1, 1], [0, 0], [0, 1], [0, 0]]
    metrics = _metrics(probs, labels)
    result = metrics.compute()
    smiling = result["per_attribute"]["Smiling"]
    # at 0.5: only 0.9 called: accuracy 3/4, F1 2*1/(2*1+1); AP of [.9,.4 | .3,.35] = 1.0
    assert smiling == pytest.approx({"ap": 1.0, "accuracy": 0.75, "f1": 2 / 3, "threshold": 0.5,
                                     "positives": 0.5})
    assert result["per_attribute"]["Wearing_Hat"]["accuracy"] == 1.0
    assert result["mean_accuracy"] == pytest.approx(0.875) and result["loss"] == pytest.approx(0.25)
    chosen = metrics.choose_thresholds("f1")
    assert chosen[0] == pytest.approx((0.4 + 0.35) / 2)  # calls 0.9 and 0.4, not 0.35
    assert metrics.compute()["per_attribute"]["Smiling"]["f1"] == 1.0


def _celeba(root, rows=None, partition=None, count=None):
    """A tiny CelebA layout: 6 images of 22x18 pixels, two attributes."""
    root.mkdir(exist_ok=True)
    rows = rows or [f"{i:06d}.jpg  {1 if i % 2 else -1} {-1 if i % 3 else 1}" for i in range(1, 7)]
    partition = partition or [f"{i:06d}.jpg {(i - 1) // 2}" for i in range(1, 7)]
    (root / "list_attr_celeba.txt").write_text(
        f"{count if count is not None else len(rows)}\nSmiling Wearing_Hat \n" + "\n".join(rows) + "\n")
    (root / "list_eval_partition.txt").write_text("\n".join(partition) + "\n")
    (root / "img_align_celeba").mkdir(exist_ok=True)
    for i in range(1, 7):
        pixels = np.full((22, 18, 3), 40 * i, np.uint8)
        Image.fromarray(pixels).save(root / "img_align_celeba" / f"{i:06d}.jpg")
    return root


def test_celeba_layout_reads_attributes_partitions_and_centre_squares(tmp_path):
    dataset = data.load(f"celeba:{_celeba(tmp_path / 'celeba')}", faces.FaceConfig(), 8, 1.0)
    assert dataset.info["attributes"] == ["Smiling", "Wearing_Hat"]
    assert [dataset.size(s) for s in ("train", "val", "test")] == [2, 2, 2]
    assert dataset.splits["val"]["image"].shape == (2, 8, 8, 3)
    np.testing.assert_array_equal(dataset.splits["train"]["attributes"], [[1, 0], [0, 0]])
    np.testing.assert_array_equal(dataset.splits["test"]["attributes"], [[1, 0], [0, 1]])
    assert abs(int(dataset.splits["test"]["image"][1, 4, 4, 0]) - 240) <= 3  # image 6


BAD_CELEBA = {
    "count": (dict(count=7), "list_attr_celeba.txt: line 1 announces 7 images but 6"),
    "short row": (dict(rows=["000001.jpg 1"] + [f"{i:06d}.jpg 1 1" for i in range(2, 7)]),
                  "list_attr_celeba.txt:3: 2 fields, expected a file name and 2 values"),
    "value": (dict(rows=["000001.jpg 0 1"] + [f"{i:06d}.jpg 1 1" for i in range(2, 7)]),
              "list_attr_celeba.txt:3: attribute values must be -1 or 1"),
    "partition": (dict(partition=["000001.jpg 3"]), "list_eval_partition.txt:1: expected 'FILE 0|1|2'"),
    "unpartitioned": (dict(partition=["000001.jpg 0"]), "no partition for 000002.jpg"),
}


@pytest.mark.parametrize("case", BAD_CELEBA)
def test_bad_celeba_layouts_are_one_line_errors(tmp_path, capsys, case):
    kwargs, message = BAD_CELEBA[case]
    root = _celeba(tmp_path / "celeba", **kwargs)
    line = cli_error(capsys, "run", "attributes", "--data", f"celeba:{root}",
                     "--workdir", str(tmp_path / "run"))
    assert message in line
    assert not (tmp_path / "run").exists()


def test_missing_celeba_files_are_named(tmp_path, capsys):
    root = _celeba(tmp_path / "celeba")
    (root / "img_align_celeba" / "000004.jpg").unlink()
    with pytest.raises(ZooError, match="000004.jpg: no such image file"):
        data.load(f"celeba:{root}", faces.FaceConfig(), 8, 1.0)
    (root / "list_eval_partition.txt").unlink()
    assert "list_eval_partition.txt: missing" in cli_error(capsys, "run", "attributes", "--data",
                                                           f"celeba:{root}")


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """The smoke config trained: 6 epochs on 800 faces of 24x24 pixels (shared, read
    only; the conformance test compiles the same steps, so one of the two finds them in
    the session's compilation cache)."""
    workdir = tmp_path_factory.mktemp("attributes")
    return workdir, fit(AttributesTask(AttributesConfig.smoke()), workdir, quiet=True)


def test_a_short_run_beats_chance_and_keeps_its_thresholds(trained):
    workdir, result = trained
    metrics = result["metrics"]
    chance = np.mean([a["positives"] for a in metrics["per_attribute"].values()])
    # Untrained, the mean AP is about the positives' rate; six short epochs gave 0.42 at a
    # chance of 0.28 (the margin a seeded order's luck moves by a few hundredths).
    assert metrics["mean_ap"] > chance + 0.10, (metrics["mean_ap"], chance)
    thresholds = latest_params(workdir, "best")["/thresholds"]
    reported = [a["threshold"] for a in metrics["per_attribute"].values()]
    np.testing.assert_allclose(thresholds, reported, rtol=1e-6)
    assert not np.allclose(thresholds, 0.5)  # chosen on validation, not the initial 0.5
    again = from_workdir(workdir, "attributes").evaluate()
    assert again["mean_f1"] == pytest.approx(metrics["mean_f1"], abs=1e-6)


def test_predict_lists_every_attribute_with_its_decision(trained, tmp_path, capsys):
    from zoo.cli.main import main

    workdir, _ = trained
    image = faces.generate(faces.FaceConfig(train=1, val=1, test=1, photos=1), "test", 24)["image"][0]
    Image.fromarray(image).resize((96, 96)).save(tmp_path / "face.png")
    predict = ["predict", "attributes", str(tmp_path / "face.png"), "--workdir", str(workdir)]
    assert main(predict) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{tmp_path / 'face.png'}:" and len(lines) == 1 + len(faces.ATTRIBUTES)
    assert lines[1].split()[0] == "Bald" and lines[1].split()[2] in ("yes", "no")
    assert main([*predict, "--sort"]) == 0
    probabilities = [float(line.split()[1]) for line in capsys.readouterr().out.splitlines()[1:]]
    assert probabilities == sorted(probabilities, reverse=True)
    assert main([*predict, "--json"]) == 0
    readings = json.loads(capsys.readouterr().out)[0]["attributes"]
    restored = from_workdir(workdir, "attributes")
    model = restored.inference_model()
    assert [r["threshold"] for r in readings] == pytest.approx(np.asarray(model.thresholds[...]))
    assert all(r["present"] == (r["probability"] >= r["threshold"]) for r in readings)
    zoo.testing.check_predictions(restored.task, model, restored.info)
    face = np.asarray(Image.open(tmp_path / "face.png"))
    (typed,) = restored.task.predict(model, restored.info, [face])
    assert isinstance(typed, Attributes) and typed.to_json()["attributes"] == readings


def test_unknown_data_set_suggests():
    with pytest.raises(ZooError, match="did you mean 'faces'"):
        get_task("attributes")(AttributesConfig(data="face")).load_data()


@pytest.mark.slow
def test_default_run_reaches_the_target(tmp_path):
    result = fit(AttributesTask(), tmp_path, quiet=True)
    assert result["metrics"]["mean_ap"] >= 0.95
