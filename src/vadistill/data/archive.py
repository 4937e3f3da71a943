"""Safe unpacking of dataset archives (.tar, .tar.gz/.tgz, .tar.bz2, .tar.xz, .zip).

Archives from the internet are untrusted: a member named ``../../.bashrc`` or ``/etc/passwd``, or a
symlink pointing outside the destination, could write anywhere the user can. Every member is
checked by our own rules (which also hold on Python 3.10, whose `tarfile` has no extraction
filters) and, where available, by `tarfile`'s ``"data"`` filter as a second guard.

An archive is first unpacked into a hidden staging folder inside the destination and only then
moved into place, so an interrupted unpack never looks like a finished one (and the move is a cheap
rename on the same file system).
"""

from __future__ import annotations

import logging
import lzma
import os
import posixpath
import re
import shutil
import stat
import sys
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Iterator, Sequence

from tqdm import tqdm

from vadistill.errors import InputError
from vadistill.io.atomic import DISK_FULL_ERRNOS

log = logging.getLogger(__name__)

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tbz", ".tar.xz", ".txz", ".zip")
STAGING_PREFIX = ".vadistill-unpacking-"
# tarfile.FilterError exists where extraction filters do (3.10.12+, 3.11.4+, 3.12+).
_FILTER_ERRORS = (tarfile.FilterError,) if hasattr(tarfile, "FilterError") else ()


def is_archive(path: str | os.PathLike) -> bool:
    """True when the file name has one of the archive suffixes vadistill unpacks."""
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def unpack_archive(
    archive: str | os.PathLike,
    destination: str | os.PathLike,
    *,
    include: Sequence[str] = (),
    progress: bool = True,
) -> list[Path]:
    """Unpack `archive` into `destination`, refusing unsafe members.

    Args:
        archive: a .tar, .tar.gz/.tgz, .tar.bz2, .tar.xz or .zip file.
        destination: folder to unpack into; created if missing. Entries already there are merged
            (files with the same path are replaced).
        include: if given, only members whose path is one of these or lies below one of them are
            unpacked; if none matches, the whole archive is unpacked (the layout was not the
            expected one, and unpacking everything is better than unpacking nothing).
        progress: show a tqdm progress bar (members unpacked).

    Returns:
        The top-level paths inside `destination` that came from the archive.

    Raises:
        InputError: the archive is missing, corrupt or truncated, holds an unsafe member, or the
            disk fills up (the partial unpack is then removed).
    """
    archive, destination = Path(archive), Path(destination)
    if not archive.is_file():
        raise InputError(archive, "no such archive file")
    destination.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=destination))
    try:
        matched = _extract(archive, staging, include, progress)
        if include and matched == 0:
            log.warning("%s: none of %s found in the archive; unpacking all of it", archive, list(include))
            _extract(archive, staging, (), progress)
        _make_owner_writable(staging)
        top_level = sorted(staging.iterdir())
        for entry in top_level:
            move_merging(entry, destination / entry.name)
        return [destination / entry.name for entry in top_level]
    except OSError as error:
        if error.errno in DISK_FULL_ERRNOS:
            raise InputError(archive, f"disk full while unpacking into {destination}; the partial unpack was "
                                      "removed — free some space and re-run") from None
        raise
    finally:
        remove_tree(staging)


def _extract(archive: Path, target: Path, include: Sequence[str], progress: bool) -> int:
    """Unpack (the included members of) `archive` into `target`; returns how many were unpacked."""
    bar = tqdm(desc=f"unpacking {archive.name}", unit=" files", disable=not progress, leave=False)
    try:
        if archive.name.lower().endswith(".zip") or (not is_archive(archive) and zipfile.is_zipfile(archive)):
            return _extract_zip(archive, target, include, bar)
        return _extract_tar(archive, target, include, bar)
    except _FILTER_ERRORS as error:  # the "data" filter's second opinion
        raise InputError(archive, f"refusing to unpack: {error}") from None
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError) as error:
        raise InputError(archive, f"corrupt or truncated archive ({error}); delete it and download it again") from None
    except OSError as error:
        # Decompressors (gzip, bz2) report bad data as OSError without an errno; real file
        # system errors (disk full, permissions) carry one and are not the archive's fault.
        if error.errno is None:
            raise InputError(archive, f"corrupt or truncated archive ({error}); delete it and download it again") from None
        raise
    finally:
        bar.close()


# -- tar -------------------------------------------------------------------------------------
def _extract_tar(archive: Path, target: Path, include: Sequence[str], bar: tqdm) -> int:
    count = 0

    def checked_members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
        # A generator, so that extractall reads a compressed archive once, streaming.
        nonlocal count
        symlink_names: set[str] = set()
        for member in tar:
            name = _normalise(member.name)
            _check_tar_member(archive, member, name, symlink_names)
            if member.issym():
                symlink_names.add(name)
            if include and not _is_included(name, include):
                continue
            count += 1
            bar.update(1)
            yield member

    with tarfile.open(archive, "r:*") as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(target, members=checked_members(tar), filter="data")
        else:  # Python < 3.10.12 / 3.11.4: our own checks are the only guard
            tar.extractall(target, members=checked_members(tar))
    _check_symlinks_stay_inside(archive, target)
    return count


