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

Writing is atomic (temporary file in the same folder, then ``os.replace``; see
:mod:`vadistill.io.atomic`), so an interrupted save or a full disk never leaves a truncated
checkpoint behind: readers see the old file or the new one.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import torch

from vadistill.errors import InputError
from vadistill.io.atomic import atomic_path

PLAIN_TYPES = (bool, int, float, str, type(None), torch.Tensor, torch.Size, torch.dtype)
ZIP_MAGIC = b"PK\x03\x04"


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
        InputError: the disk filled up while writing (the previous file, if any, is kept).
    """
    if not isinstance(payload, dict):
        raise TypeError(f"payload must be a dict, got {type(payload).__name__}")
    check_payload(payload)
    path = Path(path)
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)
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
    with path.open("rb") as handle:
        is_zip_start = handle.read(4) == ZIP_MAGIC
    if not is_zip_start:
        # torch.save has written zip archives since PyTorch 1.6, and so has save_checkpoint: anything
        # else (an image, a text file, another tool's pickle) is not one of ours.
        raise InputError(path, "not a checkpoint: expected the zip archive that torch.save writes "
                               "(the model.ckpt of `vadistill train`)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as error:
        raise InputError(path, f"not a readable checkpoint (corrupt or truncated file): {torch_load_error(error)}") from None
    except Exception as error:  # pickle.UnpicklingError and friends from the restricted loader
        raise InputError(path, f"not a vadistill checkpoint (refused by the safe loader): {torch_load_error(error)}") from None
    if not isinstance(payload, dict):
        raise InputError(path, f"expected a checkpoint dict, found {type(payload).__name__}")
    return payload


# Lines of torch.load's weights_only refusal that explain torch's defaults, not the file.
_TORCH_BOILERPLATE = ("Weights only load failed", "Please file an issue", "Check the documentation")


def torch_load_error(error: BaseException) -> str:
    """What `torch.load` found wrong, in one line, without the paragraph on its `weights_only` default."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(_TORCH_BOILERPLATE)]
    return " ".join(useful or lines[:1]) or type(error).__name__


def load_method_checkpoint(path: str | os.PathLike, method: str, format_version: int) -> dict:
    """Load a method's checkpoint and check that it is one of `method`'s, in a format this code reads."""
    payload = load_checkpoint(path)
    if payload.get("method") != method:
        raise InputError(path, f"is a checkpoint of method {payload.get('method')!r}, not {method!r}")
    if payload.get("format_version") != format_version:
        raise InputError(path, f"checkpoint format {payload.get('format_version')} is not supported "
                         f"(this vadistill reads format {format_version})")
    return payload
