"""Safe extraction of .tar(.gz/.bz2/.xz) and .zip archives, on every supported Python.

Python 3.11's `tarfile.extractall` (before 3.11.4, and after it unless `filter="data"`
is passed) writes `../` paths, absolute paths, links and device files wherever they
point. Here every member is checked first, and only regular files and folders are
written, by this code, with plain permissions: an archive with anything else is
refused whole and nothing is written. Extraction is bounded (file count, total bytes,
and bytes per byte of archive, so a small archive cannot fill the disk), malformed
archives (truncated, bad CRC, a name that is both a file and a folder, over-long
names) are refused in one line, and every file's sha256 is returned for the cache to
record and re-verify.
"""

from __future__ import annotations

import functools
import hashlib
import lzma
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from zoo.errors import ZooError

CHUNK = 1 << 20
MAX_FILES = 10_000
MAX_BYTES = 16 << 30  # extracted, in all
MAX_RATIO = 100  # extracted bytes per archive byte (weights compress ~1.1x, text ~4x)
RATIO_FLOOR = 1 << 20  # a tiny archive may still extract to this much
MAX_NAME_BYTES = 255  # per path component: what file systems allow
MAX_PATH_CHARS = 1024
_DAMAGED = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError,
            OSError)  # gzip's BadGzipFile and bz2's "Invalid data stream" are OSErrors


@dataclass(frozen=True)
class Member:
    path: PurePosixPath  # relative, checked
    is_dir: bool
    size: int  # as the archive declares it
    open: Callable  # opener of its bytes


def extract(archive: Path, dest: Path) -> dict[str, str]:
    """Extracts `archive` into the new folder `dest`.

    Returns:
      The sha256 of every extracted file, by its `/`-joined path relative to `dest`.

    Raises:
      ZooError: naming the archive and the first member that is an absolute path, has a
        `..` component, is not a regular file or folder (links, devices, fifos), clashes
        with another, or has an over-long name; an archive over the limits; a damaged
        archive (truncated, bad CRC). `dest` may then hold part of it: the caller
        removes it.
    """
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                return _write_all(archive, dest, [
                    Member(_checked(archive, m.filename, _zip_kind(m)), m.is_dir(), m.file_size,
                           functools.partial(zf.open, m)) for m in zf.infolist()])
        try:
            tf = tarfile.open(archive)
        except tarfile.ReadError:
            raise ZooError(f"{archive.name}: not a tar or zip archive") from None
        with tf:
            return _write_all(archive, dest, [
                Member(_checked(archive, m.name, _tar_kind(m)), m.isdir(), m.size,
                       functools.partial(tf.extractfile, m)) for m in tf.getmembers()])
    except _DAMAGED as e:
        raise ZooError(f"{archive.name}: damaged archive ({_reason(e)}); its publisher must "
                       f"publish it again") from None


def _write_all(archive: Path, dest: Path, members: list[Member]) -> dict[str, str]:
    """Checks the members as a whole, then writes them, hashing each file."""
    budget = _budget(archive)
    _check_layout(archive, members, budget)
    _mkdir(dest)
    digests, written = {}, 0
    for member in members:
        path = dest / member.path
        if member.is_dir:
            _mkdir(path)
            continue
        digest = hashlib.sha256()
        with member.open() as src, _output(path) as out:
            for block in iter(lambda: src.read(CHUNK), b""):
                written += len(block)
                if written > budget:  # the declared sizes lied
                    raise _too_large(archive, written, budget)
                digest.update(block)
                _write(out, block)
        digests[member.path.as_posix()] = digest.hexdigest()
    return digests


def _mkdir(path: Path) -> None:
    """A folder for members; a failure here is the disk's, not the archive's."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ZooError(f"cannot extract into {path}: {e.strerror or e}") from None


def _output(path: Path):
    _mkdir(path.parent)
    try:
        return open(path, "wb")
    except OSError as e:
        raise ZooError(f"cannot extract into {path.parent}: {e.strerror or e}") from None


def _write(out, block: bytes) -> None:
    try:
        out.write(block)
    except OSError as e:  # a full disk: say so, not "damaged archive"
        raise ZooError(f"cannot extract into {Path(out.name).parent}: {e.strerror or e}") from None


def _budget(archive: Path) -> int:
    return min(MAX_BYTES, max(RATIO_FLOOR, MAX_RATIO * archive.stat().st_size))


def _check_layout(archive: Path, members: list[Member], budget: int) -> None:
    """Refuses too many members, too many bytes, and names that clash."""
    if len(members) > MAX_FILES:
        raise ZooError(f"{archive.name}: refused, {len(members):,} members, more than "
                       f"{MAX_FILES:,}")
    declared = sum(m.size for m in members if not m.is_dir)
    if declared > budget:
        raise _too_large(archive, declared, budget)
    files, folders = set(), set()
    for member in members:
        folders.update(member.path.parents)
        if member.is_dir:
            folders.add(member.path)
        elif member.path in files:
            raise ZooError(f"{archive.name}: refused, member {str(member.path)!r} appears twice")
        else:
            files.add(member.path)
    clash = sorted(files & folders)
    if clash:
        raise ZooError(f"{archive.name}: refused, {str(clash[0])!r} is both a file and a folder")


def _too_large(archive: Path, size: int, budget: int) -> ZooError:
    return ZooError(f"{archive.name}: refused, it extracts to more than {budget:,} bytes "
                    f"({size:,} found; the limit is {MAX_RATIO}x the archive's size, at least "
                    f"{RATIO_FLOOR >> 20} MiB and at most {MAX_BYTES >> 30} GiB)")


def _checked(archive: Path, name: str, kind: str) -> PurePosixPath:
    """The member's relative path, or a refusal."""
    path = PurePosixPath(name.replace("\\", "/"))
    shown = name if len(name) <= 80 else name[:80] + "..."
    if kind not in ("file", "dir"):
        raise ZooError(f"{archive.name}: refused, member {shown!r} is a {kind}; only regular "
                       f"files and folders are extracted")
    if path.is_absolute() or (path.parts and ":" in path.parts[0]):
        raise ZooError(f"{archive.name}: refused, member {shown!r} has an absolute path")
    if ".." in path.parts:
        raise ZooError(f"{archive.name}: refused, member {shown!r} points outside the archive "
                       f"('..')")
    if not path.parts or "\0" in name:
        raise ZooError(f"{archive.name}: refused, a member has an empty or invalid name")
    if len(name) > MAX_PATH_CHARS or any(len(p.encode()) > MAX_NAME_BYTES for p in path.parts):
        raise ZooError(f"{archive.name}: refused, member {shown!r} has an over-long name "
                       f"(at most {MAX_NAME_BYTES} bytes a part, {MAX_PATH_CHARS} in all)")
    return path


def _reason(error: Exception) -> str:
    text = str(error) or type(error).__name__
    return text if len(text) <= 120 else text[:120] + "..."


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


def intact(folder: Path, contents: dict[str, str]) -> bool:
    """True when `folder` holds exactly the files of `contents`, each with its sha256."""
    from zoo.io.files import sha256_file

    found = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*")
             if p.is_file() or p.is_symlink()}
    return set(found) == set(contents) and all(
        not found[name].is_symlink() and sha256_file(found[name]) == digest
        for name, digest in contents.items())
