"""Fault injection on real `zoo run` processes: SIGKILL, SIGTERM, a full disk, two ranks.

Every process runs under a timeout, so a hang fails the test instead of the suite. The
reference is one uninterrupted run; interrupted runs must end bitwise equal to it.
"""

import contextlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from zoo.harness.manifest import verify

from helpers import (EXAMPLE_PLUGIN, ONE_DEVICE, ROOT, checkpoint_steps, free_port, history,
                     kill_and_resume, latest_params, temporary_dirs, wait_until, zoo_here,
                     zoo_process)

# 62 steps an epoch, a checkpoint every 7 steps: most kills land mid-epoch.
ARGS = ["run", "spirals", "--plugin", str(EXAMPLE_PLUGIN), "--set", "points=4000",
        "--epochs", "3", "--checkpoint-every", "7", "--quiet"]
STEPS = 3 * 62


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """The uninterrupted run every interrupted one is compared with (in this process: only
    the interrupted runs need processes of their own)."""
    workdir = tmp_path_factory.mktemp("clean")
    zoo_here(*ARGS, "--workdir", str(workdir))
    return workdir


def _assert_same_run(clean, other):
    a, b = latest_params(clean), latest_params(other)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert history(clean) == history(other)  # epoch means too: partial sums are saved


def test_killed_at_random_steps_resumes_bitwise(clean, tmp_path):
    """SIGKILL mid-save, then between saves; each time resumed with the same command.
    (tests/test_soak.py does this many more times.)"""
    records = kill_and_resume(ARGS, tmp_path, ["save", "step"], random.Random(0))
    assert all(r["landed"] for r in records), records
    assert records[0]["temporary_left"], "the first kill should interrupt a save"
    assert not temporary_dirs(tmp_path)  # cleaned up by the resumed run
    assert checkpoint_steps(tmp_path)[-1] == STEPS
    _assert_same_run(clean, tmp_path)


def test_sigterm_checkpoints_and_exits_0_then_resumes(clean, tmp_path, capsys):
    """SIGTERM: finish the step, save, exit 0 naming the resume command; resume bitwise.
    (A checkpoint restoring on another device count: tests/test_distributed.py.)"""
    proc = zoo_process(*ARGS, "--workdir", str(tmp_path))
    assert wait_until(lambda: checkpoint_steps(tmp_path) or proc.poll() is not None, 240)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "stopped by SIGTERM at step" in stderr and "Resume with: zoo run spirals" in stderr
    step = int(stderr.split("at step ")[1].split()[0])
    assert 0 < step < STEPS and checkpoint_steps(tmp_path)[-1] == step
    assert not (tmp_path / "metrics.json").exists()
    zoo_here(*[a for a in ARGS if a != "--quiet"], "--workdir", str(tmp_path))
    assert f"step {step}" in capsys.readouterr().err
    _assert_same_run(clean, tmp_path)


DISK_FULL = """
set -u
mount -t tmpfs -o size=12m zoo-full "$W" || exit 77
python -m zoo.cli.main "$@" --workdir "$W/run" 2> "$OUT/err1" &
pid=$!
until ls "$W/run/checkpoints/latest" 2>/dev/null | grep -qx '[0-9]*'; do
  kill -0 $pid 2>/dev/null || break; sleep 0.02; done
dd if=/dev/zero of="$W/filler" bs=64k 2>/dev/null
wait $pid; echo $? > "$OUT/rc1"
cp -r "$W/run" "$OUT/after-full"
rm "$W/filler"
python -m zoo.cli.main "$@" --workdir "$W/run" 2> "$OUT/err2"; echo $? > "$OUT/rc2"
cp "$W/run/metrics.json" "$OUT/" 2>/dev/null
"""


