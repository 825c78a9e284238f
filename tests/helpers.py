"""Shared test utilities: running the CLI (in a subprocess or in this process) and reading
checkpoints."""

import functools
import json
import os
import subprocess
import sys
import time
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


def free_port() -> int:
    """A TCP port free on localhost now: a jax.distributed coordinator's."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


ONE_DEVICE = {"XLA_FLAGS": "--xla_force_host_platform_device_count=1"}  # per process


def run_two_processes(command, timeout: float = 300) -> list[str]:
    """Runs `command(rank)` as ranks 0 and 1 of a jax.distributed run on localhost (one
    CPU device each), checks both exit 0, and returns their standard outputs."""
    procs = [subprocess.Popen(command(rank), env={**os.environ, **ONE_DEVICE}, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for rank in (0, 1)]
    try:
        outputs = [p.communicate(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
    return [out for out, _ in outputs]


def zoo_here(*argv: str) -> None:
    """Runs `zoo ARGV` in this process (a fresh interpreter costs 3-9 CPU-s of JAX import
    and compiling) and checks it exits 0; the output goes to pytest's capture."""
    from zoo.cli.main import main

    assert main(list(argv)) == 0, f"zoo {' '.join(argv)} failed (see the captured stderr)"


def cli_error(capsys, *argv: str) -> str:
    """Runs the CLI in-process; returns its one error line after checking exit code 2."""
    from zoo.cli.main import main

    code = main(list(argv))
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zoo: error: "), err
    return lines[0]


def run_error(capsys, *argv: str) -> str:
    """Like `cli_error`, for a run stopped after it began (a bad file met mid-stream): the
    phase lines it printed may precede the error, which is its last line, and one line."""
    from zoo.cli.main import main

    code = main(list(argv))
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("zoo: error: "), err
    assert not any(line.startswith("zoo: error: ") for line in lines[:-1]), err
    return lines[-1]


SMALL_SCENES = {"canvas": 32, "max_digits": 2, "min_scale": 14, "max_scale": 24}


def train_on_small_scenes(task: str, workdir: Path, *extra: str, scenes: int = 1200) -> Path:
    """`zoo run TASK` (segmentation or detection) for 4 epochs on small 32x32 scenes."""
    sizes = {**SMALL_SCENES, "train": scenes, "val": 100, "test": 200}
    scene_args = [arg for key, value in sizes.items() for arg in ("--set", f"scenes.{key}={value}")]
    zoo_here("run", task, "--workdir", str(workdir), *scene_args, "--epochs", "4", "--quiet",
             *extra)
    return workdir


def small_scene(seed: int = 5) -> dict[str, np.ndarray]:
    """One test scene drawn like `train_on_small_scenes`' (arrays with a leading axis of 1)."""
    from zoo.data.scenes import SceneConfig, generate

    return generate(SceneConfig(**SMALL_SCENES, train=1, val=1, test=1, seed=seed))["test"]


def latest_params(workdir: Path, which: str = "latest",
                  part: str | None = "model") -> dict[str, np.ndarray]:
    """The flattened `part` of a workdir's newest checkpoint (None: model and optimizer).

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
    state = restored["state"]
    return {k: np.asarray(v) for k, v in flatten(state[part] if part else state).items()}


def flatten(tree: dict, prefix: str = "") -> dict:
    """A nested dict as {"/a/b": leaf}."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}/{key}"))
        else:
            flat[f"{prefix}/{key}"] = value
    return flat


def zoo_process(*args: str, env: dict | None = None) -> subprocess.Popen:
    """Starts `python -m zoo.cli.main ARGS` without waiting; output goes to pipes."""
    return subprocess.Popen([sys.executable, "-m", "zoo.cli.main", *args],
                            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def checkpoint_steps(workdir: Path, which: str = "latest") -> list[int]:
    """The finalized checkpoint steps of a workdir (temporary directories excluded)."""
    directory = workdir / "checkpoints" / which
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit()) \
        if directory.is_dir() else []


def temporary_dirs(workdir: Path) -> list[Path]:
    """Orbax's half-written save directories under a workdir."""
    return sorted((workdir / "checkpoints").rglob("*.orbax-checkpoint-tmp*"))


def wait_until(predicate, timeout: float, poll: float = 0.005) -> bool:
    """Polls `predicate` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return False


def history(workdir: Path) -> list[dict]:
    """history.jsonl without its wall-clock column."""
    rows = [json.loads(line) for line in (workdir / "history.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def kill_and_resume(args: list[str], workdir: Path, modes: list[str], rng,
                    timeout: float = 240) -> list[dict]:
    """Runs `zoo ARGS --workdir WORKDIR`, SIGKILLing it once per mode, then to the end.

    Modes: "save" kills the moment orbax has a temporary directory (mid-save); "step"
    kills a random few milliseconds after a new checkpoint lands (mid-epoch, between
    saves); "start" kills at a random time in the first seconds (loading, compiling);
    "term" sends SIGTERM instead, after a new checkpoint, and expects exit code 0.

    Returns:
      One record per signal: mode, whether it landed before the run finished, the exit
      code, the newest checkpoint step left and whether a temporary directory was left.
    """
    import signal

    records = []
    for mode in modes:
        before = checkpoint_steps(workdir)
        proc = zoo_process(*args, "--workdir", str(workdir))
        if mode == "save":
            wait_until(lambda: temporary_dirs(workdir) or proc.poll() is not None, timeout, 0.001)
        elif mode in ("step", "term"):
            wait_until(lambda: checkpoint_steps(workdir)[-1:] > before[-1:] or
                       proc.poll() is not None, timeout)
            time.sleep(rng.uniform(0, 0.05))
        else:
            time.sleep(rng.uniform(0, 4))
        proc.send_signal(signal.SIGTERM if mode == "term" else signal.SIGKILL)
        proc.communicate(timeout=120)
        finished = (workdir / "metrics.json").exists()
        records.append({"mode": mode, "landed": not finished, "returncode": proc.returncode,
                        "step": (checkpoint_steps(workdir) or [None])[-1],
                        "temporary_left": bool(temporary_dirs(workdir))})
        if finished:
            break
    zoo_here(*args, "--workdir", str(workdir))  # the last resume needs no process of its own
    return records


@functools.cache
def example_task():
    """The example plugin's task class, loaded apart from the registry: a copy that
    tests may subclass without touching what other tests registered."""
    import importlib.util

    from zoo import registry

    spec = importlib.util.spec_from_file_location("zoo_test_example_plugin", EXAMPLE_PLUGIN)
    module = importlib.util.module_from_spec(spec)
    with registry.temporary_registry():  # its @register_task is undone on exit
        registry._entries.pop("spirals", None)  # a copy registered by another test must not clash
        spec.loader.exec_module(module)
    return module.SpiralsTask
