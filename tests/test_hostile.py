"""Hostile cases, table-driven: every one exits 2 with one line and writes nothing.

Each case builds its inputs in a fresh folder, hashes that folder and $ZOO_HOME, runs
`zoo` in-process (`zoo.cli.main.main`, argparse's exits included), and checks: exit code
2, exactly one line on stderr starting `zoo: error:`, no traceback, the expected words,
and every file as it was (the workdir's `run.lock` may be created: the lock itself; and
JAX's compilation cache may gain programs).
The few cases that need a real process (a lock held by another process, a read-only
mount) run one further down.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoo import registry
from zoo.cli.main import main
from zoo.harness.checkpoints import CheckpointStore

from helpers import EXAMPLE_PLUGIN

SPIRALS = ["--set", "points=256", "--epochs", "2", "--quiet"]


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def _bomb(width: int = 30_000, height: int = 30_000) -> bytes:
    """A tiny PNG claiming width x height pixels: a decompression bomb's header."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) +
            chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def tree_digest(*roots: Path) -> dict[str, str]:
    """sha256 of every file under `roots`, apart from the expected places: a workdir's
    lock file and JAX's compilation cache."""
    found = {}
    for root in roots:
        for path in sorted(Path(root).rglob("*")) if Path(root).exists() else ():
            if "jax-cache" in path.parts:
                continue
            if path.is_file() and path.name != "run.lock":
                found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
            elif path.is_dir():
                found[str(path)] = "dir"
    return found


def run_zoo(capsys, argv: list[str]) -> tuple[int, str]:
    """`zoo ARGV` in-process: (exit code, stderr); tasks its plugins register are
    forgotten after."""
    try:
        with registry.temporary_registry():
            code = main([str(a) for a in argv])
    except SystemExit as e:  # argparse exits itself
        code = e.code
    return code, capsys.readouterr().err


