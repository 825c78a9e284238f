"""Where zoo keeps its cache: `$ZOO_HOME`, else the platform's user cache directory."""

import os
from pathlib import Path

import platformdirs


def zoo_home() -> Path:
    """The root of zoo's cache (data sets, hub weights, compiled programs)."""
    root = os.environ.get("ZOO_HOME") or platformdirs.user_cache_dir("zoo")
    return Path(root).expanduser()


def cache_dir(*parts: str) -> Path:
    """A sub-directory of `zoo_home()`, created on first use."""
    path = zoo_home().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
