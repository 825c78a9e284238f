"""The ImageNet families: conversion from timm's and torchvision's layouts checked
against their own outputs (committed fixtures, see tests/upstream.py), importing,
ImageNet cards and class lists, pull -> convert -> predict and eval through a loopback
hub, freezing a backbone, ImageNet backbones under detection and segmentation, and
fine-tuning from converted weights.

The default suite checks one member of each family (resnet18, vit-s16 on a 4x4 patch
grid, mobilenetv3-large from timm and from torchvision) at 64x64; the deeper twins run
the same code and are `slow`. Models whose every weight is loaded are built abstractly
(`upstream.loaded`), and the loopback hub is shared by the module.
"""

import hashlib
import json
import sys
import types

import jax
import numpy as np
import pytest
from flax import nnx
from PIL import Image

import upstream
from hub_server import HubServer, Route
from zoo import restore
from zoo.cli.main import main
from zoo.config import apply_overrides, to_dict
from zoo.data import class_lists
from zoo.errors import ZooError
from zoo.harness.optim import make_run_optimizer
from zoo.hub import importer, index
from zoo.hub.card import Card
from zoo.io import weights
from zoo.models.conv import Conv
from zoo.models.convert import fit_to_model
from zoo.registry import get_task

DEFAULT_CASES = ("resnet18", "vit-s16", "mobilenetv3-large", "torchvision-mobilenetv3-large")
IMAGENET = class_lists.get("imagenet-1k")


@pytest.mark.parametrize("case", [
    pytest.param(case, marks=[] if case in DEFAULT_CASES else [pytest.mark.slow])
    for case in upstream.CASES])
def test_converted_weights_reproduce_upstream_logits_and_feature_maps(case):
    state = upstream.random_state(upstream.manifest(case))
    logits, features = upstream.zoo_outputs(case, state, upstream.model_inputs(upstream.photos()))
    expected = upstream.reference(case)
    assert np.abs(logits - expected["logits"]).max() <= upstream.TOLERANCE
    assert np.ptp(expected["logits"]) > 0.2  # logits that differ: the check is not vacuous
    for name, value in features.items():
        assert np.abs(value - expected[name]).max() <= upstream.TOLERANCE, name


