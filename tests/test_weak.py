"""Weakly-supervised datasets on features: real annotation files, layouts, validation, frame expansion."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest

from vadistill.data.labels import parse_ucsd_m
from vadistill.data.weak import (PED2_TEST_FRAMES, PED2_TRAIN_FRAMES, WeakVideo, detect_layout,
                                 evaluate_snippet_scores, index_feature_folder, load_features, load_ped2_weak,
                                 load_shanghaitech_weak, load_ucf_crime, load_xd_violence, parse_feature_csv,
                                 parse_ucf_split, parse_ucf_temporal_annotation, parse_xd_annotations,
                                 snippets_to_frames, xd_is_normal)
from vadistill.errors import InputError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
UCF, XD, SH, PED2 = DATA / "ucf_crime_gt", DATA / "xd_violence_gt", DATA / "shanghaitech_gt", DATA / "ucsd_ped2"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared benchmark data not found at {DATA}")


def write_features(folder: Path, names, backbone: str, shape=(4, 8), layout: str = "TD") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        t, d = shape
        array = rng.normal(size={"TD": (t, d), "CTD": (10, t, d), "TCD": (t, 10, d)}[layout]).astype(np.float32)
        np.save(folder / f"{name}_{backbone}.npy", array)


# -- feature files ------------------------------------------------------------------------------
def test_layout_detection_and_conversion_to_crops_time_width(tmp_path):
    assert detect_layout((7, 1024)) == "TD"
    assert detect_layout((10, 7, 1024)) == "CTD"
    assert detect_layout((7, 10, 2048)) == "TCD"
    assert detect_layout((10, 10, 8)) == "CTD" and detect_layout((10, 10, 8), ambiguous="TCD") == "TCD"
    base = np.arange(3 * 10 * 4, dtype=np.float32).reshape(3, 10, 4)  # (T, K, D)
    np.save(tmp_path / "tcd.npy", base)
    np.save(tmp_path / "ctd.npy", base.transpose(1, 0, 2))
    np.save(tmp_path / "td.npy", base[:, 0])
    assert np.array_equal(load_features(tmp_path / "tcd.npy"), base.transpose(1, 0, 2))
    assert np.array_equal(load_features(tmp_path / "ctd.npy"), base.transpose(1, 0, 2))
    assert load_features(tmp_path / "td.npy").shape == (1, 3, 4)
    for c in range(2):  # VadCLIP-style per-crop files
        np.save(tmp_path / f"v__{c}.npy", base[:, c])
    assert np.array_equal(load_features([tmp_path / "v__0.npy", tmp_path / "v__1.npy"]), base.transpose(1, 0, 2)[:2])


def test_invalid_features_raise_input_errors_naming_file_and_expected_shape(tmp_path):
    bad = np.ones((5, 8), dtype=np.float32)
    bad[2, 3] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(InputError, match=r"nan\.npy.*NaN/inf.*\[T, 8\]"):
        load_features(tmp_path / "nan.npy", dim=8)
    np.save(tmp_path / "inf.npy", np.full((5, 8), np.inf, dtype=np.float32))
    with pytest.raises(InputError, match="NaN/inf"):
        load_features(tmp_path / "inf.npy")
    np.save(tmp_path / "wide.npy", np.ones((5, 9), dtype=np.float32))
    with pytest.raises(InputError, match=r"wide\.npy.*width 9.*\[T, 8\]"):
        load_features(tmp_path / "wide.npy", dim=8)
    np.save(tmp_path / "flat.npy", np.ones(5, dtype=np.float32))
    with pytest.raises(InputError, match=r"flat\.npy.*shape \(5,\)"):
        load_features(tmp_path / "flat.npy")
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(InputError, match="junk.npy"):
        load_features(tmp_path / "junk.npy")


def test_snippets_to_frames_repeats_then_truncates_or_pads():
    scores = np.array([0.1, 0.5, 0.9])
    frames = snippets_to_frames(scores, 40)
    assert frames.shape == (40,) and np.all(frames[:16] == 0.1) and np.all(frames[32:] == 0.9)
    padded = snippets_to_frames(scores, 60)  # features dropped a last partial snippet: repeat the last score
    assert padded.shape == (60,) and np.all(padded[48:] == 0.9)


def test_index_feature_folder_finds_release_and_vadistill_names(tmp_path):
    (tmp_path / "Abuse").mkdir()
    np.save(tmp_path / "Abuse" / "Abuse001_x264_i3d.npy", np.zeros((2, 3)))
    np.save(tmp_path / "Normal_Videos_003_x264__1.npy", np.zeros((2, 3)))
    np.save(tmp_path / "Normal_Videos_003_x264__0.npy", np.zeros((2, 3)))
    index = index_feature_folder(tmp_path, "i3d")
    assert set(index) == {"Abuse001_x264", "Normal_Videos_003_x264"}
    assert [p.name for p in index["Normal_Videos_003_x264"]] == ["Normal_Videos_003_x264__0.npy",
                                                                 "Normal_Videos_003_x264__1.npy"]


# -- UCF-Crime ----------------------------------------------------------------------------------
@needs_data
def test_ucf_crime_annotation_and_splits_parse_the_real_files():
    annotation = parse_ucf_temporal_annotation(UCF / "vadclip_Temporal_Anomaly_Annotation.txt")
    assert len(annotation) == 290
    assert sum(1 for category, _ in annotation.values() if category == "Normal") == 150
    assert all(not ranges for category, ranges in annotation.values() if category == "Normal")
    assert annotation["Abuse028_x264"] == ("Abuse", ((165, 239),))
    assert annotation["Arson011_x264"][1] == ((150, 419), (680, 1266))
    train = parse_ucf_split(UCF / "vadclip_Anomaly_Train.txt")
    test = parse_ucf_split(UCF / "vadclip_Anomaly_Test.txt")
    assert len(train) == 1610 and sum(label == 0 for _, label in train) == 800
    assert len(test) == 290 and sum(label for _, label in test) == 140
    assert {name for name, _ in test} == set(annotation)


@needs_data
def test_ucf_crime_loader_with_release_layout_features(tmp_path):
    names = [n for n, _ in parse_ucf_split(UCF / "vadclip_Anomaly_Train.txt")]
    names += [n for n, _ in parse_ucf_split(UCF / "vadclip_Anomaly_Test.txt")]
    write_features(tmp_path / "i3d", names, "i3d", shape=(100, 8), layout="TCD")  # [T, 10 crops, D]
    data = load_ucf_crime(tmp_path, UCF)
    assert data.metric == "auc" and len(data.train) == 1610 and len(data.test) == 290
    video = next(v for v in data.test if v.name == "Abuse028_x264")
    assert video.load("i3d").shape == (10, 100, 8)
    labels = video.frame_labels(video.frame_count(100))  # 16 x 100 frames
    assert labels.shape == (1600,) and labels.sum() == 240 - 165 and labels[165] == 1 and labels[240] == 0
    # A perfect detector (its snippet scores are the snippet-pooled labels) scores AUC 1.
    scores = {v.name: v.frame_labels(1600).reshape(100, 16).max(1).astype(float) for v in data.test}
    assert evaluate_snippet_scores(data, scores) > 0.99
    (tmp_path / "i3d" / f"{names[0]}_i3d.npy").unlink()
    with pytest.raises(InputError, match=f"1 feature file.*{names[0]}"):
        load_ucf_crime(tmp_path, UCF)


# -- XD-Violence --------------------------------------------------------------------------------
@needs_data
def test_xd_violence_annotations_and_test_list_parse_the_real_files():
    ranges = parse_xd_annotations(XD / "vadclip_annotations.txt")
    assert len(ranges) == 500
    assert ranges["v=S-7rRLrxnVQ__#1_label_B4-0-0"] == ((0, 1516), (1970, 3037))
    assert all(not xd_is_normal(name) for name in ranges)
    test = parse_feature_csv(XD / "vadclip_xd_CLIP_rgbtest.csv")
    assert len(test) == 800 and sum(xd_is_normal(n) for n in test) == 300
    assert {n for n in test if not xd_is_normal(n)} == set(ranges)


@needs_data
def test_xd_violence_loader_uses_ap_and_the_folder_for_training_videos(tmp_path):
    test = parse_feature_csv(XD / "vadclip_xd_CLIP_rgbtest.csv")
    train = ["Train.Movie__#00-00-01_00-00-05_label_A", "Fight.Movie__#00-01-00_00-01-10_label_B1-0-0"]
    write_features(tmp_path, test + train, "i3d", shape=(3, 4))
    data = load_xd_violence(tmp_path, XD, backbones=["i3d"])
    assert data.metric == "ap" and len(data.test) == 800
    assert [(v.name, v.label) for v in data.train] == [(train[1], 1), (train[0], 0)]
    assert sum(v.label for v in data.test) == 500


# -- ShanghaiTech ---------------------------------------------------------------------------------
@needs_data
def test_shanghaitech_weak_split_labels_and_frame_counts(tmp_path):
    from vadistill.data.weak import _list_names
    names = _list_names(SH / "rtfm_shanghai-i3d-train-10crop.list") + _list_names(SH / "rtfm_shanghai-i3d-test-10crop.list")
    write_features(tmp_path, names, "i3d", shape=(5, 6), layout="TCD")
    data = load_shanghaitech_weak(tmp_path, SH, backbones=["i3d"])
    assert len(data.train) == 238 and sum(v.label for v in data.train) == 63
    assert len(data.test) == 199 and sum(v.label for v in data.test) == 44
    assert all(v.label == 1 for v in data.train[:63])  # RTFM's "first 63 are abnormal"
    video = next(v for v in data.test if v.name == "01_0015")
    mask = np.load(SH / "test_frame_mask" / "01_0015.npy")
    assert video.num_frames == len(mask) and np.array_equal(video.frame_labels(len(mask)), mask.astype(np.uint8))
    normal = next(v for v in data.test if v.label == 0)
    assert normal.num_frames is None and normal.frame_count(5) == 80


# -- Ped2-weak ------------------------------------------------------------------------------------
@needs_data
def test_ped2_weak_ground_truth_is_rebuilt_from_ucsdped2_m(tmp_path):
    names = [f"Test{i:03d}" for i in range(1, 13)] + [f"Train{i:03d}" for i in range(1, 17)]
    write_features(tmp_path / "i3d", names, "i3d", shape=(12, 4))
    data = load_ped2_weak(tmp_path, PED2, ucsd_m=DATA / "ucsd_gt" / "UCSDped2.m")
    assert [v.name for v in data.train] == ["Test002", "Test006", "Test009", "Test010", "Test011", "Test012",
                                            "Train007", "Train008", "Train014", "Train015"]
    assert [v.label for v in data.train] == [1] * 6 + [0] * 4
    assert len(data.test) == 18 and [v.label for v in data.test] == [1] * 6 + [0] * 12
    gt = parse_ucsd_m(DATA / "ucsd_gt" / "UCSDped2.m")
    official = {f"Test{i + 1:03d}": ranges for i, ranges in enumerate(gt)}
    total = 0
    for video in data.test:
        labels = video.frame_labels(video.num_frames)
        if video.name.startswith("Train"):
            assert labels.sum() == 0 and video.num_frames == PED2_TRAIN_FRAMES[int(video.name[5:]) - 1]
        else:
            expected = sum(end - start + 1 for start, end in official[video.name])
            assert labels.sum() == expected and video.num_frames == PED2_TEST_FRAMES[int(video.name[4:]) - 1]
        total += labels.sum()
    assert total == sum(sum(e - s + 1 for s, e in official[f"Test{i:03d}"]) for i in (1, 3, 4, 5, 7, 8))
    # Expanding 12 snippets to a 150-frame video truncates to its frame count.
    short = next(v for v in data.test if v.num_frames == 150)
    assert snippets_to_frames(np.zeros(12), short.num_frames).shape == (150,)


@needs_data
def test_ped2_frame_count_constants_match_the_frames_archive():
    tar_path = PED2 / "ped2_frames.tar"
    if not tar_path.is_file():
        pytest.skip("ped2_frames.tar not found")
    counts: dict[tuple[str, str], int] = {}
    with tarfile.open(tar_path) as archive:
        for member in archive.getmembers():
            parts = Path(member.name).parts
            if member.isfile() and member.name.endswith(".jpg") and "frames" in parts:
                key = (parts[parts.index("frames") - 1], parts[parts.index("frames") + 1])
                counts[key] = counts.get(key, 0) + 1
    assert tuple(counts[("testing", f"{i:02d}")] for i in range(1, 13)) == PED2_TEST_FRAMES
    assert tuple(counts[("training", f"{i:02d}")] for i in range(1, 17)) == PED2_TRAIN_FRAMES


def test_videos_of_one_sample_align_backbones_and_reject_big_mismatches(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((10, 4), dtype=np.float32))
    np.save(tmp_path / "b.npy", np.zeros((9, 6), dtype=np.float32))
    np.save(tmp_path / "c.npy", np.zeros((5, 6), dtype=np.float32))
    video = WeakVideo("v", 1, {"a": (tmp_path / "a.npy",), "b": (tmp_path / "b.npy",), "c": (tmp_path / "c.npy",)})
    aligned = video.load_all(["a", "b"])
    assert aligned["a"].shape == (1, 9, 4) and aligned["b"].shape == (1, 9, 6)
    with pytest.raises(InputError, match="different snippet counts"):
        video.load_all(["a", "c"])


@needs_data
def test_dataset_check_reports_the_bad_file(tmp_path):
    names = [f"Test{i:03d}" for i in range(1, 13)] + [f"Train{i:03d}" for i in range(1, 17)]
    write_features(tmp_path / "i3d", names, "i3d", shape=(12, 4))
    data = load_ped2_weak(tmp_path, PED2, ucsd_m=DATA / "ucsd_gt" / "UCSDped2.m")
    data.check()
    bad = np.zeros((12, 4), dtype=np.float32)
    bad[0, 0] = np.inf
    np.save(tmp_path / "i3d" / "Train015_i3d.npy", bad)
    with pytest.raises(InputError, match="Train015_i3d.npy.*NaN/inf"):
        data.check(dims={"i3d": 4})
