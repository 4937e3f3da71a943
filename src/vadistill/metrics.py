"""How good are these anomaly scores? Frame-, pixel- and region-level metrics.

Conventions: labels/masks are 1 (True) for anomalous; scores and maps are "higher = more
anomalous". Inputs are numpy arrays, or dicts ``{video name: array}``; outputs are floats or small
frozen dataclasses. Functions raise ``ValueError`` on inconsistent inputs; user-facing code
(:mod:`vadistill.evaluate`) turns those into ``InputError``.

Frame level: :func:`micro_auc`, :func:`macro_auc`, :func:`average_precision`,
:func:`equal_error_rate`. Pixel level: :func:`pixel_auc`. Region/track level (Ramachandra & Jones,
"Street Scene", WACV 2020): :func:`rbdc_tbdc_from_regions`, :func:`rbdc_tbdc_from_maps`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import cv2
import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

ScoresLike = np.ndarray | Mapping[str, np.ndarray]

MACRO_POLICIES = ("exclude", "pad", "pad_unnormalized", "one_class_as_1")


# ----------------------------------------------------------------------------------------------
# Frame level
# ----------------------------------------------------------------------------------------------


def _check_same_videos(first: Mapping[str, object], second: Mapping[str, object], what: str) -> list[str]:
    if set(first) != set(second):
        only_first = sorted(set(first) - set(second))
        only_second = sorted(set(second) - set(first))
        raise ValueError(f"{what} cover different videos: only in the first {only_first}, only in the second {only_second}")
    return sorted(first)


def _frame_vectors(scores: np.ndarray, labels: np.ndarray, video: str = "") -> tuple[np.ndarray, np.ndarray]:
    where = f" for video {video}" if video else ""
    score_vector = np.asarray(scores, dtype=np.float64)
    label_vector = np.asarray(labels)
    if score_vector.ndim != 1 or label_vector.ndim != 1:
        raise ValueError(f"scores and labels must be 1-D{where}; got shapes {score_vector.shape} and {label_vector.shape}")
    if score_vector.shape != label_vector.shape:
        raise ValueError(f"{score_vector.size} scores but {label_vector.size} labels{where}")
    if not np.all(np.isin(label_vector, (0, 1))):
        raise ValueError(f"labels must be 0 (normal) or 1 (anomalous){where}")
    return score_vector, label_vector.astype(np.int8)


def concatenate_frames(scores: ScoresLike, labels: ScoresLike) -> tuple[np.ndarray, np.ndarray]:
    """Flatten per-video scores and labels into two aligned (N,) vectors.

    Accepts either two dicts with the same video names (concatenated in sorted name order) or two
    1-D arrays (the single-array form).
    """
    if isinstance(scores, Mapping) != isinstance(labels, Mapping):
        raise TypeError("scores and labels must both be dicts of per-video arrays or both be arrays")
    if not isinstance(scores, Mapping):
        return _frame_vectors(scores, labels)
    videos = _check_same_videos(scores, labels, "scores and labels")
    if not videos:
        raise ValueError("no videos given")
    pairs = [_frame_vectors(scores[name], labels[name], name) for name in videos]
    return np.concatenate([s for s, _ in pairs]), np.concatenate([lab for _, lab in pairs])


def _require_both_classes(labels: np.ndarray, metric: str) -> None:
    if labels.size == 0 or labels.min() == labels.max():
        raise ValueError(f"{metric} needs both normal and anomalous frames")


def micro_auc(scores: ScoresLike, labels: ScoresLike) -> float:
    """Frame-level ROC AUC over all frames of all videos pooled ("micro" AUC).

    Args:
        scores: ``{video: (T,) scores}`` or one (N,) array.
        labels: same structure, 1 = anomalous.

    Returns:
        ``sklearn.metrics.roc_auc_score`` of the concatenated frames.
    """
    score_vector, label_vector = concatenate_frames(scores, labels)
    _require_both_classes(label_vector, "micro AUC")
    return float(roc_auc_score(label_vector, score_vector))


def average_precision(scores: ScoresLike, labels: ScoresLike) -> float:
    """Frame-level average precision (``sklearn.metrics.average_precision_score``), frames pooled."""
    score_vector, label_vector = concatenate_frames(scores, labels)
    _require_both_classes(label_vector, "average precision")
    return float(average_precision_score(label_vector, score_vector))


def equal_error_rate(scores: ScoresLike, labels: ScoresLike) -> float:
    """Frame-level equal error rate: the ROC point where FPR = 1 - TPR (false negative rate).

    The ROC curve (all thresholds, ``drop_intermediate=False``) is a polyline; FPR rises and
    FNR falls along it, so they cross once. The EER is read at the crossing, interpolating
    linearly along the segment that contains it.
    """
    score_vector, label_vector = concatenate_frames(scores, labels)
    _require_both_classes(label_vector, "EER")
    fpr, tpr, _ = roc_curve(label_vector, score_vector, drop_intermediate=False)
    gap = (1.0 - tpr) - fpr  # FNR - FPR: starts >= 0, ends at -1
    after = int(np.argmax(gap <= 0))
    if gap[after] == 0 or after == 0:
        return float(fpr[after])
    before = after - 1
    fraction = gap[before] / (gap[before] - gap[after])
    return float(fpr[before] + fraction * (fpr[after] - fpr[before]))


@dataclass(frozen=True)
class MacroAuc:
    """Mean over videos of the per-video frame-level ROC AUC.

    Attributes:
        value: the mean.
        num_videos_used: videos that entered the mean.
        num_videos_excluded: videos left out (only policy ``"exclude"``: one-class videos).
        policy: how one-class videos were handled (see :func:`macro_auc`).
        num_one_class_videos: videos whose frames are all normal or all anomalous.
        per_video: AUC of each video that entered the mean.
    """

    value: float
    num_videos_used: int
    num_videos_excluded: int
    policy: str
    num_one_class_videos: int = 0
    per_video: Mapping[str, float] = field(default_factory=dict, compare=False, repr=False)


def _padded_video_auc(scores: np.ndarray, labels: np.ndarray, normalize: bool) -> float:
    if normalize:
        low, high = scores.min(), scores.max()
        # constant video: the official code gets 0/0 = NaN here and maps it to 0 (np.nan_to_num)
        scores = np.zeros_like(scores) if high == low else (scores - low) / (high - low)
    padded_scores = np.concatenate(([0.0], scores, [1.0]))
    padded_labels = np.concatenate(([0], labels, [1]))
    return float(roc_auc_score(padded_labels, padded_scores))


def _video_auc(scores: np.ndarray, labels: np.ndarray, policy: str) -> float | None:
    """AUC of one video under ``policy``; None when the video is left out."""
    if policy == "pad":
        return _padded_video_auc(scores, labels, normalize=True)
    if policy == "pad_unnormalized":
        return _padded_video_auc(scores, labels, normalize=False)
    if labels.min() == labels.max():
        return None if policy == "exclude" else 1.0
    return float(roc_auc_score(labels, scores))


def macro_auc(scores: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray], policy: str = "exclude") -> MacroAuc:
    """Mean over videos of the per-video ROC AUC ("macro" AUC).

    A per-video AUC is undefined when all frames of the video are one class (e.g. Avenue test
    videos 8 and 18 are entirely anomalous; one ShanghaiTech test video has a single class).
    Policies:

    * ``"exclude"`` (default): skip one-class videos and report how many were skipped
      (``num_videos_excluded``). Our recommendation: nothing is invented.
    * ``"pad"``: the AED-MAE official code (github.com/ristea/aed-mae, ``inference.py``,
      ``evaluate_model`` with ``normalize_scores=True``, its ShanghaiTech setting): for *every*
      video (not only one-class ones) min-max normalise the scores to [0, 1] (a constant video
      becomes 0), then prepend one frame (label 0, score 0) and append one frame (label 1,
      score 1), and take the AUC. The padding slightly changes the AUC of two-class videos too.
      Georgescu et al. describe the same padding for their evaluation (answers in
      github.com/lilygeorgescu/AED-SSMTL issue #11 and ristea/sspcab issue #8; their public
      UBnormal script ``scripts/compute_auc_score.py`` pads every video with 0/1). The SSMTL
      (CVPR 2021) evaluation code itself is distributed on request only, so we could not confirm
      whether it also min-max normalises before padding; the AED-MAE code does.
    * ``"pad_unnormalized"``: the same padding without min-max normalisation (AED-MAE's Avenue
      setting, ``normalize_scores=False``; the UBnormal script). Padding with 0 and 1 only
      makes sense when scores lie roughly in [0, 1].
    * ``"one_class_as_1"``: the Fast-AED official code (github.com/ristea/fast-aed,
      ``utils/stats_manager.py``, ``get_stats_v2``, used by ``trainer.py``): no normalisation,
      no padding; a one-class video's AUC is NaN in scikit-learn and is replaced by 1.0
      (``np.nan_to_num(nan=1.0)``), so one-class videos count as perfect.

    Note that the official codes also smooth each video before this (see
    :mod:`vadistill.scoring`); this function only averages AUCs of the scores it is given.

    Args:
        scores: ``{video: (T,) scores}``.
        labels: ``{video: (T,) 0/1 labels}`` with the same videos.
        policy: one of ``MACRO_POLICIES``.

    Returns:
        a :class:`MacroAuc`.
    """
    if policy not in MACRO_POLICIES:
        raise ValueError(f"unknown macro-AUC policy {policy!r}; expected one of {MACRO_POLICIES}")
    videos = _check_same_videos(scores, labels, "scores and labels")
    per_video: dict[str, float] = {}
    one_class = 0
    for name in videos:
        score_vector, label_vector = _frame_vectors(scores[name], labels[name], name)
        if label_vector.size == 0:
            raise ValueError(f"video {name} has no frames")
        one_class += int(label_vector.min() == label_vector.max())
        auc = _video_auc(score_vector, label_vector, policy)
        if auc is not None:
            per_video[name] = auc
    if not per_video:
        raise ValueError("macro AUC: no video has both normal and anomalous frames")
    return MacroAuc(
        value=float(np.mean(list(per_video.values()))),
        num_videos_used=len(per_video),
        num_videos_excluded=len(videos) - len(per_video),
        policy=policy,
        num_one_class_videos=one_class,
        per_video=per_video,
    )


# ----------------------------------------------------------------------------------------------
# Pixel level
# ----------------------------------------------------------------------------------------------


def _map_dtype(maps: np.ndarray) -> type:
    # keep float64 maps exact; everything else is compared as float32
    return np.float64 if np.asarray(maps).dtype == np.float64 else np.float32


def resize_maps(maps: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Resize (T, h, w) anomaly maps to (T, H, W) with bilinear interpolation (cv2 INTER_LINEAR)."""
    maps = np.asarray(maps)
    if maps.ndim != 3:
        raise ValueError(f"anomaly maps must be (T, H, W), got shape {maps.shape}")
    maps = maps.astype(_map_dtype(maps), copy=False)
    height, width = size_hw
    if maps.shape[1:] == (height, width):
        return maps
    return np.stack([cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR) for frame in maps])


