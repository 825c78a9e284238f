"""What a user reads: listings as JSON, help text, warnings, metric tables (issue 19).

In-process CLI calls (`zoo.cli.main.main`) with the embedded hub: no training here.
"""

import dataclasses
import io
import json
import logging
import re
import time
import tomllib
import warnings

import numpy as np
import pytest
from PIL import Image

from zoo.cli.main import main
from zoo.errors import ZooWarning

from helpers import ROOT


def _out(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured


def test_info_shows_extras_and_every_data_spec_literally(capsys):
    """Rich markup would eat `[subwords]` out of "pip install 'zoo[subwords]'"."""
    assert "pip install 'zoo[subwords]'" in _out(capsys, "info", "translation").out
    info = _out(capsys, "info", "classification").out
    assert "tsv:FILE" in info and "pip install 'zoo[hf]'" in info


def test_list_and_hub_list_print_json(capsys):
    tasks = json.loads(_out(capsys, "list", "--json").out)
    classification = next(t for t in tasks if t["task"] == "classification")
    assert "lenet" in classification["models"] and "tsv:FILE" in classification["datasets"]
    assert classification["metric"] == "accuracy"
    cards = json.loads(_out(capsys, "hub", "list", "--json", "classification/*").out)
    lenet = next(c for c in cards if c["name"] == "classification/lenet:mnist-sample")
    assert lenet["metrics"]["values"]["accuracy"] > 0.9 and lenet["cached"] in (True, False)


def test_every_imported_helper_library_is_declared():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {d.split(">")[0].split("=")[0].split("[")[0].strip().lower() for d in declared}
    assert "platformdirs" in names  # zoo/paths.py: the default $ZOO_HOME


def _digits(tmp_path, count=2):
    from zoo.data.mnist import mnist_sample

    images, labels = mnist_sample()
    paths = []
    for i in range(count):
        paths.append(tmp_path / f"digit{i}.png")
        Image.fromarray(images[i, ..., 0]).save(paths[-1])
    return paths, labels[:count]


def test_a_bare_pretrained_before_the_inputs_keeps_every_input(tmp_path, capsys):
    (first, second), labels = _digits(tmp_path)
    out = _out(capsys, "predict", "classification", "--pretrained", str(first), str(second)).out
    lines = out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == [str(first), str(second)]
    assert lines[0].startswith(f"{first}: {labels[0]} (p=")


def test_unknown_words_are_named_in_a_warning(capsys):
    out = _out(capsys, "predict", "translation", "Hello world", "two", "--pretrained")
    warning = [line for line in out.err.splitlines() if line.startswith("zoo: warning: ")]
    assert len(warning) == 1 and "'Hello', 'world'" in warning[0], out.err
    assert "'two'" not in warning[0] and out.out.strip().splitlines()[1].endswith("deux")


def test_the_python_api_warns_too():
    import zoo

    predictor = zoo.load("translation/lstm-attention")
    with pytest.warns(ZooWarning, match="'Hello'"):
        predictor.predict(["Hello three"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predictor.predict(["three"])


def test_per_class_metrics_print_as_named_rows():
    from zoo.cli.commands import _metric_lines
    from zoo.hub.publish import _card_metrics

    line = _metric_lines("test/iou_per_class", [0.91234, None, 0.5], ["bg", "0", "1"])
    assert line == "test/iou_per_class: bg 0.9123, 0 -, 1 0.5000"
    assert _metric_lines("test/ap", [0.5, 0.25]) == "test/ap: 0 0.5000, 1 0.2500"
    card = _card_metrics({"dataset": "scenes", "split": "test",
                          "metrics": {"miou": 0.8, "iou_per_class": [0.9, None]}})
    assert card["values"] == {"miou": 0.8} and card["tables"] == {"iou_per_class": [0.9, None]}


# -- pictures: each kind rendered, its size checked, and not blank -----------------------------

def _not_blank(picture: Image.Image) -> np.ndarray:
    pixels = np.asarray(picture.convert("RGB"), np.float32)
    assert pixels.std() > 10 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 8
    return pixels


@pytest.mark.parametrize("epochs, metrics, size", [
    (1, 2, (640, 240)),     # one epoch: dots, not empty axes
    (20, 2, (640, 240)),
    (5, 10, (1280, 720)),   # the GAN's ten curves: a 4-wide grid, not a 3200-pixel strip
])
def test_curves_read_at_a_glance(tmp_path, epochs, metrics, size):
    from zoo.harness.reports import plot_curves

    history = [{"epoch": e, "iou_per_class": [0.5, None],
                **{f"train/m{j}": 1 / (e + j) for j in range(metrics)}, "val/m0": 0.9 / e}
               for e in range(1, epochs + 1)]
    plot_curves(history, tmp_path / "curves.png")
    picture = Image.open(tmp_path / "curves.png")
    assert picture.size == size
    pixels = _not_blank(picture)
    blue = (np.abs(pixels - [31, 119, 180]).sum(-1) < 40).sum()  # matplotlib's first colour
    assert blue > 20 * epochs, "the train curve (or its one-epoch dot) is drawn"


def test_boxes_on_a_tiny_input_are_drawn_large_with_captions_outside():
    from zoo.data.draw import draw_boxes

    image = np.full((32, 32, 3), 255, np.uint8)
    image[10:26, 12:24] = 0  # the "digit"
    picture = draw_boxes(image, np.array([[10.0, 8.0, 26.0, 28.0]]), [7], ["7 0.93"])
    assert picture.size == (256, 256)
    pixels = _not_blank(picture)
    digit = pixels[8 * 10 + 4:8 * 26 - 4, 8 * 12 + 4:8 * 24 - 4]
    assert (digit == 0).all(), "the caption is drawn outside the box, not over the object"


def test_segmentation_overlay_has_a_legend_of_its_classes():
    from zoo.data.draw import overlay_mask, palette

    image = np.zeros((32, 32), np.uint8)
    mask = np.zeros((32, 32), np.uint8)
    mask[4:12, 4:12], mask[20:28, 20:28] = 3, 8
    picture = overlay_mask(image, mask, [str(c) for c in range(11)])
    assert picture.height == 256 and picture.width > 256 + 40  # 8x, and the legend beside it
    legend = _not_blank(picture)[:, 256:]
    for cls in (3, 8):
        assert (np.abs(legend - palette()[cls]).sum(-1) == 0).sum() > 50, cls
    assert (np.abs(legend - palette()[5]).sum(-1) == 0).sum() == 0, "only classes present"


# -- TensorBoard: read back with TensorBoard's own event reader --------------------------------

@pytest.fixture(scope="module")
def spirals_run(tmp_path_factory, spirals):
    """The example plugin trained for 3 short epochs (10 steps each) with scalars every 4 steps."""
    from zoo.config import apply_overrides
    from zoo.harness.trainer import fit

    workdir = tmp_path_factory.mktemp("spirals")
    config = apply_overrides(spirals.Config(), ["points=640", "train.epochs=3",
                                                "train.log_every=4", "early_stopping.patience=0"])
    result = fit(spirals(config), workdir, quiet=True)
    return workdir, config, result


def test_tensorboard_holds_train_curves_lr_epoch_means_test_and_hparams(spirals_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    from zoo.harness.optim import make_schedule

    workdir, config, result = spirals_run
    events = EventAccumulator(str(workdir / "tb"))
    events.Reload()
    steps = lambda tag: [e.step for e in events.Scalars(tag)]  # noqa: E731
    assert steps("train/loss") == [4, 8, 12, 16, 20, 24, 28]  # global steps, across epochs
    schedule = make_schedule(config.optimizer, 30, 10)
    for event in events.Scalars("train/lr"):  # the rate the logged step trained with
        assert event.value == pytest.approx(float(schedule(event.step - 1)), rel=1e-5)
    assert steps("train_epoch/loss") == steps("val/accuracy") == [10, 20, 30]
    history = [json.loads(line) for line in (workdir / "history.jsonl").read_text().splitlines()]
    assert [e.value for e in events.Scalars("train_epoch/loss")] == pytest.approx(
        [row["train/loss"] for row in history], rel=1e-5)
    (test,) = events.Scalars("test/accuracy")
    assert test.step == 30 and test.value == pytest.approx(result["metrics"]["accuracy"])
    content = events.PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    names = {h.name for h in experiment.experiment.hparam_infos}
    assert {"optimizer.lr", "train.batch_size", "points"} <= names
    assert "test/accuracy" in {m.name.tag for m in experiment.experiment.metric_infos}
    start = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["optimizer.lr"].number_value == pytest.approx(config.optimizer.lr)


# -- long silences: phases said as they start, plain progress lines, train.log ------------------

def test_train_log_holds_every_phase_whatever_stdout_is(spirals_run):
    workdir, _, _ = spirals_run
    lines = (workdir / "train.log").read_text().splitlines()
    said = [line.split(" ", 2)[2] for line in lines]  # after the date and time
    starts = [i for i, line in enumerate(said) if line.endswith(" ...")]
    assert [said[i] for i in starts[:2]] == [
        "loading data spirals ...", "building mlp and compiling 2 program(s) ..."]
    assert re.fullmatch(r"testing the best checkpoint \(epoch [123]\) on 160 examples \.\.\.",
                        said[starts[2]]) and len(starts) == 3
    assert said[starts[0] + 1].startswith("loading data spirals: 640/160/160 train/val/test "
                                          "examples in ")
    assert [line.split(" ")[1] for line in said if line.startswith("epoch ")] == ["1/3", "2/3", "3/3"]
    assert said[-1].startswith("test: accuracy=")


def test_piped_progress_prints_plain_lines_with_an_eta(capsys):
    from zoo.harness.progress import EpochProgress

    progress = EpochProgress(2, plain_every=0.0, announce_after=0.0)  # not a TTY under pytest
    progress.start_epoch(0, steps=10)
    for step in range(1, 5):
        progress.advance(step, step * 32, {"loss": 0.5} if step == 2 else None)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 4 and lines[3].startswith("epoch 1/2 step 4/10 (")
    assert "eta " in lines[3] and lines[3].endswith("loss=0.5")
    with progress.evaluating("val", 3) as tick:  # no bar when piped; ticking is harmless
        tick()
    with progress.phase("compiling") as outcome:
        time.sleep(0.1)  # the start is said once the phase has taken announce_after seconds
        outcome.append("2 programs")
    assert capsys.readouterr().err.splitlines() == ["compiling ...", "compiling: 2 programs in 0.1s"]
    quick = EpochProgress(2)
    with quick.phase("loading data"):  # a quick phase says nothing (nor before a refusal)
        pass
    assert capsys.readouterr().err == ""


# -- small images: upsampled to the model's least input, or refused with one line ---------------

def test_digits_are_upsampled_for_lenet_with_a_warning():
    from flax import nnx

    from zoo.config import apply_overrides
    from zoo.registry import get_task

    task_cls = get_task("classification")
    task = task_cls(apply_overrides(task_cls.Config(), ["data=digits"]))
    with pytest.warns(ZooWarning, match=r"8x8, smaller than lenet's least input: upsampled to 16x16"):
        data = task.load_data()
    assert tuple(data.info["input_shape"]) == (16, 16, 1)
    assert data.splits["train"]["image"].shape[1:] == (16, 16, 1)
    model = nnx.eval_shape(lambda: task.build_model(data.info, nnx.Rngs(0)))
    out = nnx.eval_shape(lambda m: m(data.splits["train"]["image"][:2].astype(np.float32)), model)
    assert out.shape == (2, 10)
    mlp = task_cls(apply_overrides(task_cls.Config(), ["data=digits", "model=mlp"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tuple(mlp.load_data().info["input_shape"]) == (8, 8, 1)  # any size: as it is


@pytest.mark.parametrize("size", ["8", "12"])
def test_an_explicit_size_below_the_models_least_is_one_line(capsys, tmp_path, size):
    from helpers import cli_error

    line = cli_error(capsys, "run", "classification", "--set", f"image_size={size}",
                     "--workdir", str(tmp_path / "w"))
    assert f"image_size={size} is smaller than lenet's least input, 16x16" in line
    assert "--set image_size=16" in line and not (tmp_path / "w").exists()



def test_data_made_on_a_first_run_is_said_with_counts(capsys):
    """Scenes generated for the first time: each split's count, then the cached file."""
    import uuid

    from zoo.data.scenes import SceneConfig, load_scenes
    from zoo.harness.progress import EpochProgress

    from zoo.data.mnist import mnist_sample

    mnist_sample()  # the digits scenes are drawn from, cached before
    seed = uuid.uuid4().int % 10**6  # a configuration the session's cache has not seen
    config = SceneConfig(canvas=32, max_digits=2, train=5, val=2, test=3, seed=seed)
    progress = EpochProgress(1, announce_after=0.0)
    root = logging.StreamHandler(io.StringIO())  # as importing orbax adds one to stderr
    logging.getLogger().addHandler(root)
    try:
        with progress.relaying(), progress.phase("loading data"):
            time.sleep(0.1)  # announced: the notes follow the start line
            load_scenes(config)
    finally:
        logging.getLogger().removeHandler(root)
    assert root.stream.getvalue() == ""  # said once, by the relay, not twice
    lines = capsys.readouterr().err.splitlines()[1:-1]  # between the phase's two lines
    assert lines[0].startswith("making scenes-") and "(the first time only: cached in" in lines[0]
    assert lines[1:4] == ["generated train: 5 scenes (1 of 3 splits)",
                          "generated val: 2 scenes (2 of 3 splits)",
                          "generated test: 3 scenes (3 of 3 splits)"]
    assert lines[4].startswith("made scenes-") and " MB in " in lines[4]
    quick = EpochProgress(1)
    with quick.relaying(), quick.phase("loading data"):
        load_scenes(dataclasses.replace(config, seed=seed + 1))  # quick: said only in the log
        load_scenes(config)  # from the cache: nothing to say
    assert capsys.readouterr().err == ""


def test_a_log_file_that_cannot_be_written_never_stops_the_run(tmp_path, capsys):
    from zoo.harness.progress import EpochProgress

    class FullDisk:
        def write(self, text):
            raise OSError(28, "No space left on device")

        def close(self):
            raise OSError(28, "No space left on device")

    progress = EpochProgress(1)
    with progress.writing_log(tmp_path / "train.log"):
        progress.log("before")
        progress.keep_log()
        progress._file.close()
        progress._file = FullDisk()  # the disk fills up
        progress.log("during")
        progress.log("after")
    assert capsys.readouterr().err.splitlines() == ["before", "during", "after"]
    assert (tmp_path / "train.log").read_text().endswith(" before\n")