def assert_refused(capsys, tmp_path: Path, argv: list[str], expect: str) -> str:
    home = Path(os.environ["ZOO_HOME"])
    before = tree_digest(tmp_path, home)
    code, err = run_zoo(capsys, argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("zoo: error: "), err
    assert "Traceback" not in err and expect in lines[0], err
    assert tree_digest(tmp_path, home) == before, "files changed"
    return lines[0]


@dataclasses.dataclass(frozen=True)
class Case:
    """`setup(tmp_path, trained)` writes the inputs and returns zoo's arguments."""

    name: str
    setup: Callable[[Path, Path], list]
    expect: str

    def __str__(self) -> str:
        return self.name


# --- config values out of range, refused before anything is loaded or written -----------
RANGES = [
    ("seed beyond 64 bits", ["--seed", str(2**64 + 1)], "train.seed=18446744073709551617 is out of range: it must be in [0, 4294967295]"),
    ("seed beyond 32 bits", ["--seed", str(2**32)], "it must be in [0, 4294967295]"),
    ("negative seed", ["--set", "train.seed=-1"], "train.seed=-1 is out of range"),
    ("zero batch", ["--batch-size", "0"], "train.batch_size=0 is out of range: it must be >= 1"),
    ("negative batch", ["--batch-size", "-4"], "train.batch_size=-4 is out of range"),
    ("zero eval batch", ["--set", "train.eval_batch_size=0"], "train.eval_batch_size=0"),
    ("zero epochs", ["--epochs", "0"], "train.epochs=0 is out of range: it must be >= 1"),
    ("negative max_examples", ["--set", "train.max_examples=-1"], "it must be >= 0"),
    ("zero log_every", ["--set", "train.log_every=0"], "train.log_every=0"),
    ("negative checkpoint cadence", ["--checkpoint-every", "-5"], "train.checkpoint_every_steps=-5"),
    ("zero max_bad_steps", ["--set", "train.max_bad_steps=0"], "train.max_bad_steps=0"),
    ("lr nan", ["--lr", "nan"], "optimizer.lr=nan is out of range"),
    ("lr inf", ["--set", "optimizer.lr=inf"], "optimizer.lr=inf is out of range"),
    ("lr -inf", ["--set", "optimizer.lr=-inf"], "optimizer.lr=-inf is out of range"),
    ("lr zero", ["--lr", "0"], "it must be > 0"),
    ("momentum above 1", ["--set", "optimizer.momentum=1.5"], "it must be in [0, 1]"),
    ("negative weight decay", ["--set", "optimizer.weight_decay=-0.1"], "optimizer.weight_decay=-0.1"),
    ("clip nan", ["--set", "optimizer.grad_clip_norm=nan"], "optimizer.grad_clip_norm=nan"),
    ("negative warmup", ["--set", "optimizer.warmup_epochs=-1"], "optimizer.warmup_epochs=-1.0"),
    ("negative patience", ["--set", "early_stopping.patience=-2"], "early_stopping.patience=-2"),
    ("min_delta inf", ["--set", "early_stopping.min_delta=inf"], "early_stopping.min_delta=inf"),
    ("hidden nan (a plugin's float)", ["--set", "points=nan"], "points"),
]
CASES = [Case(f"range: {name}", lambda t, w, a=argv: ["run", "spirals", "--workdir", t / "w", *a],
              expect) for name, argv, expect in RANGES]

DROPOUT = [("1.0", "it must be in [0, 1)"), ("-0.1", "it must be in [0, 1)"),
           ("nan", "dropout=nan"), ("1e309", "dropout=inf")]
CASES += [Case(f"range: translation dropout {v}",
               lambda t, w, v=v: ["run", "translation", "--set", f"dropout={v}", "--workdir", t / "w"],
               expect) for v, expect in DROPOUT]

# --- predict options: argparse refuses them on one line, with the range ----------------
PREDICT = [
    ("classification", ["--top-k", "0"], "--top-k: 0 is out of range: it must be >= 1"),
    ("classification", ["--top-k", "-3"], "it must be >= 1"),
    ("classification", ["--top-k", "two"], "--top-k=two: expected int"),
    ("detection", ["--min-score", "nan"], "--min-score: nan is out of range: it must be in [0, 1]"),
    ("detection", ["--min-score", "1.5"], "it must be in [0, 1]"),
    ("instances", ["--min-score", "inf"], "it must be in [0, 1]"),
    ("instances", ["--min-score", "-0.1"], "it must be in [0, 1]"),
]
CASES += [Case(f"predict: {task} {' '.join(argv)}",
               lambda t, w, task=task, a=argv: ["predict", task, t / "x.png", *a], expect)
          for task, argv, expect in PREDICT]
CASES += [Case("argparse: unknown choice",
               lambda t, w: ["run", "spirals", "--dtype", "float8"], "invalid choice: 'float8'"),
          Case("argparse: --epochs not a number",
               lambda t, w: ["run", "spirals", "--epochs", "many"], "invalid int value: 'many'")]


# --- workdirs, ZOO_HOME and outputs that cannot be used --------------------------------
def _file(path: Path, text: str = "not a folder") -> Path:
    path.write_text(text)
    return path


CASES += [
    Case("workdir: is a file (run)", lambda t, w: ["run", "spirals", "--workdir", _file(t / "w")],
         "is a file, not a directory"),
    Case("workdir: below a file (run)",
         lambda t, w: ["run", "spirals", "--workdir", _file(t / "f") / "w"], "cannot create --workdir"),
    Case("workdir: is a file (eval)", lambda t, w: ["eval", "spirals", "--workdir", _file(t / "w")],
         "no zoo run here"),
    Case("workdir: empty folder (eval)",
         lambda t, w: ["eval", "spirals", "--workdir", (t / "w").mkdir() or t / "w"], "no zoo run here"),
    Case("workdir: another task's", lambda t, w: ["run", "classification", "--workdir", w],
         "holds a 'spirals' run, not 'classification'"),
    Case("compress --out inside the source workdir",
         lambda t, w: ["compress", "spirals", "--workdir", w, "--prune", "0.5", "--out", w / "small"],
         "is inside the source"),
    Case("compress --out is the source workdir",
         lambda t, w: ["compress", "spirals", "--workdir", w, "--prune", "0.5", "--out", w],
         "is inside the source"),
    Case("compress --out inside its checkpoints",
         lambda t, w: ["compress", "spirals", "--workdir", w, "--prune", "0.5",
                       "--out", w / "checkpoints" / "best"], "is inside the source"),
    Case("compress --out below a file",
         lambda t, w: ["compress", "spirals", "--workdir", w, "--prune", "0.5",
                       "--out", _file(t / "f") / "out"], "is a file, not a folder"),
    Case("compress --out is a file",
         lambda t, w: ["compress", "spirals", "--workdir", w, "--prune", "0.5",
                       "--out", _file(t / "out")], "is a file, not a folder"),
    Case("publish --hub is a file",
         lambda t, w: ["publish", w, "--hub", _file(t / "hub"), "--tag", "v1"], "is a file, not a folder"),
    Case("publish --hub inside the workdir",
         lambda t, w: ["publish", w, "--hub", w / "hub", "--tag", "v1"], "is inside the source"),
    Case("publish --hub below a file",
         lambda t, w: ["publish", w, "--hub", _file(t / "f") / "hub", "--tag", "v1"], "is a file, not a folder"),
    Case("predict --out inside the workdir",
         lambda t, w: ["predict", "detection", t / "x.png", "--workdir", w, "--out", w / "boxes.png"],
         "is inside the source"),
    Case("predict --mask-out inside the workdir",
         lambda t, w: ["predict", "segmentation", t / "x.png", "--workdir", w, "--mask-out", w / "m.png"],
         "--mask-out"),
    Case("predict --out below a file",
         lambda t, w: ["predict", "detection", t / "x.png", "--out", _file(t / "f") / "o.png"],
         "is a file, not a folder"),
]


# --- damaged run.json -----------------------------------------------------------------
def _damaged(content: bytes | str, command: str = "run") -> Callable:
    def setup(t: Path, w: Path) -> list:
        copy = shutil.copytree(w, t / "w")
        raw = content.encode() if isinstance(content, str) else content
        (copy / "run.json").write_bytes(raw)
        return [command, "spirals", "--workdir", copy, *(SPIRALS if command == "run" else [])]
    return setup


RECORDS = [
    ("truncated", '{"format": 2, "task": "spir', "not valid JSON"),
    ("empty", "", "not valid JSON"),
    ("binary", b"\xff\xfe\x00garbage", "not valid JSON"),
    ("a list", "[1, 2]", "not a zoo run record"),
    ("no task", '{"format": 2}', "not a zoo run record"),
    ("task a number", '{"format": 2, "task": 7}', "not a zoo run record"),
    ("format a string", '{"format": "2", "task": "spirals", "config": {}}', "its format '2' is not a number"),
    ("config a list", '{"format": 2, "task": "spirals", "config": []}', "its 'config' is not an object"),
    ("info a string", '{"format": 2, "task": "spirals", "config": {}, "info": "x"}', "its 'info' is not an object"),
    ("data null", '{"format": 2, "task": "spirals", "config": {}, "data": null}', "its 'data' is not an object"),
]
CASES += [Case(f"run.json: {name} ({command})", _damaged(content, command), expect)
          for name, content, expect in RECORDS for command in ("run", "eval")]


# --- a resumed run with other settings or other data ----------------------------------
def _resume(*argv: str) -> Callable:
    def setup(t: Path, w: Path) -> list:
        return ["run", "spirals", "--workdir", shutil.copytree(w, t / "w"), *SPIRALS, *argv]
    return setup


def _vanished(workdir: Path) -> list:
    shutil.rmtree(workdir / "checkpoints")
    return ["run", "spirals", "--workdir", workdir, *SPIRALS, "--epochs", "3"]


def _best_a_file(workdir: Path) -> list:
    shutil.rmtree(workdir / "checkpoints" / "best")
    (workdir / "checkpoints" / "best").write_text("in the way")
    return ["eval", "spirals", "--workdir", workdir]


CASES += [
    Case("resume: other seed", _resume("--seed", "3"), "different config (train.seed)"),
    Case("resume: other batch size", _resume("--batch-size", "32"), "(train.batch_size)"),
    Case("resume: other dtype", _resume("--dtype", "bfloat16"), "(train.dtype)"),
    Case("resume: other width", _resume("--set", "hidden=32"), "(hidden)"),
    Case("resume: other optimizer", _resume("--set", "optimizer.name=sgd"), "(optimizer.name)"),
    Case("resume: other schedule", _resume("--set", "optimizer.schedule=constant"), "(optimizer.schedule)"),
    Case("resume: checkpoints vanished", lambda t, w: _vanished(shutil.copytree(w, t / "w")),
         "holds the history of a run but no checkpoint to resume it from"),
    Case("eval: checkpoints/best is a file", lambda t, w: _best_a_file(shutil.copytree(w, t / "w")),
         "cannot open checkpoints/best (not a folder:"),
    Case("resume: early_stopping.metric unknown",
         lambda t, w: ["run", "spirals", "--workdir", t / "fresh", *SPIRALS,
                       "--set", "early_stopping.metric=f1"],
         "early_stopping.metric 'f1' is not a validation metric of 'spirals'; choose from accuracy"),
]


# --- COCO annotation files with the wrong types ----------------------------------------
def _coco(**change) -> dict:
    images = [{"id": i, "file_name": f"{i}.png", "width": 32, "height": 32} for i in range(3)]
    anns = [{"id": i, "image_id": i, "category_id": 1, "bbox": [2, 2, 10, 10], "iscrowd": 0}
            for i in range(3)]
    coco = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "one"}]}
    for key, value in change.items():
        section, _, field = key.partition("__")
        if field:
            coco[section][0][field] = value
            if value is ...:
                del coco[section][0][field]
        else:
            coco[section] = value
    return coco


