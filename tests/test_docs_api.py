"""docs/api.md runs: its ```python blocks, in order, in one namespace, and what they
print and leave behind is checked."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import numpy as np
from PIL import Image

from helpers import ROOT


def _blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", (ROOT / "docs" / "api.md").read_text(),
                      re.S | re.M)


def test_the_api_guide_runs_as_written(tmp_path):
    from zoo.data import mnist
    from zoo.data.scenes import SceneConfig, generate

    images, labels = mnist.mnist_sample()
    Image.fromarray(images[np.flatnonzero(labels == 7)[-1], ..., 0]).save(tmp_path / "digit.png")
    scene = generate(SceneConfig(train=1, val=1, test=1, seed=5))["test"]["image"][0, ..., 0]
    Image.fromarray(255 - scene).save(tmp_path / "scene.png")  # dark digits on light
    namespace: dict = {}
    printed = io.StringIO()
    blocks = _blocks()
    assert len(blocks) >= 6
    with contextlib.redirect_stdout(printed):
        for block in blocks:
            exec(compile(block, "docs/api.md", "exec"), namespace)  # noqa: S102
    lines = printed.getvalue().splitlines()
    assert lines[0].startswith("7 0.9")  # the quick start's answer, as the comment says
    assert namespace["found"].labels and Image.open("boxes.png").size == (64, 64)
    assert namespace["outputs"]["probabilities"].shape == (5, 10)
    assert (Path("lenet-hlo") / "export.json").is_file()
    watch, metrics = namespace["watch"], namespace["metrics"]
    assert metrics["epochs"] == 2 and len(watch.epochs) == 2  # stopped by the callback
    assert [step for step, _ in watch.losses][:3] == [5, 10, 15]  # every 5th step, no other
    assert all(np.isfinite(loss) for _, loss in watch.losses)
