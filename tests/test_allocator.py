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


def test_the_system_malloc_can_be_kept():
    assert _probe(ZOO_SYSTEM_MALLOC="1") == "False"