def _coco_case(coco) -> Callable:
    def setup(t: Path, w: Path) -> list:
        (t / "img").mkdir()
        for i in range(3):
            (t / "img" / f"{i}.png").write_bytes(_png(np.zeros((32, 32, 3), np.uint8)))
        (t / "ann.json").write_text(json.dumps(coco))
        return ["run", "detection", "--data", f"coco:{t / 'ann.json'}:{t / 'img'}",
                "--workdir", t / "w", "--smoke"]
    return setup


COCO = [
    ("string category id", _coco(categories=[{"id": "1", "name": "one"}]), "categories[0] id is '1'; it must be an integer"),
    ("string category_id", _coco(annotations__category_id="1"), "annotations[0] category_id is '1'"),
    ("string iscrowd", _coco(annotations__iscrowd="0"), "annotations[0] iscrowd is '0'; it must be 0 or 1"),
    ("iscrowd 2", _coco(annotations__iscrowd=2), "it must be 0 or 1"),
    ("bbox of 3", _coco(annotations__bbox=[1, 2, 3]), "bbox is [1, 2, 3]; it must be a list of 4 numbers"),
    ("bbox of strings", _coco(annotations__bbox=["1", "2", "3", "4"]), "it must be a list of 4 numbers"),
    ("bbox null", _coco(annotations__bbox=None), "bbox is None"),
    ("bbox missing", _coco(annotations__bbox=...), "annotations[0] has no 'bbox'"),
    ("image_id missing", _coco(annotations__image_id=...), "annotations[0] has no 'image_id'"),
    ("file_name a number", _coco(images__file_name=3), "images[0] file_name is 3; it must be a file name"),
    ("image id a dict", _coco(images__id={"a": 1}), "images[0] id is {'a': 1}"),
    ("annotations null", _coco(annotations=None), "'annotations' must be a list, not NoneType"),
    ("categories a dict", _coco(categories={"id": 1}), "'categories' must be a list, not dict"),
    ("images of strings", _coco(images=["0.png"]), "images[0] must be an object, not str"),
    ("top level a list", [], "not COCO format"),
]
CASES += [Case(f"coco: {name}", _coco_case(coco), expect) for name, coco, expect in COCO]


