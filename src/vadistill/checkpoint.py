"""Checkpoint files: one atomic writer and one safe reader shared by every method.

A checkpoint is a plain dict ("payload") of Python scalars, strings, lists, dicts, tuples,
``None`` and tensors (state dicts). Numpy arrays are not allowed: ``torch.load(...,
weights_only=True)`` refuses them, so a payload that holds one would save fine and then fail to
load. :func:`save_checkpoint` checks the payload first and names the offending key instead.

Conventional keys (methods may add their own):
    format_version: int, bumped when the layout of a method's payload changes.
    method: the method's name in ``vadistill.methods.METHODS`` ("aed-mae", ...).
    config: ``dataclasses.asdict(config)``.
    state_dict: the network's ``state_dict()``.
    score_stats: normalisation statistics of the anomaly-score terms, measured on normal data.
    threshold: a decision threshold on the final score (or None).

Writing is atomic (temporary file in the same folder, then ``os.replace``), so an interrupted
save never leaves a truncated checkpoint behind: readers see the old file or the new one.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from vadistill.errors import InputError

PLAIN_TYPES = (bool, int, float, str, type(None), torch.Tensor, torch.Size, torch.dtype)


def check_payload(value: Any, where: str = "payload") -> None:
    """Raise TypeError naming the first value that ``weights_only`` loading would refuse."""
    if isinstance(value, PLAIN_TYPES):
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"{where}: dict key {key!r} must be str or int")
            check_payload(item, f"{where}[{key!r}]")
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_payload(item, f"{where}[{index}]")
        return
    raise TypeError(f"{where}: {type(value).__name__} cannot go into a checkpoint "
                    "(use plain Python types or tensors; convert numpy arrays with .tolist() or torch.as_tensor)")


def save_checkpoint(path: str | os.PathLike, payload: dict) -> Path:
    """Write `payload` to `path` atomically and return the path.

    Args:
        path: destination file; its folder is created if needed.
        payload: plain types and tensors only (see the module docstring).

    Raises:
        TypeError: the payload holds something `load_checkpoint` could not read back.
    """
    if not isinstance(payload, dict):
        raise TypeError(f"payload must be a dict, got {type(payload).__name__}")
    check_payload(payload)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary file lives in the destination folder so that os.replace is a rename on
    # the same file system (atomic), never a copy.
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as tmp:
            torch.save(payload, tmp)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
    return path


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors land on the CPU).

    Uses ``weights_only=True``: a checkpoint cannot execute code when it is loaded.

    Raises:
        InputError: the file is missing, empty, truncated, corrupt or not a vadistill payload.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such checkpoint file")
    if path.stat().st_size == 0:
        raise InputError(path, "the checkpoint file is empty (0 bytes)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as error:
        raise InputError(path, f"not a readable checkpoint (corrupt or truncated file): {error}") from None
    except Exception as error:  # pickle.UnpicklingError and friends from the restricted loader
        raise InputError(path, f"not a vadistill checkpoint (refused by the safe loader): {error}") from None
    if not isinstance(payload, dict):
        raise InputError(path, f"expected a checkpoint dict, found {type(payload).__name__}")
    return payload


def load_method_checkpoint(path: str | os.PathLike, method: str, format_version: int) -> dict:
    """Load a method's checkpoint and check that it is one of `method`'s, in a format this code reads."""
    payload = load_checkpoint(path)
    if payload.get("method") != method:
        raise InputError(path, f"is a checkpoint of method {payload.get('method')!r}, not {method!r}")
    if payload.get("format_version") != format_version:
        raise InputError(path, f"checkpoint format {payload.get('format_version')} is not supported "
                         f"(this vadistill reads format {format_version})")
    return payload
