"""Host memory that stays mapped between steps: glibc malloc tuned for XLA's CPU backend.

A compiled program on XLA's CPU backend takes its temporary buffers (one block: 75 MB
for the weight gradient of one ResNet-14 layer at batch 128, hundreds of MB for a whole
step) from malloc at every call, on one of its worker threads. glibc serves a block
that large from a fresh mmap and unmaps it on free, so every call page-faults its whole
working memory back in, and the kernel zeroes every page: a ResNet-14 training step
(batch 128) took 162,600 page faults, 0.6 s of system time and 1.4-1.6 s of CPU time,
against 0.85 s of CPU time with the memory kept (benchmarks/README.md).

`keep_freed_memory` makes every thread allocate from the main heap, never by mmap, and
never trims the heap, so a block freed by one step is reused by the next. (A threshold
of 2 GB was not "never": a harness whose heap grew past it gave 0.6-3 GB back every few
steps and faulted it in again, a third of its windows 20-60% slower.) It must run
before JAX starts its backend (glibc gives each thread its arena at its first malloc),
so the `zoo` command calls it first; a library user calls it before any JAX work. Its
cost: freed memory is kept by the process rather than returned to the system.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

# mallopt(3) parameters, from glibc's malloc.h.
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
OPT_OUT = "ZOO_SYSTEM_MALLOC"  # set to 1 to leave malloc as the system configured it


def keep_freed_memory() -> bool:
    """Tunes glibc's malloc to reuse freed blocks; True if applied (False off glibc, or
    when $ZOO_SYSTEM_MALLOC=1)."""
    if os.environ.get(OPT_OUT, "0") not in ("", "0"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl, Windows)
        return False
    settings = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, -1))
    return all(mallopt(parameter, value) == 1 for parameter, value in settings)
