"""Shared test utilities: running the CLI in a subprocess and reading checkpoints."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_PLUGIN = ROOT / "docs" / "examples" / "my_task.py"


def zoo_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300,
            check: bool = False) -> subprocess.CompletedProcess:
    """Runs `python -m zoo.cli.main ARGS` in a fresh process and captures its output."""
    full_env = {**os.environ, **(env or {})}
    result = subprocess.run([sys.executable, "-m", "zoo.cli.main", *args], cwd=cwd,
                            env=full_env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"zoo {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return result


def latest_params(workdir: Path, which: str = "latest", part: str | None = "model") -> dict[str, np.ndarray]:
    """The flattened `part` of a workdir's newest checkpoint (None: model and optimizer)."""
    import orbax.checkpoint as ocp

    directory = workdir / "checkpoints" / which
    step = max(int(p.name) for p in directory.iterdir() if p.name.isdigit())
    with ocp.CheckpointManager(directory.absolute()) as manager:
        restored = manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore()))
    flat = {}

    def walk(node, prefix):
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}/{key}")
        else:
            flat[prefix] = np.asarray(node)

    state = restored["state"]
    walk(state[part] if part else state, "")
    return flat
