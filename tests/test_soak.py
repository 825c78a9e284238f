"""Soak: many short kill/resume cycles of one run (`pytest -m soak -s tests/test_soak.py`).

Kept out of the default suite (minutes). ZOO_SOAK_CYCLES (default 30) and ZOO_SOAK_SEED
(default 0) pick how many interruptions and which: SIGKILL mid-save, SIGKILL between
saves, SIGKILL during start-up, or SIGTERM. The run must still end bitwise equal to an
uninterrupted one, its epoch means included.
"""

import collections
import json
import os
import random

import numpy as np
import pytest

from helpers import (EXAMPLE_PLUGIN, checkpoint_steps, history, kill_and_resume,
                     latest_params, temporary_dirs, zoo_cli)

MODES = ("save", "step", "start", "term")


@pytest.mark.soak
def test_many_interruptions_end_bitwise_equal(tmp_path):
    cycles = int(os.environ.get("ZOO_SOAK_CYCLES", "30"))
    rng = random.Random(int(os.environ.get("ZOO_SOAK_SEED", "0")))
    epochs = max(3, cycles // 3)  # 62 steps an epoch: enough to outlast the interruptions
    args = ["run", "spirals", "--plugin", str(EXAMPLE_PLUGIN), "--set", "points=4000",
            "--epochs", str(epochs), "--checkpoint-every", "7", "--quiet"]
    zoo_cli(*args, "--workdir", str(tmp_path / "clean"), check=True, timeout=600)
    records = kill_and_resume(args, tmp_path / "soak", [rng.choice(MODES) for _ in range(cycles)],
                              rng, timeout=600)
    summary = {"cycles": cycles, "landed": sum(r["landed"] for r in records),
               "by_mode": dict(collections.Counter(r["mode"] for r in records if r["landed"])),
               "mid_save": sum(r["temporary_left"] for r in records),
               "sigterm_exit_0": sum(r["returncode"] == 0 for r in records if r["mode"] == "term"),
               "steps_at_kill": [r["step"] for r in records]}
    print("soak:", json.dumps(summary))
    assert all(r["returncode"] == 0 for r in records if r["mode"] == "term" and r["landed"])
    assert not temporary_dirs(tmp_path / "soak")
    assert checkpoint_steps(tmp_path / "soak")[-1] == epochs * 62
    clean, soaked = latest_params(tmp_path / "clean"), latest_params(tmp_path / "soak")
    assert all(np.array_equal(clean[k], soaked[k]) for k in clean)
    assert history(tmp_path / "clean") == history(tmp_path / "soak")
