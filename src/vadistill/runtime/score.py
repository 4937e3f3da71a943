"""`vadistill score`: score videos, frame folders, streams or webcams and write what a user looks at.

Outputs per source, in `out_dir` (name = the file/folder stem, or a sanitised URL / "webcam0"):
    <name>.scores.csv / .json   per-frame final and raw scores, threshold, anomalous segments
                                (start, end, peak; frames above the threshold)
    <name>.plot.png             score over time, ground truth shaded when labels are given
    <name>.overlay.avi          frames with the anomaly heat map and a score bar

Two paths, chosen by the model:
    * streaming (methods with a streaming scorer, AED-MAE; either engine): frames are decoded one
      at a time and go through :class:`vadistill.runtime.stream.ClipStreamScorer`, so files,
      folders and live streams take the same path and memory does not grow with the frames (only
      the per-frame score terms are kept, 24 bytes a frame). The FINAL scores are the method's own
      ``combine_terms`` on the streamed terms: the same code as ``method.anomaly_scores`` (the
      evaluation path), equal up to float32 rounding. The overlay is drawn while scoring, so its
      score bar shows the ONLINE (causal) score, on a fixed colour scale centred on the threshold
      (what `vadistill watch` would show).
    * whole-video (other methods, e.g. DAKD, whose attention spans the whole video): the method's
      ``anomaly_scores_and_maps`` on files and folders; live sources are refused (one-line error).

A source that fails (missing, corrupt, unreachable) is reported in one line and the others go on;
:func:`score_sources` returns the failures so that the CLI exits with code 2 after all of them.

Writing: every file is written whole or not at all (:mod:`vadistill.io.atomic`: a hidden temporary
file beside it, renamed into place), and ``<name>.scores.json`` is removed when rescoring starts
and written LAST. So the JSON is the completion marker: when it is there, every file beside it
comes from the same finished run; a run killed half-way leaves no JSON (and, after a SIGKILL,
maybe hidden ``.<name>.<kind>.*.partial.<ext>`` files, removed by the next run of that video),
never outputs that look complete. :func:`finished_outputs` reads the marker; ``vadistill score --engine dask`` uses it to
skip finished videos on a rerun. This single-process path still rescores every source it is given:
it is the interactive path (rerun after changing labels or a plot, score a live stream again),
where silently keeping old files would surprise more than rescoring costs, and an archive large
enough for resuming to matter is what the Dask engine is for.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from vadistill.errors import InputError
from vadistill.io.atomic import PARTIAL_MARK, atomic_write_text
from vadistill.io.video import is_stream, open_video, write_video
from vadistill.report import fixed_overlay_range, overlay_frame, plot_scores, scale_map, write_overlay_video
from vadistill.scoring import find_segments
from vadistill.types import Segment, VideoRef


@dataclass
class VideoScoreResult:
    """What scoring one video produced."""

    name: str
    scores: np.ndarray  # (T,) final scores, higher = more anomalous
    threshold: float | None
    segments: list[Segment]
    files: dict[str, Path] = field(default_factory=dict)
    raw: np.ndarray | None = None  # (T,) raw scores (before the temporal filter), when the method has them


def source_name(source: str | int) -> str:
    """A file-name-safe name for a source: file/folder stem, "webcam0", or the URL's host and path."""
    text = str(source)
    if text.isdigit():
        return f"webcam{text}"
    if is_stream(text):
        text = re.sub(r"^[a-z]+://", "", text.lower())
        return re.sub(r"[^a-z0-9]+", "_", text).strip("_")[:80] or "stream"
    return Path(text.rstrip("/")).stem or "video"


# -- output files: written atomically, the JSON last (the completion marker) ---------------------
OUTPUT_KINDS = {"scores_csv": ".scores.csv", "scores_json": ".scores.json", "plot": ".plot.png",
                "overlay": ".overlay.avi"}


def output_path(out_dir: Path, name: str, kind: str) -> Path:
    """Where output `kind` (a key of OUTPUT_KINDS) of video `name` goes."""
    return Path(out_dir) / f"{name}{OUTPUT_KINDS[kind]}"


def remove_partial_files(out_dir: Path, name: str) -> None:
    """Delete the temporary files a killed run left of video `name` (``.<name>.<kind>.*.partial.<ext>``,
    see :mod:`vadistill.io.atomic`; a run that fails normally removes its own)."""
    for suffix in OUTPUT_KINDS.values():
        stem, extension = suffix.rsplit(".", 1)
        for leftover in Path(out_dir).glob(f".{glob.escape(name)}{stem}.*{PARTIAL_MARK}.{extension}"):
            leftover.unlink(missing_ok=True)


