"""`zoo export`: StableHLO artifacts run by jax alone, ONNX files by onnxruntime, each
matching zoo's own outputs; what cannot be exported is refused in one line."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from flax import nnx

import zoo
from zoo.batching import stack
from zoo.errors import ZooError
from zoo.export import export
from zoo.harness.steps import inference_view
from zoo.predictor import Predictor

from helpers import zoo_cli

LENET = "classification/lenet:mnist-sample"


def test_stablehlo_runs_without_zoo_and_matches_on_the_test_split(tmp_path):
    predictor = zoo.load(LENET)
    images = predictor.task.load_data().splits["test"]["image"]
    record = export(predictor, tmp_path / "lenet", "stablehlo")
    assert record["batch"] == "any" and record["inputs"]["image"]["shape"] == ["batch", 28, 28, 1]
    np.save(tmp_path / "images.npy", images)
    script = textwrap.dedent(f"""
        import sys, numpy as np, jax
        exported = jax.export.deserialize(bytearray(open({str(tmp_path / 'lenet' / 'model.stablehlo')!r}, "rb").read()))
        outputs = exported.call({{"image": np.load({str(tmp_path / 'images.npy')!r})}})
        np.savez({str(tmp_path / 'out.npz')!r}, **outputs)
        assert not any(m == "zoo" or m.startswith(("zoo.", "zoo_")) for m in sys.modules), "zoo imported"
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300, cwd=tmp_path)
    outside = np.load(tmp_path / "out.npz")
    inside = predictor.programs.run(predictor.task.prepare(predictor.info, list(images),
                                                           predictor.task.PredictOptions()), ())
    for key in ("logits", "probabilities"):
        np.testing.assert_allclose(outside[key], np.stack([row[key] for row in inside]),
                                   atol=1e-5, rtol=0)
    # zoo.load(artifact) wraps it with the task's preprocessing and typed results
    exported = zoo.load(tmp_path / "lenet")
    assert exported.model is None and exported.card.name == LENET
    assert [r.label for r in exported.predict(images[:40])] == \
        [r.label for r in predictor.predict(images[:40])]
    readme = (tmp_path / "lenet" / "README.md").read_text()
    assert "jax.export.deserialize" in readme and "uint8" in readme


def _resnet() -> Predictor:
    task_cls = zoo.get_task("classification")
    task = task_cls(dataclasses.replace(task_cls.Config.smoke(), model="resnet"))
    info = {"classes": [str(i) for i in range(10)], "input_shape": [28, 28, 1]}
    model = inference_view(task.build_model(info, nnx.Rngs(0)))
    return Predictor(task, info, task.programs(model, info), model=model, source="resnet (initialised)")


ONNX = {  # what each task's ONNX file holds: the network's outputs
    "classification/lenet": lambda: zoo.load(LENET),
    "classification/resnet": _resnet,
    "segmentation/unet": lambda: zoo.load("segmentation/unet:scenes"),
    "detection/centernet": lambda: zoo.load("detection/centernet:scenes"),
    "ocr/crnn": lambda: zoo.load("ocr/crnn:mixed"),
}


def _onnx_matches(predictor: Predictor, directory) -> list[str]:
    """Exports `predictor` as ONNX (batch 3), runs it under onnxruntime on 3 random
    images and checks every output against zoo's `forward` to 1e-4; returns their names."""
    ort = pytest.importorskip("onnxruntime", reason="pip install 'zoo[onnx]'")
    pytest.importorskip("jax2onnx", reason="pip install --no-deps jax2onnx")
    task, info = predictor.task, predictor.info
    rng = np.random.default_rng(0)
    inputs = [rng.integers(0, 256, (40, 90), np.uint8) for _ in range(3)]  # letterboxed, scaled
    batch = stack(task.prepare(info, inputs, task.PredictOptions()), 3)
    record = export(predictor, directory, "onnx", batch=3)
    session = ort.InferenceSession(str(directory / "model.onnx"))
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, batch)))
    want = task.forward(predictor.model, info, batch)
    assert set(got) == set(want) == set(record["outputs"])
    for key in want:
        np.testing.assert_allclose(got[key], np.asarray(want[key]), atol=1e-4, rtol=0,
                                   err_msg=f"{directory.name}: {key}")
    return sorted(got)


def test_onnx_refuses_a_decoding_loop_in_one_line(tmp_path, capsys):
    with pytest.raises(ZooError) as refused:
        export(zoo.load("translation/lstm-attention:numbers"), tmp_path / "t", "onnx")
    assert "\n" not in str(refused.value) and "use --format stablehlo" in str(refused.value)
    assert not (tmp_path / "t").exists()  # nothing written
    with capsys.disabled():
        print(f"\nONNX refused: {refused.value}")


@pytest.mark.export
def test_onnx_of_every_network_matches(tmp_path, capsys):
    """LeNet, ResNet, U-Net, CenterNet and CRNN: over a minute of CPU (jax2onnx's import
    and conversion alone take 15 s for LeNet), so `-m export` runs it."""
    exported = {name: _onnx_matches(make(), tmp_path / name.replace("/", "-"))
                for name, make in ONNX.items()}
    with capsys.disabled():
        print(f"\nONNX exported (outputs): {json.dumps(exported)}")


def test_export_command_writes_a_loadable_artifact_and_refuses_in_one_line(tmp_path):
    result = zoo_cli("export", "classification", "--pretrained", "--format", "stablehlo",
                     "--out", str(tmp_path / "hlo"), check=True)
    assert "any batch size" in result.stdout
    record = json.loads((tmp_path / "hlo" / "export.json").read_text())
    assert record["task"] == "classification" and record["info"]["input_shape"] == [28, 28, 1]
    bad = zoo_cli("export", "classification", "--pretrained", "--format", "tflite",
                  "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "invalid choice: 'tflite'" in bad.stderr