# --- decompression bombs and broken files in mask folders ------------------------------
def _masks(bad_mask: bytes | None = None, bad_image: bytes | None = None) -> Callable:
    def setup(t: Path, w: Path) -> list:
        for folder in ("images", "masks"):
            (t / folder).mkdir()
        for i in range(3):
            (t / "images" / f"{i}.png").write_bytes(_png(np.zeros((16, 16, 3), np.uint8)))
            (t / "masks" / f"{i}.png").write_bytes(_png(np.ones((16, 16), np.uint8)))
        if bad_mask is not None:
            (t / "masks" / "1.png").write_bytes(bad_mask)
        if bad_image is not None:
            (t / "images" / "1.png").write_bytes(bad_image)
        return ["run", "segmentation", "--data", f"masks:{t / 'images'}:{t / 'masks'}",
                "--workdir", t / "w", "--smoke"]
    return setup


CASES += [
    Case("masks: bomb mask", _masks(bad_mask=_bomb()), "1.png: refused, image too large"),
    Case("masks: bomb just over the limit", _masks(bad_mask=_bomb(12_000, 12_000)), "refused, image too large"),
    Case("masks: bomb image", _masks(bad_image=_bomb()), "refused, image too large"),
    Case("masks: truncated mask", _masks(bad_mask=_png(np.ones((16, 16), np.uint8))[:40]), "masks/1.png: not a readable image"),
    Case("masks: empty mask", _masks(bad_mask=b""), "1.png: not a readable image"),
]


