"""Which layers can lose how many weights? Each prunable kernel of a trained workdir is
pruned alone by magnitude (no fine-tuning) at a few sparsities, and the validation
accuracy printed: the scan behind `zoo compress --prune-layers` (README, Compression).

    python -m benchmarks.prune_sensitivity classification --workdir runs/cls0

A layer whose accuracy falls early (LeNet's conv1 and conv2) is pinned below the
sparsity global magnitude ranking would give it; the large, redundant layers take up
the difference so the total sparsity, and the size on disk, stay the same.
"""

from __future__ import annotations

import argparse

from flax import nnx

from zoo.harness.model_setup import ModelSetup
from zoo.harness.trainer import evaluate, open_session
from zoo.io.weights import by_path
from zoo.restore import from_workdir
from zoo_hardware import compression, pruning

SPARSITIES = (0.5, 0.7, 0.8, 0.9, 0.95)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--split", default="val")
    args = parser.parse_args()
    source = from_workdir(args.workdir, args.task)
    task = source.task
    flat = compression.flatten(nnx.to_pure_dict(nnx.state(source.inference_model())))

    def score(weights: dict) -> float:
        setup = ModelSetup(weights=by_path(compression.unflatten(weights)))
        session = open_session(task, device="cpu", training=False, setup=setup)
        return evaluate(session, args.split)[task.metric]

    print(f"{task.metric} on {args.split}, one layer pruned alone: unpruned {score(flat):.4f}")
    print("layer", "weights", *SPARSITIES, sep="\t")
    for path, kernel in flat.items():
        if not pruning.prunable(kernel):
            continue
        row = [score({**flat, path: pruning.apply_masks(
            kernel, pruning.magnitude_masks(kernel, s, scope="layer"))}) for s in SPARSITIES]
        print("/".join(map(str, path)), kernel.size, *(f"{a:.4f}" for a in row), sep="\t")


if __name__ == "__main__":
    main()
