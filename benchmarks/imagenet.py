"""ResNet-50 and ViT-S/16 at 224x224: zoo (XLA) against PyTorch eager (timm's model),
the same model with the same weights, in one process.

    python -m benchmarks.imagenet --out benchmarks/results.md    # needs .[torch-ref]

Training (SGD with momentum, cross-entropy, batch 16) and inference at batch 1 and 64,
in images per second: for each measure both peers are warmed up, then their timed
windows alternate (zoo, PyTorch, zoo, ...), so a shared machine's changing load falls
on both alike; the medians are reported. timm's randomly initialised weights are
converted into zoo's model (`zoo.models.convert`), so both compute the same function
(checked on the batch-1 logits). XLA's count of forward FLOPs per image is set beside
the published figure. Both peers use 2 CPU threads.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np

# zoo name -> (timm name, published forward multiply-adds per image, in G: timm's GMACs,
# which torchvision's card calls "GFLOPS"; XLA counts a multiply-add as 2 FLOPs).
MODELS = {"resnet50": ("resnet50", 4.1), "vit-s16": ("vit_small_patch16_224", 4.6)}
TRAIN_BATCH, INFER_BATCHES, SIZE = 16, (1, 64), 224
MEASURES = {"train": f"train, batch {TRAIN_BATCH}", "infer1": "inference, batch 1",
            "infer64": "inference, batch 64"}
Runner = tuple[int, Callable[[int], None]]  # (images per call, run k calls and block)


def _zoo(name: str, state: dict[str, np.ndarray], images: np.ndarray, labels: np.ndarray):
    """zoo's compiled train step and forward passes on timm's weights: runners, the
    batch-1 logits and XLA's forward FLOPs per image."""
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    from zoo.io import weights
    from zoo.models import create_classifier
    from zoo.models.convert import from_torch_layout

    model = nnx.eval_shape(lambda: create_classifier(name, (SIZE, SIZE, 3), 1000,
                                                     rngs=nnx.Rngs(0)))
    weights.load_into(nnx.state(model), from_torch_layout(name, state), strict=True)
    optimizer = nnx.Optimizer(model, optax.sgd(0.01, momentum=0.9), wrt=nnx.Param)
    graphdef, train_state = nnx.split((model, optimizer))

    def train_step(train_state, x, y):
        net, opt = nnx.merge(graphdef, train_state)
        loss, grads = nnx.value_and_grad(
            lambda m: optax.softmax_cross_entropy_with_integer_labels(m(x), y).mean())(net)
        opt.update(net, grads)
        return nnx.state((net, opt)), loss

    x, y = jnp.asarray(images[:TRAIN_BATCH]), jnp.asarray(labels[:TRAIN_BATCH])
    model.eval()
    eval_graph, eval_state = nnx.split(model)
    eval_state = jax.tree.map(jnp.copy, eval_state)  # the train step donates the originals
    forward = {b: jax.jit(lambda s, x: nnx.merge(eval_graph, s)(x)).lower(
        eval_state, jnp.asarray(images[:b])).compile() for b in INFER_BATCHES}
    logits = np.asarray(forward[1](eval_state, jnp.asarray(images[:1])))
    step = jax.jit(train_step, donate_argnums=0).lower(train_state, x, y).compile()
    holder = {"state": train_state}

    def train(k):
        for _ in range(k):
            holder["state"], loss = step(holder["state"], x, y)
        jax.block_until_ready(loss)

    def infer(b):
        xb = jnp.asarray(images[:b])
        return lambda k: [jax.block_until_ready(forward[b](eval_state, xb)) for _ in range(k)]

    runners = {"train": (TRAIN_BATCH, train), **{f"infer{b}": (b, infer(b)) for b in INFER_BATCHES}}
    return runners, logits, forward[1].cost_analysis()["flops"]