def _check_tar_member(archive: Path, member: tarfile.TarInfo, name: str, symlink_names: set[str]) -> None:
    problem = _unsafe_name(member.name)
    if problem is None and not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        problem = "is a device file, FIFO or other special file"
    if problem is None and any(parent in symlink_names for parent in _parents(name)):
        # Writing through a symlinked folder could land anywhere the link points.
        problem = "lies inside a folder that the archive made a symlink"
    if problem is None and member.issym() and _link_escapes(posixpath.dirname(name), member.linkname):
        problem = f"is a symlink pointing outside the destination ({member.linkname!r})"
    if problem is None and member.islnk() and _link_escapes("", member.linkname):
        problem = f"is a hard link pointing outside the destination ({member.linkname!r})"
    if problem is not None:
        raise InputError(archive, f"refusing to unpack: member {member.name!r} {problem}")


# -- zip -------------------------------------------------------------------------------------
def _extract_zip(archive: Path, target: Path, include: Sequence[str], bar: tqdm) -> int:
    count = 0
    with zipfile.ZipFile(archive) as zipped:
        members = zipped.infolist()
        for info in members:  # check everything before writing anything
            problem = _unsafe_name(info.filename)
            if problem is None and stat.S_ISLNK(info.external_attr >> 16):
                link = zipped.read(info).decode("utf-8", "replace")
                if _link_escapes(posixpath.dirname(_normalise(info.filename)), link):
                    problem = f"is a symlink pointing outside the destination ({link!r})"
            if problem is not None:
                raise InputError(archive, f"refusing to unpack: member {info.filename!r} {problem}")
        for info in members:
            if include and not _is_included(_normalise(info.filename), include):
                continue
            # zipfile writes symlink members as small regular files, never as links.
            zipped.extract(info, target)
            count += 1
            bar.update(1)
    return count


# -- member checks ---------------------------------------------------------------------------
def _unsafe_name(name: str) -> str | None:
    """Why a member name is unsafe to join to the destination, or None."""
    unified = name.replace("\\", "/")  # archives made on Windows may use backslashes
    if not unified.strip("/"):
        return "has an empty name"
    if "\x00" in unified:
        return "has a NUL byte in its name"
    if unified.startswith("/") or re.match(r"^[A-Za-z]:", unified):
        return "has an absolute path"
    if ".." in unified.split("/"):
        return "has a '..' path component"
    return None


def _link_escapes(base: str, link: str) -> bool:
    """True when `link`, resolved from folder `base` inside the archive, leaves the archive root."""
    link = link.replace("\\", "/")
    if not link or link.startswith("/") or re.match(r"^[A-Za-z]:", link):
        return True
    resolved = posixpath.normpath(posixpath.join(base, link))
    return resolved == ".." or resolved.startswith("../")


def _check_symlinks_stay_inside(archive: Path, root: Path) -> None:
    """Last guard: every symlink that was created must resolve inside `root`."""
    real_root = os.path.realpath(root)
    for folder, dirs, files in os.walk(root):
        for entry in dirs + files:
            path = os.path.join(folder, entry)
            if os.path.islink(path):
                real = os.path.realpath(path)
                if os.path.commonpath([real_root, real]) != real_root:
                    raise InputError(archive, f"refusing to unpack: symlink {os.path.relpath(path, root)!r} "
                                              "resolves outside the destination")


def _normalise(name: str) -> str:
    name = name.replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name.rstrip("/")


def _parents(name: str) -> Iterator[str]:
    parts = name.split("/")
    for end in range(1, len(parts)):
        yield "/".join(parts[:end])


def _is_included(name: str, include: Sequence[str]) -> bool:
    for prefix in include:
        prefix = _normalise(prefix)
        if name == prefix or name.startswith(prefix + "/"):
            return True
    return False


# -- file system helpers (also used by vadistill.data.prepare) -------------------------------
def move_merging(source: Path, target: Path) -> None:
    """Move `source` to `target`; folders that exist on both sides are merged, files replaced."""
    if target.is_symlink() or (target.exists() and not (target.is_dir() and source.is_dir())):
        remove_tree(target)
    if not target.exists():
        os.replace(source, target)
        return
    for child in list(source.iterdir()):
        move_merging(child, target / child.name)
    source.rmdir()


def remove_tree(path: Path) -> None:
    """Delete a file, symlink or folder tree if it exists, including read-only entries."""
    path = Path(path)
    if path.is_symlink() or path.is_file():
        path.unlink()
        return
    if not path.exists():
        return

    def make_writable_and_retry(function, failed_path, _error):
        # Read-only folders (copied from read-only media, or archives storing r-x modes) block
        # deleting their contents; give the owner write permission and try again.
        os.chmod(os.path.dirname(failed_path), stat.S_IRWXU)
        if os.path.isdir(failed_path) and not os.path.islink(failed_path):
            os.chmod(failed_path, stat.S_IRWXU)
        function(failed_path)

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=make_writable_and_retry)
    else:
        shutil.rmtree(path, onerror=make_writable_and_retry)


def _make_owner_writable(root: Path) -> None:
    """Archives may store read-only folders; later steps (frame extraction, --force) must write there."""
    for folder, dirs, _files in os.walk(root):
        for name in dirs:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                mode = os.stat(path).st_mode
                if mode & stat.S_IRWXU != stat.S_IRWXU:
                    os.chmod(path, mode | stat.S_IRWXU)
