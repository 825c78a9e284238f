"""PyTorch eager on the CPU, 2 threads (the optional peer)."""

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


def train(workload, *, steps_per_window, windows) -> Throughput:
    model, batch_size = workload.model, workload.task.config.train.batch_size
    images, labels = workload.train["image"], workload.train["label"]
    import torch
    from torch import nn

    torch.set_num_threads(2)
    torch.manual_seed(0)
    net = {"lenet": _lenet, "resnet": _resnet}[model](nn, images.shape[-1])
    optimizer = torch.optim.Adam(net.parameters(), 1e-3)
    loss_fn = nn.CrossEntropyLoss()
    x_all = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()  # NCHW uint8
    y_all = torch.from_numpy(labels).long()
    n = len(images) // batch_size
    state = {"i": 0}

    def run(k):
        for _ in range(k):
            i = state["i"] % n
            x = x_all[i * batch_size:(i + 1) * batch_size].float() / 255.0
            optimizer.zero_grad(set_to_none=True)
            loss_fn(net(x), y_all[i * batch_size:(i + 1) * batch_size]).backward()
            optimizer.step()
            state["i"] += 1

    t0 = time.perf_counter()
    run(1)
    return measure("pytorch eager", model, batch_size, run, compile_seconds=time.perf_counter() - t0,
                   steps_per_window=steps_per_window, windows=windows)
