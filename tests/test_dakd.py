"""DAKD end to end on clearly structured features over the real Ped2-weak split and ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vadistill.data.weak import load_ped2_weak, ped2_frame_count
from vadistill.errors import InputError
from vadistill.methods.dakd import Dakd, DakdConfig, split_train_val, train_dakd

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
pytestmark = pytest.mark.skipif(not (DATA / "ucsd_ped2").is_dir(), reason=f"shared benchmark data not found at {DATA}")
DIMS = {"feat_a": 12, "feat_b": 20}
FAST = dict(teacher_backbones=("feat_a", "feat_b"), student_backbone="feat_a", dim=32, heads=2, max_distance=2,
            dropout=0.1, teacher_epochs=6, student_epochs=6, steps_per_epoch=6, batch_size=4, lr=3e-3)


def snippet_labels(name: str) -> np.ndarray:
    """Ped2 frame labels (UCSDped2.m) pooled to 16-frame snippets: 1 if any frame of the snippet is abnormal."""
    from vadistill.data.labels import parse_ucsd_m

    frames = ped2_frame_count(name)
    labels = np.zeros(-(-frames // 16) * 16, dtype=np.uint8)
    if name.startswith("Test"):
        for start, end in parse_ucsd_m(DATA / "ucsd_gt" / "UCSDped2.m")[int(name[4:]) - 1]:
            labels[start:end + 1] = 1
    return labels.reshape(-1, 16).max(axis=1)


@pytest.fixture(scope="module")
def features(tmp_path_factory) -> Path:
    """Structured features: abnormal snippets (from the real ground truth) are shifted along a fixed direction."""
    root = tmp_path_factory.mktemp("features")
    rng = np.random.default_rng(0)
    names = [f"Test{i:03d}" for i in range(1, 13)] + [f"Train{i:03d}" for i in range(1, 17)]
    for backbone, dim in DIMS.items():
        direction = np.zeros(dim, dtype=np.float32)
        direction[:4] = 1.0
        (root / backbone).mkdir()
        for name in names:
            labels = snippet_labels(name)
            x = rng.normal(size=(len(labels), dim)).astype(np.float32) + 1.5 * labels[:, None] * direction
            np.save(root / backbone / f"{name}_{backbone}.npy", x)
    return root


@pytest.fixture(scope="module")
def trained(features, tmp_path_factory) -> tuple[Dakd, dict, Path]:
    torch.set_num_threads(1)
    run_dir = tmp_path_factory.mktemp("run")
    result = train_dakd(features, "ped2_weak", FAST, run_dir, annotations=DATA / "ucsd_ped2", progress=False)
    return Dakd.load(run_dir / "model.ckpt"), result, run_dir


def test_teacher_and_student_learn_from_video_labels(trained):
    _, result, run_dir = trained
    assert result["metric"] == "auc"
    assert result["teacher"] > 0.8 and result["student"] > 0.8, result
    assert json.loads((run_dir / "results.json").read_text())["student"] == result["student"]
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert {h["stage"] for h in history} == {"teacher", "student"}
    student = [h for h in history if h["stage"] == "student"]
    assert {"mil", "pred", "feat"} <= set(student[0]["train"])  # bi-level distillation terms were optimised


def test_save_load_gives_identical_scores(trained, features, tmp_path):
    model, _, _ = trained
    data = load_ped2_weak(features, DATA / "ucsd_ped2", backbones=list(DIMS), ucsd_m=DATA / "ucsd_gt" / "UCSDped2.m")
    video = data.test[0]
    model.save(tmp_path / "copy.ckpt")
    again = Dakd.load(tmp_path / "copy.ckpt")
    assert np.array_equal(model.snippet_scores(video), again.snippet_scores(video))
    assert np.array_equal(model.teacher_snippet_scores(video), again.teacher_snippet_scores(video))
    # The same scores from an array, a [crops, T, D] array and a file path.
    array = video.load("feat_a")[0]
    assert np.allclose(model.snippet_scores(array), model.snippet_scores(video))
    assert np.allclose(model.snippet_scores(array[None]), model.snippet_scores(video))
    assert np.allclose(model.snippet_scores(video.features["feat_a"][0]), model.snippet_scores(video))
    frames = model.frame_scores(video)
    assert frames.shape == (video.num_frames,)


def test_resume_of_a_finished_run_restores_the_same_model(trained, features):
    model, _, run_dir = trained
    data = load_ped2_weak(features, DATA / "ucsd_ped2", backbones=list(DIMS), ucsd_m=DATA / "ucsd_gt" / "UCSDped2.m")
    resumed = Dakd(DakdConfig(**FAST)).fit(data.train, run_dir=run_dir, resume=True, progress=False)
    video = data.test[2]
    assert np.allclose(resumed.snippet_scores(video), model.snippet_scores(video))


def test_mil_only_baseline_has_no_teacher(features, tmp_path):
    data = load_ped2_weak(features, DATA / "ucsd_ped2", backbones=["feat_a"], ucsd_m=DATA / "ucsd_gt" / "UCSDped2.m")
    config = DakdConfig(**{**FAST, "distill": False, "teacher_epochs": 1, "student_epochs": 3})
    assert config.backbones == ("feat_a",)
    model = Dakd(config).fit(data.train, run_dir=tmp_path, progress=False)
    assert model.teacher_ is None and model.evaluate(data) > 0.6
    with pytest.raises(ValueError, match="no Teacher"):
        model.teacher_snippet_scores(data.test[0])


def test_bad_inputs_are_reported(trained, tmp_path):
    model, _, _ = trained
    with pytest.raises(InputError, match="expected finite"):
        model.snippet_scores(np.full((4, DIMS["feat_a"]), np.nan, dtype=np.float32))
    with pytest.raises(InputError, match=r"\[T, 12\]"):
        model.snippet_scores(np.zeros((4, 7), dtype=np.float32))
    with pytest.raises(InputError, match="WeakVideo"):
        Dakd().fit(["not a video"], run_dir=tmp_path)
    with pytest.raises(ValueError):
        DakdConfig(temperature=0)
    with pytest.raises(InputError, match="unknown DAKD config"):
        train_dakd(tmp_path, "ped2_weak", {"nope": 1}, tmp_path)
    with pytest.raises(InputError, match="unknown weakly-supervised dataset"):
        train_dakd(tmp_path, "nope", FAST, tmp_path)


def test_validation_split_is_stratified_and_never_empty(features):
    data = load_ped2_weak(features, DATA / "ucsd_ped2", backbones=["feat_a"], ucsd_m=DATA / "ucsd_gt" / "UCSDped2.m")
    train, val = split_train_val(data.train, 0.2, seed=0)
    assert sorted(v.label for v in val) == [0, 1] and len(train) == 8
    assert not {v.name for v in train} & {v.name for v in val}
    train, val = split_train_val(data.train[:7], 0.2, seed=0)  # one normal video only: fall back to train = val
    assert train == val == data.train[:7]


def test_handcrafted_backbone_sees_motion_and_plugs_into_the_extractor(tmp_path):
    import cv2

    from vadistill.backbones import BACKBONES
    from vadistill.backbones.extract import extract_features
    from vadistill.backbones.handcrafted import FEATURE_DIM, HOG_DIM, HOF_DIM, snippet_descriptor

    frames = np.full((20, 240, 360, 3), 90, dtype=np.uint8)
    moving = frames.copy()
    for t in range(20):  # a bright square crossing the frame at 8 px / frame
        moving[t, 100:140, 40 + 8 * t:80 + 8 * t] = 230
    still = snippet_descriptor(frames[:16])
    motion = snippet_descriptor(moving[:16])
    assert still.shape == motion.shape == (FEATURE_DIM,) and still.dtype == np.float32
    assert np.array_equal(motion, snippet_descriptor(moving[:16]))  # deterministic, no weights
    cell_magnitude = slice(HOG_DIM + HOF_DIM, HOG_DIM + HOF_DIM + 16)
    assert motion[cell_magnitude].sum() > still[cell_magnitude].sum() + 1.0
    (tmp_path / "clip").mkdir()
    for t, frame in enumerate(moving):
        cv2.imwrite(str(tmp_path / "clip" / f"{t:03d}.jpg"), frame[..., ::-1])
    paths = extract_features([tmp_path / "clip"], tmp_path / "out", "handcrafted", "center", progress=False)
    assert paths[0].name == "clip_handcrafted.npy"
    assert np.load(paths[0]).shape == (2, BACKBONES["handcrafted"].feature_dim)  # 20 frames -> 2 snippets (padded)