def _check_maps_and_masks(maps: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray]) -> list[str]:
    videos = _check_same_videos(maps, masks, "anomaly maps and masks")
    if not videos:
        raise ValueError("no videos given")
    for name in videos:
        if np.ndim(masks[name]) != 3 or np.ndim(maps[name]) != 3:
            raise ValueError(f"video {name}: maps and masks must be (T, H, W)")
        if len(maps[name]) != len(masks[name]):
            raise ValueError(f"video {name}: {len(maps[name])} anomaly maps but {len(masks[name])} masks")
    return videos


def _pairwise_win_rate(positives: np.ndarray, negative_chunks: Sequence[np.ndarray]) -> float:
    """P(positive > negative) + 0.5 P(tie): the ROC AUC (Mann-Whitney U / (n_pos n_neg)).

    This equals ``sklearn.metrics.roc_auc_score`` but only sorts the positives (few, for pixel
    masks), so the many negative pixels stay in per-video chunks and are never sorted.
    """
    levels, counts = np.unique(positives, return_counts=True)
    below_level = np.concatenate(([0], np.cumsum(counts)))  # positives strictly below levels[i]
    doubled_wins = 0  # 2 * (wins + ties / 2), kept as exact integers
    num_negatives = 0
    for negatives in negative_chunks:
        index = np.searchsorted(levels, negatives, side="left")  # first level >= the negative
        clipped = np.minimum(index, len(levels) - 1)
        ties = np.where(levels[clipped] == negatives, counts[clipped], 0)
        # positives above a negative = n_pos - positives below - tied positives
        doubled_wins += 2 * (positives.size * negatives.size - int(below_level[index].sum())) - int(ties.sum())
        num_negatives += negatives.size
    return doubled_wins / (2.0 * positives.size * num_negatives)


