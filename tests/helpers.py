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


def latest_params(workdir: Path, which: str = "latest") -> dict[str, np.ndarray]:
    """The flattened model parameters of a workdir's newest checkpoint.

    Restored onto this process's first device, whatever mesh saved them.
    """
    import jax
    import orbax.checkpoint as ocp

    directory = workdir / "checkpoints" / which
    step = max(int(p.name) for p in directory.iterdir() if p.name.isdigit())
    one_device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    with ocp.CheckpointManager(directory.absolute(), item_handlers={
            "state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}) as manager:
        target = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=one_device),
                              manager.item_metadata(step)["state"])
        restored = manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(target)))
    return {k: np.asarray(v) for k, v in flatten(restored["state"]["model"]).items()}


def flatten(tree: dict, prefix: str = "") -> dict:
    """A nested dict as {"/a/b": leaf}."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}/{key}"))
        else:
            flat[f"{prefix}/{key}"] = value
    return flat
