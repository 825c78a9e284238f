"""Pose: OKS and keypoint AP, flip augmentation, peak decoding, the figure generator,
COCO keypoint files and their errors, a short training run and predict."""

import dataclasses
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from PIL import Image

import zoo
import zoo.testing
from zoo.cli.main import main
from zoo.data.coco_eval import keypoint_ap
from zoo.errors import ZooError
from zoo.models.initialise import initialised
from zoo_tasks.pose import centernet, data
from zoo_tasks.pose.augment import random_flip
from zoo_tasks.pose.figures import FigureConfig, generate, load_figures
from zoo_tasks.pose.results import Poses
from zoo_tasks.pose.skeleton import COCO_PERSON, Skeleton

from helpers import zoo_cli

SMALL = FigureConfig(canvas=32, min_people=1, max_people=2, min_height=20, max_height=30,
                     train=8, val=4, test=12)


@pytest.fixture(scope="module")
def figures():
    return generate(SMALL)


# -- metrics -------------------------------------------------------------------------------

def test_oks_matches_a_hand_computed_case():
    # Three joints, sigmas 0.1, 0.05, 0.05; area 100. Joint 0 is 3 px off: exp(-9 / (2 *
    # 100 * (2 * 0.1)^2)) = exp(-1.125) = 0.3247; joint 1 is exact: 1; joint 2 is not
    # labelled (v = 0), so its wild prediction does not count. OKS = (0.3247 + 1) / 2 =
    # 0.662: it passes the thresholds .50, .55, .60, .65 of the ten, so AP = 4 / 10.
    truth = np.array([[[10.0, 10, 2], [20, 20, 1], [0, 0, 0]]])
    found = np.array([[[13.0, 10], [20, 20], [90, 90]]])
    box, area = np.array([[5.0, 5, 25, 25]]), np.array([100.0])
    result = keypoint_ap([(truth, box, area)], [(found, np.array([0.9]))], (0.1, 0.05, 0.05))
    assert result["ap50"] == pytest.approx(1.0) and result["ap75"] == pytest.approx(0.0)
    assert result["ap"] == pytest.approx(0.4)
    # 2.5 px off instead: exp(-0.78125) = 0.4578, OKS 0.729, one more threshold (.70).
    found[0, 0, 0] = 12.5
    result = keypoint_ap([(truth, box, area)], [(found, np.array([0.9]))], (0.1, 0.05, 0.05))
    assert result["ap"] == pytest.approx(0.5)


def test_ap_is_one_for_ground_truth_given_as_predictions(figures):
    split = figures["test"]
    truth, poses = [], []
    for i, valid in enumerate(split["person_valid"]):
        people = split["keypoints"][i][valid]
        truth.append((people, split["boxes"][i][valid], split["area"][i][valid]))
        poses.append((people[..., :2], np.linspace(0.9, 0.5, len(people))))
    result = keypoint_ap(truth, poses, COCO_PERSON.sigmas)
    assert result == pytest.approx({"ap": 1.0, "ap50": 1.0, "ap75": 1.0, "ar": 1.0})
    shifted = [(p + 1.5, s) for p, s in poses]  # 1.5 px off: faces fall below OKS 0.95
    assert keypoint_ap(truth, shifted, COCO_PERSON.sigmas)["ap"] < 0.95


# -- skeleton and flip ------------------------------------------------------------------------

_flip = jax.jit(functools.partial(random_flip, flip_index=COCO_PERSON.flip_index))


def test_coco_skeleton_pairs_left_with_right():
    names = COCO_PERSON.names
    flipped = [names[i] for i in COCO_PERSON.flip_index]
    assert flipped[:5] == ["nose", "right_eye", "left_eye", "right_ear", "left_ear"]
    assert flipped[-2:] == ["right_ankle", "left_ankle"]
    assert COCO_PERSON.limb_side((15, 13)) == "left"  # left ankle - left knee
    assert COCO_PERSON.limb_side((11, 12)) == "centre"  # the hips
    other = Skeleton(("head", "Left hand", "RIGHT HAND"), ((0, 1),), (0.1,) * 3)
    assert other.flip_index == (0, 2, 1)