# --- plugins that fail -----------------------------------------------------------------
PLUGIN_FAILURES = {
    "sys.exit at import": ("import sys\nsys.exit(3)\n", "failed to import: it called sys.exit(3)"),
    "exception at import": ("raise RuntimeError('boom')\n", "failed to import: RuntimeError: boom"),
    "load_data raises": ("load_data", "raise KeyError('shard')", "failed in load_data: KeyError: 'shard'"),
    "load_data exits": ("load_data", "raise SystemExit('bye')", "failed in load_data: it called sys.exit('bye')"),
    "build_model raises": ("build_model", "raise ValueError('bad width')", "failed in build_model: ValueError: bad width"),
    "build_model exits": ("build_model", "import sys; sys.exit(1)", "failed in build_model: it called sys.exit(1)"),
}


def _plugin(spec: tuple) -> Callable:
    """A plugin file: `spec`'s code, or the example plugin under another name with one
    method replaced by `spec`'s body."""
    def setup(t: Path, w: Path) -> list:
        if len(spec) == 2:
            (t / "bad.py").write_text(spec[0])
            return ["run", "bad", "--plugin", t / "bad.py", "--workdir", t / "w"]
        method, body = spec[:2]
        name = f"broken_{method}"
        source = EXAMPLE_PLUGIN.read_text().replace('name = "spirals"', f"name = {name!r}")
        (t / f"{name}.py").write_text(f"{source}\n\ndef _broken(self, *args):\n    {body}\n\n\n"
                                      f"SpiralsTask.{method} = _broken\n")
        return ["run", name, "--plugin", t / f"{name}.py", "--workdir", t / "w", "--smoke"]
    return setup


CASES += [Case(f"plugin: {name}", _plugin(spec), spec[-1]) for name, spec in PLUGIN_FAILURES.items()]


@pytest.fixture(scope="module")
def trained(spirals, tmp_path_factory) -> Path:
    """A finished 2-epoch spirals run (never written to: cases copy it)."""
    workdir = tmp_path_factory.mktemp("trained") / "w"
    assert main(["run", "spirals", "--workdir", str(workdir), *SPIRALS]) == 0
    return workdir


@pytest.mark.parametrize("case", CASES, ids=str)
def test_hostile_case(case, capsys, tmp_path, trained):
    argv = case.setup(tmp_path, trained)
    trained_before = tree_digest(trained)
    assert_refused(capsys, tmp_path, argv, case.expect)
    assert tree_digest(trained) == trained_before


def test_there_are_enough_cases():
    assert len(CASES) >= 80


