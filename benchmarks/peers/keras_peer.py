"""Keras 3 on its JAX backend: `fit` with `steps_per_execution` (the optional peer)."""

import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

from benchmarks.timing import Throughput  # noqa: E402

MODELS = ("lenet", "resnet")  # rebuilt here layer by layer

STEPS_PER_EXECUTION = 8  # tried 1, 4, 8, 32 on LeNet: 8 or more removes dispatch overhead


def _lenet(keras, shape):
    layers = keras.layers
    return keras.Sequential([
        keras.Input(shape), layers.Rescaling(1 / 255),
        layers.Conv2D(20, 5, activation="relu"), layers.MaxPooling2D(),
        layers.Conv2D(50, 5, activation="relu"), layers.MaxPooling2D(),
        layers.Flatten(), layers.Dense(500, activation="relu"), layers.Dense(10)])


def _resnet(keras, shape, widths=(16, 32, 64), blocks=2):
    layers = keras.layers
    inputs = keras.Input(shape)
    x = layers.Rescaling(1 / 255)(inputs)
    x = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(widths[0], 3, padding="same", use_bias=False)(x)))
    for i, width in enumerate(widths):
        for j in range(blocks):
            stride = 2 if i > 0 and j == 0 else 1
            y = layers.Conv2D(width, 3, strides=stride, padding="same", use_bias=False)(x)
            y = layers.ReLU()(layers.BatchNormalization()(y))
            y = layers.BatchNormalization(gamma_initializer="zeros")(
                layers.Conv2D(width, 3, padding="same", use_bias=False)(y))
            shortcut = x
            if stride != 1 or x.shape[-1] != width:
                shortcut = layers.Conv2D(width, 1, strides=stride, use_bias=False)(x)
            x = layers.ReLU()(y + shortcut)
    outputs = layers.Dense(10)(layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs)


def train(workload, *, steps_per_window, windows) -> Throughput:
    model, batch_size = workload.model, workload.task.config.train.batch_size
    images, labels = workload.train["image"], workload.train["label"]
    import keras

    if keras.backend.backend() != "jax":
        raise ImportError("Keras is not on its JAX backend (set KERAS_BACKEND=jax)")
    if workload.task.config.train.dtype == "bfloat16":
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    net = {"lenet": _lenet, "resnet": _resnet}[model](keras, images.shape[1:])
    net.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True,
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                steps_per_execution=STEPS_PER_EXECUTION)
    n = steps_per_window * batch_size
    reps = -(-n // len(images))
    x = images.repeat(reps, axis=0)[:n] if reps > 1 else images[:n]
    y = labels.repeat(reps, axis=0)[:n] if reps > 1 else labels[:n]

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t0)

    times: list[float] = []
    net.fit(x, y, batch_size=batch_size, epochs=windows + 2, shuffle=False, verbose=0,
            callbacks=[EpochTimer()])
    steady = times[2:]  # epoch 1 compiles, epoch 2 warms up
    result = Throughput("keras 3 (jax) fit", model, batch_size,
                        note=f"steps_per_execution={STEPS_PER_EXECUTION}")
    result.windows = [n / t for t in steady]
    result.compile_seconds = times[0] - min(steady)
    return result