def test_flip_swaps_left_and_right_joints_with_the_image(figures):
    split = figures["train"]
    batch = {k: jnp.asarray(split[k]) for k in ("image", "keypoints", "boxes", "area",
                                                "person_valid")}
    out = jax.device_get(_flip(batch, jax.random.key(3)))
    image, width = split["image"], SMALL.canvas
    flipped = [not np.array_equal(out["image"][i], image[i]) for i in range(len(image))]
    assert 0 < sum(flipped) < len(image)  # a random half, not all or none
    for i, was_flipped in enumerate(flipped):
        if not was_flipped:
            assert np.array_equal(out["keypoints"][i], split["keypoints"][i])
            continue
        assert np.array_equal(out["image"][i], image[i][:, ::-1])
        before, after = split["keypoints"][i], out["keypoints"][i]
        for j, mirror in enumerate(COCO_PERSON.flip_index):  # left_wrist <- right_wrist...
            labelled = before[:, mirror, 2] > 0
            np.testing.assert_allclose(after[labelled, j, 0], width - before[labelled, mirror, 0])
            np.testing.assert_allclose(after[:, j, 1:], before[:, mirror, 1:])
        x0, y0, x1, y1 = split["boxes"][i].T
        valid = split["person_valid"][i]
        np.testing.assert_allclose(out["boxes"][i][valid],
                                   np.stack([width - x1, y0, width - x0, y1], -1)[valid])


def test_flipped_figures_keep_the_convention_of_generated_ones():
    """Figures face the viewer, so a person's left shoulder is right of their right one
    in the image; a flip that swaps the labels keeps that true (the flip is consistent)."""
    split = generate(FigureConfig(canvas=32, min_height=20, max_height=30, train=64, val=1,
                                  test=1))["train"]
    batch = {k: jnp.asarray(v) for k, v in split.items()}
    out = jax.device_get(_flip(batch, jax.random.key(0)))
    for keypoints in (split["keypoints"], out["keypoints"]):
        left, right = keypoints[:, :, 5], keypoints[:, :, 6]  # shoulders
        both = (left[..., 2] > 0) & (right[..., 2] > 0)
        assert both.sum() > 50 and (left[both, 0] > right[both, 0]).all()


# -- targets and decoding -------------------------------------------------------------------

@functools.partial(jax.jit, static_argnames=("stride", "people"))
def _decode(outputs, *, stride, people):
    return centernet.decode(outputs, stride=stride, people=people, min_joint_score=0.1,
                            snap_distance=0.3)


def test_decoding_recovers_planted_people_and_snaps_joints_to_peaks():
    k, grid, stride = 3, (16, 16), 2
    outputs = {name: jnp.zeros((1, *grid, c)) for name, c in centernet.heads(k).items()}
    centre = np.full((1, *grid, 1), -30.0)
    centre[0, 4, 3], centre[0, 11, 12] = 3.0, 1.0  # (x, y) = (3, 4) and (12, 11)
    joints = np.zeros((1, *grid, 2 * k))
    joints[0, 4, 3] = [-2, -2, 0, 3, 2, 2]  # from (3, 4): (1, 2), (3, 7), (5, 6) in cells
    joints[0, 11, 12] = [0, -3, 2, 0, -2, 2]  # from (12, 11): (12, 8), (14, 11), (10, 13)
    heat = np.full((1, *grid, k), -30.0)  # no weight in the 3x3 votes around a peak
    offset = np.zeros((1, *grid, 2 * k))
    heat[0, 2, 1, 0], offset[0, 2, 1, 0:2] = 2.0, [0.25, 0.75]  # joint 0 near (1, 2)
    heat[0, 8, 12, 0], offset[0, 8, 12, 0:2] = 2.0, [0.5, 0.5]  # joint 0 near (12, 8)
    heat[0, 7, 4, 1], offset[0, 7, 4, 1 * 2:2 * 2] = 2.0, [0.1, 0.2]  # joint 1: (4.1, 7.2)
    heat[0, 15, 0, 2] = 2.0  # joint 2 peak far from both people: never taken
    heat[0, 6, 5, 2] = -3.0  # at person 0's joint 2, but below min_joint_score
    outputs.update(centre=jnp.asarray(centre), joints=jnp.asarray(joints),
                   joint_heatmap=jnp.asarray(heat), joint_offset=jnp.asarray(offset))
    found = jax.device_get(_decode(outputs, stride=stride, people=2))
    first, second = found["keypoints"][0] / stride
    np.testing.assert_allclose(first, [[1.25, 2.75], [4.1, 7.2], [5, 6]], atol=1e-5)
    np.testing.assert_allclose(second, [[12.5, 8.5], [14, 11], [10, 13]], atol=1e-5)
    peak = jax.nn.sigmoid(2.0)  # the snapped joints' score; regressed ones score 0
    np.testing.assert_allclose(found["joint_scores"][0], [[peak, peak, 0], [peak, 0, 0]],
                               rtol=1e-6)
    np.testing.assert_allclose(found["scores"][0], [jax.nn.sigmoid(3.0) * 2 * peak / 3,
                                                    jax.nn.sigmoid(1.0) * peak / 3], rtol=1e-6)