def test_a_zoo_home_that_is_a_file_is_one_line(spirals, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_HOME", str(_file(tmp_path / "home")))
    line = assert_refused(capsys, tmp_path, ["run", "spirals", "--workdir", tmp_path / "w"],
                          "cannot create zoo's cache folder")
    assert "set ZOO_HOME to a writable folder" in line


# --- a resumed run whose data changed (file-backed data: the fingerprint of the files) ---
@pytest.fixture(scope="module")
def folder_run(tmp_path_factory) -> tuple[Path, Path]:
    """(image folder of 3 classes, a finished 1-epoch MLP run on it)."""
    root = tmp_path_factory.mktemp("folder")
    rng = np.random.default_rng(0)
    for name in ("cat", "dog", "owl"):
        (root / "images" / name).mkdir(parents=True)
        for i in range(6):
            (root / "images" / name / f"{i}.png").write_bytes(
                _png(rng.integers(0, 255, (16, 16), dtype=np.uint8)))
    workdir = root / "w"
    assert main(["run", "classification", *FOLDER_ARGS(root / "images"), "--workdir", str(workdir)]) == 0
    return root / "images", workdir


def FOLDER_ARGS(images: Path) -> list[str]:
    return ["--data", f"folder:{images}", "--model", "mlp", "--smoke", "--batch-size", "4",
            "--quiet", "--set", "image_size=16", "--set", "channels=1"]


def _rename_class(images: Path) -> None:
    (images / "owl").rename(images / "emu")


DATA_CHANGES = {
    "class renamed": (_rename_class, "classes (added 'emu'; removed 'owl')"),
    "class added": (lambda d: shutil.copytree(d / "owl", d / "yak"), "classes (added 'yak')"),
    "file added": (lambda d: shutil.copy(d / "cat" / "0.png", d / "cat" / "9.png"), "train split"),
    "file removed": (lambda d: (d / "dog" / "5.png").unlink(), "split"),
    "file rewritten, same count": (lambda d: (d / "dog" / "5.png").write_bytes((d / "dog" / "4.png").read_bytes() + b"\0"),
                                   "files added, removed or modified"),
}


@pytest.mark.parametrize("change", DATA_CHANGES)
def test_resuming_on_changed_data_is_refused_naming_the_change(change, folder_run, capsys, tmp_path):
    images, trained = folder_run
    data, workdir = shutil.copytree(images, tmp_path / "images"), shutil.copytree(trained, tmp_path / "w")
    # the copy is the same data by its fingerprint only if mtimes are kept (copytree keeps them)
    edit, expect = DATA_CHANGES[change]
    edit(data)
    record = json.loads((trained / "run.json").read_text())
    record["config"]["data"] = f"folder:{data}"  # the copy is where the data now lives
    (workdir / "run.json").write_text(json.dumps(record))
    line = assert_refused(capsys, tmp_path, ["run", "classification", *FOLDER_ARGS(data),
                                             "--workdir", workdir], expect)
    assert "was trained on other data" in line


def test_the_same_data_resumes(folder_run, capsys, tmp_path):
    images, trained = folder_run
    workdir = shutil.copytree(trained, tmp_path / "w")
    assert main(["run", "classification", *FOLDER_ARGS(images), "--workdir", str(workdir)]) == 0
    record = json.loads((workdir / "run.json").read_text())
    assert record["data"] == json.loads((trained / "run.json").read_text())["data"]
    assert record["data"]["fingerprint"].startswith("files:")


# --- one writer per workdir --------------------------------------------------------------
HOLD_LOCK = """
import filelock, json, os, socket, sys, time
lock = filelock.FileLock(sys.argv[1], timeout=0)
lock.acquire()
with open(sys.argv[1], "w") as f:
    json.dump({"pid": os.getpid(), "host": socket.gethostname(), "since": "now"}, f)
print("locked", flush=True)
time.sleep(120)
"""


def test_a_second_writer_is_refused_naming_the_holder(trained, capsys, tmp_path):
    workdir = shutil.copytree(trained, tmp_path / "w")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(workdir / "run.lock")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        line = assert_refused(capsys, tmp_path, ["run", "spirals", "--workdir", workdir,
                                                 *SPIRALS, "--epochs", "3"],
                              f"is in use by another zoo run (pid {holder.pid} on ")
        assert "wait for it to finish, or use another --workdir" in line
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_of_a_killed_run_is_recovered(trained, capsys, tmp_path):
    """A SIGKILLed holder's flock dies with it; its record names it as recovered."""
    workdir = shutil.copytree(trained, tmp_path / "w")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(workdir / "run.lock")],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    holder.kill()
    holder.wait()
    assert main(["run", "spirals", "--workdir", str(workdir), "--set", "points=256",
                 "--epochs", "2"]) == 0
    err = capsys.readouterr().err
    assert f"recovered the lock of a run that ended without releasing it (pid {holder.pid}" in err
    assert (workdir / "run.lock").read_text() == ""  # released cleanly


