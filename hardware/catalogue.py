"""Peak compute, memory bandwidth and memory size of accelerators, for roofline estimates.

Figures are per chip, dense (no 2:4 sparsity), from the vendors' public datasheets. Each
dtype's figure is the matmul rate JAX gets for arrays of that dtype at its default
precision: float32 matmuls run as TF32 on A100/H100/H200 tensor cores, as one bfloat16
pass on TPUs, and in true FP32 on V100 (JAX's "Matmul precision" guide,
https://docs.jax.dev/en/latest/201/precision.html, and jax-ml/jax#18934). A dtype a chip
has no fast path for is None. The local machine is measured at run time instead.
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import jax.numpy as jnp

from zoo.errors import unknown

T = 1e12
G = 1e9


@dataclasses.dataclass(frozen=True)
class DeviceSpec:
    """One chip's roofline: peak FLOP/s per dtype, bytes/s to its memory, memory bytes."""

    name: str
    description: str
    peak_flops: dict[str, float | None]
    bandwidth: float
    memory: float

    def peak(self, dtype: str) -> float | None:
        return self.peak_flops.get(dtype)


CATALOGUE: dict[str, DeviceSpec] = {spec.name: spec for spec in [
    # NVIDIA Tesla V100 datasheet (SXM2 16 GB; the deck's figures), images.nvidia.com/
    # content/technologies/volta/pdf/tesla-volta-v100-datasheet-letter-fnl-web.pdf:
    # single precision 15.7 TFLOPS, tensor performance 125 TFLOPS (float16 inputs),
    # HBM2 900 GB/s, 16 GB. Volta has no bfloat16 and no TF32.
    DeviceSpec("v100", "NVIDIA V100 SXM2 16 GB",
               {"float32": 15.7 * T, "float16": 125 * T, "bfloat16": None}, 900 * G, 16 * G),
    # NVIDIA A100 datasheet (SXM 80 GB), nvidia.com/content/dam/en-zz/Solutions/
    # Data-Center/a100/pdf/nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf: TF32 tensor
    # 156 TFLOPS, BF16 and FP16 tensor 312 TFLOPS (dense; 624 with sparsity), FP32
    # 19.5 TFLOPS without tensor cores, HBM2e 2,039 GB/s, 80 GB.
    DeviceSpec("a100", "NVIDIA A100 SXM 80 GB",
               {"float32": 156 * T, "float16": 312 * T, "bfloat16": 312 * T}, 2039 * G, 80 * G),
    # NVIDIA H100 datasheet (SXM), nvidia.com/en-us/data-center/h100/: TF32 tensor 989,
    # BF16 and FP16 tensor 1,979 TFLOPS with sparsity, so 494.7 and 989.4 dense; FP32
    # 67 TFLOPS without tensor cores; HBM3 3.35 TB/s, 80 GB.
    DeviceSpec("h100", "NVIDIA H100 SXM 80 GB",
               {"float32": 494.7 * T, "float16": 989.4 * T, "bfloat16": 989.4 * T},
               3350 * G, 80 * G),
    # NVIDIA H200 datasheet (SXM), nvidia.com/en-us/data-center/h200/: the H100's compute
    # (TF32 989, BF16/FP16 1,979 TFLOPS with sparsity), HBM3e 4.8 TB/s, 141 GB.
    DeviceSpec("h200", "NVIDIA H200 SXM 141 GB",
               {"float32": 494.7 * T, "float16": 989.4 * T, "bfloat16": 989.4 * T},
               4800 * G, 141 * G),
    # Cloud TPU v4 system architecture, cloud.google.com/tpu/docs/v4: peak 275 TFLOPS
    # (bf16 or int8) per chip, HBM2 32 GiB at 1,200 GBps. No float16 datapath.
    DeviceSpec("tpu-v4", "Google Cloud TPU v4 chip",
               {"float32": 275 * T, "float16": None, "bfloat16": 275 * T}, 1200 * G, 32 * 2**30),
    # Cloud TPU v5e, cloud.google.com/tpu/docs/v5e: peak 197 TFLOPS (bf16) per chip,
    # HBM2 16 GB at 819 GBps.
    DeviceSpec("tpu-v5e", "Google Cloud TPU v5e chip",
               {"float32": 197 * T, "float16": None, "bfloat16": 197 * T}, 819 * G, 16 * G),
    # Cloud TPU v5p, cloud.google.com/tpu/docs/v5p: peak 459 TFLOPS (bf16) per chip,
    # HBM2e 95 GB at 2,765 GBps.
    DeviceSpec("tpu-v5p", "Google Cloud TPU v5p chip",
               {"float32": 459 * T, "float16": None, "bfloat16": 459 * T}, 2765 * G, 95 * G),
]}


def lookup(names: str | None) -> list[DeviceSpec]:
    """The specs named in a comma-separated list ('v100,h100'); None or '' gives all."""
    if not names:
        return list(CATALOGUE.values())
    specs = []
    for name in (n.strip().lower() for n in names.split(",") if n.strip()):
        if name not in CATALOGUE:
            raise unknown("hardware", name, CATALOGUE)
        specs.append(CATALOGUE[name])
    return specs


def measure_local(dtype: str = "float32", *, matmul_size: int = 2048,
                  copy_bytes: int = 64 * 2**20, repeats: int = 3) -> DeviceSpec:
    """This process's first device, measured now: the best of `repeats` timings of a
    jitted square matmul (peak FLOP/s in `dtype`) and of a jitted in-place scaling of
    `copy_bytes` (memory bandwidth: it reads and writes each byte once; donating the
    buffer keeps page faults of a fresh output out of the timing)."""
    device = jax.devices()[0]
    n = matmul_size
    a = jax.device_put(jnp.ones((n, n), dtype), device)
    x = jax.device_put(jnp.ones(copy_bytes // 4, jnp.float32), device)
    matmul_s = _best_time(jax.jit(lambda m: m @ m), a, repeats)
    copy_s = _best_time(jax.jit(lambda v: v * 0.5, donate_argnums=0), x, repeats, chain=True)
    peaks = {dtype: 2 * n**3 / matmul_s}
    return DeviceSpec(f"{device.platform} (here)", f"{device.device_kind}, measured now",
                      peaks, 2 * copy_bytes / copy_s, device_memory(device))


def device_memory(device: jax.Device) -> float:
    """Bytes of memory the device may use (the host's RAM for a CPU device)."""
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats and "bytes_limit" in stats:
        return float(stats["bytes_limit"])
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def _best_time(fn, arg, repeats: int, chain: bool = False) -> float:
    """The fastest of `repeats` calls after a warm-up (`chain`: feed each output back in)."""
    out = jax.block_until_ready(fn(arg))  # compile and warm up
    times = []
    for _ in range(repeats):
        arg = out if chain else arg
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn(arg))
        times.append(time.perf_counter() - t0)
    return min(times)
