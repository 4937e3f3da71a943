"""``vadistill evaluate``: read a per-frame score file, compute the metrics, write a report.

Three steps, usable on their own:

* :func:`load_scores` reads ``{video: (T,) scores}`` from .json, .npz, .csv or a folder;
* :func:`evaluate_scores` checks the scores against the ground truth, smooths them with a
  :class:`~vadistill.scoring.TemporalFilter` and computes the frame metrics (and pixel/region
  metrics when anomaly maps and masks are given);
* :func:`write_report` writes the result as JSON and as a Markdown table.

Ground truth comes in as plain dicts so this module does not depend on how datasets are loaded
(``VideoDataset.test_labels()`` gives the labels dict).
"""

from __future__ import annotations

import csv
import json
import math
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from vadistill import metrics
from vadistill.errors import InputError
from vadistill.io.atomic import atomic_write_files
from vadistill.scoring import NO_FILTER, TemporalFilter, normalize_per_video, smooth

SCORE_FORMATS = (
    "a .json file {video: [scores...]} (or {\"scores\": {...}}), a .npz with one 1-D array per video, "
    "a .csv with columns video,frame,score, or a folder of <video>.npy / <video>.csv files"
)


# ----------------------------------------------------------------------------------------------
# Reading score files
# ----------------------------------------------------------------------------------------------


def _score_vector(values: Any, path: Path, video: str) -> np.ndarray:
    """Validate one video's scores: numeric, 1-D, non-empty, finite."""
    try:
        vector = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(path, f"video {video!r}: expected a list of numbers as scores") from None
    if vector.ndim != 1:
        raise InputError(path, f"video {video!r}: expected a 1-D array of per-frame scores, got shape {vector.shape}")
    if vector.size == 0:
        raise InputError(path, f"video {video!r}: no scores")
    if not np.all(np.isfinite(vector)):
        bad = int(np.flatnonzero(~np.isfinite(vector))[0])
        raise InputError(path, f"video {video!r}: score of frame {bad} is {vector[bad]}; expected finite numbers")
    return vector


def _load_json(path: Path) -> dict[str, np.ndarray]:
    try:
        content = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(path, f"not valid JSON ({error}); expected {{video: [scores...]}}") from None
    if isinstance(content, dict) and isinstance(content.get("scores"), dict):
        content = content["scores"]
    if not isinstance(content, dict):
        raise InputError(path, "expected a JSON object {video: [scores...]} or {\"scores\": {video: [...]}}")
    return {str(video): _score_vector(values, path, str(video)) for video, values in content.items()}


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: _score_vector(archive[name], path, name) for name in archive.files}
    except ValueError as error:  # object arrays (pickles) are refused on purpose
        raise InputError(path, f"cannot read as .npz of numeric arrays ({error})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as error:  # truncated or not a zip archive at all
        raise InputError(path, f"not a readable .npz file ({error})") from None


def _csv_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as handle:
        rows = [row for row in csv.reader(handle) if row and any(cell.strip() for cell in row)]
    if not rows:
        raise InputError(path, "empty CSV file")
    header = [cell.strip().lower() for cell in rows[0]]
    return header, rows[1:]


def _ordered_by_frame(frames: list[str], scores: list[str], path: Path, video: str) -> np.ndarray:
    """Scores sorted by frame number; frame numbers must be consecutive integers (no gap, no repeat)."""
    try:
        numbers = np.asarray([int(float(frame)) for frame in frames])
    except ValueError:
        raise InputError(path, f"video {video!r}: frame numbers must be integers") from None
    order = np.argsort(numbers, kind="stable")
    expected = np.arange(numbers.min(), numbers.min() + len(numbers))
    if not np.array_equal(numbers[order], expected):
        raise InputError(path, f"video {video!r}: frame numbers must be consecutive without gaps or repeats")
    try:
        values = [float(scores[i]) for i in order]
    except ValueError:
        raise InputError(path, f"video {video!r}: scores must be numbers") from None
    return _score_vector(values, path, video)


def _load_csv_table(path: Path) -> dict[str, np.ndarray]:
    """One CSV for all videos, with a header holding the columns video, frame and score."""
    header, rows = _csv_rows(path)
    if not {"video", "frame", "score"} <= set(header):
        raise InputError(path, f"expected a header with columns video,frame,score; got {','.join(header)}")
    columns = {name: header.index(name) for name in ("video", "frame", "score")}
    grouped: dict[str, tuple[list[str], list[str]]] = {}
    for line, row in enumerate(rows, start=2):
        if len(row) < len(header):
            raise InputError(path, f"line {line}: expected {len(header)} columns, got {len(row)}")
        frames, scores = grouped.setdefault(row[columns["video"]].strip(), ([], []))
        frames.append(row[columns["frame"]])
        scores.append(row[columns["score"]])
    return {video: _ordered_by_frame(frames, scores, path, video) for video, (frames, scores) in grouped.items()}


def _load_csv_single_video(path: Path) -> np.ndarray:
    """One video's CSV: one score per line, or a header with a 'score' (and optional 'frame') column."""
    header, rows = _csv_rows(path)
    video = path.stem
    if "score" in header:
        score_column = header.index("score")
        scores = [row[score_column] for row in rows]
        if "frame" in header:
            return _ordered_by_frame([row[header.index("frame")] for row in rows], scores, path, video)
    else:
        scores = [row[-1] for row in [header] + rows]
    try:
        return _score_vector([float(value) for value in scores], path, video)
    except ValueError:
        raise InputError(path, "expected one score per line, or a header with a 'score' column") from None


def _load_folder(path: Path) -> dict[str, np.ndarray]:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".npy", ".csv") and p.is_file())
    if not files:
        raise InputError(path, "folder holds no <video>.npy or <video>.csv score files")
    scores: dict[str, np.ndarray] = {}
    for file in files:
        if file.stem in scores:
            raise InputError(file, f"video {file.stem!r} has both a .npy and a .csv file")
        if file.suffix.lower() == ".npy":
            try:
                values = np.load(file, allow_pickle=False)
            except (ValueError, OSError, EOFError) as error:
                raise InputError(file, f"not a readable numeric .npy file ({error})") from None
            scores[file.stem] = _score_vector(values, file, file.stem)
        else:
            scores[file.stem] = _load_csv_single_video(file)
    return scores