def finished_outputs(out_dir: Path, name: str, source: str, model_path: str, threshold: float | None,
                     overlay: bool) -> bool:
    """Whether video `name` was already scored to the end from the same source, model and threshold.

    The marker is ``<name>.scores.json`` (written last, see the module docstring); it must parse
    and name the same source, model file and threshold, and the CSV, plot and (when asked) overlay
    must be beside it. Anything else means: score it (again). The labels file only shades the plot
    and is not compared: rescore after changing it.
    """
    try:
        saved = json.loads(output_path(out_dir, name, "scores_json").read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(saved, dict) or (saved.get("source"), saved.get("model"), saved.get("threshold")) != (
            str(source), str(model_path), threshold):
        return False
    needed = ["scores_csv", "plot"] + (["overlay"] if overlay else [])
    return all(output_path(out_dir, name, kind).is_file() for kind in needed)


def _write_scores_csv(path: Path, scores: np.ndarray, threshold: float | None, fps: float | None,
                      raw: np.ndarray | None) -> Path:
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["frame", "seconds", "score", "raw_score", "is_anomalous"])
    for index, score in enumerate(scores):
        seconds = f"{index / fps:.3f}" if fps else ""
        flagged = int(threshold is not None and score > threshold)
        writer.writerow([index, seconds, f"{score:.6f}", f"{raw[index]:.6f}" if raw is not None else "", flagged])
    return atomic_write_text(path, text.getvalue())


def _write_scores_json(path: Path, name: str, scores: np.ndarray, threshold: float | None, segments: list[Segment],
                       fps: float | None, raw: np.ndarray | None, extra: dict | None) -> Path:
    return atomic_write_text(path, json.dumps({
        "video": name, "fps": fps, "threshold": threshold, **(extra or {}),
        "scores": [round(float(s), 6) for s in scores],
        "raw_scores": [round(float(s), 6) for s in raw] if raw is not None else None,
        "segments": [asdict(s) for s in segments],
    }, indent=1))


def write_scores(out_dir: Path, name: str, scores: np.ndarray, threshold: float | None,
                 segments: list[Segment], fps: float | None, raw: np.ndarray | None = None,
                 extra: dict | None = None) -> dict[str, Path]:
    """Per-frame scores as CSV (frame, seconds, score, raw_score, is_anomalous) and JSON (with segments).

    Each file is written whole or not at all, the JSON after the CSV.
    """
    csv_path = _write_scores_csv(output_path(out_dir, name, "scores_csv"), scores, threshold, fps, raw)
    json_path = _write_scores_json(output_path(out_dir, name, "scores_json"), name, scores, threshold, segments,
                                   fps, raw, extra)
    return {"scores_csv": csv_path, "scores_json": json_path}


def labels_for(labels_file: str | Path | None, name: str, num_frames: int) -> np.ndarray | None:
    """Frame labels of video `name` from a custom labels file (CSV/JSON), None when it has none."""
    if labels_file is None:
        return None
    from vadistill.data.labels import parse_custom_labels, ranges_to_labels

    ranges = parse_custom_labels(labels_file)
    for key in (name, *[k for k in ranges if Path(k).stem == name]):
        if key in ranges:
            return ranges_to_labels(ranges[key], num_frames, labels_file)
    return None


def _progress(total: int | None, name: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=f"scoring {name}", unit="frame", disable=not enabled, leave=False, file=sys.stderr)


def _stream_scores(model, reader, overlay_path: Path | None, threshold: float | None, fps: float,
                   progress: bool, name: str) -> tuple[dict[str, np.ndarray], int]:
    """Stream every frame of `reader` through the model; returns the terms {name: (T,)} and T.

    The overlay (when asked) is written on the fly: native frames wait in a ring buffer of
    `latency` + 1 frames until their score is final.
    """
    from collections import deque

    from vadistill.runtime.stream import stream_scorer

    scorer = stream_scorer(model.method, keep_maps=overlay_path is not None)
    terms: dict = {}  # term name -> per-frame values (AED-MAE: teacher/student/classifier; Fast-AED: heads)
    waiting: deque[np.ndarray] = deque(maxlen=scorer.latency + 2)
    low, high = fixed_overlay_range(threshold)
    bar = _progress(getattr(reader, "num_frames", None), name, progress)

    def results():
        for frame in reader:
            if overlay_path is not None:
                waiting.append(frame)
            bar.update(1)
            yield from scorer.step(frame, model.engine)
        yield from scorer.finish(model.engine)

    def overlays():
        for result in results():
            for key, value in result.terms.items():
                terms.setdefault(key, []).append(value)
            if overlay_path is not None:
                frame = waiting[result.index - (scorer.pushed - len(waiting))]
                heat = scale_map(result.map, low, high)
                yield overlay_frame(frame, heat, result.online, low, high, threshold)

    try:
        if overlay_path is not None:
            write_video(overlay_path, overlays(), fps=fps or 25.0)
        else:
            for _ in overlays():
                pass
    except ValueError:
        if scorer.pushed == 0:  # write_video's "no frames": the source's problem, said as the caller says it
            return {}, 0
        raise
    finally:
        bar.close()
    return {k: np.asarray(v, dtype=np.float64) for k, v in terms.items()}, scorer.pushed