# --- storage failures: one line and exit 2 within seconds, never a hang -------------------
def test_checkpoints_folder_replaced_by_a_file_mid_run(spirals, trained, capsys, tmp_path, monkeypatch):
    """The checkpoint folder vanishes during a run and a file takes its place: the next
    save fails at once with one line."""
    workdir = shutil.copytree(trained, tmp_path / "w")
    save = CheckpointStore.save

    def save_and_wait(self, *args):  # the epoch's save, and orbax's pruning of older steps,
        save(self, *args)            # land before the folder goes: no race with them
        self.wait()

    def vanish(self, *args):
        shutil.rmtree(workdir / "checkpoints")
        (workdir / "checkpoints").write_text("in the way")

    monkeypatch.setattr(CheckpointStore, "save", save_and_wait)
    monkeypatch.setattr(spirals, "on_epoch_end", vanish)
    code, err = run_zoo(capsys, ["run", "spirals", "--workdir", workdir, *SPIRALS, "--epochs", "4"])
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert "cannot save checkpoint" in lines[0] and "no intact checkpoint is left" in lines[0], err


def test_a_checkpoints_folder_that_is_a_file_is_one_line(trained, capsys, tmp_path):
    workdir = shutil.copytree(trained, tmp_path / "w")
    shutil.rmtree(workdir / "checkpoints" / "latest")
    (workdir / "checkpoints" / "latest").write_text("not a folder")
    assert_refused(capsys, tmp_path, ["run", "spirals", "--workdir", workdir, *SPIRALS, "--epochs", "3"],
                   "cannot open checkpoints/latest")


def test_a_full_disk_names_the_checkpoint_that_is_intact(trained, capsys, tmp_path, monkeypatch):
    """tensorstore's full-disk error at the first save of a resumed run: the message names
    the newest checkpoint that verifies, which is the one from before the failure."""
    import orbax.checkpoint as ocp

    from zoo.harness.manifest import verify

    workdir = shutil.copytree(trained, tmp_path / "w")
    intact = max(int(p.name) for p in (workdir / "checkpoints" / "latest").iterdir())

    def full(self, step, *args, **kwargs):
        raise ValueError("Error writing local file: No space left on device [os_error_code='28']")

    monkeypatch.setattr(ocp.CheckpointManager, "save", full)
    code, err = run_zoo(capsys, ["run", "spirals", "--workdir", workdir, *SPIRALS, "--epochs", "3"])
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert f"disk full while saving checkpoint latest/{intact + intact // 2}" in lines[0], err
    assert f"checkpoint latest/{intact} is intact" in lines[0], err
    verify(workdir / "checkpoints" / "latest" / str(intact))


