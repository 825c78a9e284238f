"""zoo_hardware.allocator: glibc's malloc tuned so XLA's CPU temporaries stay mapped.

Its effect (no page faults per step) is measured in benchmarks/, not timed here; these
run in a fresh interpreter, since the tuning lasts for the whole process.
"""

import os
import platform
import subprocess
import sys

import pytest

PROBE = "from zoo_hardware import allocator; print(allocator.keep_freed_memory())"


def _probe(**env) -> str:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                            env={**os.environ, **env}, check=True)
    return result.stdout.strip()


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="tunes glibc's malloc")
def test_malloc_is_tuned_on_glibc():
    assert _probe() == "True"


KEEPS = """
import ctypes
from zoo_hardware import allocator
assert allocator.keep_freed_memory()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.sbrk.restype, libc.sbrk.argtypes = ctypes.c_void_p, [ctypes.c_ssize_t]
block = libc.malloc(2**31 + 2**28)  # past the old 2 GB threshold; untouched, so no memory
if block is None:
    print("refused")
else:
    grown = libc.sbrk(0)
    libc.free(block)
    print(libc.sbrk(0) == grown)
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="tunes glibc's malloc")
def test_a_freed_block_of_gigabytes_stays_in_the_heap():
    """No trimming at any size: with a 2 GB threshold, a step whose temporaries left
    more than that free gave it back, and the next step page-faulted it all in again
    (the harness's slow windows, benchmarks/README.md)."""
    result = subprocess.run([sys.executable, "-c", KEEPS], capture_output=True, text=True,
                            check=True)
    if result.stdout.strip() == "refused":
        pytest.skip("this machine's overcommit policy refuses 2.25 GB of address space")
    assert result.stdout.strip() == "True"


def test_the_system_malloc_can_be_kept():
    assert _probe(ZOO_SYSTEM_MALLOC="1") == "False"
