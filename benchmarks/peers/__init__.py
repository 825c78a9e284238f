"""One module per training peer; each exposes `train(model, images, labels, batch_size, *,
steps_per_window, windows) -> Throughput` and raises ImportError when not installed."""
