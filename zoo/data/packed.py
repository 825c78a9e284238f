"""`zoo data pack`: any data spec of any task written to ArrayRecord shards, and the
`packed:DIR` spec that trains any task on them (what RecordIO was for MXNet and TFRecord
for TensorFlow: one sequence of records instead of a million small files, examples
already decoded and resized, so reading one costs a decompression, not a JPEG decode).

A pack holds, in OUT/:
  plan.json       what is packed: task, spec, config and each shard's examples. The same
                  command run again continues a killed pack; another one is refused.
  SPLIT-00003-of-00012.arrayrecord   the shards (`zoo.data.records`), written in
                  parallel by worker processes, each through a temporary file renamed
                  into place when complete.
  done/SPLIT-00003.json   each finished shard's count, size and sha256: the resume record.
  manifest.json   written last (a pack without it is unfinished): example counts per
                  split, every shard's sha256, the fields and the `info` a model needs
                  (class names, vocabulary...), examples left out as unreadable.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from zoo.config import to_dict
from zoo.data import records, workers
from zoo.data.sources import Split, as_source
from zoo.errors import ZooError
from zoo.io.files import sha256_file, write_json
from zoo.task import Dataset, Task

PREFIX = "packed:"
FORMAT = 1
SPLITS = ("train", "val", "test")
MANIFEST, PLAN = "manifest.json", "plan.json"


def pack(task: Task, out: Path, *, workers_count: int, examples_per_shard: int = 4096,
         on_bad: workers.OnBad = "raise", log: Callable[[str], None] = print) -> dict[str, Any]:
    """Writes `task`'s data set (its config's `data` spec) to shards in `out`; returns
    the manifest. Finished shards of an earlier, killed run of the same pack are kept."""
    data = task.load_data()
    splits = {name: as_source(data.splits[name]) for name in SPLITS}
    plan = {"format": FORMAT, "task": task.name, "data": task.config.data,
            "config": to_dict(task.config), "examples_per_shard": examples_per_shard,
            "splits": {name: len(s) for name, s in splits.items()}}
    out.mkdir(parents=True, exist_ok=True)
    _check_plan(out, plan)
    (out / "done").mkdir(exist_ok=True)
    jobs = [job for name in SPLITS for job in _jobs(out, name, len(splits[name]), examples_per_shard)]
    todo = [job for job in jobs if not _done(out, job)]
    if len(todo) < len(jobs):
        log(f"resuming: {len(jobs) - len(todo)} of {len(jobs)} shard(s) already written")
    _write(splits, out, todo, workers_count, on_bad, log)
    return _finish(out, plan, jobs, data)


def _check_plan(out: Path, plan: dict) -> None:
    path = out / PLAN
    if path.exists():
        if json.loads(path.read_text()) != json.loads(json.dumps(plan)):
            raise ZooError(f"{out} holds another pack (see {path}); use a new folder, or "
                           f"the same task, spec and settings to continue it")
    elif any(out.iterdir()):
        raise ZooError(f"{out} is not empty and holds no pack; give an empty or new folder")
    else:
        write_json(path, plan)


def _jobs(out: Path, split: str, n: int, per_shard: int) -> list[dict]:
    shards = max(1, math.ceil(n / per_shard))
    return [{"split": split, "start": i * per_shard, "stop": min(n, (i + 1) * per_shard),
             "path": str(out / f"{split}-{i:05d}-of-{shards:05d}.arrayrecord"),
             "done": str(out / "done" / f"{split}-{i:05d}.json")} for i in range(shards)]


def _done(out: Path, job: dict) -> bool:
    """A shard counts as written when its record exists and its file has that size."""
    done, path = Path(job["done"]), Path(job["path"])
    return done.exists() and path.exists() and \
        path.stat().st_size == json.loads(done.read_text())["bytes"]


def _write(splits: dict[str, Split], out: Path, todo: list[dict], count: int,
           on_bad: workers.OnBad, log: Callable[[str], None]) -> None:
    """Writes the shards of `todo`, in `count` worker processes (0: in this one)."""
    t0, written, total = time.perf_counter(), 0, sum(j["stop"] - j["start"] for j in todo)
    if count == 0:
        workers.install(splits, on_bad)
        results = (records.write_shard(j["split"], j["start"], j["stop"], j["path"]) for j in todo)
    else:
        pool = workers.process_pool(splits, count, on_bad)
        futures = [pool.submit(records.write_shard, j["split"], j["start"], j["stop"], j["path"])
                   for j in todo]
        results = (f.result() for f in futures)
    try:
        for job, result in zip(todo, results):
            write_json(Path(job["done"]), {**result, "bytes": Path(job["path"]).stat().st_size})
            written += job["stop"] - job["start"]
            rate = written / max(time.perf_counter() - t0, 1e-9)
            log(f"{result['file']}: {result['count']} examples ({written:,}/{total:,}, "
                f"{rate:,.0f} examples/s)")
    except BrokenProcessPool:
        raise ZooError("a pack worker process died (killed, or out of memory); run the "
                       "same command again to continue, with fewer --workers") from None
    finally:
        if count:
            pool.shutdown(wait=True, cancel_futures=True)


def _finish(out: Path, plan: dict, jobs: list[dict], data: Dataset) -> dict[str, Any]:
    """Writes manifest.json from the finished shards: the pack is complete."""
    splits, bad = {}, []
    for name in SPLITS:
        shards = [json.loads(Path(j["done"]).read_text()) for j in jobs if j["split"] == name]
        bad += [problem for s in shards for problem in s.pop("bad")]
        splits[name] = {"count": sum(s["count"] for s in shards), "shards": shards}
        if not splits[name]["count"]:
            raise ZooError(f"every {name} example was unreadable; nothing to pack")
    first = load_splits(out, splits)["train"][0]
    manifest = {**plan, "info": data.info, "splits": splits,
                "fields": {k: [v.dtype.str, list(v.shape)] for k, v in first.items()},
                "bad_examples": {"count": len(bad), "examples": bad[:100]},
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    write_json(out / MANIFEST, manifest)
    return manifest


def load_splits(out: Path, splits: dict) -> dict[str, records.PackedSource]:
    return {name: records.PackedSource([out / s["file"] for s in split["shards"]],
                                       [s["sha256"] for s in split["shards"]], split["count"])
            for name, split in splits.items()}


def read_manifest(out: Path) -> dict[str, Any]:
    """A finished pack's manifest, its shards checked to be present at their size."""
    path = out / MANIFEST
    if not path.is_file():
        hint = (" (unfinished: run the same `zoo data pack` command again to finish it)"
                if (out / PLAN).exists() else "; make one with `zoo data pack SPEC OUT/`")
        raise ZooError(f"{PREFIX}{out}: no {MANIFEST}{hint}")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise ZooError(f"{path}: pack format {manifest.get('format')}, this zoo reads {FORMAT}")
    for split in manifest["splits"].values():
        for shard in split["shards"]:
            file = out / shard["file"]
            if not file.is_file() or file.stat().st_size != shard["bytes"]:
                raise ZooError(f"{file}: missing or not the size the manifest records "
                               f"({shard['bytes']:,} bytes); copy the pack again or repack")
    return manifest


def load_dataset(spec: str, task_name: str) -> Dataset:
    """The splits of `packed:DIR` for task `task_name`, read on demand."""
    out = Path(spec.removeprefix(PREFIX)).expanduser()
    manifest = read_manifest(out)
    if manifest["task"] != task_name:
        raise ZooError(f"{spec} holds {manifest['task']!r} examples, not {task_name!r}'s; "
                       f"pack {manifest['data']} for {task_name} with `zoo data pack "
                       f"{manifest['data']} OUT/ --task {task_name}`")
    return Dataset(load_splits(out, manifest["splits"]), manifest["info"])


def verify(out: Path) -> list[str]:
    """Every shard re-hashed against the manifest: the damaged ones (empty if none)."""
    manifest = read_manifest(out)
    return [shard["file"] for split in manifest["splits"].values() for shard in split["shards"]
            if sha256_file(out / shard["file"]) != shard["sha256"]]