@pytest.mark.skipif(not shutil.which("unshare"), reason="needs unshare to mount a tmpfs")
def test_full_disk_while_saving_keeps_the_previous_checkpoint(tmp_path):
    """A 12 MB tmpfs filled up after the first checkpoint: the run stops with one line
    naming the intact checkpoint (exit 2); once space is freed, the same command resumes."""
    mount, out = tmp_path / "mnt", tmp_path / "out"
    mount.mkdir(), out.mkdir()
    args = ["run", "spirals", "--plugin", str(EXAMPLE_PLUGIN), "--set", "points=4000",
            "--epochs", "8", "--quiet"]
    env = {**os.environ, "W": str(mount), "OUT": str(out), "PATH": os.path.dirname(sys.executable)
           + os.pathsep + os.environ["PATH"]}
    result = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                             DISK_FULL, "sh", *args], env=env, timeout=400, cwd=ROOT)
    if result.returncode == 77 or not (out / "rc1").exists():
        pytest.skip("cannot mount a tmpfs in a user namespace here")
    err = (out / "err1").read_text()
    assert (out / "rc1").read_text().strip() == "2", err
    assert err.startswith("zoo: error: disk full") and "intact" in err, err
    assert len(err.strip().splitlines()) == 1, err
    # "disk full while saving checkpoint latest/124 ...; checkpoint latest/62 is intact"
    intact = int(re.search(r"checkpoint latest/(\d+) is intact", err).group(1))
    assert intact in checkpoint_steps(out / "after-full")
    verify(out / "after-full" / "checkpoints" / "latest" / str(intact))
    assert (out / "rc2").read_text().strip() == "0", (out / "err2").read_text()
    assert (out / "metrics.json").exists()


def _two_processes(workdir, *args):
    """`zoo ARGS` as ranks 0 and 1 of a jax.distributed run on localhost."""
    command = [sys.executable, "-m", "zoo.cli.main", *args, "--workdir", str(workdir),
               "--num-processes", "2", "--coordinator", f"127.0.0.1:{free_port()}"]
    env = {**os.environ, **ONE_DEVICE}
    return [subprocess.Popen([*command, "--process-id", str(i)], env=env, text=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for i in (0, 1)]


def _finish(procs, timeout=300):
    try:
        errs = [p.communicate(timeout=timeout)[1] for p in procs]
    finally:
        for p in procs:
            p.kill()
    return [p.returncode for p in procs], errs


@pytest.mark.slow  # six `zoo` processes (about 40 CPU seconds); the sync point itself is
# checked by the next test in a few seconds
def test_sigterm_to_one_of_two_processes_stops_both_at_one_step(tmp_path):
    """Orbax's preemption sync point: both ranks save the same step and exit 0; resumed as
    two processes, the run ends bitwise equal to an uninterrupted two-process run."""
    args = ["run", "spirals", "--plugin", str(EXAMPLE_PLUGIN), "--set", "points=2000",
            "--epochs", "2", "--checkpoint-every", "7", "--quiet"]
    codes, errs = _finish(_two_processes(tmp_path / "clean", *args))
    assert codes == [0, 0], errs
    procs = _two_processes(tmp_path / "run", *args)
    assert wait_until(lambda: checkpoint_steps(tmp_path / "run") or procs[0].poll() is not None, 240)
    procs[1].send_signal(signal.SIGTERM)
    codes, errs = _finish(procs)
    assert codes == [0, 0], errs
    steps = [int(err.split("stopped by SIGTERM at step ")[1].split()[0]) for err in errs]
    assert steps[0] == steps[1] == checkpoint_steps(tmp_path / "run")[-1], errs
    codes, errs = _finish(_two_processes(tmp_path / "run", *args))
    assert codes == [0, 0], errs
    _assert_same_run(tmp_path / "clean", tmp_path / "run")


def test_sigint_to_one_of_two_ranks_is_forwarded_to_the_sync_point(tmp_path):
    """SIGINT is not JAX's: zoo forwards it as SIGTERM, and both ranks stop at one step."""
    port = free_port()
    logs = [tmp_path / f"rank{i}.log" for i in range(2)]
    with contextlib.ExitStack() as files:
        procs = [subprocess.Popen([sys.executable, str(ROOT / "tests" / "preemption_worker.py"),
                                   str(port), str(i)], env={**os.environ, "XLA_FLAGS": ""},
                                  stdout=files.enter_context(log.open("w")),
                                  stderr=subprocess.STDOUT) for i, log in enumerate(logs)]
        try:
            assert wait_until(lambda: all("ready" in log.read_text() for log in logs), 120)
            procs[1].send_signal(signal.SIGINT)
            for p in procs:
                p.wait(timeout=60)
        finally:
            for p in procs:
                p.kill()
    outputs = [log.read_text() for log in logs]
    stops = [int(line.split("stops at step ")[1].split()[0])
             for out in outputs for line in out.splitlines() if "stops at step" in line]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert len(stops) == 2 and stops[0] == stops[1], outputs
