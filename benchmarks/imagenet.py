"""ResNet-50 and ViT-S/16 at 224x224: zoo (XLA) against PyTorch eager (timm's model),
in one process, one after the other, on the same random batches.

    python -m benchmarks.imagenet --out benchmarks/results.md    # needs .[torch-ref]

Training (SGD with momentum, cross-entropy, batch 16) and inference at batch 1 and 64,
in images per second (medians of timed windows after a warm-up), and XLA's count of
forward FLOPs per image beside the published figures. Both sides use 2 CPU threads.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from benchmarks.timing import measure

# zoo name -> (timm name, published forward multiply-adds per image, in G: timm's GMACs,
# which torchvision's card calls "GFLOPS"; XLA counts a multiply-add as 2 FLOPs).
MODELS = {"resnet50": ("resnet50", 4.1), "vit-s16": ("vit_small_patch16_224", 4.6)}
TRAIN_BATCH, INFER_BATCHES, SIZE = 16, (1, 64), 224


def _zoo(name: str, images: np.ndarray, labels: np.ndarray, steps: int, windows: int):
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    from zoo.models import create_classifier

    model = create_classifier(name, (SIZE, SIZE, 3), 1000, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.sgd(0.01, momentum=0.9), wrt=nnx.Param)
    graphdef, state = nnx.split((model, optimizer))

    def train_step(state, x, y):
        net, opt = nnx.merge(graphdef, state)
        loss, grads = nnx.value_and_grad(
            lambda m: optax.softmax_cross_entropy_with_integer_labels(m(x), y).mean())(net)
        opt.update(net, grads)
        return nnx.state((net, opt)), loss

    x = jnp.asarray(images[:TRAIN_BATCH])
    y = jnp.asarray(labels[:TRAIN_BATCH])
    t0 = time.perf_counter()
    step = jax.jit(train_step, donate_argnums=0).lower(state, x, y).compile()
    holder = {"state": state}

    def run(k):
        for _ in range(k):
            holder["state"], loss = step(holder["state"], x, y)
        jax.block_until_ready(loss)

    results = {"train": measure("zoo", name, TRAIN_BATCH, run, compile_seconds=time.perf_counter() - t0,
                                steps_per_window=steps, windows=windows)}
    net, _ = nnx.merge(graphdef, holder["state"])
    net.eval()
    eval_graph, eval_state = nnx.split(net)
    forward = lambda s, x: nnx.merge(eval_graph, s)(x)  # noqa: E731
    for batch in INFER_BATCHES:
        xb = jnp.asarray(images[:batch])
        compiled = jax.jit(forward).lower(eval_state, xb).compile()
        if batch == 1:
            results["flops"] = compiled.cost_analysis()["flops"]
        results[f"infer{batch}"] = measure(
            "zoo", name, batch, lambda k: [jax.block_until_ready(compiled(eval_state, xb))
                                           for _ in range(k)],
            compile_seconds=0.0, steps_per_window=max(1, steps * TRAIN_BATCH // batch),
            windows=windows)
    return results


def _torch(name: str, images: np.ndarray, labels: np.ndarray, steps: int, windows: int):
    import timm
    import torch

    torch.set_num_threads(2)
    net = timm.create_model(MODELS[name][0], pretrained=False)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
    y = torch.from_numpy(labels).long()

    def run(k):
        for _ in range(k):
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(net(x[:TRAIN_BATCH]), y[:TRAIN_BATCH]).backward()
            optimizer.step()

    results = {"train": measure("pytorch eager", name, TRAIN_BATCH, run, compile_seconds=0.0,
                                steps_per_window=steps, windows=windows)}
    net.eval()
    for batch in INFER_BATCHES:
        def infer(k, batch=batch):
            with torch.inference_mode():
                for _ in range(k):
                    net(x[:batch])
        results[f"infer{batch}"] = measure("pytorch eager", name, batch, infer, compile_seconds=0.0,
                                           steps_per_window=max(1, steps * TRAIN_BATCH // batch),
                                           windows=windows)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2, help="train steps per timed window")
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--out", type=Path, help="append the table to this markdown file")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    images = rng.standard_normal((64, SIZE, SIZE, 3)).astype(np.float32)
    labels = rng.integers(0, 1000, 64).astype(np.int32)
    load = os.getloadavg()
    rows = ["| model | measure | zoo (img/s) | PyTorch eager (img/s) | zoo / PyTorch |",
            "|---|---|---|---|---|"]
    notes = []
    for name in MODELS:
        ours = _zoo(name, images, labels, args.steps, args.windows)
        theirs = _torch(name, images, labels, args.steps, args.windows)
        for key, label in (("train", f"train, batch {TRAIN_BATCH}"), ("infer1", "inference, batch 1"),
                           ("infer64", "inference, batch 64")):
            a, b = ours[key].median, theirs[key].median
            rows.append(f"| {name} | {label} | {a:.2f} | {b:.2f} | {a / b:.2f}x |")
        notes.append(f"{name}: XLA counts {ours['flops'] / 1e9:.2f} GFLOPs per 224x224 image "
                     f"forward = {ours['flops'] / 2e9:.2f} G multiply-adds (published: "
                     f"{MODELS[name][1]} GMACs)")
    text = "\n".join(rows + [""] + [f"- {n}" for n in notes] +
                     [f"- load average before: {load[0]:.1f}, after: {os.getloadavg()[0]:.1f}"])
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write(f"\n## ImageNet models, 224x224 ({time.strftime('%Y-%m-%d')})\n\n{text}\n")


if __name__ == "__main__":
    main()