def load_scores(path: str | Path) -> dict[str, np.ndarray]:
    """Read per-video per-frame anomaly scores (higher = more anomalous).

    Formats: ``.json`` ``{"video": [scores...]}`` or ``{"scores": {...}}``; ``.npz`` with one
    array per video (array name = video name); ``.csv`` with a header ``video,frame,score`` (rows
    in any order; frame numbers consecutive per video); a folder of ``<video>.npy`` or
    ``<video>.csv`` files (a per-video CSV holds one score per line, or has a ``score`` column and
    optionally a ``frame`` column).

    Args:
        path: the file or folder.

    Returns:
        ``{video: (T,) float64 scores}``.

    Raises:
        InputError: missing path, unknown format, unreadable file, non-numeric / NaN / infinite
            scores, arrays that are not 1-D, or no videos at all. The message names the path.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, f"no such file or folder; expected {SCORE_FORMATS}")
    if path.is_dir():
        scores = _load_folder(path)
    else:
        readers = {".json": _load_json, ".npz": _load_npz, ".csv": _load_csv_table}
        reader = readers.get(path.suffix.lower())
        if reader is None:
            raise InputError(path, f"unknown score file format {path.suffix!r}; expected {SCORE_FORMATS}")
        try:
            scores = reader(path)
        except UnicodeDecodeError:
            raise InputError(path, f"not a text file; expected {SCORE_FORMATS}") from None
    if not scores:
        raise InputError(path, "no videos in the score file")
    return scores


# ----------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------


def _check_scores_match_labels(scores: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray], source: str) -> None:
    unknown = sorted(set(scores) - set(labels))
    if unknown:
        raise InputError(source, f"scores for videos that are not in the ground truth: {unknown[:10]}"
                         f"{' ...' if len(unknown) > 10 else ''} (known videos: {sorted(labels)[:10]} ...)")
    missing = sorted(set(labels) - set(scores))
    if missing:
        raise InputError(source, f"no scores for labelled videos {missing[:10]}{' ...' if len(missing) > 10 else ''}; "
                         "every test video needs scores")
    for video in sorted(labels):
        if np.ndim(scores[video]) != 1:
            raise InputError(source, f"video {video}: expected 1-D per-frame scores, got shape {np.shape(scores[video])}")
        num_scores, num_labels = len(scores[video]), len(np.ravel(labels[video]))
        if num_scores != num_labels:
            raise InputError(source, f"video {video}: {num_scores} scores but {num_labels} labelled frames; "
                             "expected one score per frame")
        if not np.all(np.isfinite(np.asarray(scores[video], dtype=np.float64))):
            raise InputError(source, f"video {video}: scores contain NaN or infinite values")


def _check_pixel_inputs(
    maps: Mapping[str, np.ndarray] | None,
    masks: Mapping[str, np.ndarray] | None,
    labels: Mapping[str, np.ndarray],
    source: str,
) -> None:
    if (maps is None) != (masks is None):
        given, absent = ("anomaly maps", "pixel masks") if masks is None else ("pixel masks", "anomaly maps")
        raise InputError(source, f"{given} given without {absent}; pixel AUC and RBDC/TBDC need both")
    if maps is None:
        return
    if set(maps) != set(masks) or set(masks) != set(labels):
        raise InputError(source, "anomaly maps, pixel masks and frame labels must cover the same videos")
    for video in sorted(masks):
        if len(maps[video]) != len(labels[video]) or len(masks[video]) != len(labels[video]):
            raise InputError(source, f"video {video}: {len(maps[video])} maps, {len(masks[video])} masks "
                             f"and {len(labels[video])} labelled frames; expected the same number")


def _final_scores(
    scores: Mapping[str, np.ndarray],
    labels: Mapping[str, np.ndarray],
    filter: TemporalFilter,  # noqa: A002
    normalization: str,
) -> dict[str, np.ndarray]:
    """Smooth each labelled video, then normalise it per video if asked."""
    smoothed = {video: smooth(scores[video], filter) for video in sorted(labels)}
    return normalize_per_video(smoothed, normalization)


def _pixel_metrics(
    maps: Mapping[str, np.ndarray],
    masks: Mapping[str, np.ndarray],
    pixel_max_pixels: int | None,
    source: str,
) -> dict[str, Any]:
    try:
        criteria = metrics.rbdc_tbdc_from_maps(maps, masks)
        return {
            "pixel_auc": metrics.pixel_auc(maps, masks, max_pixels=pixel_max_pixels),
            "pixel_auc_pixels": "all" if pixel_max_pixels is None else f"random subset of about {pixel_max_pixels}",
            "rbdc": criteria.rbdc,
            "tbdc": criteria.tbdc,
            "rbdc_tbdc_settings": (
                f"beta={criteria.beta:g} (IoU), alpha={criteria.alpha:g} (track fraction), FPR in [0, {criteria.max_fpr:g}] "
                f"false positives per frame; GT: connected components of the masks linked into tracks by overlap; "
                f"detections: per-frame components of the map above half its range, scored by their peak; "
                f"{criteria.num_gt_regions} GT regions, {criteria.num_gt_tracks} tracks, {criteria.num_detections} detections"
            ),
        }
    except ValueError as error:
        raise InputError(source, f"pixel-level evaluation failed: {error}") from None


def evaluate_scores(
    scores: Mapping[str, np.ndarray],
    labels: Mapping[str, np.ndarray],
    masks: Mapping[str, np.ndarray] | None = None,
    maps: Mapping[str, np.ndarray] | None = None,
    filter: TemporalFilter = NO_FILTER,  # noqa: A002 - name fixed by the CLI contract
    macro_policy: str = "exclude",
    normalization: str = "none",
    pixel_max_pixels: int | None = None,
    dataset: str | None = None,
    source: str = "<scores>",
) -> dict[str, Any]:
    """Compute the frame-level (and optionally pixel/region-level) metrics of per-frame scores.

    Steps: check that the scores cover exactly the labelled videos with one score per frame;
    smooth each video with ``filter``; optionally normalise each video (``normalization="minmax"``,
    only to reproduce AED-MAE's protocol, see :func:`vadistill.scoring.normalize_per_video`);
    then micro AUC, macro AUC under ``macro_policy``, average precision and EER. With ``maps`` and
    ``masks`` also pixel AUC (all pixels) and RBDC/TBDC (:func:`vadistill.metrics.rbdc_tbdc_from_maps`).

    Args:
        scores: ``{video: (T,) raw scores}``, e.g. from :func:`load_scores`.
        labels: ``{video: (T,) 0/1 frame labels}`` of every test video.
        masks: ``{video: (T, H, W) bool}`` pixel ground truth, or None.
        maps: ``{video: (T, h, w) anomaly maps}``, or None.
        filter: temporal filter applied to every video before the metrics. Default: none.
        macro_policy: one-class video handling of :func:`vadistill.metrics.macro_auc`.
        normalization: ``"none"`` or ``"minmax"`` per video, after smoothing.
        pixel_max_pixels: subsample pixel AUC to about this many pixels (None = all).
        dataset: dataset name, copied into the result.
        source: what the scores came from (a path), used in error messages.

    Returns:
        a JSON-serialisable dict of metrics and the settings that produced them.

    Raises:
        InputError: scores for unknown videos, labelled videos without scores, a score/label
            length mismatch (naming the video and both lengths), NaN scores, inconsistent maps
            or masks, or ground truth with a single class.
    """
    _check_scores_match_labels(scores, labels, source)
    _check_pixel_inputs(maps, masks, labels, source)
    final = _final_scores(scores, labels, filter, normalization)
    truth = {video: np.asarray(labels[video]).ravel() for video in sorted(labels)}
    try:
        macro = metrics.macro_auc(final, truth, policy=macro_policy)
        result: dict[str, Any] = {
            "dataset": dataset,
            "num_videos": len(truth),
            "num_frames": int(sum(v.size for v in truth.values())),
            "num_anomalous_frames": int(sum(int(np.sum(v)) for v in truth.values())),
            "temporal_filter": filter.describe(),
            "score_normalization": normalization,
            "macro_policy": macro_policy,
            "micro_auc": metrics.micro_auc(final, truth),
            "macro_auc": macro.value,
            "macro_auc_videos_used": macro.num_videos_used,
            "macro_auc_videos_excluded": macro.num_videos_excluded,
            "one_class_videos": macro.num_one_class_videos,
            "average_precision": metrics.average_precision(final, truth),
            "eer": metrics.equal_error_rate(final, truth),
            "per_video_auc": {video: macro.per_video.get(video) for video in sorted(truth)},
        }
    except ValueError as error:
        raise InputError(source, f"cannot evaluate: {error}") from None
    if maps is not None:
        result.update(_pixel_metrics(maps, masks, pixel_max_pixels, source))
    return result


# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------

_METRIC_ROWS = (
    ("micro_auc", "Micro AUC (frames pooled)"),
    ("macro_auc", "Macro AUC (mean of per-video AUCs)"),
    ("average_precision", "Average precision"),
    ("eer", "Equal error rate"),
    ("pixel_auc", "Pixel AUC (all pixels)"),
    ("rbdc", "RBDC"),
    ("tbdc", "TBDC"),
)


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4f}"
    return "n/a" if value is None else str(value)


def _dataset_lines(dataset: Any) -> tuple[str, list[str]]:
    """Title and bullet lines for the dataset entry: a name, or a dict with a 'name' and notes."""
    if not dataset:
        return "# Evaluation", []
    if isinstance(dataset, Mapping):
        notes = [f"- Dataset {key}: {value}" for key, value in dataset.items() if key != "name"]
        return f"# Evaluation: {dataset.get('name', '')}", notes
    return f"# Evaluation: {dataset}", []


def _markdown(result: Mapping[str, Any]) -> str:
    title, dataset_notes = _dataset_lines(result.get("dataset"))
    lines = [
        title,
        "",
        *dataset_notes,
        f"- Temporal filter: {result['temporal_filter']}",
        f"- Per-video score normalisation: {result.get('score_normalization', 'none')}",
        f"- Macro-AUC policy: {result['macro_policy']} "
        f"({result.get('macro_auc_videos_used')} videos used, {result.get('macro_auc_videos_excluded')} excluded, "
        f"{result.get('one_class_videos')} one-class)",
        f"- Videos: {result.get('num_videos')}, frames: {result.get('num_frames')} "
        f"({result.get('num_anomalous_frames')} anomalous)",
    ]
    if "rbdc_tbdc_settings" in result:
        lines.append(f"- RBDC/TBDC: {result['rbdc_tbdc_settings']}")
        lines.append(f"- Pixel AUC pixels: {result.get('pixel_auc_pixels')}")
    lines += ["", "| Metric | Value |", "|---|---|"]
    lines += [f"| {label} | {_format_value(result[key])} |" for key, label in _METRIC_ROWS if key in result]
    per_video = result.get("per_video_auc") or {}
    if per_video:
        lines += ["", f"Per-video AUC ({result['macro_policy']} policy):", "", "| Video | AUC |", "|---|---|"]
        lines += [f"| {video} | {_format_value(auc)} |" for video, auc in per_video.items()]
    return "\n".join(lines) + "\n"


def write_report(result: Mapping[str, Any], out_dir: str | Path, stem: str = "metrics") -> tuple[Path, Path]:
    """Write ``<stem>.json`` and ``<stem>.md`` into ``out_dir`` (created if needed).

    Both files name the temporal filter and the macro-AUC policy, so a number is never separated
    from how it was computed. They are published together and atomically: a failed write (full
    disk) leaves neither a half-written file nor a new one beside an old one.

    Args:
        result: the dict returned by :func:`evaluate_scores`.
        out_dir: output folder.
        stem: file name without extension.

    Returns:
        (json_path, md_path).
    """
    for key in ("temporal_filter", "macro_policy"):
        if key not in result:
            raise ValueError(f"result lacks {key!r}; pass the dict returned by evaluate_scores")
    out_dir = Path(out_dir)
    json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    atomic_write_files({json_path: (json.dumps(dict(result), indent=2) + "\n").encode(),
                        md_path: _markdown(result).encode()})
    return json_path, md_path
