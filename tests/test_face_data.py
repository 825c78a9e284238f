"""The generated faces shared by the face tasks, the threshold choice they share, and
the ArcFace margin logits."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from zoo.data import faces
from zoo.data.scoring import best_threshold
from zoo.models import arcface_logits

SMALL = faces.FaceConfig(train=12, val=6, test=6, photos=3)


@pytest.fixture(scope="module")
def drawn():
    return {split: faces.generate(SMALL, split, 24) for split in faces.SPLITS}


def test_generation_is_deterministic_and_cached_bit_for_bit(drawn):
    again = faces.generate(SMALL, "val", 24)
    for key in ("image", "person", "attributes"):
        np.testing.assert_array_equal(again[key], drawn["val"][key])
    cached = faces.load_faces(SMALL, 24)  # written on this first call
    assert np.array_equal(faces.load_faces(SMALL, 24)["test"]["image"], cached["test"]["image"])
    np.testing.assert_array_equal(cached["train"]["image"], drawn["train"]["image"])


def test_splits_hold_their_own_people_with_varying_photos(drawn):
    shapes = {split: d["image"].shape for split, d in drawn.items()}
    assert shapes == {"train": (36, 24, 24, 3), "val": (18, 24, 24, 3), "test": (18, 24, 24, 3)}
    people = {split: faces.draw_people(getattr(SMALL, split), faces.split_rng(SMALL, split))
              for split in faces.SPLITS}
    faces_of = {split: {tuple(np.round([p["face_w"][i], p["eye_gap"][i], p["nose_length"][i]], 6))
                        for i in range(len(p["face_w"]))} for split, p in people.items()}
    assert sum(map(len, faces_of.values())) == len(set().union(*faces_of.values())) == 24
    train = drawn["train"]
    assert list(train["person"][:6]) == [0, 0, 0, 1, 1, 1]
    photos = train["image"][train["person"] == 0].astype(int)
    assert np.abs(photos[0] - photos[1]).mean() > 10  # pose, lighting, background change


def test_person_attributes_hold_across_photos_and_photo_attributes_vary():
    data = faces.generate(faces.FaceConfig(train=60, val=1, test=1, photos=4), "train", 24)
    by_person = data["attributes"].reshape(60, 4, -1)
    varies = (by_person != by_person[:, :1]).any(axis=(0, 1))
    per_photo = {"Eyeglasses", "Mouth_Open", "Smiling", "Wearing_Hat"}
    assert {name for name, v in zip(faces.ATTRIBUTES, varies) if v} == per_photo
    rates = data["attributes"].mean(0)
    assert ((rates > 0.05) & (rates < 0.7)).all(), dict(zip(faces.ATTRIBUTES, rates))


def test_a_seed_draws_other_people():
    other = faces.generate(faces.FaceConfig(train=12, val=6, test=6, photos=3, seed=1), "train", 24)
    assert not np.array_equal(other["image"], faces.generate(SMALL, "train", 24)["image"])


def test_arcface_logits_match_a_hand_computed_case():
    cosine = jnp.array([[0.8, 0.6, -1.0], [math.cos(3.0), 0.2, 0.1]])
    out = np.asarray(arcface_logits(cosine, jnp.array([0, 0]), scale=10.0, margin=0.5))
    # row 0: theta = acos(0.8) = 0.6435, cos(0.6435 + 0.5) = 0.8*cos .5 - 0.6*sin .5 = 0.4144
    np.testing.assert_allclose(out[0], [10 * (0.8 * math.cos(0.5) - 0.6 * math.sin(0.5)), 6.0, -10.0],
                               rtol=1e-5)
    # row 1: theta = 3.0 > pi - 0.5, so cos(theta) - m sin(m) keeps falling with theta
    np.testing.assert_allclose(out[1], [10 * (math.cos(3.0) - 0.5 * math.sin(0.5)), 2.0, 1.0],
                               rtol=1e-5)
    plain = np.asarray(arcface_logits(cosine, jnp.array([1, 2]), scale=2.0, margin=0.0))
    np.testing.assert_allclose(plain, 2 * np.asarray(cosine), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("goal, expected", [("accuracy", 0.5), ("f1", 0.25)])
def test_best_threshold_sits_halfway_between_scores(goal, expected):
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7])
    labels = np.array([0, 0, 1, 0, 1, 1])
    # accuracy: >= 0.5 gets 5 of 6 (only 0.3 wrong); F1: >= 0.25 gets 2*3/(2*3+1) = 0.857
    # beating >= 0.5's 2*2/(2*2+1) = 0.8
    assert best_threshold(scores, labels, goal) == pytest.approx(expected)
    assert best_threshold(scores, np.zeros(6), goal, default=0.3) == 0.3