def test_encoded_targets_decode_back_to_the_people(figures):
    """Perfect network outputs (the targets written where the loss reads them) decode
    to the ground truth, and their loss is zero."""
    split = figures["test"]
    stride, grid = 2, (SMALL.canvas // 2,) * 2
    encode = jax.jit(functools.partial(centernet.encode, grid=grid, stride=stride))
    t = jax.device_get(encode(*(split[k] for k in ("keypoints", "boxes", "person_valid"))))
    b, m, k = t["labelled"].shape
    cells = grid[0] * grid[1]
    outputs = {"centre": np.where(t["centre"] == 1, 30.0, -30.0),
               "joint_heatmap": np.where(t["joint_heatmap"] == 1, 30.0, -30.0),
               "centre_offset": np.zeros((b, cells, 2)), "joints": np.zeros((b, cells, 2 * k)),
               "joint_offset": np.zeros((b, cells, k, 2))}
    for i, j in zip(*np.nonzero(t["valid"])):
        cell = t["centre_index"][i, j]
        outputs["centre_offset"][i, cell] = t["centre_offset"][i, j]
        outputs["joints"][i, cell] = t["joints"][i, j].ravel()
        for joint in np.flatnonzero(t["labelled"][i, j]):
            for n in range(9):  # the joint's cell and its neighbours
                at = (j * k + joint) * 9 + n
                if t["offset_weight"][i, at]:
                    outputs["joint_offset"][i, t["joint_index"][i, at], joint] = \
                        t["joint_offset"][i, at]
    outputs = {name: jnp.asarray(v.reshape(b, *grid, -1)) for name, v in outputs.items()}
    total, parts = jax.jit(functools.partial(centernet.loss, joint_weight=1.0))(outputs, t)
    assert float(total) < 1e-6, parts
    found = jax.device_get(_decode(outputs, stride=stride, people=4))
    for i, valid in enumerate(split["person_valid"]):
        truth = split["keypoints"][i][valid]
        got = found["keypoints"][i][found["scores"][i] > 0.5]
        assert len(got) == len(truth)
        for person in truth:
            labelled = person[:, 2] > 0
            error = np.abs(got[:, labelled] - person[labelled, :2]).max((1, 2))
            assert error.min() < 1e-4


# -- the generator --------------------------------------------------------------------------

def test_generator_is_deterministic_and_its_splits_disjoint(figures):
    again = generate(SMALL)
    for split in ("train", "val", "test"):
        for key, value in figures[split].items():
            assert np.array_equal(value, again[split][key]), (split, key)
    flat = {s: figures[s]["image"].reshape(len(figures[s]["image"]), -1) for s in figures}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        same = (flat[a][:, None] == flat[b][None]).all(-1)
        assert not same.any(), f"an image of {a} is also in {b}"
    other_seed = generate(FigureConfig(**{**SMALL.__dict__, "seed": 1}))
    assert not np.array_equal(other_seed["train"]["keypoints"], figures["train"]["keypoints"])


def test_generated_labels_follow_coco_conventions(figures):
    split = figures["train"]
    keypoints, valid = split["keypoints"], split["person_valid"]
    v = keypoints[..., 2]
    assert set(np.unique(v)) <= {0, 1, 2} and (v[~valid] == 0).all()
    assert (keypoints[..., :2][v == 0] == 0).all()  # COCO: unlabelled joints at (0, 0)
    inside = keypoints[..., :2][v > 0]
    assert ((inside >= 0) & (inside < SMALL.canvas)).all()
    x0, y0, x1, y1 = np.moveaxis(split["boxes"][valid], -1, 0)
    assert ((x1 > x0) & (y1 > y0)).all()
    np.testing.assert_allclose(split["area"][valid], (x1 - x0) * (y1 - y0))
    assert split["image"].dtype == np.uint8 and split["image"].shape[1:] == (32, 32, 3)


def test_figures_are_cached(monkeypatch):
    first = load_figures(SMALL)
    monkeypatch.setattr("zoo_tasks.pose.figures.generate", lambda cfg: pytest.fail("regenerated"))
    again = load_figures(SMALL)
    assert np.array_equal(first["test"]["keypoints"], again["test"]["keypoints"])


# -- COCO keypoint files ---------------------------------------------------------------------

def _coco(root, figures, **overrides):
    """Five generated images saved at other sizes, with COCO keypoint annotations."""
    (root / "images").mkdir(exist_ok=True)
    split = figures["test"]
    images, annotations = [], []
    for i, (w, h) in enumerate([(64, 48), (48, 64), (32, 32), (40, 40), (96, 72)]):
        Image.fromarray(split["image"][i]).resize((w, h)).save(root / "images" / f"{i}.png")
        images.append({"id": 10 + i, "file_name": f"{i}.png", "width": w, "height": h})
        factor = np.array([w, h]) / SMALL.canvas
        for j in np.flatnonzero(split["person_valid"][i]):
            kp = split["keypoints"][i, j].copy()
            kp[:, :2] *= factor
            x0, y0, x1, y1 = split["boxes"][i, j] * np.tile(factor, 2)
            annotations.append({"id": len(annotations) + 1, "image_id": 10 + i,
                                "category_id": 1, "keypoints": kp.ravel().tolist(),
                                "num_keypoints": int((kp[:, 2] > 0).sum()),
                                "bbox": [x0, y0, x1 - x0, y1 - y0], "iscrowd": 0})
    coco = {"images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "person", "keypoints": list(COCO_PERSON.names),
                            "skeleton": [[a + 1, b + 1] for a, b in COCO_PERSON.limbs]}]}
    for key, change in overrides.items():
        coco[key] = change(coco)
    (root / "ann.json").write_text(json.dumps(coco))
    return f"coco-keypoints:{root / 'ann.json'}:{root / 'images'}"


