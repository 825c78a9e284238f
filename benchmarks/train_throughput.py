"""Training throughput of zoo against a bare jax.jit loop, Keras 3 (JAX) and PyTorch.

Every peer trains the same model on the same data and global batch; each runs in a fresh
subprocess (no thread pools or caches shared between peers; peak memory per peer). The
sequence model (crnn, the OCR task's conv + BiLSTM + CTC) has zoo and bare-JAX peers only.

  python -m benchmarks.train_throughput --model lenet
  python -m benchmarks.train_throughput --task ocr --model crnn
  python -m benchmarks.train_throughput --all --out benchmarks/results.md
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import extras, report, workloads
from zoo_hardware import allocator

PEERS = {  # name -> module; optional peers are skipped with a note when not installed
    "zoo": "benchmarks.peers.zoo_harness",
    "bare": "benchmarks.peers.bare_jax",
    "keras": "benchmarks.peers.keras_peer",
    "torch": "benchmarks.peers.torch_peer",
    "torch-compile": "benchmarks.peers.torch_peer",  # torch.compile'd; asked for by name
}
DEFAULT_PEERS = ("zoo", "bare", "keras", "torch")
# The zoo peer runs as the `zoo` command does, with malloc tuned (zoo_hardware.allocator),
# and so does the bare loop it is measured against; Keras and PyTorch run as installed.
TUNED_MALLOC = ("zoo", "bare")
CHECKOUT = Path(__file__).resolve().parents[1]  # where `-m benchmarks...` resolves
TASKS = {"classification": tuple(workloads.INPUTS),  # task -> its benchmarked models
         **{task: (model,) for model, task in workloads.SEQUENCE.items()}}


def run_peer(peer: str, model: str, batch_size: int, steps: int, windows: int,
             dtype: str = "float32") -> dict:
    """Runs one peer in this process and returns its result row (used by the child)."""
    workload = workloads.load(model, batch_size, dtype)
    options = {"compiled": True} if peer == "torch-compile" else {}
    result = importlib.import_module(PEERS[peer]).train(workload, steps_per_window=steps,
                                                        windows=windows, **options)
    row = dataclasses.asdict(result)
    row["median"] = result.median
    row["dtype"] = dtype
    if result.device is None:  # a JAX peer
        import jax

        row["device"], row["device_kind"] = jax.default_backend(), jax.devices()[0].device_kind
    row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if result.flops_per_example is not None:
        row["achieved_gflops"] = result.flops_per_example * result.median / 1e9
    return row


def supports(peer: str, model: str) -> bool:
    """Whether `peer` has its own version of `model` (zoo and bare JAX run every task's)."""
    return model in getattr(importlib.import_module(PEERS[peer]), "MODELS", workloads.MODELS)


def spawn(args: list[str], timeout: float = 900) -> dict:
    """Runs this module in a child process and parses its JSON line."""
    proc = subprocess.run([sys.executable, "-m", "benchmarks.train_throughput", *args],
                          cwd=CHECKOUT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "KERAS_BACKEND": "jax"})
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": last}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="classification", choices=list(TASKS),
                        help="the task whose model to train (default: classification)")
    parser.add_argument("--model", choices=workloads.MODELS,
                        help="default: the task's first (lenet for classification)")
    parser.add_argument("--all", action="store_true", help="every model, plus latency, pipeline, "
                                                           "cold/warm start and matmul peak")
    parser.add_argument("--peers", default=",".join(DEFAULT_PEERS),
                        help="comma-separated, of " + ", ".join(PEERS) + " (default: "
                        + ",".join(DEFAULT_PEERS) + ")")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                        help="compute dtype of every peer (parameters stay float32)")
    parser.add_argument("--batch-size", type=int, help="global batch (default: the task's own, "
                        + ", ".join(f"{m} {b}" for m, b in workloads.BATCH_SIZES.items()) + ")")
    parser.add_argument("--steps", type=int, default=20, help="steps per timed window")
    parser.add_argument("--windows", type=int, default=5, help="timed windows (median reported)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="processes per peer, the peers alternating (the median process "
                             "reported): one process's speed varies ~10%% from the next's")
    parser.add_argument("--out", help="write a markdown report here")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # PEER: run one peer, print JSON
    args = parser.parse_args(argv)
    model = args.model or TASKS[args.task][0]
    if args.child:
        if args.child in TUNED_MALLOC:
            allocator.keep_freed_memory()
        print(json.dumps(run_peer(args.child, model, _batch(args, model), args.steps, args.windows,
                                  args.dtype)))
        return 0
    if model not in TASKS[args.task]:
        parser.error(f"--model {model} is not a {args.task} model; {args.task} has "
                     f"{', '.join(TASKS[args.task])}")
    models = workloads.MODELS if args.all else (model,)
    load_before = os.getloadavg()[0]
    rows = []
    for model in models:
        runs: dict[str, list[dict]] = {}
        for _ in range(args.rounds):
            for peer in args.peers.split(","):
                if not supports(peer, model):
                    if peer not in runs:
                        runs[peer] = [{"peer": peer, "model": model,
                                       "error": f"no {peer} version of {model}"}]
                        print(report.row_line(runs[peer][0], 0.0), flush=True)
                    continue
                t0 = time.perf_counter()
                row = spawn(["--child", peer, "--model", model, "--batch-size",
                             str(_batch(args, model)), "--steps", str(args.steps),
                             "--windows", str(args.windows), "--dtype", args.dtype])
                row.setdefault("peer", peer)
                row.setdefault("model", model)
                runs.setdefault(peer, []).append(row)
                print(report.row_line(row, time.perf_counter() - t0), flush=True)
        rows.extend(_median_process(peer_runs) for peer_runs in runs.values())
        for line in _paired_ratios(list(runs.values())):
            print(f"{model}  {line}", flush=True)
    sections = {"training": rows, "load": (load_before, os.getloadavg()[0])}
    if args.all:
        sections["extras"] = extras.measure_all(args.batch_size or workloads.BATCH_SIZES["lenet"])
        print(json.dumps(sections["extras"], indent=1))
    if args.out:
        given = sys.argv[1:] if argv is None else argv
        report.write(args.out, sections, "python -m benchmarks.train_throughput " + shlex.join(given))
        print(f"wrote {args.out}")
    return 0


def _median_process(runs: list[dict]) -> dict:
    """The run of median throughput among one peer's processes, noting their spread."""
    measured = sorted((r for r in runs if "error" not in r), key=lambda r: r["median"])
    if not measured:
        return runs[0]
    row = dict(measured[(len(measured) - 1) // 2])
    if len(measured) > 1:
        row["note"] = (f"median of {len(measured)} processes "
                       f"({measured[0]['median']:,.0f}-{measured[-1]['median']:,.0f})")
    return row


def _paired_ratios(runs: list[list[dict]]) -> list[str]:
    """The first peer's throughput over each other peer's, by their median processes and
    round by round: a round's processes run back to back and share the machine's state,
    which drifts by 10-30% within minutes (benchmarks/README.md)."""
    measured = [peer_runs for peer_runs in runs if all("error" not in r for r in peer_runs)]
    if len(measured) < 2 or len(measured[0]) < 2:
        return []
    first, lines = measured[0], []
    first_median = _median_process(first)["median"]
    for other in measured[1:]:
        rounds = [a["median"] / b["median"] for a, b in zip(first, other)]
        overall = first_median / _median_process(other)["median"]
        lines.append(f"{first[0]['peer']} / {other[0]['peer']}: {overall:.2f} by the median "
                     f"processes; by rounds {', '.join(f'{r:.2f}' for r in rounds)} "
                     f"(median {statistics.median(rounds):.2f})")
    return lines


def _batch(args, model: str) -> int:
    return args.batch_size or workloads.BATCH_SIZES[model]


if __name__ == "__main__":
    sys.exit(main())
