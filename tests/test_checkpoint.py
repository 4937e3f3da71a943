import numpy as np
import pytest
import torch

from vadistill.checkpoint import load_checkpoint, save_checkpoint
from vadistill.errors import InputError


def test_round_trip_keeps_tensors_and_plain_types(tmp_path):
    net = torch.nn.Linear(3, 2)
    payload = {"format_version": 1, "method": "x", "config": {"a": 1, "b": (2, 3), "c": None},
               "state_dict": net.state_dict(), "score_stats": {"t": {"mean": 0.5, "std": 2.0}}, "threshold": 1.5}
    path = save_checkpoint(tmp_path / "sub" / "m.ckpt", payload)
    loaded = load_checkpoint(path)
    assert loaded["config"] == payload["config"] and loaded["threshold"] == 1.5
    for key, value in net.state_dict().items():
        assert torch.equal(loaded["state_dict"][key], value)
    assert [p.name for p in path.parent.iterdir()] == ["m.ckpt"]  # no temporary file left behind


def test_overwrite_is_atomic_and_replaces(tmp_path):
    path = tmp_path / "m.ckpt"
    save_checkpoint(path, {"v": 1})
    save_checkpoint(path, {"v": 2})
    assert load_checkpoint(path)["v"] == 2


def test_numpy_array_is_refused_at_save_time(tmp_path):
    with pytest.raises(TypeError, match=r"payload\['stats'\]\['mean'\]"):
        save_checkpoint(tmp_path / "m.ckpt", {"stats": {"mean": np.zeros(3)}})
    assert not (tmp_path / "m.ckpt").exists()


@pytest.mark.parametrize("content", [b"", b"not a zip file at all", None])
def test_bad_files_raise_input_error(tmp_path, content):
    path = tmp_path / "bad.ckpt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_truncated_checkpoint_raises_input_error(tmp_path):
    path = save_checkpoint(tmp_path / "m.ckpt", {"w": torch.randn(1000)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="corrupt|truncated|refused"):
        load_checkpoint(path)


class NotPlain:
    """A class the safe loader does not know."""


def test_arbitrary_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"obj": NotPlain()}, path)
    with pytest.raises(InputError, match="safe loader|checkpoint"):
        load_checkpoint(path)