def test_coco_keypoints_load_letterboxed_with_the_image(tmp_path, figures):
    ds = data.load(_coco(tmp_path, figures), SMALL, 32, ())
    assert ds.info["keypoints"] == list(COCO_PERSON.names) and ds.info["classes"] == ["person"]
    assert Skeleton.from_info(ds.info) == COCO_PERSON
    loaded = {}
    for split in ds.splits.values():
        for image, keypoints, valid in zip(split["image"], split["keypoints"],
                                           split["person_valid"]):
            loaded[image.tobytes()] = keypoints[valid]
    assert len(loaded) == 5
    source = figures["test"]
    square = source["image"][2]  # saved at 32x32: letterboxed to itself
    np.testing.assert_allclose(loaded[square.tobytes()],
                               source["keypoints"][2][source["person_valid"][2]], atol=1e-4)
    for people in loaded.values():  # every labelled joint lies on the 32x32 square
        xy = people[..., :2][people[..., 2] > 0]
        assert ((xy >= 0) & (xy <= 32)).all()


def _drop_first_keypoint_values(c):
    return [{**c["annotations"][0], "keypoints": c["annotations"][0]["keypoints"][3:]},
            *c["annotations"][1:]]


def _first_annotation(**fields):
    return lambda c: [{**c["annotations"][0], **fields}, *c["annotations"][1:]]


def _first_keypoint(x, y, visibility):
    """The first annotation with its first keypoint replaced (and no num_keypoints)."""
    def change(c):
        first = {k: v for k, v in c["annotations"][0].items() if k != "num_keypoints"}
        first["keypoints"] = [x, y, visibility, *first["keypoints"][3:]]
        return [first, *c["annotations"][1:]]
    return change


