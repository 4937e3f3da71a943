"""HTTP(S) downloads with a progress bar, resume and integrity checks (standard library only).

A download is written to ``<file>.part`` and renamed to ``<file>`` only once it is complete and
verified, so a file under its final name is always whole. An interrupted download resumes from the
``.part`` file with an HTTP ``Range`` request; a server that ignores ``Range`` makes it start over.
Every failure a user can cause or meet (bad URL, DNS failure, refused connection, HTTP 4xx/5xx,
timeout, a full disk, a checksum mismatch) raises :class:`vadistill.errors.InputError`.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from vadistill.errors import InputError

USER_AGENT = "vadistill-dataset-download (Python urllib)"
CHUNK_BYTES = 1 << 20
MANUAL_HINT = "download it by hand and pass --source PATH"


class _TransferInterrupted(Exception):
    """The connection broke after bytes had arrived: worth resuming from the .part file."""


def file_sha256(path: str | os.PathLike, chunk_bytes: int = CHUNK_BYTES) -> str:
    """Hex SHA-256 of a file, read in chunks so that large archives need little memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def download_file(
    url: str,
    destination: str | os.PathLike,
    *,
    expected_size: int | None = None,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
    attempts: int = 3,
) -> Path:
    """Download `url` to `destination`, resuming a previous partial download.

    Args:
        url: http(s) URL of the file.
        destination: final path of the file; its folder is created.
        expected_size: size in bytes when known; checked after the download.
        sha256: hex SHA-256 when known; checked after the download.
        progress: show a tqdm progress bar.
        timeout: seconds to wait for the connection or for the next bytes.
        attempts: how many times to resume after the connection breaks mid-transfer.

    Returns:
        The destination path, holding the complete, verified file.

    Raises:
        InputError: the URL cannot be fetched, the disk is full, or the file fails verification.
    """
    destination = Path(destination)
    if destination.is_file():
        if _verification_problem(destination, expected_size, sha256) is None:
            return destination
        # A file under the final name that fails verification cannot be trusted; fetch it again.
        destination.unlink()
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")

    for attempt in range(1, attempts + 1):
        try:
            _fetch_into(url, partial, destination, expected_size, progress, timeout)
            break
        except _TransferInterrupted as error:
            if attempt == attempts:
                raise InputError(url, f"could not download: {error} (the partial file {partial} is kept: "
                                      f"re-run to resume); or {MANUAL_HINT}") from None

    problem = _verification_problem(partial, expected_size, sha256)
    if problem is not None:
        partial.unlink(missing_ok=True)
        raise InputError(url, f"the download is not the expected file: {problem}; {MANUAL_HINT}")
    os.replace(partial, destination)
    return destination


def _fetch_into(url: str, partial: Path, destination: Path, expected_size: int | None,
                progress: bool, timeout: float) -> None:
    """One HTTP request that appends to (or restarts) `partial`; returns when the body has ended."""
    offset = partial.stat().st_size if partial.exists() else 0
    if expected_size is not None and offset >= expected_size:
        if offset == expected_size:
            return  # a previous run received everything but stopped before the rename
        partial.unlink()
        offset = 0
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            # "Range not satisfiable": the .part file already holds every byte the server has,
            # or is longer than the file now is. Trust it only when the server says so.
            if _total_from_content_range(error.headers.get("Content-Range")) == offset:
                return
            partial.unlink()
            return _fetch_into(url, partial, destination, expected_size, progress, timeout)
        raise InputError(url, f"could not download: HTTP {error.code} {error.reason}; {MANUAL_HINT}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as error:
        # ValueError: a malformed URL (no scheme, ...); the rest: DNS, refused, timeout, TLS.
        raise InputError(url, f"could not download: {_describe(error)}; {MANUAL_HINT}") from None

    with response:
        if offset and response.status != 206:
            offset = 0  # the server ignored Range and sends the whole file: start over
        content_type = response.headers.get("Content-Type", "")
        if content_type.startswith("text/html") and not destination.name.lower().endswith((".html", ".htm")):
            # Cloud-drive and landing pages answer 200 with a web page instead of the file.
            raise InputError(url, f"the server sent a web page, not the file (is this a download page?); {MANUAL_HINT}")
        length_header = response.headers.get("Content-Length")
        body_length = int(length_header) if length_header and length_header.isdigit() else None
        total = offset + body_length if body_length is not None else expected_size
        received = 0
        try:
            with open(partial, "ab" if offset else "wb") as output, tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                desc=destination.name, disable=not progress, leave=False,
            ) as bar:
                while True:
                    try:
                        chunk = response.read(CHUNK_BYTES)
                    except (OSError, http.client.HTTPException) as error:
                        raise _TransferInterrupted(_describe(error)) from None
                    if not chunk:
                        break
                    output.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        except OSError as error:
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                partial.unlink(missing_ok=True)  # free the space; nothing half-written stays behind
                raise InputError(destination, f"disk full while downloading {url}; the partial download "
                                              "was removed — free some space and re-run") from None
            raise
    if body_length is not None and received < body_length:
        # http.client returns b"" instead of raising when the server closes early.
        raise _TransferInterrupted(f"connection closed after {offset + received} of {offset + body_length} bytes")


def _verification_problem(path: Path, expected_size: int | None, sha256: str | None) -> str | None:
    """None when the file matches what is known about it, else what is wrong."""
    size = path.stat().st_size
    if expected_size is not None and size != expected_size:
        return f"{size} bytes, expected {expected_size}"
    if sha256 is not None:
        actual = file_sha256(path)
        if actual != sha256.lower():
            return f"SHA-256 {actual}, expected {sha256.lower()}"
    return None


def _total_from_content_range(header: str | None) -> int | None:
    """Total size from a ``Content-Range: bytes */1234`` (or ``bytes 0-9/1234``) header."""
    match = re.search(r"/(\d+)\s*$", header or "")
    return int(match.group(1)) if match else None


def _describe(error: BaseException) -> str:
    """A short human reason for a network error (urllib nests the real one in `.reason`)."""
    reason = getattr(error, "reason", None)
    if isinstance(reason, BaseException):
        error = reason
    elif isinstance(reason, str) and reason:
        return reason
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__
