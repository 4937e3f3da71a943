"""Reading score files, checking them against ground truth, and writing reports."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vadistill import metrics
from vadistill.errors import InputError
from vadistill.evaluate import evaluate_scores, load_scores, write_report
from vadistill.scoring import TemporalFilter, official_filter

SCORES = {"01": [0.1, 0.2, 0.9], "02": [0.5, 0.4]}


def _assert_same_scores(loaded, expected=SCORES):
    assert sorted(loaded) == sorted(expected)
    for name, values in expected.items():
        assert loaded[name] == pytest.approx(values)
        assert loaded[name].dtype == np.float64


# ---------------------------------------------------------------------------------------------
# load_scores: every format
# ---------------------------------------------------------------------------------------------


def test_load_json(tmp_path):
    path = tmp_path / "scores.json"
    path.write_text(json.dumps(SCORES))
    _assert_same_scores(load_scores(path))


def test_load_json_with_scores_key(tmp_path):
    path = tmp_path / "scores.json"
    path.write_text(json.dumps({"method": "x", "scores": SCORES}))
    _assert_same_scores(load_scores(path))


def test_load_npz(tmp_path):
    path = tmp_path / "scores.npz"
    np.savez(path, **{name: np.asarray(values) for name, values in SCORES.items()})
    _assert_same_scores(load_scores(path))


def test_load_csv_table_in_any_row_order(tmp_path):
    path = tmp_path / "scores.csv"
    path.write_text("video,frame,score\n02,1,0.4\n01,2,0.9\n01,0,0.1\n02,0,0.5\n01,1,0.2\n")
    _assert_same_scores(load_scores(path))


def test_load_folder_of_npy_and_csv(tmp_path):
    np.save(tmp_path / "01.npy", np.asarray(SCORES["01"]))
    (tmp_path / "02.csv").write_text("0.5\n0.4\n")
    (tmp_path / "notes.txt").write_text("ignored")
    _assert_same_scores(load_scores(tmp_path))


def test_load_folder_csv_with_frame_and_score_columns(tmp_path):
    (tmp_path / "01.csv").write_text("frame,score\n2,0.9\n0,0.1\n1,0.2\n")
    _assert_same_scores(load_scores(tmp_path), {"01": SCORES["01"]})


# ---------------------------------------------------------------------------------------------
# load_scores: bad input names the path
# ---------------------------------------------------------------------------------------------


def _bad_input(path, expected_problem: str):
    with pytest.raises(InputError, match=expected_problem) as caught:
        load_scores(path)
    assert str(path) in str(caught.value)
    return caught.value


def test_missing_path(tmp_path):
    _bad_input(tmp_path / "absent.json", "no such file")


def test_unknown_format(tmp_path):
    path = tmp_path / "scores.txt"
    path.write_text("0.1\n")
    _bad_input(path, "unknown score file format")


def test_invalid_json(tmp_path):
    path = tmp_path / "scores.json"
    path.write_text("{not json")
    _bad_input(path, "not valid JSON")


def test_json_that_is_not_an_object(tmp_path):
    path = tmp_path / "scores.json"
    path.write_text("[0.1, 0.2]")
    _bad_input(path, "expected a JSON object")


def test_nan_and_null_scores(tmp_path):
    path = tmp_path / "scores.json"
    path.write_text('{"01": [0.1, NaN]}')
    _bad_input(path, "frame 1 is nan")
    path.write_text('{"01": [0.1, null]}')
    _bad_input(path, "expected finite numbers")


def test_infinite_score_in_npz(tmp_path):
    path = tmp_path / "scores.npz"
    np.savez(path, **{"01": np.array([0.1, np.inf])})
    _bad_input(path, "expected finite numbers")


def test_two_dimensional_scores(tmp_path):
    np.save(tmp_path / "01.npy", np.zeros((3, 2)))
    _bad_input(tmp_path / "01.npy", "unknown score file format")  # a lone .npy is not a format
    _bad_input(tmp_path, "1-D array")


def test_non_numeric_scores(tmp_path):
    path = tmp_path / "scores.json"
    path.write_text('{"01": ["high", "low"]}')
    _bad_input(path, "list of numbers")


def test_csv_without_required_columns_or_with_gaps(tmp_path):
    path = tmp_path / "scores.csv"
    path.write_text("name,score\n01,0.1\n")
    _bad_input(path, "video,frame,score")
    path.write_text("video,frame,score\n01,0,0.1\n01,2,0.3\n")
    _bad_input(path, "consecutive")


def test_empty_inputs(tmp_path):
    path = tmp_path / "scores.json"
    path.write_text("{}")
    _bad_input(path, "no videos")
    empty_folder = tmp_path / "empty"
    empty_folder.mkdir()
    _bad_input(empty_folder, "no <video>.npy")


# ---------------------------------------------------------------------------------------------
# evaluate_scores
# ---------------------------------------------------------------------------------------------


def _benchmark(seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = {name: (rng.random(40) > 0.5).astype(np.uint8) for name in ("01", "02", "03")}
    labels["03"][:] = 1  # one-class video
    scores = {name: lab + rng.normal(0, 0.8, lab.size) for name, lab in labels.items()}
    return scores, labels


def test_evaluate_scores_computes_frame_metrics():
    scores, labels = _benchmark()
    result = evaluate_scores(scores, labels, dataset="toy")
    assert result["micro_auc"] == pytest.approx(metrics.micro_auc(scores, labels))
    assert result["macro_auc"] == pytest.approx(metrics.macro_auc(scores, labels).value)
    assert (result["macro_auc_videos_used"], result["macro_auc_videos_excluded"]) == (2, 1)
    assert result["per_video_auc"]["03"] is None
    assert result["average_precision"] == pytest.approx(metrics.average_precision(scores, labels))
    assert result["eer"] == pytest.approx(metrics.equal_error_rate(scores, labels))
    assert result["temporal_filter"].startswith("none")
    assert (result["num_videos"], result["num_frames"]) == (3, 120)
    json.dumps(result)  # serialisable as is


def test_evaluate_scores_applies_filter_and_policy():
    scores, labels = _benchmark(1)
    fast_aed = official_filter("fast-aed")
    result = evaluate_scores(scores, labels, filter=fast_aed, macro_policy="one_class_as_1")
    from vadistill.scoring import smooth

    smoothed = {name: smooth(values, fast_aed) for name, values in scores.items()}
    assert result["micro_auc"] == pytest.approx(metrics.micro_auc(smoothed, labels))
    assert result["macro_policy"] == "one_class_as_1"
    assert "sigma=21" in result["temporal_filter"]


def test_evaluate_scores_length_mismatch_names_video_and_lengths():
    scores, labels = _benchmark()
    scores["02"] = scores["02"][:-3]
    with pytest.raises(InputError, match=r"video 02: 37 scores but 40 labelled frames") as caught:
        evaluate_scores(scores, labels, source="run/scores.json")
    assert "run/scores.json" in str(caught.value)


def test_evaluate_scores_unknown_and_missing_videos():
    scores, labels = _benchmark()
    with pytest.raises(InputError, match="not in the ground truth"):
        evaluate_scores({**scores, "99": np.zeros(3)}, labels)
    del scores["01"]
    with pytest.raises(InputError, match=r"no scores for labelled videos \['01'\]"):
        evaluate_scores(scores, labels)


def test_evaluate_scores_with_maps_and_masks():
    rng = np.random.default_rng(2)
    masks = {"01": np.zeros((6, 12, 12), bool)}
    masks["01"][2:5, 3:7, 3:7] = True
    labels = {"01": masks["01"].any(axis=(1, 2)).astype(int)}
    maps = {"01": masks["01"] + 0.01 * rng.random((6, 12, 12))}  # perfect maps with a little noise
    result = evaluate_scores({"01": labels["01"] + 0.1}, labels, masks=masks, maps=maps)
    assert result["pixel_auc"] == pytest.approx(1.0)
    assert (result["rbdc"], result["tbdc"]) == (1.0, 1.0)
    with pytest.raises(InputError, match="without pixel masks"):
        evaluate_scores({"01": labels["01"] + 0.1}, labels, maps=maps)


def test_write_report_names_filter_and_policy(tmp_path):
    scores, labels = _benchmark()
    gaussian = TemporalFilter(kind="gaussian", sigma=3)
    result = evaluate_scores(scores, labels, filter=gaussian, dataset="toy")
    json_path, md_path = write_report(result, tmp_path / "out", stem="toy")
    assert json.loads(json_path.read_text())["micro_auc"] == pytest.approx(result["micro_auc"])
    markdown = md_path.read_text()
    for text in (gaussian.describe(), "Macro-AUC policy: exclude", "| Micro AUC", "| 03 | n/a |"):
        assert text in markdown
    assert gaussian.describe() in json_path.read_text()


def test_write_report_accepts_dataset_notes(tmp_path):
    scores, labels = _benchmark()
    result = evaluate_scores(scores, labels)
    result["dataset"] = {"name": "ped2", "labels": "UCSDped2.m"}
    _, md_path = write_report(result, tmp_path)
    markdown = md_path.read_text()
    assert markdown.startswith("# Evaluation: ped2") and "- Dataset labels: UCSDped2.m" in markdown
