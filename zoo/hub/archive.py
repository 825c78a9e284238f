"""Safe extraction of .tar(.gz/.bz2/.xz) and .zip archives, on every supported Python.

Python 3.11's `tarfile.extractall` (before 3.11.4, and after it unless `filter="data"`
is passed) writes `../` paths, absolute paths, links and device files wherever they
point. Here every member is checked first, and only regular files and folders are
written, by this code, with plain permissions: an archive with anything else is
refused whole and nothing is written.
"""

from __future__ import annotations

import functools
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from zoo.errors import ZooError

CHUNK = 1 << 20


def extract(archive: Path, dest: Path) -> None:
    """Extracts `archive` into the new folder `dest`.

    Raises:
      ZooError: naming the archive and the first member that is an absolute path, has a
        `..` component, or is not a regular file or folder (links, devices, fifos).
    """
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            _write_all(dest, [(_checked(archive, m.filename, _zip_kind(m)), m.is_dir(),
                               functools.partial(zf.open, m)) for m in zf.infolist()])
        return
    try:
        tf = tarfile.open(archive)
    except tarfile.TarError:
        raise ZooError(f"{archive}: not a tar or zip archive") from None
    with tf:
        _write_all(dest, [(_checked(archive, m.name, _tar_kind(m)), m.isdir(),
                           functools.partial(tf.extractfile, m)) for m in tf.getmembers()])


def _write_all(dest: Path, members: list[tuple[PurePosixPath, bool, Callable]]) -> None:
    """Writes checked members: (relative path, is a folder, opener of its bytes)."""
    dest.mkdir(parents=True)
    for name, is_dir, open_member in members:
        path = dest / name
        if is_dir:
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        with open_member() as src, open(path, "wb") as out:
            shutil.copyfileobj(src, out, CHUNK)


def _checked(archive: Path, name: str, kind: str) -> PurePosixPath:
    """The member's relative path, or a refusal."""
    path = PurePosixPath(name.replace("\\", "/"))
    if kind not in ("file", "dir"):
        raise ZooError(f"{archive}: refused, member {name!r} is a {kind}; only regular "
                       f"files and folders are extracted")
    if path.is_absolute() or (path.parts and ":" in path.parts[0]):
        raise ZooError(f"{archive}: refused, member {name!r} has an absolute path")
    if ".." in path.parts:
        raise ZooError(f"{archive}: refused, member {name!r} points outside the archive ('..')")
    return path


def _tar_kind(member: tarfile.TarInfo) -> str:
    if member.isreg():
        return "file"
    if member.isdir():
        return "dir"
    if member.issym():
        return f"symbolic link (to {member.linkname!r})"
    if member.islnk():
        return f"hard link (to {member.linkname!r})"
    return "device or special file"


def _zip_kind(member: zipfile.ZipInfo) -> str:
    file_type = stat.S_IFMT(member.external_attr >> 16)  # 0 when only permissions are stored
    if file_type == stat.S_IFLNK:
        return "symbolic link"
    if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "device or special file"
    return "dir" if member.is_dir() else "file"