READ_ONLY_RUN = """
set -e
mount --bind "$1/checkpoints" "$1/checkpoints"
mount -o remount,bind,ro "$1/checkpoints"
shift
exec "$@"
"""


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux)")
def test_a_read_only_checkpoints_folder_ends_in_seconds(trained, tmp_path):
    """A real read-only mount (a user+mount namespace: chmod does not stop root): the
    resumed run's first save fails; before, orbax's thread slept forever."""
    workdir = shutil.copytree(trained, tmp_path / "w")
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    if probe.returncode:
        pytest.skip("user namespaces are not allowed here")
    result = subprocess.run(
        ["unshare", "-rm", "sh", "-c", READ_ONLY_RUN, "sh", str(workdir), sys.executable, "-m",
         "zoo.cli.main", "run", "spirals", "--plugin", str(EXAMPLE_PLUGIN), "--workdir",
         str(workdir), *SPIRALS, "--epochs", "3"], capture_output=True, text=True, timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "Read-only file system" in lines[0] and "checkpoint latest/8 is intact" in lines[0]


# --- readers while a run writes --------------------------------------------------------------
def test_eval_retries_when_the_run_cleans_up_the_best_checkpoint(trained, capsys, tmp_path, monkeypatch):
    """`zoo eval` races a run: the best checkpoint it is reading is replaced by a newer
    one and deleted (the run's clean-up); the reader retries with the new one."""
    from zoo.harness import checkpoints

    workdir = shutil.copytree(trained, tmp_path / "w")
    best = workdir / "checkpoints" / "best"
    real_verify, calls = checkpoints.verify, []

    def racing_verify(directory):
        calls.append(directory)
        if len(calls) == 1:  # the run saves best/99 and cleans up the one being read
            shutil.copytree(directory, best / "99")
            shutil.rmtree(directory)
        return real_verify(directory)

    monkeypatch.setattr(checkpoints, "verify", racing_verify)
    assert main(["eval", "spirals", "--workdir", str(workdir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] > 0.5
    assert [p.name for p in calls] == [calls[0].name, "99"]


# --- settings that leave the past as it was may change on resume ---------------------------
def test_a_finished_run_continues_with_more_epochs_and_new_settings(trained, capsys, tmp_path):
    """Keras' initial_epoch: 2 epochs done, --epochs 3 trains one more; the learning rate,
    clipping and patience change from step 8 on, recorded in run.json's settings."""
    workdir = shutil.copytree(trained, tmp_path / "w")
    before = json.loads((trained / "run.json").read_text())
    assert main(["run", "spirals", "--workdir", str(workdir), *SPIRALS[:-1], "--epochs", "3",
                 "--lr", "0.005", "--set", "optimizer.grad_clip_norm=1",
                 "--set", "early_stopping.patience=7"]) == 0
    err = capsys.readouterr().err
    assert "continuing a finished run from epoch 2 to 3" in err
    record = json.loads((workdir / "run.json").read_text())
    assert record["created"] == before["created"] and record["data"] == before["data"]
    assert record["settings"] == [{"step": 8, "at": record["settings"][0]["at"], "changed": {
        "early_stopping.patience": [5, 7], "optimizer.grad_clip_norm": [0.0, 1.0],
        "optimizer.lr": [0.01, 0.005], "train.epochs": [2, 3]}}]
    history = [json.loads(line) for line in (workdir / "history.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in history] == [1, 2, 3] and history[-1]["step"] == 12
    assert json.loads((workdir / "metrics.json").read_text())["epochs"] == 3


def test_an_unchanged_resume_of_a_finished_run_only_tests(trained, capsys, tmp_path):
    workdir = shutil.copytree(trained, tmp_path / "w")
    assert main(["run", "spirals", "--workdir", str(workdir), *SPIRALS]) == 0
    record = json.loads((workdir / "run.json").read_text())
    assert record["settings"] == [] and record == json.loads((trained / "run.json").read_text())
    assert (workdir / "history.jsonl").read_text() == (trained / "history.jsonl").read_text()


@pytest.mark.parametrize("done, bad, patience, epochs, finished", [
    (2, 0, 5, 3, False),  # reached its epochs: more epochs reopen it
    (2, 0, 5, 2, True),   # the same epochs: still finished
    (3, 2, 2, 5, True),   # early stopping ended it: more epochs alone do not reopen it
    (3, 2, 4, 5, False),  # ... a larger patience does
])
def test_more_epochs_reopen_a_run_unless_early_stopping_ended_it(spirals, done, bad, patience,
                                                                  epochs, finished):
    from zoo.config import apply_overrides
    from zoo.harness.trainer import LoopState
    from zoo.harness.workdir import apply_changes

    task = spirals(apply_overrides(spirals.Config(), [f"train.epochs={epochs}",
                                                      f"early_stopping.patience={patience}"]))
    loop = LoopState(step=done * 4, epoch=done, best_value=0.9, bad_epochs=bad, finished=True)
    apply_changes(loop, task, {"train.epochs": [done, epochs]}, lambda message: None)
    assert loop.finished is finished and loop.best_value == 0.9


def test_another_early_stopping_metric_starts_its_best_afresh(spirals):
    from zoo.config import apply_overrides
    from zoo.harness.trainer import LoopState
    from zoo.harness.workdir import apply_changes

    task = spirals(apply_overrides(spirals.Config(), ["early_stopping.metric=loss",
                                                      "train.epochs=2"]))
    loop = LoopState(step=8, epoch=2, best_value=0.9, bad_epochs=1)
    apply_changes(loop, task, {"early_stopping.metric": ["", "loss"]}, lambda message: None)
    assert loop.best_value is None and loop.bad_epochs == 0 and loop.finished