def _timm_dir(folder, model="resnet18"):
    """A folder as timm publishes it: model.safetensors (random weights) + config.json,
    for SIZE x SIZE inputs fed whole (crop_pct 1)."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file(upstream.random_state(upstream.manifest(model)), str(folder / "model.safetensors"),
              metadata={"format": "pt"})
    cfg = {"input_size": [3, upstream.SIZE, upstream.SIZE], "crop_pct": 1.0,
           "interpolation": "bicubic", "mean": list(importer.IMAGENET_MEAN),
           "std": list(importer.IMAGENET_STD), "license": "apache-2.0"}
    (folder / "config.json").write_text(json.dumps(
        {"architecture": upstream.TIMM_NAMES[model], "num_classes": 1000, "pretrained_cfg": cfg}))
    return folder


@pytest.fixture(scope="module")
def loopback_hub(tmp_path_factory):
    """A hub whose `classification/resnet18:imagenet` card points at a file in timm's
    own layout (random weights), sha256 pinned, as the embedded ImageNet cards do."""
    files = _timm_dir(tmp_path_factory.mktemp("upstream"))
    up = importer.read("timm:resnet18.test", directory=files)
    card = importer.upstream_card(up, "resnet18.test", "imagenet", size=None)
    raw = (files / "model.safetensors").read_bytes()
    entry = {**card.to_json(), "urls": ["timm/resnet18.test/model.safetensors"]}
    mlp, mlp_raw = _one_class_mlp_card(tmp_path_factory.mktemp("mlp") / "mlp.safetensors")
    server = HubServer()
    server.routes["/hub/index.json"] = Route(json.dumps(
        {"format": 2, "entries": [entry, mlp.to_json()]}).encode())
    server.routes["/hub/timm/resnet18.test/model.safetensors"] = Route(raw)
    server.routes["/hub/mlp.safetensors"] = Route(mlp_raw)
    yield types.SimpleNamespace(url=server.url + "/hub", server=server, card=card, raw=raw,
                                entry=entry, upstream=up)
    server.stop()


ONE_CLASS = 56  # "king snake": what the one-class MLP card predicts for every image


def _one_class_mlp_card(path):
    """`classification/mlp:imagenet-one-class`: a 1,000-way MLP whose only nonzero
    weight is the bias of class ONE_CLASS, so it predicts that class for any image (a
    card that evaluates in a second, whose right answers are known)."""
    task_cls = get_task("classification")
    config = apply_overrides(task_cls.Config(), ["model=mlp", "data=imagenet-1k",
                                                 "image_size=8", "channels=3"])
    info = {"classes": list(IMAGENET.names), "input_shape": [8, 8, 3]}
    model = nnx.eval_shape(lambda: task_cls(config).build_model(info, nnx.Rngs(0)))
    tensors = {k: np.zeros(v.get_value().shape, np.float32)
               for k, v in weights.variables(nnx.state(model)).items()}
    tensors["head/bias"][ONE_CLASS] = 1.0
    weights.save(path, tensors, {})
    raw = path.read_bytes()
    card = Card(task="classification", model="mlp", tag="imagenet-one-class", file=path.name,
                urls=(path.name,), size=len(raw), sha256=hashlib.sha256(raw).hexdigest(),
                config=to_dict(config), info=info)
    return card, raw


@pytest.fixture(scope="module")
def photo_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for i, image in enumerate(upstream.photos()):
        paths.append(folder / f"photo{i}.png")
        Image.fromarray(image).save(paths[-1])
    return paths


def _top_classes(case="resnet18"):
    return [IMAGENET.names[i] for i in upstream.reference(case)["logits"].argmax(-1)]


def test_pull_convert_predict_through_a_loopback_hub(tmp_path, monkeypatch, loopback_hub,
                                                     photo_files):
    """Pulled, verified against timm's sha256, converted on load, predicting with the
    card's preprocessing and its class list resolved by name."""
    assert loopback_hub.card.sha256 == hashlib.sha256(loopback_hub.raw).hexdigest()
    assert loopback_hub.entry["info"]["classes"] == "imagenet-1k"  # on the wire: by name
    monkeypatch.setenv("ZOO_HUB", loopback_hub.url)
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))  # an empty cache: one download
    file = "/hub/timm/resnet18.test/model.safetensors"
    before = len(loopback_hub.server.requests_for(file))
    restored = restore.from_hub("classification", "resnet18:imagenet")
    task, info = restored.task, restored.info
    results = task.predict(restored.inference_model(), info, [str(p) for p in photo_files],
                           task.PredictOptions(top_k=2))
    assert restored.card.layout == "timm" and info["classes"] == list(IMAGENET.names)
    assert task.config.preprocess.crop_pct == 1.0 and task.config.image_size == upstream.SIZE
    assert len(results) == len(photo_files)
    for result, top in zip(results, _top_classes()):
        assert result.label == top and len(result.top()) == 2, (result.top(), top)
    assert len(loopback_hub.server.requests_for(file)) == before + 1


def _imagenet_layout(root):
    """ImageNet's val layout: a folder per synset id (or class name) of random images,
    two of them (n01734418 and "king snake") the one-class card's, one (tench) not."""
    rng = np.random.default_rng(0)
    for folder in (IMAGENET.ids[ONE_CLASS], IMAGENET.names[ONE_CLASS], IMAGENET.ids[0]):
        (root / folder).mkdir(parents=True)
        pixels = rng.integers(0, 256, (12, 10, 3), np.uint8)
        Image.fromarray(pixels).save(root / folder / "image.png")
    return root


