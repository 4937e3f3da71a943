"""Output files that are either complete or absent.

A run that stops half-way (a full disk, a file-size limit, Ctrl-C, a crash) must never leave a
file that looks like a finished result: a truncated ``metrics.json`` that still parses, a
``.npy`` that ``resume`` would skip, a video that plays its first half. So every output goes
through :func:`atomic_path`: the writer fills a temporary file in the destination folder (same
file system, so the final ``os.replace`` is a rename, atomic on POSIX and Windows), the data is
flushed to disk, and only then is the temporary file renamed over the destination. On any
failure the temporary file is removed and the destination keeps its old content (or stays absent).

A full disk (ENOSPC, EDQUOT) or a file-size limit (EFBIG, ``ulimit -f``) is the user's
environment, not a bug: it becomes an :class:`~vadistill.errors.InputError` naming the
destination, which the CLI prints as one line with exit code 2. Some writers hide the errno
(``np.save`` raises a bare OSError, ``torch.save`` a RuntimeError), so when a writer fails the disk
and the file-size limit are looked at directly (:func:`out_of_room`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from vadistill.errors import InputError

#: errno values that mean "no room to write": disk full, quota exceeded, file-size limit.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})

#: Marks temporary output files (``.<stem>.<random>.partial<suffix>``): hidden, and never mistaken
#: for a result by a person or by a resume check.
PARTIAL_MARK = ".partial"


def is_disk_full(error: BaseException) -> bool:
    """True for an OSError that says the disk (or the allowed file size) is full."""
    return isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS


def disk_full_error(path: str | os.PathLike, reason: OSError | str) -> InputError:
    """The one-line error for a write that ran out of room (`reason`: the OSError, or words)."""
    if isinstance(reason, OSError):
        reason = f"{reason.strerror or os.strerror(reason.errno or 0)} (the disk is full or a file-size limit was reached)"
    return InputError(path, f"could not be written: {reason}; no partial file was left there - free some space "
                            "and run again")


# Less free space than this after a failed write means the write failed for want of space.
NEARLY_FULL_BYTES = 1 << 20


def out_of_room(partial: Path) -> str | None:
    """Why a write to `partial` ran out of room (file-size limit reached, disk full), or None."""
    try:
        size = partial.stat().st_size
        import resource  # POSIX only

        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit != resource.RLIM_INFINITY and size >= limit:
            return f"file-size limit of {limit} bytes reached"
    except (OSError, ImportError):
        pass
    try:
        disk = os.statvfs(partial.parent)
    except (OSError, AttributeError):  # AttributeError: no statvfs on Windows
        return None
    free = disk.f_bavail * disk.f_frsize
    return f"the disk is full ({free} bytes left)" if free < NEARLY_FULL_BYTES else None


def _default_permissions(path: Path) -> None:
    # mkstemp creates files readable by the owner only; outputs get the usual 0666 & ~umask.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _flush_to_disk(path: Path) -> None:
    # Without fsync a power cut after the rename could leave an empty file under the final name.
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _temporary_beside(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f"{PARTIAL_MARK}{path.suffix}")
    os.close(handle)
    return Path(name)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write `path`'s content to; it replaces `path` when the block succeeds.

    The temporary file sits beside `path` and keeps its suffix, so writers that choose a format
    from the extension (``cv2.VideoWriter``, ``np.save``, ``torch.save``) work unchanged. Write one
    file per block: a full disk inside the block is reported as `path`'s (for several files that
    must appear together, use :func:`atomic_write_files`).

    Raises:
        InputError: the disk filled up (or a file-size limit was hit) while writing; the
            temporary file is removed and `path` is untouched.
    """
    path = Path(path)
    temporary = _temporary_beside(path)
    try:
        yield temporary
        _flush_to_disk(temporary)
        _default_permissions(temporary)
        os.replace(temporary, path)
    except OSError as error:
        room = error if is_disk_full(error) else out_of_room(temporary)
        temporary.unlink(missing_ok=True)
        if room is not None:
            raise disk_full_error(path, room) from None
        raise
    except Exception:
        room = out_of_room(temporary)  # e.g. torch.save's RuntimeError from its zip writer
        temporary.unlink(missing_ok=True)
        if room is not None:
            raise disk_full_error(path, room) from None
        raise
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def atomic_write_files(contents: Mapping[str | os.PathLike, bytes]) -> list[Path]:
    """Write several files so that they appear together, or not at all.

    Every file is first written in full to its temporary file; only when all of them are written
    are they renamed into place. A full disk names the file being written and leaves none of them.

    Returns:
        The paths, in the order given.
    """
    written: dict[Path, Path] = {}  # destination -> its complete temporary file
    try:
        for path, data in contents.items():
            path = Path(path)
            written[path] = _temporary_beside(path)
            try:
                written[path].write_bytes(data)
                _flush_to_disk(written[path])
            except OSError as error:
                if is_disk_full(error):
                    raise disk_full_error(path, error) from None
                raise
            _default_permissions(written[path])
        for path, temporary in written.items():
            os.replace(temporary, path)
    finally:
        for temporary in written.values():
            temporary.unlink(missing_ok=True)  # only those not renamed are still there
    return list(written)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically (see :func:`atomic_write_files`); returns the path."""
    return atomic_write_files({path: data})[0]


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically; returns the path."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def is_partial_file(path: str | os.PathLike) -> bool:
    """True for a temporary file of this module (or of older writers, ``*.tmp``)."""
    name = Path(path).name
    return PARTIAL_MARK in name or name.endswith(".tmp")
