"""The Python API: `zoo.load(...).predict` gives `zoo eval`'s answers for every built-in
task (embedded hub weights, small test splits), typed results, batching, and errors."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from PIL import Image

import zoo
from zoo.data.images import to_unit_range
from zoo.data.text import UNK_ID, Vocabulary, detokenize
from zoo.errors import ZooError
from zoo.predictions import Classification, Detections, SegmentationMask, Text
from zoo.restore import restore

SMALL_SCENES = {"train": 2, "val": 2, "test": 12}


def _small(predictor, **scenes):
    """The predictor's task with a small generated test split (same generator and seed)."""
    config = predictor.task.config
    if hasattr(config, "scenes"):
        config = dataclasses.replace(config, scenes=dataclasses.replace(config.scenes, **scenes))
    return type(predictor.task)(config)


def _eval_outputs(predictor, split, **config):
    """What `zoo eval` computes on `split` (every row real): the task's eval_step (with
    `config` fields replaced)."""
    task = predictor.task
    if config:
        task = type(task)(dataclasses.replace(task.config, **config))
    batch = {**split, "mask": np.ones(len(next(iter(split.values()))), np.float32)}
    return jax.device_get(nnx.jit(task.eval_step)(predictor.model, batch))


def test_classification_matches_eval_accuracy_and_the_network():
    predictor = zoo.load("classification/lenet:mnist-sample")
    test = predictor.task.load_data().splits["test"]
    results = predictor.predict(test["image"], top_k=3)  # a 4-D array is a batch
    assert len(results) == len(test["image"]) and isinstance(results[0], Classification)
    labels = np.array([predictor.info["classes"].index(r.label) for r in results])
    restored = restore("classification/lenet:mnist-sample")
    assert np.mean(labels == test["label"]) == pytest.approx(
        restored.evaluate("test")["accuracy"], abs=1e-6)
    logits = predictor.model(to_unit_range(jnp.asarray(test["image"][:64])))
    np.testing.assert_allclose(np.stack([r.probabilities for r in results[:64]]),
                               jax.nn.softmax(logits), atol=1e-6)
    assert len(results[0].top()) == 3 and results[0].to_json()["top"][0]["label"] == results[0].label


def test_segmentation_masks_give_evals_confusion_matrix():
    predictor = zoo.load("segmentation/unet:scenes")
    test = _small(predictor, **SMALL_SCENES).load_data().splits["test"]
    results = predictor.predict(list(test["image"]))
    assert isinstance(results[0], SegmentationMask) and results[0].mask.shape == (64, 64)
    classes = len(predictor.info["classes"])
    confusion = np.zeros((classes, classes), np.int64)
    for result, truth in zip(results, test["label"]):
        valid = truth != 255
        np.add.at(confusion, (truth[valid], result.mask[valid]), 1)
    np.testing.assert_array_equal(confusion, _eval_outputs(predictor, test)["confusion"])


@pytest.mark.parametrize("name", ["detection/centernet:scenes", "instances/condinst:scenes"])
def test_detections_are_evals_in_image_pixels(name):
    predictor = zoo.load(name)
    test = _small(predictor, **SMALL_SCENES).load_data().splits["test"]
    # predict suppresses across classes (instances evaluates per class: AP counts second guesses)
    found = _eval_outputs(predictor, test, class_agnostic_nms=True)
    light = [255 - image[..., 0] for image in test["image"]]  # matched back to dark
    results = predictor.predict(light, min_score=0.05)
    for i, result in enumerate(results):
        keep = np.flatnonzero(found["scores"][i] >= 0.05)
        keep = keep[np.argsort(-found["scores"][i][keep], kind="stable")]
        np.testing.assert_allclose(result.scores, found["scores"][i][keep], atol=1e-5)
        boxes = np.clip(found["boxes"][i][keep], 0, 64)
        np.testing.assert_allclose(result.boxes, boxes, atol=1e-3)
        if "masks" in found:  # instances: masks at the input's resolution
            np.testing.assert_array_equal(result.masks, found["masks"][i][keep] > 0)
    assert isinstance(results[0], Detections) or name.startswith("instances")