def pixel_auc(
    maps: Mapping[str, np.ndarray],
    masks: Mapping[str, np.ndarray],
    max_pixels: int | None = None,
    seed: int = 0,
) -> float:
    """Pixel-level ROC AUC over all pixels of all frames ("pixel AUC over all pixels").

    Every pixel of every test frame (normal frames included) is one sample: its score is the
    anomaly map value, its label the pixel mask. Maps smaller or larger than the masks are first
    resized to the mask size with bilinear interpolation (``cv2.resize``, ``INTER_LINEAR``). This
    is *not* the older UCSD "pixel-level" criterion (a frame counts as detected when >= 40% of its
    anomalous pixels are flagged), nor a per-frame mean of pixel AUCs.

    The exact computation keeps the maps' negative pixels in memory (4 bytes each for float32
    maps: ~0.7 GB for UCSD Ped2 at 240x360). ``max_pixels`` bounds that by a uniform random subset
    of pixels, drawn per video with ``numpy.random.default_rng(seed)`` (deterministic).

    Args:
        maps: ``{video: (T, h, w) anomaly maps}``.
        masks: ``{video: (T, H, W) bool masks}``.
        max_pixels: if set and the videos hold more pixels, evaluate about this many.
        seed: seed of the subsampling.

    Returns:
        the AUC (equal to ``sklearn.metrics.roc_auc_score`` on the flattened pixels).
    """
    videos = _check_maps_and_masks(maps, masks)
    total = sum(int(np.size(masks[name])) for name in videos)
    keep_fraction = 1.0 if max_pixels is None or total <= max_pixels else max_pixels / total
    rng = np.random.default_rng(seed)
    positives, negatives = [], []
    for name in videos:
        truth = np.asarray(masks[name]).astype(bool).ravel()
        values = resize_maps(maps[name], np.shape(masks[name])[1:]).ravel()
        if keep_fraction < 1.0:
            keep = rng.choice(values.size, size=int(round(values.size * keep_fraction)), replace=False)
            values, truth = values[keep], truth[keep]
        if not np.all(np.isfinite(values)):
            raise ValueError(f"video {name}: anomaly maps contain NaN or infinite values")
        positives.append(values[truth])
        negatives.append(values[~truth])
    all_positives = np.concatenate(positives)
    if all_positives.size == 0 or sum(chunk.size for chunk in negatives) == 0:
        raise ValueError("pixel AUC needs both anomalous and normal pixels")
    return float(_pairwise_win_rate(all_positives, negatives))


