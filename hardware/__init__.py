"""Devices and numbers: placement, sharding, multi-process runs, mixed precision, hardware
facts, and compression arithmetic (pruning masks, quantizers, the model.zc format).

Imported as `zoo_hardware`. The lowest layer beside `zoo.io`: it imports only
`zoo.errors`, `zoo.config` and `zoo.paths`, never the harness, the hub, the `zoo
compress` application (`zoo.compress`), the CLI or a task (tests/test_layers.py).
"""