def test_eval_pretrained_on_your_copy_of_its_data_set(tmp_path, monkeypatch, capsys,
                                                       loopback_hub):
    """`zoo eval --pretrained CARD --data folder:VAL` labels ImageNet's folder layout by
    synset id (or class name) with the card's 1,000 class indices, on every image."""
    monkeypatch.setenv("ZOO_HUB", loopback_hub.url)
    val = _imagenet_layout(tmp_path / "val")
    assert main(["eval", "classification", "--pretrained", "mlp:imagenet-one-class", "--data",
                 f"folder:{val}", "--json", "--mesh", "data=1"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["accuracy"] == pytest.approx(2 / 3)
    assert f"mlp:imagenet-one-class on every example of folder:{val}" in out.err


@pytest.mark.parametrize("args, message", [
    ([], "pass your copy with --data, e.g. its validation folder folder:/data/imagenet/val"),
    (["--data", "folder:{val}"], "folder 'owls' is neither a synset id (e.g. n01440764) nor "
                                 "a class name of imagenet-1k"),
])
def test_eval_pretrained_without_its_data_set_says_what_to_pass(tmp_path, monkeypatch, capsys,
                                                                 args, message):
    """The embedded card (timm's file online) is refused before any download."""
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    for name in ("owls", IMAGENET.ids[1], IMAGENET.ids[2]):
        (tmp_path / "val" / name).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "val" / name / "a.png")
    args = [a.format(val=tmp_path / "val") for a in args]
    assert main(["eval", "classification", "--pretrained", "resnet50:imagenet", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_import_to_a_workdir_holds_the_converted_weights(tmp_path, capsys):
    """`zoo import ... --workdir`: a finished run (best checkpoint, run.json with the
    card-like config and classes) that `zoo predict --workdir` and `zoo publish` take
    as any trained run."""
    from helpers import latest_params

    files = _timm_dir(tmp_path / "upstream")
    up = importer.read("timm:resnet18.test", directory=files)
    assert up.classes == IMAGENET.names
    command = ["import", "timm:resnet18.test", "--dir", str(files), "--workdir", str(tmp_path / "run")]
    assert main(command) == 0
    assert f"-> {tmp_path / 'run'}" in capsys.readouterr().out
    stored = latest_params(tmp_path / "run", "best")
    converted = upstream.to_zoo("resnet18", up.state)
    assert sorted(stored) == sorted(f"/{k}" for k in converted)
    assert all(np.array_equal(stored[f"/{k}"], v) for k, v in converted.items())
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["info"]["classes"] == list(IMAGENET.names)
    assert run["config"]["model"] == "resnet18" and run["config"]["preprocess"]["crop_pct"] == 1.0
    assert main(command) == 2
    assert "already holds a run" in capsys.readouterr().err


@pytest.mark.parametrize("source, kwargs, message", [
    ("timm:resnet51.a1_in1k", {}, "did you mean 'resnet50'"),
    ("torchvision:resnet50", {}, "pass the downloaded .pth with --file"),
    ("torchvision:vit_b_32", {"file": "x.pth"}, "choose from: mobilenet_v3_large, resnet101"),
    ("keras:resnet50", {}, "expected timm:ARCH.TAG"),
])
def test_import_misuse_names_the_fix(source, kwargs, message):
    with pytest.raises(ZooError, match=message):
        importer.read(source, **kwargs)


def test_torchvision_without_torch_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    with pytest.raises(ZooError, match="needs PyTorch: pip install torch"):
        importer.read("torchvision:resnet50", file=tmp_path / "resnet50.pth")


def test_embedded_imagenet_cards_name_their_class_list_and_pin_timm_hashes():
    raw = json.loads(index.EMBEDDED.joinpath("index.json").read_text())["entries"]
    assert {e["info"]["classes"] for e in raw if e["layout"] == "timm"} == {"imagenet-1k"}
    cards = [c for c in index.load(str(index.EMBEDDED)).cards if c.layout == "timm"]
    assert {c.model for c in cards} == set(upstream.TIMM_NAMES)
    for card in cards:
        assert card.urls[0].startswith("hf://timm/") and card.tag == "imagenet"
        assert card.info["classes"] == list(IMAGENET.names) and card.config["preprocess"]["mean"]
    unpinned = sorted(c.model for c in cards if c.sha256 is None)
    assert unpinned == ["vit-s16"]  # no published hash found for it: needs --allow-unverified


def test_class_lists_round_trip_through_a_card_and_map_folders():
    assert (IMAGENET.ids[:2], IMAGENET.names[:2]) == (("n01440764", "n01443537"),
                                                     ("tench", "goldfish"))
    card = Card(task="classification", model="resnet18", tag="x", file="w.safetensors",
                urls=("w.safetensors",), size=None, sha256=None, info={"classes": list(IMAGENET.names)})
    written = card.to_json()
    assert written["info"]["classes"] == "imagenet-1k"
    assert Card.from_json(written, "test") == card
    with pytest.raises(ZooError, match="unknown class list 'imagenet-2k'.*upgrade zoo"):
        Card.from_json({**written, "info": {"classes": "imagenet-2k"}}, "test")
    labels = class_lists.folder_labels(["n01443537", "tench", IMAGENET.ids[999]], IMAGENET)
    assert labels.tolist() == [1, 0, 999]
    with pytest.raises(ZooError, match="names 2 imagenet-1k classes .*name it by synset id"):
        class_lists.folder_labels(["crane"], IMAGENET)


class _TwoPart(nnx.Module):
    """The smallest classifier with a `backbone` (conv, batch norm) and a head: the
    optimizer splits on that name."""

    def __init__(self, rngs: nnx.Rngs):
        self.backbone = nnx.Sequential(Conv(3, 4, (3, 3), rngs=rngs),
                                       nnx.BatchNorm(4, rngs=rngs))
        self.head = nnx.Linear(4, 3, rngs=rngs)

    def __call__(self, x):
        return self.head(jax.nn.relu(self.backbone(x)).mean(axis=(1, 2)))


def test_freeze_and_backbone_lr_scale_touch_only_the_backbone():
    """The run's optimizer splits on the top-level `backbone` name: frozen (0), a
    tenth of the rate (0.1), or as the head (1)."""
    task_cls = get_task("classification")
    params = {"backbone": {"kernel": np.zeros((3, 3, 3, 4), np.float32)},
              "head": {"kernel": np.zeros((4, 3), np.float32)}}
    gradients = jax.tree.map(np.ones_like, params)
    moved = {}
    for scale in ("0", "0.1", "1"):
        cfg = apply_overrides(task_cls.Config(), [
            f"optimizer.backbone_lr_scale={scale}", "optimizer.name=sgd",
            "optimizer.warmup_epochs=0"])
        tx = make_run_optimizer(cfg, 10, 1)
        updates, _ = tx.update(gradients, tx.init(params), params)
        moved[scale] = [float(np.abs(updates[part]["kernel"]).max()) for part in params]
    lr = task_cls.Config().optimizer.lr
    assert moved["0"] == pytest.approx([0, lr], rel=1e-3)
    assert moved["1"] == pytest.approx([lr, lr], rel=1e-3)
    assert moved["0.1"] == pytest.approx([lr / 10, lr], rel=1e-3)
    frozen = apply_overrides(task_cls.Config(), ["optimizer.backbone_lr_scale=0"])
    with pytest.raises(ZooError, match="needs a model with a `backbone`"):
        make_run_optimizer(frozen, 10, 1).init({"head": params["head"]})


@pytest.mark.parametrize("scale, changed", [
    ("0", ["head/bias", "head/kernel"]),  # frozen: weights and statistics kept
    ("0.1", ["backbone/layers/0/bias", "backbone/layers/0/kernel", "backbone/layers/1/bias",
             "backbone/layers/1/mean", "backbone/layers/1/scale", "backbone/layers/1/var",
             "head/bias", "head/kernel"]),
])
def test_a_frozen_backbone_keeps_its_batch_norm_statistics(scale, changed):
    """`--freeze backbone` (backbone_lr_scale=0): the compiled train step changes the
    head and nothing of the backbone, batch-norm statistics included (they are used,
    not updated: a timm or torchvision user's frozen module in `.eval()`). The
    harness's `open_session` applies `hold_frozen_backbone` to every model it builds
    (through the CLI: the slow detection test below)."""
    import jax.numpy as jnp

    from zoo.harness.optim import hold_frozen_backbone
    from zoo.harness.steps import build_steps, split_train_state

    task = get_task("classification")(apply_overrides(get_task("classification").Config(), [
        "augment=none", "optimizer.warmup_epochs=0", f"optimizer.backbone_lr_scale={scale}"]))
    model = _TwoPart(nnx.Rngs(0))
    optimizer = task.make_optimizer(model, make_run_optimizer(task.config, 10, 1))
    hold_frozen_backbone(model, task.config.optimizer)
    steps = build_steps(task, model, optimizer, seed=0)
    _, state = split_train_state(model, optimizer)
    before = weights.arrays(state["model"])
    rng = np.random.default_rng(0)
    batch = {"image": jnp.asarray(rng.integers(0, 256, (4, 8, 8, 3), np.uint8)),
             "label": jnp.asarray([0, 1, 2, 0], np.int32)}
    state, _ = steps.train(state, batch, jnp.int32(0))
    after = weights.arrays(state["model"])
    assert sorted(k for k, v in before.items() if not np.array_equal(after[k], v)) == changed


def _load_backbone(model, backbone):
    """What `ModelSetup.build` does with fine-tuning weights (fitted, then loaded
    leniently), on an abstract model."""
    state = nnx.state(model)
    shapes = {k: tuple(v.get_value().shape) for k, v in weights.variables(state).items()}
    return weights.load_into(state, fit_to_model(backbone, shapes), strict=False)


def test_dense_models_take_an_imagenet_backbone_under_an_fpn():
    """Detection (CenterNet heads on an FPN level) and segmentation (FPN + FCN head) on
    a converted ResNet-18: the backbone loads (its RGB stem summed for grey scenes),
    the rest is new and named. Built and run abstractly: shapes only."""
    tensors = upstream.to_zoo("resnet18", upstream.random_state(upstream.manifest("resnet18")))
    backbone = {k: v for k, v in tensors.items() if k.startswith("backbone/")}
    classes = ["background", "a", "b"]
    detection = get_task("detection")
    detector = nnx.eval_shape(lambda: detection(apply_overrides(detection.Config.smoke(), [
        "backbone.name=resnet18", "backbone.fpn_width=16"])).build_model(
        {"classes": classes, "input_shape": [32, 32, 1]}, nnx.Rngs(0)))
    report = _load_backbone(detector, backbone)
    assert report.new == ("decoder", "heatmap", "neck", "offset", "size") and not report.reinitialised
    stem = np.asarray(detector.backbone.conv1.kernel[...])
    assert np.allclose(stem, backbone["backbone/conv1/kernel"].sum(axis=2, keepdims=True))
    outputs = nnx.eval_shape(lambda m, x: m(x), detector, jax.ShapeDtypeStruct((1, 32, 32, 1),
                                                                              np.float32))
    assert detector.stride == 8 and outputs["heatmap"].shape == (1, 4, 4, 3)
    segmentation = get_task("segmentation")
    seg_cfg = segmentation.Config.smoke()
    rgb = {"classes": classes, "input_shape": [32, 32, 3]}
    with pytest.raises(ZooError, match="--model fcn"):
        segmentation(apply_overrides(seg_cfg, ["backbone.name=resnet18"])).build_model(
            rgb, nnx.Rngs(0))
    segmenter = nnx.eval_shape(lambda: segmentation(apply_overrides(seg_cfg, [
        "model=fcn", "backbone.name=resnet18", "backbone.fpn_width=16"])).build_model(
        rgb, nnx.Rngs(0)))
    report = _load_backbone(segmenter, backbone)
    assert report.new == ("bn", "classifier", "conv", "decoder") and not report.reinitialised
    logits = nnx.eval_shape(lambda m, x: m(x), segmenter, jax.ShapeDtypeStruct((1, 32, 32, 3),
                                                                               np.float32))
    assert logits.shape == (1, 32, 32, 3)


@pytest.mark.slow  # a detector's fit: about 50 CPU-s on 2 cores
def test_detection_runs_from_a_pretrained_backbone_on_the_command_line(tmp_path, monkeypatch,
                                                                         capsys, loopback_hub):
    """`zoo run detection --pretrained-backbone resnet18:imagenet --freeze backbone` on
    small grey scenes, the card pulled from the loopback hub: the trained detector's
    backbone is the card's (stem summed over RGB), weights and statistics."""
    from helpers import latest_params

    monkeypatch.setenv("ZOO_HUB", loopback_hub.url)
    assert main(["run", "detection", "--smoke", "--pretrained-backbone", "resnet18:imagenet",
                 "--freeze", "backbone", "--set", "backbone.fpn_width=16", "--workdir",
                 str(tmp_path / "run")]) == 0
    assert "backbone from classification/resnet18:imagenet" in capsys.readouterr().err
    trained = latest_params(tmp_path / "run")
    expected = upstream.to_zoo("resnet18", upstream.random_state(upstream.manifest("resnet18")))
    expected["backbone/conv1/kernel"] = expected["backbone/conv1/kernel"].sum(2, keepdims=True)
    for key, value in expected.items():
        if key.startswith("backbone/"):
            assert np.array_equal(trained[f"/{key}"], value), key
    config = json.loads((tmp_path / "run" / "run.json").read_text())["config"]
    assert config["backbone"]["name"] == "resnet18"
    assert config["preprocess"]["mean"] == list(importer.IMAGENET_MEAN)
    assert "map" in json.loads((tmp_path / "run" / "metrics.json").read_text())["metrics"]


@pytest.mark.parametrize("spec", ["resnet19:imagenet", "resnet18:coco", "lenet"])
def test_a_pretrained_backbone_the_hub_lacks_is_refused_in_one_line(tmp_path, monkeypatch,
                                                                     capsys, loopback_hub, spec):
    monkeypatch.setenv("ZOO_HUB", loopback_hub.url)
    assert main(["run", "detection", "--smoke", "--pretrained-backbone", spec,
                 "--workdir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"zoo: error: --pretrained-backbone {spec}: no such ImageNet "
                          f"classifier in hub") and "backbones there: resnet18:imagenet" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def _shapes_folder(root, per_class=40, size=32, seed=0):
    """Circles, squares and triangles (one colour each) at random places and sizes on
    random grey backgrounds: a folder data set a short fine-tune can learn."""
    from PIL import ImageDraw

    rng = np.random.default_rng(seed)
    colours = {"circle": (220, 40, 40), "square": (40, 200, 40), "triangle": (40, 60, 220)}
    for name, colour in colours.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            image = Image.new("RGB", (size, size), (int(rng.integers(0, 256)),) * 3)
            r = int(rng.integers(6, 11))
            x, y = (int(v) for v in rng.integers(r, size - r, 2))
            draw = ImageDraw.Draw(image)
            if name == "circle":
                draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
            elif name == "square":
                draw.rectangle((x - r, y - r, x + r, y + r), fill=colour)
            else:
                draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=colour)
            image.save(root / name / f"{i}.png")
    return root


@pytest.mark.slow
def test_fine_tuning_a_resnet18_from_converted_weights_beats_chance(tmp_path):
    from zoo.harness.model_setup import ModelSetup
    from zoo.harness.trainer import fit

    task_cls = get_task("classification")
    folder = _shapes_folder(tmp_path / "shapes")
    cfg = apply_overrides(task_cls.Config(), [
        "model=resnet18", f"data=folder:{folder}", "image_size=32", "channels=3",
        "augment=none", "train.epochs=3", "train.batch_size=12", "train.eval_batch_size=24",
        "optimizer.name=adamw", "optimizer.lr=1e-3", "optimizer.warmup_epochs=0",
        "optimizer.backbone_lr_scale=0.1", "early_stopping.patience=0",
        "preprocess.mean=0.485,0.456,0.406", "preprocess.std=0.229,0.224,0.225"])
    init = upstream.to_zoo("resnet18", upstream.random_state(upstream.manifest("resnet18")))
    result = fit(task_cls(cfg), tmp_path / "run", quiet=True,
                 setup=ModelSetup(weights=init).fine_tuning())
    assert result["metrics"]["accuracy"] >= 0.5  # chance: 1/3 (measured: 0.54, seeded)