def test_ocr_reads_what_eval_decodes(monkeypatch):
    from zoo_tasks.ocr import data, ids_to_text

    monkeypatch.setattr(data, "SIZES", {"train": 2, "val": 2, "test": 12})
    predictor = zoo.load("crnn:mixed", task="ocr")
    test = predictor.task.load_data().splits["test"]
    lines = [image[:, :width] for image, width in zip(test["image"], test["width"])]
    results = predictor.predict(lines, beam=predictor.task.config.beam)
    expected = [ids_to_text(row, predictor.info["alphabet"])
                for row in _eval_outputs(predictor, test)["text"]]
    assert isinstance(results[0], Text) and [r.text for r in results] == expected


def test_translation_translates_what_eval_translates():
    predictor = zoo.load("translation/lstm-attention:numbers")
    test = {k: v[:12] for k, v in predictor.task.load_data().splits["test"].items()}
    src_vocab = Vocabulary(tuple(predictor.info["src_vocab"]))
    sentences = [detokenize(src_vocab.decode(row)) for row in test["src"]]
    assert not any(UNK_ID in row for row in test["src"])
    results = predictor.predict(sentences, beam=predictor.task.config.beam)
    tgt_vocab = Vocabulary(tuple(predictor.info["tgt_vocab"]))
    tokens = _eval_outputs(predictor, test)["tokens"]
    assert [r.text for r in results] == [detokenize(tgt_vocab.decode(row)) for row in tokens]


def test_gan_generates_the_classes_asked_for():
    predictor = zoo.load("gan/cdcgan:mnist-sample")
    results = predictor.predict(list(range(10)) * 2, seed=3)
    assert [r.label for r in results] == [str(i) for i in range(10)] * 2
    agree = np.mean([r.judged == r.label for r in results])
    assert agree >= 0.8  # the card's judge agreement is 0.983; chance 0.1
    again = predictor.predict([0, 1], seed=3)  # image i's noise depends on (seed, i) only
    np.testing.assert_array_equal(np.stack([r.image for r in again]),
                                  np.stack([r.image for r in results[:2]]))
    assert predictor.predict(count=5)[4].label == "4"  # every class in turn


def test_inputs_in_any_form_give_one_answer(tmp_path):
    predictor = zoo.load("classification/lenet:mnist-sample")
    test = predictor.task.load_data().splits["test"]
    digit = test["image"][0]
    Image.fromarray(255 - digit[..., 0]).convert("RGB").resize((56, 56)).save(tmp_path / "d.png")
    forms = [digit, digit[..., 0] / 255.0, Image.open(tmp_path / "d.png"),
             str(tmp_path / "d.png"), tmp_path / "d.png"]
    labels = {predictor.predict(form).label for form in forms}
    assert labels == {predictor.info["classes"][test["label"][0]]}
    buckets = predictor.programs.buckets
    predictor.predict(list(test["image"][:buckets[1] + 1]))  # 1, then 9 rows: buckets 1 and 32
    assert {bucket for bucket, _ in predictor.programs._compiled} == {1, buckets[2]}
    assert predictor.card.name == "classification/lenet:mnist-sample"
    assert predictor.task.name == "classification" and predictor.info["input_shape"] == [28, 28, 1]


@pytest.mark.parametrize("call, message", [
    (lambda p: p.predict(np.zeros((3, 3, 7))), "must be (H, W) or (H, W, 1|3|4)"),
    (lambda p: p.predict(np.full((28, 28), 2.0)), "values in [0, 1]"),
    (lambda p: p.predict("missing.png"), "missing.png"),
    (lambda p: p.predict(np.zeros((28, 28)), top_k=0), "top_k=0 is out of range"),
    (lambda p: p.predict(np.zeros((28, 28)), beam=2), "beam"),
])
def test_bad_inputs_and_options_are_one_line_errors(call, message):
    predictor = zoo.load("classification/lenet:mnist-sample")
    with pytest.raises(ZooError, match=message.replace("[", r"\[").replace("(", r"\(")
                       .replace(")", r"\)").replace("|", r"\|")):
        call(predictor)


def test_load_refuses_what_it_cannot_read(tmp_path):
    with pytest.raises(ZooError, match="neither a workdir nor a published weight"):
        zoo.load(tmp_path / "nothing")
    with pytest.raises(ZooError, match="not 'detection'"):
        zoo.load("classification/lenet:mnist-sample", task="detection")
