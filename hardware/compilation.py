"""JAX's persistent compilation cache, on by default, and a count of its hits.

XLA compiles each step once per process; with the cache, a second run of the same
program (same shapes, devices and flags) loads the executable from disk instead. The
thresholds are lowered so that the small programs of small tasks are cached too.
"""

from pathlib import Path

import jax

_HIT = "/jax/compilation_cache/cache_hits"
_hits = 0
_listening = False


def enable_persistent_cache(directory: Path) -> Path:
    """Caches every compiled program in `directory`, unless the user chose a directory
    (`JAX_COMPILATION_CACHE_DIR`); returns the directory in use. Call before compiling."""
    if not jax.config.jax_compilation_cache_dir:
        jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    global _listening
    if not _listening:
        jax.monitoring.register_event_listener(_count_hit)
        _listening = True
    return Path(jax.config.jax_compilation_cache_dir)


def cache_hits() -> int:
    """Programs loaded from the persistent cache so far in this process."""
    return _hits


def _count_hit(event: str, **kwargs) -> None:
    global _hits
    if event == _HIT:
        _hits += 1