def _final_from_terms(method, terms: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(final, raw) scores from streamed terms with the method's own code (the evaluation path)."""
    if hasattr(method, "combine_terms"):
        return method.combine_terms(terms), method.combine_terms(terms, raw=True)
    raise TypeError(f"{method.name} streams terms but has no combine_terms")  # pragma: no cover


def _whole_video_scores(model, source: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(final scores, raw scores or None, maps or None) with the method's whole-video path."""
    method = model.method
    if model.engine is not None and model.engine.kind == "onnx" and method.name == "dakd":
        return _dakd_onnx_scores(model, source), None, None
    from vadistill.methods.base import VadMethod

    if type(method).anomaly_scores_and_maps is not VadMethod.anomaly_scores_and_maps:
        scores, maps = method.anomaly_scores_and_maps(source)  # one pass gives both
    else:
        scores = method.anomaly_scores(source)
        try:
            maps = method.anomaly_maps(source)
        except NotImplementedError:  # no pixel maps (e.g. DAKD): scores only
            maps = None
    # Raw scores would cost a second pass of the network here: left out (None).
    return np.asarray(scores, dtype=np.float64), None, maps


def _dakd_onnx_scores(model, source: str) -> np.ndarray:
    """DAKD with ONNX Runtime: Student-backbone features (PyTorch backbone), Student in ONNX Runtime."""
    from vadistill.backbones import BACKBONES
    from vadistill.backbones.extract import extract_video
    from vadistill.data.weak import snippets_to_frames

    backbone = model.method.config.student_backbone
    if backbone not in BACKBONES:
        raise InputError(backbone, "the Student backbone is not a built-in backbone: extract its features yourself")
    features = extract_video(source, BACKBONES[backbone].build(), backbone, "center")  # (T, D)
    (scores,) = model.engine(features[None].astype(np.float32))
    with open_video(source) as reader:
        return snippets_to_frames(scores[0], len(reader))


def score_source(model, source: str | int | VideoRef, out_dir: str | Path, *, threshold: float | None = None,
                 overlay: bool = True, labels_file: str | Path | None = None, labels: np.ndarray | None = None,
                 fps: float | None = None, progress: bool = True, name: str | None = None) -> VideoScoreResult:
    """Score one source with a loaded model (:func:`vadistill.runtime.model.load_model`) and write all outputs.

    Args:
        model: a RuntimeModel.
        source: video file, frame folder, stream URL, webcam index, or a VideoRef (its labels are used).
        out_dir: output folder.
        threshold: decision threshold; default: the one calibrated on normal data (in the checkpoint).
        overlay: write the overlay video.
        labels_file: custom labels (CSV ``video,start,end`` / JSON) to shade in the plot.
        labels: (T,) frame labels (instead of `labels_file`).
        fps: frames per second for times in the outputs (default: the container's).
        progress: progress bar.
        name: output name (default from the source).

    Raises:
        InputError: the source cannot be read, or the method cannot score it.

    Every output is written whole or not at all, and ``<name>.scores.json`` is removed once the source
    opens and written last: it is there only when all outputs of this call are (module docstring).
    """
    from vadistill.runtime.stream import supports_streaming

    if isinstance(source, VideoRef):
        labels = source.labels if labels is None else labels
        name = name or source.name
        source = source.source
    out_dir = Path(out_dir)
    name = name or source_name(source)
    threshold = model.threshold if threshold is None else threshold
    live = is_stream(source)
    files: dict[str, Path] = {}
    overlay_path = output_path(out_dir, name, "overlay")
    with open_video(source) as reader:
        # The source opened: from here on the old outputs of `name` are being replaced, so the old
        # marker must go before any other file changes.
        output_path(out_dir, name, "scores_json").unlink(missing_ok=True)
        remove_partial_files(out_dir, name)
        fps = fps or reader.fps or None
        if supports_streaming(model.method) and model.engine is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            terms, num_frames = _stream_scores(model, reader, overlay_path if overlay else None, threshold,
                                               fps, progress, name)
            if num_frames == 0:
                raise InputError(source, "delivered no frame")
            scores, raw = _final_from_terms(model.method, terms)
            maps = None
            if overlay:
                files["overlay"] = overlay_path
        else:
            if live:
                raise InputError(source, f"{model.name} scores whole videos only: give a video file or frame folder")
            scores, raw, maps = _whole_video_scores(model, source)
            num_frames = len(scores)
    segments = find_segments(scores, threshold) if threshold is not None else []
    extra = {"method": model.name, "engine": model.engine_name, "model": str(model.path), "source": str(source),
             "temporal_filter": _filter_description(model.method)}
    files["scores_csv"] = _write_scores_csv(output_path(out_dir, name, "scores_csv"), scores, threshold, fps, raw)
    if labels is None and labels_file is not None:
        try:
            labels = labels_for(labels_file, name, num_frames)
        except InputError as error:  # labels only shade the plot: warn, keep the scores
            print(f"vadistill: warning: {error} (plot without ground truth)", file=sys.stderr)
    files["plot"] = plot_scores(output_path(out_dir, name, "plot"), scores, labels=labels, threshold=threshold,
                                title=f"{name} ({model.name})", fps=fps)
    if overlay and "overlay" not in files:
        with open_video(source) as reader:  # whole-video path: overlay scaled by the video's own range
            files["overlay"] = write_overlay_video(overlay_path, iter(reader), scores, maps, threshold, fps=fps or 25.0)
    files["scores_json"] = _write_scores_json(output_path(out_dir, name, "scores_json"), name, scores, threshold,
                                              segments, fps, raw, extra)
    return VideoScoreResult(name, scores, threshold, segments, files, raw)


def _filter_description(method) -> str | None:
    spec = getattr(getattr(method, "config", None), "temporal_filter", None)
    return spec.describe() if spec is not None else None


def output_names(sources: list[str]) -> list[str]:
    """The output name of each source: its :func:`source_name`, with "_" appended to repeated ones
    (two sources with the same stem must not overwrite each other)."""
    names: list[str] = []
    for source in sources:
        name = source_name(source)
        while name in names:
            name += "_"
        names.append(name)
    return names


def describe_result(source: str, result: VideoScoreResult, out_dir: str | Path) -> str:
    """The one line printed for a scored source: frames, anomalous segments, where the outputs are."""
    flagged = ", ".join(f"{s.start}-{s.end} (peak {s.peak_score:.3g} @ {s.peak_frame})" for s in result.segments)
    return (f"{source}: {len(result.scores)} frames, {len(result.segments)} anomalous segment(s)"
            + (f": {flagged}" if flagged else "") + f" -> {Path(out_dir) / result.name}.*")


def score_sources(model, sources: list[str], out_dir: str | Path, *, progress: bool = True,
                  log=print, **options) -> tuple[list[VideoScoreResult], dict[str, str]]:
    """Score several sources; a failing source is reported in one line and the others go on.

    Every source is scored, even one whose outputs are already complete (see the module docstring
    for why; ``vadistill score --engine dask`` is the resumable path).

    Returns:
        (results of the sources that worked, {source: one-line error} of those that failed).
    """
    results, failures = [], {}
    for source, name in zip(sources, output_names(sources)):
        try:
            result = score_source(model, source, out_dir, progress=progress, name=name, **options)
        except InputError as error:
            failures[str(source)] = str(error)
            print(f"vadistill: error: {error}", file=sys.stderr)
            continue
        results.append(result)
        log(describe_result(source, result, out_dir))
    return results, failures


def score_video(method, video: VideoRef | str, out_dir: Path, fps: float | None = None,
                overlay: bool = True, progress: bool = True) -> VideoScoreResult:
    """Score one video (VideoRef, file, folder) with a fitted method object (used by `vadistill demo`)."""
    from vadistill.runtime.model import RuntimeModel, model_for_method

    model = model_for_method(method) if not isinstance(method, RuntimeModel) else method
    return score_source(model, video, out_dir, fps=fps, overlay=overlay, progress=progress)


__all__ = ["VideoScoreResult", "describe_result", "finished_outputs", "output_names", "output_path",
           "score_source", "score_sources", "score_video", "write_scores"]
