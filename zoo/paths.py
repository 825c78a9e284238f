"""Where zoo keeps its cache: `$ZOO_HOME`, else the platform's user cache directory."""

import os
from pathlib import Path

import platformdirs

from zoo.errors import ZooError


def zoo_home() -> Path:
    """The root of zoo's cache (data sets, hub weights, compiled programs)."""
    root = os.environ.get("ZOO_HOME") or platformdirs.user_cache_dir("zoo")
    return Path(root).expanduser()


def cache_dir(*parts: str) -> Path:
    """A sub-directory of `zoo_home()`, created on first use.

    Raises:
      ZooError: it cannot be created (a file in the way, no permission).
    """
    path = zoo_home().joinpath(*parts)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ZooError(f"cannot create zoo's cache folder {path} ({e.strerror or e}); set "
                       f"ZOO_HOME to a writable folder") from None
    return path
