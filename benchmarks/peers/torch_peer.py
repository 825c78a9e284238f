"""PyTorch eager (and `torch.compile`d), on the GPU when there is one, else the CPU with
2 threads (the optional peers)."""

import contextlib
import time

from benchmarks.timing import Throughput, measure

MODELS = ("lenet", "resnet")  # rebuilt here layer by layer


def _lenet(nn, channels):
    return nn.Sequential(
        nn.Conv2d(channels, 20, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(20, 50, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10))


def _resnet(nn, channels, widths=(16, 32, 64), blocks=2):
    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
            nn.init.zeros_(self.body[-1].weight)
            self.short = (nn.Conv2d(cin, cout, 1, stride, bias=False)
                          if stride != 1 or cin != cout else nn.Identity())

        def forward(self, x):
            return (self.body(x) + self.short(x)).relu()

    layers = [nn.Conv2d(channels, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()]
    cin = widths[0]
    for i, width in enumerate(widths):
        for j in range(blocks):
            layers.append(Block(cin, width, 2 if i > 0 and j == 0 else 1))
            cin = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 10)]
    return nn.Sequential(*layers)


def train(workload, *, steps_per_window, windows, compiled: bool = False) -> Throughput:
    """Adam steps of the model; in bfloat16 under autocast when the workload's dtype is."""
    model, batch_size = workload.model, workload.task.config.train.batch_size
    images, labels = workload.train["image"], workload.train["label"]
    import torch
    from torch import nn

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        torch.set_num_threads(2)
    torch.manual_seed(0)
    net = {"lenet": _lenet, "resnet": _resnet}[model](nn, images.shape[-1]).to(device)
    optimizer = torch.optim.Adam(net.parameters(), 1e-3)
    loss_fn = nn.CrossEntropyLoss()
    forward = torch.compile(net) if compiled else net
    low = workload.task.config.train.dtype == "bfloat16"
    autocast = (lambda: torch.autocast(device, torch.bfloat16)) if low else contextlib.nullcontext
    x_all = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device)  # NCHW uint8
    y_all = torch.from_numpy(labels).long().to(device)
    n = len(images) // batch_size
    state = {"i": 0}

    def run(k):
        for _ in range(k):
            i = state["i"] % n
            x = x_all[i * batch_size:(i + 1) * batch_size].float() / 255.0
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                loss = loss_fn(forward(x), y_all[i * batch_size:(i + 1) * batch_size])
            loss.backward()
            optimizer.step()
            state["i"] += 1
        if device == "cuda":
            torch.cuda.synchronize()

    t0 = time.perf_counter()
    run(1)
    name = "pytorch " + ("torch.compile" if compiled else "eager")
    result = measure(name, model, batch_size, run, compile_seconds=time.perf_counter() - t0,
                     steps_per_window=steps_per_window, windows=windows)
    result.device = device
    return result
