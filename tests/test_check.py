"""check_dataset: every problem named with its file and what was expected."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from vadistill.data.check import CheckReport, Problem, check_dataset


def where(report: CheckReport) -> list[str]:
    return [p.where for p in report.problems]


def build_tiny_ped2(root: Path, write_frame_folder) -> Path:
    """Frames layout with a .m and pixel masks: 2 train videos of 4 frames, test videos of 6 and 5 frames."""
    for index in (1, 2):
        write_frame_folder(root / "ped2" / "training" / "frames" / f"{index:02d}", 4)
    write_frame_folder(root / "ped2" / "testing" / "frames" / "01", 6)
    write_frame_folder(root / "ped2" / "testing" / "frames" / "02", 5)
    (root / "UCSDped2.m").write_text("TestVideoFile{end+1}.gt_frame = [2:4];\nTestVideoFile{end+1}.gt_frame = [1:5];\n")
    np.savez(root / "ucsdped2_pixel_gt.npz", Test001=np.zeros((6, 24, 32), bool), Test002=np.zeros((5, 24, 32), bool))
    return root


# -- real data -------------------------------------------------------------------------------
def test_real_ped2_is_ok(ped2_root):
    report = check_dataset("ped2", ped2_root, decode=True)
    assert report.ok, report.summary()
    assert (report.num_train, report.num_test, report.num_frames) == (16, 12, 4560)
    assert report.summary().splitlines()[0].endswith(": OK")
    assert "4,560 frames" in report.summary()


def test_real_ped2_missing_frame_is_named(ped2_root, tmp_path):
    copy = tmp_path / "ped2_copy"
    # Hard links: cheap, and safe because the copy is only ever deleted from, never written to.
    shutil.copytree(ped2_root, copy, copy_function=os.link)
    missing = copy / "ped2" / "testing" / "frames" / "04" / "100.jpg"
    missing.unlink()
    report = check_dataset("ped2", copy)
    assert not report.ok
    problem = next(p for p in report.problems if p.where == str(missing))
    assert "missing frame 100" in problem.problem and "000.jpg to 179.jpg" in problem.problem
    # The frame count no longer matches the masks either, and that is reported too.
    assert any(p.where.endswith("ucsdped2_pixel_gt.npz") and "video 04" in p.problem for p in report.problems)
    assert str(missing) in report.summary()


# -- tiny datasets ---------------------------------------------------------------------------
def test_tiny_dataset_ok(tmp_path, write_frame_folder):
    report = check_dataset("ped2", build_tiny_ped2(tmp_path, write_frame_folder), decode=True)
    assert report.ok, report.summary()
    assert report.notes["layout"].startswith("frames")


def test_corrupt_frame_found_only_with_full_decode(tmp_path, write_frame_folder):
    root = build_tiny_ped2(tmp_path, write_frame_folder)
    corrupt = root / "ped2" / "testing" / "frames" / "02" / "003.jpg"
    corrupt.write_bytes(b"this is not a jpeg")
    assert check_dataset("ped2", root).ok  # without decoding only names and sizes are checked
    report = check_dataset("ped2", root, decode=True)
    assert where(report) == [str(corrupt)]
    assert "could not be decoded" in report.problems[0].problem


def test_truncated_jpeg_and_empty_file(tmp_path, write_frame_folder):
    root = build_tiny_ped2(tmp_path, write_frame_folder)
    truncated = root / "ped2" / "training" / "frames" / "01" / "002.jpg"
    truncated.write_bytes(truncated.read_bytes()[:-40])
    empty = root / "ped2" / "training" / "frames" / "02" / "001.jpg"
    empty.write_bytes(b"")
    report = check_dataset("ped2", root, decode=True)
    assert str(truncated) in where(report) and str(empty) in where(report)
    assert any("truncated JPEG" in p.problem for p in report.problems)
    assert any("0 bytes" in p.problem for p in report.problems)


def test_gap_and_ground_truth_past_end_both_reported(tmp_path, write_frame_folder):
    root = build_tiny_ped2(tmp_path, write_frame_folder)
    (root / "ped2" / "testing" / "frames" / "02" / "002.jpg").unlink()  # 5 -> 4 frames; .m marks 1:5
    report = check_dataset("ped2", root)
    missing = next(p for p in report.problems if p.where.endswith("02/002.jpg"))
    assert "missing frame 2" in missing.problem and "000.jpg to 004.jpg" in missing.problem
    past_end = next(p for p in report.problems if p.where.endswith("UCSDped2.m"))
    assert "video 02" in past_end.problem and "4 frames" in past_end.problem


def test_missing_first_frame_detected_from_sibling_folders(tmp_path, write_frame_folder):
    root = build_tiny_ped2(tmp_path, write_frame_folder)
    first = root / "ped2" / "training" / "frames" / "02" / "000.jpg"
    first.unlink()
    report = check_dataset("ped2", root)
    assert where(report) == [str(first)]


def test_extra_and_duplicate_files(tmp_path, write_frame_folder):
    root = build_tiny_ped2(tmp_path, write_frame_folder)
    folder = root / "ped2" / "training" / "frames" / "01"
    (folder / "Thumbs.db").write_bytes(b"x")
    shutil.copy(folder / "001.jpg", folder / "1.png")
    shutil.copy(folder / "001.jpg", folder / "001 copy.jpg")
    (folder / ".DS_Store").write_bytes(b"x")  # hidden junk is ignored
    report = check_dataset("ped2", root)
    assert sorted(where(report)) == sorted(str(folder / n) for n in ("Thumbs.db", "1.png", "001 copy.jpg"))
    assert all("extra" in p.problem for p in report.problems)


def test_mask_shape_differs_from_frames(tmp_path, write_frame_folder):
    root = build_tiny_ped2(tmp_path, write_frame_folder)
    np.savez(root / "ucsdped2_pixel_gt.npz", Test001=np.zeros((6, 24, 32), bool), Test002=np.zeros((5, 20, 30), bool))
    report = check_dataset("ped2", root)
    assert where(report) == [str(root / "ucsdped2_pixel_gt.npz")]
    assert "30x20, expected 32x24" in report.problems[0].problem


def test_label_length_mismatch_reported_with_both_lengths(tmp_path, write_frame_folder):
    base = tmp_path / "shanghaitech" / "testing"
    write_frame_folder(tmp_path / "shanghaitech" / "training" / "frames" / "01_001", 3)
    write_frame_folder(base / "frames" / "01_0014", 5)
    write_frame_folder(base / "frames" / "01_0015", 4)
    (base / "test_frame_mask").mkdir()
    np.save(base / "test_frame_mask" / "01_0014.npy", np.zeros(7, np.uint8))
    np.save(base / "test_frame_mask" / "02_0001.npy", np.zeros(3, np.uint8))  # ground truth without frames
    report = check_dataset("shanghaitech", tmp_path)
    problems = {Path(p.where).name: p.problem for p in report.problems}
    assert "7 frame labels" in problems["01_0014.npy"] and "5 frames" in problems["01_0014.npy"]
    assert "missing" in problems["01_0015.npy"]
    assert "no frame folder" in problems["02_0001.npy"]


def test_missing_folder_and_unknown_layout(tmp_path):
    report = check_dataset("ped2", tmp_path / "absent")
    assert not report.ok and where(report) == [str(tmp_path / "absent")]
    (tmp_path / "stuff").mkdir()
    report = check_dataset("avenue", tmp_path)
    assert where(report) == [str(tmp_path)]
    assert "no known avenue layout" in report.problems[0].problem
    assert "1 problem" in report.summary()


def test_unloadable_dataset_still_scans_frame_folders(tmp_path, write_frame_folder):
    root = build_tiny_ped2(tmp_path, write_frame_folder)
    (root / "UCSDped2.m").unlink()  # no ground truth: the loader cannot run
    gap = root / "ped2" / "testing" / "frames" / "01" / "003.jpg"
    gap.unlink()
    report = check_dataset("ped2", root)
    assert any("UCSDped2.m" in p.problem for p in report.problems)
    assert str(gap) in where(report)


def test_problem_text():
    assert str(Problem("a/b.jpg", "missing")) == "a/b.jpg: missing"


def test_broken_video_file_in_avenue(tmp_path):
    from vadistill.io.video import write_video
    frames = [np.full((12, 16, 3), i * 30, np.uint8) for i in range(4)]
    write_video(tmp_path / "Avenue Dataset" / "training_videos" / "01.avi", frames)
    write_video(tmp_path / "Avenue Dataset" / "testing_videos" / "01.avi", frames)
    (tmp_path / "Avenue Dataset" / "testing_videos" / "02.avi").write_bytes(b"not a video at all")
    np.save(tmp_path / "frame_labels_avenue.npy", np.zeros((1, 4)))
    report = check_dataset("avenue", tmp_path, labels="frame-prediction", decode=True)
    broken = str(tmp_path / "Avenue Dataset" / "testing_videos" / "02.avi")
    assert where(report).count(broken) == 1
    assert "could not be opened" in next(p.problem for p in report.problems if p.where == broken)


def test_unpadded_numbering_and_unexpected_folder(tmp_path, write_frame_folder):
    root = build_tiny_ped2(tmp_path, write_frame_folder)
    folder = root / "ped2" / "training" / "frames" / "01"
    for path in list(folder.iterdir()):
        path.rename(folder / f"{int(path.stem)}.jpg")  # 0.jpg .. 3.jpg
    (folder / "2.jpg").unlink()
    stray = root / "ped2" / "testing" / "frames" / "backup"
    stray.mkdir()
    report = check_dataset("ped2", root)
    assert sorted(where(report)) == sorted([str(folder / "2.jpg"), str(stray)])
    assert "0.jpg to 3.jpg" in next(p.problem for p in report.problems if p.where == str(folder / "2.jpg"))
