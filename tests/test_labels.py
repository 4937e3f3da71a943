"""Ground-truth parsers, on the real annotation files where we have them and on tiny files otherwise."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import scipy.io

from vadistill.data import labels as gt
from vadistill.errors import InputError

PED2_TEST_COUNTS = [180, 180, 150, 180, 150, 180, 180, 180, 120, 150, 180, 180]


# -- generic -------------------------------------------------------------------------------
def test_ranges_to_labels_are_inclusive():
    labels = gt.ranges_to_labels([(2, 4), (7, 7)], 10, "x.csv")
    assert labels.dtype == np.uint8
    assert labels.tolist() == [0, 0, 1, 1, 1, 0, 0, 1, 0, 0]


def test_range_past_the_end_names_file_and_lengths():
    with pytest.raises(InputError) as caught:
        gt.ranges_to_labels([(5, 12)], 10, "gt/labels.csv")
    assert caught.value.path == "gt/labels.csv"
    assert "12" in caught.value.problem and "10 frames" in caught.value.problem


def test_split_concatenated_labels_checks_total():
    parts = gt.split_concatenated_labels(np.array([[0, 1, 1, 0, 1]]), [2, 3], "all.npy")
    assert [p.tolist() for p in parts] == [[0, 1], [1, 0, 1]]
    with pytest.raises(InputError, match="holds 5 frame labels, expected 6"):
        gt.split_concatenated_labels(np.zeros(5), [3, 3], "all.npy")


def test_labels_from_masks_any_pixel():
    masks = np.zeros((3, 4, 5), bool)
    masks[1, 3, 4] = True
    assert gt.labels_from_masks(masks).tolist() == [0, 1, 0]


# -- UCSD ----------------------------------------------------------------------------------
def test_parse_ucsd_m_forms(tmp_path):
    path = tmp_path / "UCSDped1.m"
    path.write_text("TestVideoFile = {};\n"
                    "TestVideoFile{end+1}.gt_frame = [61:180];\n"
                    "TestVideoFile{2}.gt_frame = [5:90, 140:200];\n"
                    "TestVideoFile{end+1}.gt_frame = [7];\n")
    assert gt.parse_ucsd_m(path) == [[(60, 179)], [(4, 89), (139, 199)], [(6, 6)]]


def test_parse_ucsd_m_rejects_other_files(tmp_path):
    path = tmp_path / "UCSDped2.m"
    path.write_text("% nothing here\n")
    with pytest.raises(InputError, match="no 'TestVideoFile"):
        gt.parse_ucsd_m(path)
    path.write_text("TestVideoFile{end+1}.gt_frame = [0:10];\n")
    with pytest.raises(InputError, match="invalid 1-based range"):
        gt.parse_ucsd_m(path)


def test_ped2_m_matches_masks_and_npy(shared_data):
    entries = gt.parse_ucsd_m(shared_data / "ucsd_gt" / "UCSDped2.m")
    assert len(entries) == 12
    from_m = [gt.ranges_to_labels(r, n, "UCSDped2.m") for r, n in zip(entries, PED2_TEST_COUNTS)]
    assert sum(len(x) for x in from_m) == 2010
    assert sum(int(x.sum()) for x in from_m) == 1648

    with np.load(shared_data / "ucsd_gt" / "ucsdped2_pixel_gt.npz") as archive:
        from_masks = [gt.labels_from_masks(archive[f"Test{i:03d}"]) for i in range(1, 13)]
    for index, (a, b) in enumerate(zip(from_m, from_masks), 1):
        np.testing.assert_array_equal(a, b, err_msg=f"Ped2 test video {index}")

    npy = gt.load_label_vector(shared_data / "ucsd_ped2" / "frame_labels_ped2.npy")
    np.testing.assert_array_equal(np.concatenate(from_m), npy)


def test_ped1_m_parses_and_matches_annotated_masks(shared_data):
    entries = gt.parse_ucsd_m(shared_data / "ucsd_gt" / "UCSDped1.m")
    assert len(entries) == 36
    from_m = [gt.ranges_to_labels(r, 200, "UCSDped1.m") for r in entries]  # every Ped1 test video has 200 frames
    assert sum(int(x.sum()) for x in from_m) == 4045
    with np.load(shared_data / "ucsd_gt" / "ucsdped1_pixel_gt.npz") as archive:
        annotated = sorted(archive.files)
        assert len(annotated) == 10
        for key in annotated:
            masks = archive[key]
            assert masks.shape == (200, 158, 238)
            np.testing.assert_array_equal(gt.labels_from_masks(masks), from_m[int(key[4:]) - 1], err_msg=key)


def test_load_mask_folder_reads_bmp(tmp_path):
    folder = tmp_path / "Test001_gt"
    folder.mkdir()
    for index in range(3):
        mask = np.zeros((6, 8), np.uint8)
        if index == 1:
            mask[2, 3] = 255
        cv2.imwrite(str(folder / f"{index + 1:03d}.bmp"), mask)
    (folder / "._001.bmp").write_bytes(b"\x00\x05junk")  # macOS junk in the official archive
    masks = gt.load_mask_folder(folder)
    assert masks.shape == (3, 6, 8) and masks.dtype == bool
    assert gt.labels_from_masks(masks).tolist() == [0, 1, 0]


# -- Avenue --------------------------------------------------------------------------------
@pytest.mark.slow
def test_avenue_masks_to_labels(shared_data):
    mask_dir = shared_data / "avenue_gt" / "testing_label_mask"
    labels = gt.avenue_mask_labels(mask_dir)
    assert list(labels) == [f"{i:02d}" for i in range(1, 22)]
    assert sum(len(x) for x in labels.values()) == 15324
    assert sum(int(x.sum()) for x in labels.values()) == 3712

    # avenue_talreiss.mat: one (1, T) int32 label row per video, keys "01".."21"; it equals the masks.
    talreiss = scipy.io.loadmat(str(shared_data / "avenue_gt" / "avenue_talreiss.mat"))
    for name, frame_labels in labels.items():
        np.testing.assert_array_equal(frame_labels, talreiss[name].reshape(-1), err_msg=f"Avenue video {name}")

    # The frame-prediction convention differs on 15 of 21 videos by 6-59 frames.
    parts = gt.split_concatenated_labels(gt.load_label_vector(shared_data / "avenue_gt" / "frame_labels_avenue.npy"),
                                         [len(x) for x in labels.values()], "frame_labels_avenue.npy")
    differences = [int((a != b).sum()) for a, b in zip(labels.values(), parts)]
    assert sum(d > 0 for d in differences) == 15
    assert min(d for d in differences if d) == 6 and max(differences) == 59
    assert sum(int(p.sum()) for p in parts) == 3867


def test_avenue_mat_cell_array(tmp_path):
    cells = np.empty((1, 4), dtype=object)
    for index in range(4):
        cells[0, index] = np.zeros((6, 8), np.uint8)
    cells[0, 2][1, 1] = 1
    scipy.io.savemat(str(tmp_path / "1_label.mat"), {"volLabel": cells})
    scipy.io.savemat(str(tmp_path / "2_label.mat"), {"other": np.zeros(3)})
    masks = gt.load_avenue_masks(tmp_path / "1_label.mat")
    assert masks.shape == (4, 6, 8) and masks.dtype == bool
    assert list(gt.avenue_mask_files(tmp_path)) == ["01", "02"]
    with pytest.raises(InputError, match="volLabel"):
        gt.load_avenue_masks(tmp_path / "2_label.mat")


# -- ShanghaiTech --------------------------------------------------------------------------
def test_shanghaitech_frame_labels(shared_data):
    labels = gt.shanghaitech_frame_labels(shared_data / "shanghaitech_gt" / "test_frame_mask")
    assert len(labels) == 107
    assert next(iter(labels)) == "01_0014"
    assert sum(len(x) for x in labels.values()) == 40791
    assert sum(int(x.sum()) for x in labels.values()) == 17326
    concatenated = gt.load_label_vector(shared_data / "shanghaitech_gt" / "frame_labels_shanghai.npy")
    np.testing.assert_array_equal(np.concatenate(list(labels.values())), concatenated)


def test_shanghaitech_missing_folder(tmp_path):
    with pytest.raises(InputError, match="NN_NNNN.npy"):
        gt.shanghaitech_frame_labels(tmp_path / "test_frame_mask")


# -- UBnormal ------------------------------------------------------------------------------
def test_ubnormal_tracks_union(tmp_path):
    path = tmp_path / "abnormal_scene_1_scenario_1_tracks.txt"
    path.write_text("1,2,4\n3,4,6\n")
    tracks = gt.parse_ubnormal_tracks(path)
    assert tracks.tolist() == [[1, 2, 4], [3, 4, 6]]
    assert gt.ubnormal_frame_labels(tracks, 9, path).tolist() == [0, 0, 1, 1, 1, 1, 1, 0, 0]
    path.write_text("2.0,1.0,3.0\n")  # np.savetxt-style floats, a single row
    assert gt.parse_ubnormal_tracks(path).tolist() == [[2, 1, 3]]
    path.write_text("")
    assert gt.parse_ubnormal_tracks(path).shape == (0, 3)
    path.write_text("1;2;3\n")
    with pytest.raises(InputError, match="line 1"):
        gt.parse_ubnormal_tracks(path)


def test_ubnormal_masks_keep_only_active_anomalous_ids(tmp_path):
    video = "abnormal_scene_1_scenario_1"
    object_map = np.zeros((6, 8), np.uint8)
    object_map[0, 0] = 1  # anomalous object (track 1)
    object_map[5, 7] = 2  # a normal person: not in the tracks
    for frame in (1, 2):
        cv2.imwrite(str(tmp_path / f"{video}_{frame:04d}_gt.png"), object_map)
    tracks = np.array([[1, 1, 2]])
    masks = gt.load_ubnormal_masks(tmp_path, video, tracks, 4, (6, 8))
    assert masks.shape == (4, 6, 8)
    assert gt.labels_from_masks(masks).tolist() == [0, 1, 1, 0]
    assert masks[1, 0, 0] and not masks[1, 5, 7]
    with pytest.raises(InputError, match="frame 3"):
        gt.load_ubnormal_masks(tmp_path, video, np.array([[1, 1, 3]]), 4, (6, 8))


# -- custom --------------------------------------------------------------------------------
def test_custom_csv_and_json(tmp_path):
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("video,start,end\nclip1,3,5\nclip1.mp4,8,9\nclip2,0,0\n")
    assert gt.parse_custom_labels(csv_path) == {"clip1": [(3, 5)], "clip1.mp4": [(8, 9)], "clip2": [(0, 0)]}
    csv_path.write_text("clip1,3,5\n")  # header is optional
    assert gt.parse_custom_labels(csv_path) == {"clip1": [(3, 5)]}
    json_path = tmp_path / "labels.json"
    json_path.write_text(json.dumps({"clip1": [[3, 5], [8, 9]]}))
    assert gt.parse_custom_labels(json_path) == {"clip1": [(3, 5), (8, 9)]}


@pytest.mark.parametrize("name, text, message", [
    ("labels.csv", "clip1,3\n", "line 1"),
    ("labels.csv", "clip1,5,3\n", "invalid range"),
    ("labels.json", '{"clip1": [3, 5]}', "pairs"),
    ("labels.json", "not json", "not valid JSON"),
    ("labels.txt", "clip1 3 5", "unknown labels file type"),
])
def test_custom_labels_bad_files(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputError, match=message) as caught:
        gt.parse_custom_labels(path)
    assert caught.value.path == str(path)
