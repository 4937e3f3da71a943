"""Metrics checked against scikit-learn and against cases computed by hand."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from vadistill import metrics

# ---------------------------------------------------------------------------------------------
# frame level
# ---------------------------------------------------------------------------------------------


def _random_videos(seed: int = 0, num_videos: int = 4, length: int = 60):
    rng = np.random.default_rng(seed)
    scores = {f"video{i}": rng.random(length) for i in range(num_videos)}
    labels = {name: (rng.random(length) > 0.6).astype(np.uint8) for name in scores}
    return scores, labels


def _pooled(scores, labels):
    names = sorted(scores)
    return np.concatenate([scores[n] for n in names]), np.concatenate([labels[n] for n in names])


def test_micro_auc_matches_sklearn_on_random_data():
    scores, labels = _random_videos()
    pooled_scores, pooled_labels = _pooled(scores, labels)
    assert metrics.micro_auc(scores, labels) == pytest.approx(roc_auc_score(pooled_labels, pooled_scores))


def test_micro_auc_accepts_single_arrays():
    scores, labels = _random_videos(seed=1)
    pooled_scores, pooled_labels = _pooled(scores, labels)
    assert metrics.micro_auc(pooled_scores, pooled_labels) == pytest.approx(roc_auc_score(pooled_labels, pooled_scores))


def test_micro_auc_rejects_mismatched_inputs():
    scores, labels = _random_videos()
    with pytest.raises(ValueError, match="different videos"):
        metrics.micro_auc({"other": scores["video0"]}, labels)
    with pytest.raises(ValueError, match="60 scores but 59 labels"):
        metrics.micro_auc(scores["video0"], labels["video0"][:-1])
    with pytest.raises(ValueError, match="both normal and anomalous"):
        metrics.micro_auc(np.arange(3.0), np.zeros(3))


def test_average_precision_matches_sklearn():
    scores, labels = _random_videos(seed=2)
    pooled_scores, pooled_labels = _pooled(scores, labels)
    expected = average_precision_score(pooled_labels, pooled_scores)
    assert metrics.average_precision(scores, labels) == pytest.approx(expected)


def test_equal_error_rate_hand_cases():
    # ROC (FPR, TPR): (0,0) (0,.5) (.5,.5) (.5,1) (1,1); FNR = FPR = 0.5 at the point (.5,.5).
    assert metrics.equal_error_rate(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == pytest.approx(0.5)
    # ROC: (0,0) -> (0.5,1) in one step (tie at 2), then (1,1). On that segment FPR = 0.5 u and
    # FNR = 1 - u, equal at u = 2/3: EER = 1/3.
    assert metrics.equal_error_rate(np.array([2.0, 2.0, 1.0]), np.array([1, 0, 0])) == pytest.approx(1 / 3)
    # Vertical ROC segment at FPR = 1/3 (positive 3 between negatives 2 and 4): EER = 1/3.
    assert metrics.equal_error_rate(np.array([1.0, 2.0, 4.0, 3.0]), np.array([0, 0, 0, 1])) == pytest.approx(1 / 3)
    # Perfect separation.
    assert metrics.equal_error_rate(np.array([0.0, 1.0, 2.0, 3.0]), np.array([0, 0, 1, 1])) == 0.0


# macro AUC: video "two" has both classes (AUC 0.75), video "one" is entirely anomalous.
MACRO_SCORES = {"two": np.array([0.1, 0.4, 0.35, 0.8]), "one": np.array([0.2, 0.5, 0.9])}
MACRO_LABELS = {"two": np.array([0, 0, 1, 1]), "one": np.array([1, 1, 1])}


def test_macro_auc_exclude_policy_skips_one_class_videos():
    result = metrics.macro_auc(MACRO_SCORES, MACRO_LABELS)
    assert result.policy == "exclude"
    assert result.value == pytest.approx(0.75)
    assert (result.num_videos_used, result.num_videos_excluded, result.num_one_class_videos) == (1, 1, 1)
    assert dict(result.per_video) == {"two": pytest.approx(0.75)}


def test_macro_auc_one_class_as_1_policy():
    result = metrics.macro_auc(MACRO_SCORES, MACRO_LABELS, policy="one_class_as_1")
    assert result.value == pytest.approx((0.75 + 1.0) / 2)
    assert (result.num_videos_used, result.num_videos_excluded) == (2, 0)


def test_macro_auc_pad_policy_normalises_then_pads_every_video():
    # "two" min-max -> [0, 3/7, 2/7, 1]; padded: negatives {0, 0, 3/7}, positives {2/7, 1, 1}:
    #   2/7 beats two negatives, each 1 beats three -> 8/9.
    # "one" min-max -> [0, 3/7, 1]; padded: negative {0}, positives {0, 3/7, 1, 1}:
    #   the tie counts 1/2 -> 3.5/4.
    result = metrics.macro_auc(MACRO_SCORES, MACRO_LABELS, policy="pad")
    assert result.per_video["two"] == pytest.approx(8 / 9)
    assert result.per_video["one"] == pytest.approx(3.5 / 4)
    assert result.value == pytest.approx((8 / 9 + 3.5 / 4) / 2)
    assert (result.num_videos_used, result.num_videos_excluded) == (2, 0)


def test_macro_auc_pad_unnormalized_policy():
    # "two" padded raw: negatives {0, .1, .4}, positives {.35, .8, 1} -> 8/9; "one": all > 0 -> 1.
    result = metrics.macro_auc(MACRO_SCORES, MACRO_LABELS, policy="pad_unnormalized")
    assert result.value == pytest.approx((8 / 9 + 1.0) / 2)


def test_macro_auc_two_class_videos_match_sklearn_mean():
    scores, labels = _random_videos(seed=3)
    expected = np.mean([roc_auc_score(labels[n], scores[n]) for n in scores])
    assert metrics.macro_auc(scores, labels).value == pytest.approx(expected)


def test_macro_auc_rejects_unknown_policy_and_all_one_class():
    with pytest.raises(ValueError, match="unknown macro-AUC policy"):
        metrics.macro_auc(MACRO_SCORES, MACRO_LABELS, policy="mean")
    with pytest.raises(ValueError, match="no video has both"):
        metrics.macro_auc({"one": MACRO_SCORES["one"]}, {"one": MACRO_LABELS["one"]})


# ---------------------------------------------------------------------------------------------
# pixel level
# ---------------------------------------------------------------------------------------------


def _pixel_case(seed: int = 0):
    rng = np.random.default_rng(seed)
    maps = {"a": rng.random((3, 6, 8)), "b": rng.integers(0, 4, (2, 6, 8)).astype(np.float32)}  # b has ties
    masks = {"a": rng.random((3, 6, 8)) > 0.7, "b": rng.random((2, 6, 8)) > 0.5}
    return maps, masks


def test_pixel_auc_matches_sklearn_on_flattened_pixels():
    maps, masks = _pixel_case()
    expected = roc_auc_score(
        np.concatenate([masks[n].ravel() for n in "ab"]),
        np.concatenate([maps[n].ravel().astype(np.float64) for n in "ab"]),
    )
    assert metrics.pixel_auc(maps, masks) == pytest.approx(expected, abs=1e-12)


def test_pixel_auc_resizes_maps_to_mask_size_bilinearly():
    rng = np.random.default_rng(4)
    maps = {"a": rng.random((2, 5, 7)).astype(np.float32)}
    masks = {"a": rng.random((2, 10, 14)) > 0.8}
    resized = np.stack([cv2.resize(m, (14, 10), interpolation=cv2.INTER_LINEAR) for m in maps["a"]])
    expected = roc_auc_score(masks["a"].ravel(), resized.ravel())
    assert metrics.pixel_auc(maps, masks) == pytest.approx(expected, abs=1e-12)


def test_pixel_auc_subsampling_is_deterministic_and_close():
    rng = np.random.default_rng(5)
    masks = {"a": rng.random((4, 40, 40)) > 0.9}
    maps = {"a": masks["a"] + rng.normal(0, 1.0, masks["a"].shape)}
    full = metrics.pixel_auc(maps, masks)
    first = metrics.pixel_auc(maps, masks, max_pixels=3000, seed=7)
    assert first == metrics.pixel_auc(maps, masks, max_pixels=3000, seed=7)
    assert first == pytest.approx(full, abs=0.05)


def test_pixel_auc_needs_both_classes_and_matching_frames():
    maps, masks = _pixel_case()
    with pytest.raises(ValueError, match="both anomalous and normal"):
        metrics.pixel_auc({"a": maps["a"]}, {"a": np.zeros((3, 6, 8), bool)})
    with pytest.raises(ValueError, match="3 anomaly maps but 2 masks"):
        metrics.pixel_auc({"a": maps["a"]}, {"a": masks["a"][:2]})


# ---------------------------------------------------------------------------------------------
# RBDC / TBDC
# ---------------------------------------------------------------------------------------------

SQUARE = (2, 2, 5, 5)  # x0, y0, x1, y1 inclusive
FAR_AWAY = (15, 15, 18, 18)


def _square_masks(num_frames: int, size: int = 20, box=SQUARE) -> np.ndarray:
    masks = np.zeros((num_frames, size, size), bool)
    x0, y0, x1, y1 = box
    masks[:, y0 : y1 + 1, x0 : x1 + 1] = True
    return masks


def test_box_iou_uses_inclusive_pixel_coordinates():
    iou = metrics.box_iou_matrix(np.array([[0, 0, 9, 9]]), np.array([[0, 0, 9, 0], [5, 0, 14, 9], [20, 20, 21, 21]]))
    assert iou[0] == pytest.approx([10 / 100, 50 / 150, 0.0])


def test_mask_regions_and_tracks():
    masks = np.zeros((5, 20, 20), bool)
    masks[0:2, 2:6, 2:6] = True  # blob A, frames 0-1
    masks[0:2, 12:16, 12:16] = True  # blob B, frames 0-1, disjoint from A
    masks[3:5, 2:6, 2:6] = True  # A again after an empty frame: a new track
    boxes = [metrics.mask_regions(frame) for frame in masks]
    assert boxes[0].tolist() == [[2, 2, 5, 5], [12, 12, 15, 15]]
    ids = metrics.link_tracks(boxes)
    assert [i.tolist() for i in ids] == [[0, 1], [0, 1], [], [2], [2]]


def test_rbdc_tbdc_perfect_detection_is_one():
    masks = {"v": _square_masks(3)}
    detections = {"v": [[(*SQUARE, 1.0)] for _ in range(3)]}
    result = metrics.rbdc_tbdc_from_regions(detections, masks)
    assert (result.rbdc, result.tbdc) == (1.0, 1.0)
    assert (result.num_gt_regions, result.num_gt_tracks, result.num_frames) == (3, 1, 3)


def test_rbdc_tbdc_without_detections_is_zero():
    masks = {"v": _square_masks(3)}
    result = metrics.rbdc_tbdc_from_regions({}, masks)
    assert (result.rbdc, result.tbdc, result.num_detections) == (0.0, 0.0, 0)


def test_rbdc_iou_just_above_and_below_beta():
    masks = {"v": np.zeros((1, 30, 30), bool)}
    masks["v"][0, 0:10, 0:20] = True  # GT box (0,0)-(19,9): 200 pixels
    above = metrics.rbdc_tbdc_from_regions({"v": [[(0, 0, 6, 2, 1.0)]]}, masks)  # 21 px inside: IoU .105
    below = metrics.rbdc_tbdc_from_regions({"v": [[(0, 0, 18, 0, 1.0)]]}, masks)  # 19 px inside: IoU .095
    exactly = metrics.rbdc_tbdc_from_regions({"v": [[(0, 0, 19, 0, 1.0)]]}, masks)  # 20 px: IoU .1 counts
    assert (above.rbdc, above.tbdc) == (1.0, 1.0)
    assert (below.rbdc, below.tbdc) == (0.0, 0.0)  # a false positive per frame, nothing detected
    assert below.fpr.tolist() == [0.0, 1.0]
    assert exactly.rbdc == 1.0


def test_rbdc_false_positives_above_the_true_positives_shift_the_curve():
    masks = {"v": _square_masks(4)}
    true_positive = (*SQUARE, 0.5)
    false_positive = (*FAR_AWAY, 0.9)
    # FP (score .9) in 2 of 4 frames: curve (0,0) -> (.5,0) -> (.5,1), held to (1,1): area 0.5.
    half = metrics.rbdc_tbdc_from_regions({"v": [[true_positive, false_positive]] * 2 + [[true_positive]] * 2}, masks)
    assert (half.rbdc, half.tbdc) == (pytest.approx(0.5), pytest.approx(0.5))
    # one FP per frame above every TP: FPR reaches 1 before anything is detected.
    every = metrics.rbdc_tbdc_from_regions({"v": [[true_positive, false_positive]] * 4}, masks)
    assert (every.rbdc, every.tbdc) == (0.0, 0.0)
    # one FP per frame below every TP: everything is detected at FPR 0.
    low = metrics.rbdc_tbdc_from_regions({"v": [[(*SQUARE, 0.9), (*FAR_AWAY, 0.5)]] * 4}, masks)
    assert (low.rbdc, low.tbdc) == (1.0, 1.0)


def test_rbdc_duplicate_detections_are_not_false_positives():
    masks = {"v": _square_masks(1)}
    result = metrics.rbdc_tbdc_from_regions({"v": [[(*SQUARE, 0.9), (*SQUARE, 0.8)]]}, masks)
    assert result.rbdc == 1.0 and result.fpr.max() == 0.0


def test_rbdc_max_fpr_limits_and_normalises_the_area():
    masks = {"v": _square_masks(4)}
    detections = {"v": [[(*SQUARE, 0.9)], [(*SQUARE, 0.9), (*FAR_AWAY, 0.8)], [(*SQUARE, 0.7)], [(*SQUARE, 0.7)]]}
    # points (0,0) (0,.5) (.25,.5) (.25,1): area on [0,1] = .25*.5 + .75*1; on [0,.5] = (.125+.25)/.5.
    assert metrics.rbdc_tbdc_from_regions(detections, masks).rbdc == pytest.approx(0.875)
    assert metrics.rbdc_tbdc_from_regions(detections, masks, max_fpr=0.5).rbdc == pytest.approx(0.75)


def test_tbdc_counts_a_track_once_alpha_of_its_regions_are_detected():
    masks = np.zeros((10, 20, 30), bool)
    for t in range(10):  # a 4x4 blob moving one pixel per frame: one track of 10 regions
        masks[t, 5:9, 2 + t : 6 + t] = True
    detections = {"v": [[(2, 5, 5, 8, 1.0)]] + [[] for _ in range(9)]}  # only frame 0 detected
    result = metrics.rbdc_tbdc_from_regions(detections, {"v": masks})
    assert result.num_gt_tracks == 1
    assert result.rbdc == pytest.approx(0.1)  # 1 of 10 regions
    assert result.tbdc == pytest.approx(1.0)  # 1/10 >= alpha = 0.1
    strict = metrics.rbdc_tbdc_from_regions(detections, {"v": masks}, alpha=0.2)
    assert strict.tbdc == 0.0


def test_rbdc_rejects_inconsistent_detections():
    masks = {"v": _square_masks(2)}
    with pytest.raises(ValueError, match="detections for 1 frames but 2 masks"):
        metrics.rbdc_tbdc_from_regions({"v": [[]]}, masks)
    with pytest.raises(ValueError, match="without masks"):
        metrics.rbdc_tbdc_from_regions({"w": [[], []]}, masks)
    with pytest.raises(ValueError, match="no anomalous region"):
        metrics.rbdc_tbdc_from_regions({}, {"v": np.zeros((2, 5, 5), bool)})


def test_maps_to_detections_boxes_components_and_scores_their_peak():
    frame = np.zeros((10, 10), np.float32)
    frame[1:3, 1:4] = 0.8
    frame[2, 2] = 1.0
    frame[6:9, 6:8] = 0.6
    frame[0, 9] = 0.3  # below half of the range: ignored
    assert metrics.map_regions(frame) == [(1, 1, 3, 2, 1.0), (6, 6, 7, 8, pytest.approx(0.6))]
    assert metrics.map_regions(np.ones((4, 4))) == []  # a constant map has no region


def test_rbdc_from_maps_resizes_maps_to_the_masks():
    masks = {"v": _square_masks(2, size=20, box=(4, 4, 11, 11))}
    small_maps = {"v": masks["v"][:, ::2, ::2].astype(np.float32)}  # 10x10 maps for 20x20 masks
    result = metrics.rbdc_tbdc_from_maps(small_maps, masks)
    assert (result.rbdc, result.tbdc) == (1.0, 1.0)


# ---------------------------------------------------------------------------------------------
# real data: UCSD Ped2 ground truth
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ped2_masks(shared_data: Path) -> dict[str, np.ndarray]:
    """Official Ped2 pixel masks; ``shared_data`` (tests/conftest.py) skips when the data is absent."""
    path = shared_data / "ucsd_gt" / "ucsdped2_pixel_gt.npz"
    if not path.exists():
        pytest.skip(f"real data file {path} is missing")
    with np.load(path) as archive:
        return {name: archive[name] for name in archive.files}


def test_ped2_masks_give_the_official_frame_labels(ped2_masks, shared_data):
    labels_path = shared_data / "ucsd_ped2" / "frame_labels_ped2.npy"
    if not labels_path.exists():
        pytest.skip(f"real data not found at {labels_path}")
    official = np.load(labels_path).ravel()
    from_masks = np.concatenate([ped2_masks[name].any(axis=(1, 2)) for name in sorted(ped2_masks)])
    assert np.array_equal(from_masks.astype(int), official)
    frame_area = {name: m.sum(axis=(1, 2)).astype(float) for name, m in ped2_masks.items()}
    frame_labels = {name: m.any(axis=(1, 2)).astype(int) for name, m in ped2_masks.items()}
    assert metrics.micro_auc(frame_area, frame_labels) == 1.0


@pytest.mark.slow
def test_ped2_masks_as_maps_score_perfectly_in_reasonable_time(ped2_masks):
    maps = {name: mask.astype(np.float32) for name, mask in ped2_masks.items()}
    start = time.perf_counter()
    assert metrics.pixel_auc(maps, ped2_masks) == 1.0
    criteria = metrics.rbdc_tbdc_from_maps(maps, ped2_masks)
    elapsed = time.perf_counter() - start
    assert (criteria.rbdc, criteria.tbdc) == (1.0, 1.0)
    assert criteria.num_frames == 2010
    assert criteria.num_gt_regions == criteria.num_detections
    assert elapsed < 90, f"pixel AUC + RBDC/TBDC on Ped2 took {elapsed:.1f} s"
