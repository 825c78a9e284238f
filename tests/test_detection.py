"""Detection: box geometry, CenterNet encode/decode, COCO mAP, COCO json loading, CLI."""

import json

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from zoo.data import coco_eval
from zoo.data.images import letterbox, unletterbox
from zoo.errors import ZooError
from zoo.models import centernet
from zoo.models.boxes import iou_matrix, nms
from zoo_tasks.detection import data
from zoo_tasks.detection.metrics import coco_map

from helpers import small_scene, train_on_small_scenes, zoo_cli, zoo_here


def test_iou_matches_hand_worked_values():
    a = jnp.array([[0.0, 0, 2, 2], [0, 0, 4, 4]])
    b = jnp.array([[1.0, 1, 3, 3], [0, 0, 4, 4], [5, 5, 6, 6]])
    # [0,0,2,2] vs [1,1,3,3]: intersection 1, union 4 + 4 - 1 = 7
    # [0,0,4,4] vs [1,1,3,3]: the small box lies inside: 4 / 16
    expected = [[1 / 7, 4 / 16, 0], [4 / 16, 1, 0]]
    np.testing.assert_allclose(iou_matrix(a, b), expected, rtol=1e-6)


def test_nms_keeps_the_best_of_each_overlapping_group():
    boxes = jnp.array([[0.0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [1, 0, 11, 10],
                       [0, 0, 10, 10]])
    scores = jnp.array([0.9, 0.8, 0.7, 0.6, 0.0])
    classes = jnp.array([0, 0, 0, 1, 0])
    # IoU(box0, box1) = 81 / 119 = 0.68; IoU(box0, box3) = 90 / 110 = 0.82 (another class);
    # box 4 has score 0: never kept, suppresses nothing.
    kept = nms(boxes, scores, classes, iou_threshold=0.5)
    np.testing.assert_allclose(kept, [0.9, 0.0, 0.7, 0.6, 0.0])
    agnostic = nms(boxes, scores, classes, iou_threshold=0.5, class_agnostic=True)
    np.testing.assert_allclose(agnostic, [0.9, 0.0, 0.7, 0.0, 0.0])
    lenient = nms(boxes, scores, classes, iou_threshold=0.7)  # 0.68 now survives
    np.testing.assert_allclose(lenient, [0.9, 0.8, 0.7, 0.6, 0.0])


def test_suppressed_boxes_do_not_suppress_others():
    # b overlaps a (suppressed by it); c overlaps b only: c must survive.
    boxes = jnp.array([[0.0, 0, 10, 10], [6, 0, 16, 10], [12, 0, 22, 10]])
    kept = nms(boxes, jnp.array([0.9, 0.8, 0.7]), jnp.zeros(3, jnp.int32), iou_threshold=0.2)
    np.testing.assert_allclose(kept, [0.9, 0.0, 0.7])


def _truth():
    boxes = jnp.array([[[4.0, 8, 20, 30], [33, 2, 45, 18], [0, 0, 0, 0]],
                       [[40.5, 41, 63, 60.5], [0, 0, 0, 0], [0, 0, 0, 0]]])
    classes = jnp.array([[3, 7, 0], [9, 0, 0]])
    valid = jnp.array([[True, True, False], [True, False, False]])
    return boxes, classes, valid


def test_encode_then_decode_recovers_the_boxes():
    boxes, classes, valid = _truth()
    t = centernet.encode(boxes, classes, valid, grid=(16, 16), stride=4, num_classes=10)
    heat = t["heatmap"]
    assert heat.shape == (2, 16, 16, 10) and float(heat.max()) == 1.0
    assert int((heat == 1).sum()) == 3  # one peak per real box, on its class channel
    # Perfect network outputs: confident peaks at the centres, exact offsets and sizes.
    flat_index = t["index"] + jnp.arange(2)[:, None] * 256
    offset = jnp.zeros((2 * 256, 2)).at[flat_index].set(t["offset"]).reshape(2, 16, 16, 2)
    size = jnp.zeros((2 * 256, 2)).at[flat_index].set(t["size"]).reshape(2, 16, 16, 2)
    outputs = {"heatmap": jnp.where(heat == 1, 20.0, -20.0), "offset": offset, "size": size}
    loss, parts = centernet.loss(outputs, t, size_weight=0.1)
    assert float(parts["offset_loss"]) == 0 and float(parts["size_loss"]) == 0
    assert float(loss) < 1e-6
    found = centernet.decode(outputs, stride=4, k=5, nms_iou=0.5, class_agnostic=True)
    for i in range(2):
        keep = np.asarray(found["scores"][i]) > 0.5
        order = np.argsort(np.asarray(found["boxes"][i][keep])[:, 0])
        got = np.asarray(found["boxes"][i][keep])[order]
        want = np.asarray(boxes[i][valid[i]])
        want = want[np.argsort(want[:, 0])]
        np.testing.assert_allclose(got, want, atol=1e-4)
        assert sorted(np.asarray(found["classes"][i][keep])) == \
            sorted(np.asarray(classes[i][valid[i]]))


def test_loss_rewards_the_right_heatmap():
    boxes, classes, valid = _truth()
    t = centernet.encode(boxes, classes, valid, grid=(16, 16), stride=4, num_classes=10)
    zeros = jnp.zeros((2, 16, 16, 2))
    good = {"heatmap": jnp.where(t["heatmap"] == 1, 5.0, -5.0), "offset": zeros, "size": zeros}
    bad = {**good, "heatmap": -good["heatmap"]}
    assert float(centernet.loss(good, t, size_weight=0.1)[0]) < \
        float(centernet.loss(bad, t, size_weight=0.1)[0])


def _random_truth(rng, images: int, classes: int, max_side: float):
    """Per image 1-4 random boxes (x0 y0 x1 y1) and their classes."""
    for _ in range(images):
        n = rng.integers(1, 5)
        xy = rng.uniform(0, 50, (n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(4, max_side, (n, 2))], 1)
        yield boxes, rng.integers(0, classes, n)


def test_map_is_one_for_ground_truth_fed_as_predictions():
    rng = np.random.default_rng(0)
    truth = list(_random_truth(rng, 20, 4, 20))
    detections = [(boxes, rng.uniform(0.5, 1, len(boxes)), classes) for boxes, classes in truth]
    result = coco_map(truth, detections, num_classes=5)
    assert result["map"] == pytest.approx(1.0) and result["map50"] == pytest.approx(1.0)
    assert result["ap_per_class"][:4] == pytest.approx([1.0] * 4)
    assert result["ap_per_class"][4] is None  # no ground truth of class 4


def test_map_is_cocoevals_with_its_default_area_ranges():
    """coco_ap scores area "all" only; the figures equal COCOeval's full default run."""
    rng = np.random.default_rng(1)
    truth, detections = [], []
    for boxes, classes in _random_truth(rng, 30, 3, 60):
        found = rng.integers(0, len(boxes), 8)
        truth.append({"boxes": boxes, "classes": classes})
        detections.append({"boxes": boxes[found] + rng.normal(0, 3, (8, 4)),
                           "scores": rng.uniform(0, 1, 8), "classes": classes[found]})
    fast = coco_eval.coco_ap(truth, detections, 3)
    images = [{"id": i} for i in range(len(truth))]
    annotations = [{**r, "id": k + 1, "image_id": i, "iscrowd": 0}
                   for k, (i, r) in enumerate((i, r) for i, gt in enumerate(truth)
                                              for r in coco_eval._records(gt, "bbox"))]
    results = [{**r, "image_id": i} for i, d in enumerate(detections)
               for r in coco_eval._records(d, "bbox")]
    full = coco_eval._evaluate(images, annotations, [{"id": c} for c in range(3)], results,
                               "bbox")
    assert len(full.params.areaRng) == 4  # all, small, medium, large
    assert 0.2 < fast["ap"] < 0.9
    assert (fast["ap"], fast["ap50"]) == (full.stats[0], full.stats[1])


def test_map_counts_only_the_iou_thresholds_a_box_passes():
    # IoU 0.62 passes thresholds 0.50, 0.55 and 0.60 of the ten: mAP = 3 / 10.
    truth = [(np.array([[0.0, 0, 10, 10]]), np.array([0]))]
    detections = [(np.array([[0.0, 0, 10, 6.2]]), np.array([0.9]), np.array([0]))]
    result = coco_map(truth, detections, num_classes=1)
    assert result["map50"] == pytest.approx(1.0)
    assert result["map"] == pytest.approx(0.3)
    wrong_class = coco_map(truth, [(detections[0][0], np.array([0.9]), np.array([1]))], 2)
    assert wrong_class["map"] == 0.0


def test_letterbox_maps_boxes_with_the_image():
    image = np.zeros((30, 60, 3), np.uint8)
    image[5:15, 20:50] = 255  # a white box: x 20..50, y 5..15
    square, scale, offset = letterbox(image, 32)
    box = np.array([20.0, 5, 50, 15]) * np.tile(scale, 2) + np.tile(offset, 2)
    x0, y0, x1, y1 = box
    assert square.shape == (32, 32, 3)
    inner = square[int(np.ceil(y0)) + 1:int(y1) - 1, int(np.ceil(x0)) + 1:int(x1) - 1]
    assert inner.min() > 200
    outside = square.copy()
    outside[int(y0) - 1:int(np.ceil(y1)) + 1, int(x0) - 1:int(np.ceil(x1)) + 1] = 0
    assert outside.max() == 0
    np.testing.assert_allclose(unletterbox(box, scale, offset), [20, 5, 50, 15], rtol=1e-5)


def _coco(root, sizes=((40, 30), (64, 48), (20, 50), (33, 33), (50, 20)), **overrides):
    """A tiny COCO set: one white rectangle per image on black, any image size."""
    images, annotations = [], []
    (root / "images").mkdir(exist_ok=True)
    for i, (w, h) in enumerate(sizes):
        pixels = np.zeros((h, w, 3), np.uint8)
        bw, bh = w // 3, h // 3
        pixels[h // 4:h // 4 + bh, w // 5:w // 5 + bw] = 255
        Image.fromarray(pixels).save(root / "images" / f"{i}.png")
        images.append({"id": 100 + i, "file_name": f"{i}.png", "width": w, "height": h})
        annotations.append({"id": i + 1, "image_id": 100 + i, "category_id": 7 if i % 2 else 3,
                            "bbox": [w // 5, h // 4, bw, bh], "iscrowd": 0})
    coco = {"images": images, "annotations": annotations,
            "categories": [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}]}
    for key, value in overrides.items():
        coco[key] = value(coco)
    (root / "ann.json").write_text(json.dumps(coco))
    return f"coco:{root / 'ann.json'}:{root / 'images'}"


def test_coco_json_loads_letterboxed_with_consistent_boxes(tmp_path):
    ds = data.load(_coco(tmp_path), None, image_size=32)
    assert ds.info["classes"] == ["cat", "dog"] and ds.info["input_shape"] == [32, 32, 3]
    total = 0
    for split in ("train", "val", "test"):  # streamed: each image decoded here
        source = ds.splits[split]
        examples = [source[i] for i in range(len(source))]
        arrays = {k: np.stack([e[k] for e in examples]) for k in examples[0]}
        assert arrays["boxes"].shape[1:] == (1, 4) and arrays["box_valid"].all()
        for image, (x0, y0, x1, y1) in zip(arrays["image"], arrays["boxes"][:, 0]):
            inside = image[int(np.ceil(y0)) + 1:int(y1) - 1, int(np.ceil(x0)) + 1:int(x1) - 1]
            assert inside.size and inside.min() > 200  # the rectangle is where its box says
            bright = np.argwhere(image[..., 0] > 128)
            assert bright[:, 0].min() >= y0 - 1 and bright[:, 0].max() <= y1 + 1
            assert bright[:, 1].min() >= x0 - 1 and bright[:, 1].max() <= x1 + 1
        total += len(arrays["image"])
    assert total == 5


@pytest.mark.parametrize("change, message", [
    ({"annotations": lambda c: [{**c["annotations"][0], "category_id": 5}, *c["annotations"][1:]]},
     "category_id 5, not one of the categories"),
    ({"annotations": lambda c: [{**c["annotations"][0], "bbox": [30, 2, 20, 5]},
                                *c["annotations"][1:]]}, "outside its image 0.png"),
    ({"images": lambda c: [{**c["images"][0], "file_name": "nope.png"}, *c["images"][1:]]},
     "nope.png: no such image file"),
    ({"categories": lambda c: []}, "no categories"),
])
def test_bad_coco_data_is_explained(tmp_path, change, message):
    spec = _coco(tmp_path, **change)
    with pytest.raises(ZooError, match=message):
        ds = data.load(spec, None, image_size=32)
        for split in ds.splits.values():  # streamed: an image file is opened when read
            [split[i] for i in range(len(split))]


# -- end to end through the CLI --------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A CenterNet trained briefly on small 32x32 scenes (about 30 s on 2 quiet cores)."""
    return train_on_small_scenes("detection", tmp_path_factory.mktemp("det"))


@pytest.mark.slow  # the train step is checked by test_conformance; predict by the published weights
def test_short_training_lowers_the_loss_and_finds_digits(trained):
    history = [json.loads(line) for line in (trained / "history.jsonl").read_text().splitlines()]
    assert history[-1]["train/loss"] < 0.5 * history[0]["train/loss"]
    metrics = json.loads((trained / "metrics.json").read_text())["metrics"]
    assert metrics["map50"] > 0.3, metrics  # chance is ~0: boxes must land on digits
    assert len(metrics["ap_per_class"]) == 10 and 0 <= metrics["map"] <= metrics["map50"]


def test_predict_draws_boxes_and_prints_json(tmp_path, capsys):
    scene = small_scene()
    image = 255 - np.repeat(scene["image"][0], 3, 0).repeat(3, 1)[..., 0]  # 96x96, dark on light
    Image.fromarray(image).convert("RGB").save(tmp_path / "scene.jpg", quality=95)
    zoo_here("predict", "detection", str(tmp_path / "scene.jpg"), "--pretrained",
             "--out", str(tmp_path / "boxes.png"), "--min-score", "0.2", "--json")
    (found,) = json.loads(capsys.readouterr().out)
    assert found["files"] == {"out": str(tmp_path / "boxes.png")}
    assert Image.open(tmp_path / "boxes.png").size == (288, 288)  # drawn 3x: readable captions
    truth = scene["boxes"][0][scene["box_valid"][0]] * 3
    for det in found["detections"]:
        assert set(det) == {"label", "score", "box"} and 0.2 <= det["score"] <= 1
        assert det["label"] in [str(i) for i in range(10)]
    best = [max((float(iou_matrix(jnp.array([d["box"]]), jnp.array([t]))[0, 0])
                 for d in found["detections"]), default=0) for t in truth]
    assert min(best) > 0.3  # each digit has a box on it, in the original image's pixels


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_default_run_reaches_the_stated_map50(tmp_path):
    """The README's claim: a fresh `zoo run detection` reaches mAP@0.5 >= 0.90 on test."""
    zoo_cli("run", "detection", "--workdir", str(tmp_path), "--quiet", check=True, timeout=3600)
    metrics = json.loads((tmp_path / "metrics.json").read_text())["metrics"]
    assert metrics["map50"] >= 0.90, metrics