def _torch(net, torch, images: np.ndarray, labels: np.ndarray):
    """PyTorch eager runners for timm's model, and its batch-1 logits."""
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
    y = torch.from_numpy(labels).long()
    with torch.inference_mode():
        logits = net.eval()(x[:1]).numpy()

    def train(k):
        net.train()
        for _ in range(k):
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(net(x[:TRAIN_BATCH]), y[:TRAIN_BATCH]).backward()
            optimizer.step()

    def infer(b):
        def run(k):
            net.eval()
            with torch.inference_mode():
                for _ in range(k):
                    net(x[:b])
        return run

    return {"train": (TRAIN_BATCH, train), **{f"infer{b}": (b, infer(b)) for b in INFER_BATCHES}}, logits


def _alternate(peers: dict[str, Runner], calls: int, windows: int) -> dict[str, float]:
    """Images per second, the median of `windows` windows of `calls` calls per peer,
    the peers' windows alternating after one untimed window each."""
    for _, run in peers.values():
        run(calls)
    rates: dict[str, list[float]] = {peer: [] for peer in peers}
    for _ in range(windows):
        for peer, (batch, run) in peers.items():
            t0 = time.perf_counter()
            run(calls)
            rates[peer].append(calls * batch / (time.perf_counter() - t0))
    return {peer: statistics.median(r) for peer, r in rates.items()}


def _model_rows(name: str, images, labels, steps: int, windows: int) -> tuple[list[str], str]:
    import timm
    import torch

    net = timm.create_model(MODELS[name][0], pretrained=False)
    state = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    ours, logits, flops = _zoo(name, state, images, labels)
    theirs, torch_logits = _torch(net, torch, images, labels)
    gap = float(np.abs(logits - torch_logits).max())
    rows = []
    for key, label in MEASURES.items():
        calls = max(1, steps * TRAIN_BATCH // ours[key][0]) if key != "train" else steps
        rate = _alternate({"zoo": ours[key], "pytorch": theirs[key]}, calls, windows)
        rows.append(f"| {name} | {label} | {rate['zoo']:.2f} | {rate['pytorch']:.2f} | "
                    f"{rate['zoo'] / rate['pytorch']:.2f}x |")
        print(rows[-1], flush=True)
    note = (f"{name}: XLA counts {flops / 1e9:.2f} GFLOPs per 224x224 image forward = "
            f"{flops / 2e9:.2f} G multiply-adds (published: {MODELS[name][1]} GMACs); "
            f"zoo and timm logits on the same weights differ by at most {gap:.1e}")
    return rows, note


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2, help="train steps per timed window "
                                                             "(inference: as many images)")
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--out", help="append the table to this markdown file")
    args = parser.parse_args(argv)
    import jax
    import timm
    import torch

    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    images = rng.standard_normal((64, SIZE, SIZE, 3)).astype(np.float32)
    labels = rng.integers(0, 1000, 64).astype(np.int32)
    load, started = os.getloadavg(), time.time()
    rows = ["| model | measure | zoo (img/s) | PyTorch eager (img/s) | zoo / PyTorch |",
            "|---|---|---|---|---|"]
    notes = []
    for name in args.models:
        model_rows, note = _model_rows(name, images, labels, args.steps, args.windows)
        rows += model_rows
        notes.append(note)
    command = "python -m benchmarks.imagenet " + " ".join(argv if argv is not None else [])
    text = "\n".join(rows + [""] + [f"- {n}" for n in notes] + [
        f"- command: `{command.strip()}` ({time.time() - started:.0f} s wall)",
        f"- {_cpu()}, {os.cpu_count()} cores; jax {jax.__version__}, torch {torch.__version__}, "
        f"timm {timm.__version__}; load average (1 min) before {load[0]:.1f}, after "
        f"{os.getloadavg()[0]:.1f}"])
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write(f"\n## ImageNet models, 224x224 ({time.strftime('%Y-%m-%d')})\n\n{text}\n")
    return 0


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    raise SystemExit(main())