# ----------------------------------------------------------------------------------------------
# Region and track level: RBDC / TBDC (Ramachandra & Jones, WACV 2020, Sec. 4)
# ----------------------------------------------------------------------------------------------
#
# Boxes are (x0, y0, x1, y1) in inclusive pixel coordinates (x1, y1 are the last column/row
# inside), so a box's area is (x1 - x0 + 1) * (y1 - y0 + 1), as in the reference implementation
# by Georgescu et al. (github.com/lilygeorgescu/AED, evaluation/compute_tbdc_rbdc.py).


def box_iou_matrix(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """(N, M) intersection over union of boxes (N, 4) and (M, 4), inclusive pixel coordinates."""
    first = np.asarray(first, dtype=np.float64).reshape(-1, 4)
    second = np.asarray(second, dtype=np.float64).reshape(-1, 4)
    x0 = np.maximum(first[:, None, 0], second[None, :, 0])
    y0 = np.maximum(first[:, None, 1], second[None, :, 1])
    x1 = np.minimum(first[:, None, 2], second[None, :, 2])
    y1 = np.minimum(first[:, None, 3], second[None, :, 3])
    intersection = np.clip(x1 - x0 + 1, 0, None) * np.clip(y1 - y0 + 1, 0, None)

    def area(boxes: np.ndarray) -> np.ndarray:
        return (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)

    union = area(first)[:, None] + area(second)[None, :] - intersection
    return intersection / union


def mask_regions(mask: np.ndarray) -> np.ndarray:
    """(K, 4) int boxes of the 8-connected components of one (H, W) bool mask."""
    count, _, stats, _ = cv2.connectedComponentsWithStats(np.asarray(mask).astype(np.uint8), connectivity=8)
    stats = stats[1:]  # label 0 is the background
    left, top = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    right = left + stats[:, cv2.CC_STAT_WIDTH] - 1
    bottom = top + stats[:, cv2.CC_STAT_HEIGHT] - 1
    return np.stack([left, top, right, bottom], axis=1).astype(np.int64).reshape(count - 1, 4)


def link_tracks(boxes_per_frame: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Group the ground-truth regions of one video into tracks.

    A region continues the track of the region in the previous frame it overlaps most (box IoU
    > 0). Links are one-to-one and chosen greedily by decreasing IoU, so when two regions merge
    or one splits, the best-overlapping pair continues the track and the other region starts
    (or ends) its own. A region with no overlapping predecessor starts a new track; a gap of one
    empty frame ends a track. (The Street Scene dataset ships hand-made tracks; for datasets that
    only have pixel masks, like UCSD Ped2 and Avenue, this is our derivation.)

    Args:
        boxes_per_frame: for each frame, a (K_t, 4) array of region boxes.

    Returns:
        for each frame, a (K_t,) int array of track ids (0, 1, ... in order of appearance).
    """
    track_ids: list[np.ndarray] = []
    next_id = 0
    previous_boxes = np.zeros((0, 4))
    previous_ids = np.zeros(0, dtype=np.int64)
    for boxes in boxes_per_frame:
        boxes = np.asarray(boxes).reshape(-1, 4)
        ids = np.full(len(boxes), -1, dtype=np.int64)
        if len(boxes) and len(previous_boxes):
            overlap = box_iou_matrix(previous_boxes, boxes)
            for flat in np.argsort(-overlap, axis=None, kind="stable"):
                before, now = np.unravel_index(flat, overlap.shape)
                if overlap[before, now] <= 0:
                    break
                if ids[now] < 0 and previous_ids[before] not in ids:
                    ids[now] = previous_ids[before]
        for index in np.flatnonzero(ids < 0):
            ids[index] = next_id
            next_id += 1
        track_ids.append(ids)
        previous_boxes, previous_ids = boxes, ids
    return track_ids


@dataclass(frozen=True)
class _RegionTable:
    """Regions of all videos flattened: row i is box ``boxes[i]`` in global frame ``frames[i]``."""

    frames: np.ndarray  # (R,) int, global frame index over all videos
    boxes: np.ndarray  # (R, 4)
    values: np.ndarray  # (R,) detection score, or GT track id


def _ground_truth_table(masks: Mapping[str, np.ndarray], videos: list[str]) -> tuple[_RegionTable, int]:
    """GT regions of all videos in frame order, with globally unique track ids; also the frame count."""
    frames, boxes, tracks = [], [], []
    frame_offset, track_offset = 0, 0
    for name in videos:
        boxes_per_frame = [mask_regions(frame_mask) for frame_mask in np.asarray(masks[name])]
        ids_per_frame = link_tracks(boxes_per_frame)
        for t, (frame_boxes, ids) in enumerate(zip(boxes_per_frame, ids_per_frame)):
            frames.append(np.full(len(frame_boxes), frame_offset + t))
            boxes.append(frame_boxes)
            tracks.append(ids + track_offset)
        frame_offset += len(boxes_per_frame)
        track_offset += max((int(ids.max()) + 1 for ids in ids_per_frame if ids.size), default=0)
    table = _RegionTable(
        frames=np.concatenate(frames).astype(np.int64),
        boxes=np.concatenate(boxes).reshape(-1, 4),
        values=np.concatenate(tracks).astype(np.int64),
    )
    return table, frame_offset


def _detection_table(
    detections: Mapping[str, Sequence[Sequence[Sequence[float]]]],
    masks: Mapping[str, np.ndarray],
    videos: list[str],
) -> _RegionTable:
    """Detections of all videos in frame order (global frame index as in the GT table)."""
    unknown = sorted(set(detections) - set(videos))
    if unknown:
        raise ValueError(f"detections for videos without masks: {unknown}")
    frames, rows = [], []
    frame_offset = 0
    for name in videos:
        per_frame = detections.get(name, [])
        num_frames = len(masks[name])
        if name in detections and len(per_frame) != num_frames:
            raise ValueError(f"video {name}: detections for {len(per_frame)} frames but {num_frames} masks")
        for t, frame_detections in enumerate(per_frame):
            for row in frame_detections:
                if len(row) != 5:
                    raise ValueError(f"video {name} frame {t}: a detection must be (x0, y0, x1, y1, score)")
                rows.append(row)
                frames.append(frame_offset + t)
        frame_offset += num_frames
    table = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
    if not np.all(np.isfinite(table)):
        raise ValueError("detections contain NaN or infinite values")
    return _RegionTable(frames=np.asarray(frames, dtype=np.int64), boxes=table[:, :4], values=table[:, 4])


def _match_regions(detected: _RegionTable, truth: _RegionTable, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """Per detection: is it a false positive? Per GT region: best score of a detection covering it.

    A detection covers a GT region of the same frame when their IoU >= beta. A detection that
    covers no GT region is a false positive; one that covers only regions already covered by
    higher-scoring detections is neither a true nor a false positive (as in Georgescu et al.'s
    implementation). At a score threshold t, a GT region is detected iff its best covering score
    is >= t.
    """
    false_positive = np.ones(len(detected.frames), dtype=bool)
    best_score = np.full(len(truth.frames), -np.inf)
    # both tables are built in frame order, so each frame's rows form one contiguous slice
    for frame in np.unique(detected.frames):
        truth_rows = slice(*np.searchsorted(truth.frames, [frame, frame + 1]))
        if truth_rows.start == truth_rows.stop:
            continue  # no GT in this frame: every detection is a false positive
        detection_rows = slice(*np.searchsorted(detected.frames, [frame, frame + 1]))
        covers = box_iou_matrix(detected.boxes[detection_rows], truth.boxes[truth_rows]) >= beta
        false_positive[detection_rows] = ~covers.any(axis=1)
        covering_scores = np.where(covers, detected.values[detection_rows, None], -np.inf)
        best_score[truth_rows] = np.maximum(best_score[truth_rows], covering_scores.max(axis=0))
    return false_positive, best_score


def _regions_needed(track_length: int, alpha: float) -> int:
    """Smallest number k of detected regions with k / track_length >= alpha."""
    needed = max(1, math.ceil(alpha * track_length))
    while needed > 1 and (needed - 1) / track_length >= alpha:
        needed -= 1
    while needed / track_length < alpha:
        needed += 1
    return needed


def _track_scores(region_scores: np.ndarray, track_ids: np.ndarray, alpha: float) -> np.ndarray:
    """Per track, the highest threshold at which >= alpha of its regions are detected."""
    scores = []
    for track in np.unique(track_ids):
        ordered = np.sort(region_scores[track_ids == track])[::-1]
        scores.append(ordered[_regions_needed(len(ordered), alpha) - 1])
    return np.asarray(scores)


def _count_at_least(sorted_values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    return sorted_values.size - np.searchsorted(sorted_values, thresholds, side="left")


def _area_up_to(fpr: np.ndarray, rate: np.ndarray, max_fpr: float) -> float:
    """Area under the (fpr, rate) curve for fpr in [0, max_fpr], divided by max_fpr.

    Operating points beyond ``max_fpr`` are dropped; if the last kept point is below ``max_fpr``
    its rate is held constant up to ``max_fpr`` (as the reference implementation does).
    """
    kept = fpr <= max_fpr
    x, y = fpr[kept], rate[kept]
    if x[-1] < max_fpr:
        x, y = np.append(x, max_fpr), np.append(y, y[-1])
    trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2.0 only has trapz
    return float(trapezoid(y, x) / max_fpr)


@dataclass(frozen=True)
class RbdcTbdc:
    """Region- and track-based detection criteria (Ramachandra & Jones, WACV 2020).

    Attributes:
        rbdc: area under the RBDR-vs-FPR curve for FPR in [0, max_fpr], divided by max_fpr.
        tbdc: same for the TBDR-vs-FPR curve.
        num_gt_regions, num_gt_tracks: ground truth size.
        num_detections: detected regions over all thresholds.
        num_frames: frames the FPR is divided by.
        beta, alpha, max_fpr: the settings used.
        fpr, rbdr, tbdr: the curves, one point per distinct detection score plus (0, 0).
    """

    rbdc: float
    tbdc: float
    num_gt_regions: int
    num_gt_tracks: int
    num_detections: int
    num_frames: int
    beta: float
    alpha: float
    max_fpr: float
    fpr: np.ndarray = field(repr=False, compare=False)
    rbdr: np.ndarray = field(repr=False, compare=False)
    tbdr: np.ndarray = field(repr=False, compare=False)


def _check_criteria_settings(beta: float, alpha: float, max_fpr: float) -> None:
    if not 0 < beta <= 1:
        raise ValueError(f"beta must be in (0, 1], got {beta}")
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    if max_fpr <= 0:
        raise ValueError(f"max_fpr must be > 0, got {max_fpr}")


def rbdc_tbdc_from_regions(
    detections: Mapping[str, Sequence[Sequence[Sequence[float]]]],
    masks: Mapping[str, np.ndarray],
    beta: float = 0.1,
    alpha: float = 0.1,
    max_fpr: float = 1.0,
) -> RbdcTbdc:
    """RBDC and TBDC of detected regions against pixel-mask ground truth.

    Definitions (Ramachandra & Jones, "Street Scene", WACV 2020, Sec. 4):

    * GT regions: bounding boxes of the 8-connected components of each frame's mask; GT tracks:
      regions linked frame to frame by :func:`link_tracks`.
    * At a score threshold t the detections with score >= t are kept. A kept detection is a true
      positive for every GT region of its frame with IoU >= beta; a kept detection with no such
      region is a false positive.
    * RBDR = detected GT regions / all GT regions; a track is detected when at least a fraction
      alpha of its regions are detected, TBDR = detected tracks / all tracks; FPR = false-positive
      detections / number of frames (all frames of all videos, so FPR may exceed 1).
    * t sweeps every distinct detection score, from the highest down; the curves start at
      (0, 0). RBDC/TBDC = area under RBDR/TBDR vs FPR for FPR in [0, max_fpr], divided by
      max_fpr (so 1 is perfect); see :func:`_area_up_to` for the end of the curve.

    Differences from Georgescu et al.'s implementation (lilygeorgescu/AED, also shipped in
    ristea/fast-aed): they add one curve point per detection in score order, so tied scores give
    several points and an order-dependent curve; we add one point per distinct threshold.
    Without ties the curves are the same.

    Args:
        detections: ``{video: [frame 0 detections, frame 1 detections, ...]}``, each detection
            ``(x0, y0, x1, y1, score)`` in inclusive pixel coordinates of the mask. A video
            missing from the dict has no detections.
        masks: ``{video: (T, H, W) bool}`` pixel ground truth of all test videos.
        beta: IoU needed for a detection to count.
        alpha: fraction of a track's regions that must be detected.
        max_fpr: upper end of the FPR range (false positives per frame).

    Returns:
        a :class:`RbdcTbdc`.
    """
    _check_criteria_settings(beta, alpha, max_fpr)
    videos = sorted(masks)
    if not videos:
        raise ValueError("no masks given")
    truth, num_frames = _ground_truth_table(masks, videos)
    if len(truth.frames) == 0:
        raise ValueError("RBDC/TBDC: the masks contain no anomalous region")
    detected = _detection_table(detections, masks, videos)
    false_positive, best_score = _match_regions(detected, truth, beta)

    thresholds = np.unique(detected.values)[::-1]
    false_positive_counts = _count_at_least(np.sort(detected.values[false_positive]), thresholds)
    region_counts = _count_at_least(np.sort(best_score), thresholds)
    track_scores = _track_scores(best_score, truth.values, alpha)
    track_counts = _count_at_least(np.sort(track_scores), thresholds)

    fpr = np.concatenate(([0.0], false_positive_counts / num_frames))
    rbdr = np.concatenate(([0.0], region_counts / len(best_score)))
    tbdr = np.concatenate(([0.0], track_counts / len(track_scores)))
    return RbdcTbdc(
        rbdc=_area_up_to(fpr, rbdr, max_fpr),
        tbdc=_area_up_to(fpr, tbdr, max_fpr),
        num_gt_regions=len(best_score),
        num_gt_tracks=len(track_scores),
        num_detections=len(detected.frames),
        num_frames=num_frames,
        beta=beta,
        alpha=alpha,
        max_fpr=max_fpr,
        fpr=fpr,
        rbdr=rbdr,
        tbdr=tbdr,
    )


def map_regions(
    frame_map: np.ndarray, relative_threshold: float = 0.5, min_area: int = 1
) -> list[tuple[int, int, int, int, float]]:
    """Detected regions of one (H, W) anomaly map (already at mask size).

    Pixels at or above ``min + relative_threshold * (max - min)`` of this frame's map are kept;
    each 8-connected component of at least ``min_area`` pixels becomes one region: its bounding
    box and, as score, the highest map value inside the component. A constant map yields none.
    The relative level always finds the frame's most anomalous blob; whether it counts is decided
    later by the score sweep, so low-scoring blobs in normal frames only enter at low thresholds.
    """
    low, high = float(frame_map.min()), float(frame_map.max())
    if not high > low:
        return []
    above = frame_map >= low + relative_threshold * (high - low)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(above.astype(np.uint8), connectivity=8)
    if count <= 1:
        return []
    regions = []
    for component in range(1, count):
        left, top, width, height, area = stats[component]
        if area < min_area:
            continue
        window = (slice(top, top + height), slice(left, left + width))
        peak = frame_map[window][labels[window] == component].max()
        regions.append((int(left), int(top), int(left + width - 1), int(top + height - 1), float(peak)))
    return regions


def maps_to_detections(
    maps: Mapping[str, np.ndarray],
    masks: Mapping[str, np.ndarray],
    relative_threshold: float = 0.5,
    min_area: int = 1,
) -> dict[str, list[list[tuple[int, int, int, int, float]]]]:
    """Convert anomaly maps into per-frame detected regions (input of :func:`rbdc_tbdc_from_regions`).

    Each map is resized to its mask size (cv2 ``INTER_LINEAR``), then :func:`map_regions`.
    """
    if not 0 <= relative_threshold <= 1:
        raise ValueError(f"relative_threshold must be in [0, 1], got {relative_threshold}")
    videos = _check_maps_and_masks(maps, masks)
    detections = {}
    for name in videos:
        resized = resize_maps(maps[name], np.shape(masks[name])[1:])
        if not np.all(np.isfinite(resized)):
            raise ValueError(f"video {name}: anomaly maps contain NaN or infinite values")
        detections[name] = [map_regions(frame_map, relative_threshold, min_area) for frame_map in resized]
    return detections


def rbdc_tbdc_from_maps(
    maps: Mapping[str, np.ndarray],
    masks: Mapping[str, np.ndarray],
    relative_threshold: float = 0.5,
    min_area: int = 1,
    beta: float = 0.1,
    alpha: float = 0.1,
    max_fpr: float = 1.0,
) -> RbdcTbdc:
    """RBDC and TBDC of pixel anomaly maps: :func:`maps_to_detections` then :func:`rbdc_tbdc_from_regions`.

    Region extraction is not fixed by the Street Scene paper (methods there output regions
    directly); ours is one reasonable choice: per frame, components above half of the map's
    own range (``relative_threshold``), scored by their peak value. RBDC/TBDC computed from maps
    depend on it, so reports should state it.
    """
    detections = maps_to_detections(maps, masks, relative_threshold, min_area)
    return rbdc_tbdc_from_regions(detections, masks, beta=beta, alpha=alpha, max_fpr=max_fpr)