@pytest.mark.parametrize("change, message", [
    ({"annotations": _drop_first_keypoint_values}, "has 48 keypoint values; expected 3 x 17"),
    ({"annotations": _first_keypoint(5, 5, 3)}, "has visibility 3; COCO's are 0"),
    ({"annotations": _first_keypoint(500, 5, 2)}, "labelled keypoint outside its 64x48 image"),
    ({"annotations": _first_annotation(num_keypoints=1)}, "says num_keypoints 1 but labels"),
    ({"annotations": _first_annotation(area=0)}, "has area 0; OKS needs a positive area"),
    ({"annotations": _first_annotation(bbox=[1, 2])}, "bbox is [1, 2]; it must be a list of 4 numbers"),
    ({"categories": lambda c: [{"id": 1, "name": "person"}]}, "0 categories list keypoints"),
    ({"categories": lambda c: [{**c["categories"][0], "skeleton": [[1, 18]]}]},
     "skeleton limb [1, 18] is not a pair of joint numbers 1..17"),
    ({"categories": lambda c: [{**c["categories"][0],
                                "keypoints": [f"j{i}" for i in range(17)]}]},
     "are not COCO's 17 person joints, so OKS needs their sigmas"),
    ({"images": lambda c: [{**c["images"][0], "file_name": "gone.png"}, *c["images"][1:]]},
     "gone.png: no such image file"),
])
def test_bad_coco_keypoints_are_one_line_and_exit_2(tmp_path, figures, capsys, change, message):
    spec = _coco(tmp_path, figures, **change)
    workdir = tmp_path / "run"
    assert main(["run", "pose", "--data", spec, "--workdir", str(workdir), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not workdir.exists()


def test_sigmas_must_fit_the_skeleton(tmp_path, figures, capsys):
    spec = _coco(tmp_path, figures)
    assert main(["run", "pose", "--data", spec, "--set", "sigmas=0.1,0.1", "--workdir",
                 str(tmp_path / "run")]) == 2
    assert "--set sigmas needs 17 positive values, one per keypoint (nose, left_eye" in \
        capsys.readouterr().err
    with pytest.raises(ZooError, match="expected coco-keypoints:ANNOTATIONS.json:IMAGES_DIR"):
        data.load("coco-keypoints:ann.json", SMALL, 32, ())


# -- training and predict --------------------------------------------------------------------

@pytest.fixture(scope="module")
def smoke():
    """The smoke config's session (compiled steps, untrained model)."""
    return zoo.testing.smoke_session("pose")


def test_pose_honours_the_task_contract(smoke, tmp_path):
    zoo.testing.check_train_steps(smoke)
    zoo.testing.check_evaluate(smoke)
    zoo.testing.check_checkpoint_round_trip(smoke, tmp_path)
    zoo.testing.check_predict(smoke)


def test_predict_draws_skeletons_and_types_keypoints(smoke, tmp_path):
    """The contract of predict, on the smoke model: one `Poses` per image with every
    person above min_score (best first) and all 17 named joints, and the drawing
    enlarged so it reads at a glance. (What it finds is tested on a trained model.)"""
    task, info = smoke.task, smoke.data.info
    model = initialised(lambda rngs: task.build_model(info, rngs), nnx.Rngs(0))
    image = np.asarray(Image.fromarray(smoke.data.splits["test"]["image"][0]).resize((48, 40)))
    (found,) = task.predict(model, info, [image], task.PredictOptions(min_score=0.0))
    assert isinstance(found, Poses) and found.render("out", image).size == (288, 240)  # 6x
    people = found.to_json()["people"]
    scores = [person["score"] for person in people]
    assert len(scores) == task.config.max_people and scores == sorted(scores, reverse=True)
    for person in people:
        assert list(person["keypoints"]) == list(COCO_PERSON.names)
        assert all(len(xys) == 3 and 0 <= xys[2] <= 1 for xys in person["keypoints"].values())
    assert found.summary().startswith(f"{len(scores)} people (scores ")
    (fewer,) = task.predict(model, info, [image], task.PredictOptions(min_score=scores[1]))
    assert [p.score for p in fewer.people] == [p.score for p in found.people if p.score >= scores[1]]


def test_embedded_card_predicts_a_person_it_never_saw(tmp_path, capsys):
    """`zoo predict pose --pretrained` on a generated person (seed 7, not in any split),
    enlarged 1.5x: joints come back in the input's pixels, near the true ones, and
    the Python API gives the same people."""
    figure = generate(FigureConfig(min_people=1, max_people=1, clutter=0, occluders=0,
                                   train=1, val=1, test=1, seed=7))["test"]
    image = np.asarray(Image.fromarray(figure["image"][0]).resize((96, 96), Image.NEAREST))
    Image.fromarray(image).save(tmp_path / "person.png")
    out = tmp_path / "skeletons.png"
    assert main(["predict", "pose", str(tmp_path / "person.png"), "--pretrained",
                 "--out", str(out), "--json"]) == 0
    (found,) = json.loads(capsys.readouterr().out)
    assert found["files"] == {"out": str(out)} and len(found["people"]) == 1
    assert Image.open(out).size == (288, 288)
    truth = figure["keypoints"][0, 0]
    labelled = truth[:, 2] > 0
    got = np.array([found["people"][0]["keypoints"][name][:2] for name in COCO_PERSON.names])
    error = np.linalg.norm(got[labelled] - truth[labelled, :2] * 1.5, axis=-1)
    assert np.median(error) < 3  # pixels of the 96x96 input (2 of the 64x64 figure)
    (typed,) = zoo.load("pose/centernet:figures").predict([image])
    assert typed.to_json()["people"] == found["people"] and typed.summary().startswith("1 person")


EASY = FigureConfig(canvas=32, min_people=1, max_people=2, min_height=22, max_height=30,
                    clutter=0, occluders=0, train=2048, val=64, test=64)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The smoke config trained for 2 epochs on 2,048 easy figures (no clutter)."""
    from zoo.harness.trainer import fit
    from zoo_tasks.pose import PoseConfig, PoseTask

    smoke = PoseConfig.smoke()
    config = dataclasses.replace(smoke, figures=EASY, train=dataclasses.replace(
        smoke.train, epochs=2, max_examples=0))
    workdir = tmp_path_factory.mktemp("pose")
    fit(PoseTask(config), workdir, quiet=True)
    return workdir


@pytest.mark.slow
def test_short_training_beats_the_mean_pose(trained):
    """The trivial baseline: the training set's mean pose, at its mean place, for every
    test image. Training must find the people and place their joints far better."""
    splits = load_figures(EASY)
    train, test = splits["train"], splits["test"]
    labelled = train["keypoints"][..., 2:] > 0
    mean_pose = (train["keypoints"][..., :2] * labelled).sum((0, 1)) / labelled.sum((0, 1))
    truth = [(test["keypoints"][i][v], test["boxes"][i][v], test["area"][i][v])
             for i, v in enumerate(test["person_valid"])]
    baseline = keypoint_ap(truth, [(mean_pose[None], np.ones(1))] * len(truth),
                           COCO_PERSON.sigmas)
    history = [json.loads(line) for line in (trained / "history.jsonl").read_text().splitlines()]
    assert history[-1]["train/loss"] < 0.6 * history[0]["train/loss"]
    metrics = json.loads((trained / "metrics.json").read_text())["metrics"]
    assert metrics["ap50"] > baseline["ap50"] + 0.3, (metrics, baseline)
    assert metrics["ap"] > baseline["ap"] + 0.05, (metrics, baseline)


@pytest.mark.slow
def test_trained_predict_finds_the_joints(trained, tmp_path, capsys):
    figure = generate(dataclasses.replace(EASY, max_people=1, train=1, val=1, test=1,
                                          seed=7))["test"]
    image = np.asarray(Image.fromarray(figure["image"][0]).resize((96, 96), Image.NEAREST))
    Image.fromarray(image).save(tmp_path / "person.png")
    out = tmp_path / "skeletons.png"
    assert main(["predict", "pose", str(tmp_path / "person.png"), "--workdir", str(trained),
                 "--out", str(out), "--min-score", "0.01", "--json"]) == 0
    (found,) = json.loads(capsys.readouterr().out)
    best = found["people"][0]
    truth = figure["keypoints"][0, 0]
    labelled = truth[:, 2] > 0
    got = np.array([best["keypoints"][name][:2] for name in COCO_PERSON.names])
    error = np.linalg.norm(got[labelled] - truth[labelled, :2] * 3, axis=-1)
    assert np.median(error) < 9  # joints in the 96x96 input's pixels (3 px of the 32x32)


@pytest.mark.slow
@pytest.mark.timeout(7200)
def test_default_run_reaches_the_issue_targets(tmp_path):
    """Issue 22's targets for a fresh `zoo run pose` (README, Measured)."""
    zoo_cli("run", "pose", "--workdir", str(tmp_path), "--quiet", check=True, timeout=7200)
    metrics = json.loads((tmp_path / "metrics.json").read_text())["metrics"]
    assert metrics["ap"] >= 0.70 and metrics["ap50"] >= 0.90, metrics
