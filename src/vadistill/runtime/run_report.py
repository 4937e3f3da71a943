"""`vadistill report RUN`: one self-contained HTML page about a training/evaluation run.

A RUN folder is what ``vadistill train`` (and ``vadistill evaluate --out``) writes:

    metrics.json   :func:`vadistill.evaluate.write_report` output (required). Its ``"dataset"``
                   entry names the benchmark, ``{"name": "ped2", "root": "/data/ped2", ...}``, so
                   that labels and frames can be found again.
    scores.json    ``{video: [final per-frame scores]}`` (required for plots and thumbnails).
    model.ckpt     the model (optional): its threshold is drawn on the plots and used to pick
                   false alarms / misses; without it the threshold is the 99th percentile of the
                   scores of normal test frames (labelled in the page as such).

The page (images embedded as base64 PNG, no external files) holds: the metrics table, one score
plot per video with the ground truth shaded, and thumbnails of the worst false alarms (normal
frames with the highest scores) and worst misses (anomalous frames with the lowest scores).
Labels come from the dataset named in metrics.json, or from ``labels_file`` (custom CSV/JSON,
:func:`vadistill.data.labels.parse_custom_labels`) with frames looked up in ``videos_dir``.
"""

from __future__ import annotations

import base64
import html
import json
import os
import sys
from pathlib import Path

import numpy as np

from vadistill.errors import InputError
from vadistill.io.atomic import atomic_write_text
from vadistill.report import figure_png, image_png, score_figure

_METRICS = (("micro_auc", "Micro AUC"), ("macro_auc", "Macro AUC"), ("average_precision", "Average precision"),
            ("eer", "Equal error rate"), ("pixel_auc", "Pixel AUC"), ("rbdc", "RBDC"), ("tbdc", "TBDC"),
            ("num_videos", "Videos"), ("num_frames", "Frames"), ("num_anomalous_frames", "Anomalous frames"),
            ("temporal_filter", "Temporal filter"), ("macro_policy", "Macro-AUC policy"))


def _img(data: bytes, alt: str, width: int | None = None) -> str:
    size = f' width="{width}"' if width else ""
    return f'<img alt="{html.escape(alt)}"{size} src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise InputError(path, "missing: a RUN folder holds metrics.json and scores.json (see `vadistill report --help`)")
    try:
        return json.loads(path.read_text())
    except ValueError as error:
        raise InputError(path, f"is not valid JSON: {error}") from None


def _dataset_videos(metrics: dict, labels_file: str | None, videos_dir: str | None, names: list[str]
                    ) -> tuple[dict[str, np.ndarray], dict[str, str], str]:
    """({video: labels}, {video: frame source}, where the labels came from)."""
    if labels_file:
        from vadistill.data.labels import parse_custom_labels, ranges_to_labels
        from vadistill.io.video import open_video

        ranges = parse_custom_labels(labels_file)
        sources, labels = {}, {}
        for name in names:
            if videos_dir:
                matches = sorted(p for p in Path(videos_dir).iterdir() if p.stem == name)
                if matches:
                    sources[name] = str(matches[0])
            key = next((k for k in ranges if k == name or Path(k).stem == name), None)
            if key is not None and name in sources:
                with open_video(sources[name]) as reader:
                    labels[name] = ranges_to_labels(ranges[key], len(reader), labels_file)
        return labels, sources, f"labels file {labels_file}"
    dataset = metrics.get("dataset")
    if isinstance(dataset, dict) and dataset.get("name"):
        from vadistill.data.benchmarks import load_dataset

        try:
            loaded = load_dataset(dataset["name"], Path(dataset["root"]) if dataset.get("root") else None)
        except InputError as error:
            print(f"vadistill: warning: cannot reload dataset for labels/thumbnails: {error}", file=sys.stderr)
            return {}, {}, "none (dataset not found)"
        return (loaded.test_labels(), {v.name: v.source for v in loaded.test},
                f"dataset {loaded.name} at {loaded.root}")
    return {}, {}, "none"


def _threshold(run: Path, scores: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> tuple[float | None, str]:
    model = run / "model.ckpt"
    if model.is_file():
        from vadistill.checkpoint import load_checkpoint

        value = load_checkpoint(model).get("threshold")
        if value is not None:
            return float(value), "calibrated on normal training data (model.ckpt)"
    normal = [s[np.asarray(labels[v]) == 0] for v, s in scores.items() if v in labels and len(labels[v]) == len(s)]
    normal = [n for n in normal if n.size]
    if normal:
        return float(np.quantile(np.concatenate(normal), 0.99)), "99th percentile of normal TEST frames (no model.ckpt)"
    return None, "none"


def _worst_frames(scores: dict[str, np.ndarray], labels: dict[str, np.ndarray], want: int, count: int,
                  per_video: int = 2) -> list[tuple[str, int, float]]:
    """(video, frame, score) of the highest-scored normal frames (want=0) or lowest anomalous ones (want=1)."""
    candidates = []
    for video, values in scores.items():
        truth = labels.get(video)
        if truth is None or len(truth) != len(values):
            continue
        frames = np.flatnonzero(np.asarray(truth) == want)
        if frames.size == 0:
            continue
        order = frames[np.argsort(-values[frames] if want == 0 else values[frames], kind="stable")]
        picked: list[int] = []
        for frame in order:  # at most `per_video`, at least 10 frames apart (not the same moment twice)
            if all(abs(int(frame) - p) >= 10 for p in picked):
                picked.append(int(frame))
            if len(picked) == per_video:
                break
        candidates += [(video, f, float(values[f])) for f in picked]
    candidates.sort(key=lambda c: -c[2] if want == 0 else c[2])
    return candidates[:count]


def build_report(run: str | os.PathLike, out: str | os.PathLike | None = None, labels_file: str | None = None,
                 videos_dir: str | None = None, thumbnails: int = 6) -> Path:
    """Write the HTML report of a RUN folder (module docstring); returns its path (default RUN/report.html)."""
    from vadistill.io.video import open_video

    run = Path(run)
    if not run.is_dir():
        raise InputError(run, "no such run folder")
    metrics = _read_json(run / "metrics.json")
    raw_scores = _read_json(run / "scores.json")
    scores = {str(k): np.asarray(v, dtype=np.float64) for k, v in raw_scores.items()}
    labels, sources, label_origin = _dataset_videos(metrics, labels_file, videos_dir, sorted(scores))
    threshold, threshold_origin = _threshold(run, scores, labels)

    title = f"vadistill run {run.name}"
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p>Labels: {html.escape(label_origin)}. Threshold: "
             f"{'n/a' if threshold is None else f'{threshold:.4g}'} ({html.escape(threshold_origin)}).</p>",
             "<h2>Metrics</h2><table><tr><th>Metric</th><th>Value</th></tr>"]
    for key, label in _METRICS:
        if key in metrics:
            value = metrics[key]
            text = f"{value:.4f}" if isinstance(value, float) else str(value)
            parts.append(f"<tr><td>{html.escape(label)}</td><td>{html.escape(text)}</td></tr>")
    parts.append("</table>")
    per_video = metrics.get("per_video_auc") or {}

    for heading, want in (("Worst false alarms (normal frames, highest scores)", 0),
                          ("Worst misses (anomalous frames, lowest scores)", 1)):
        picks = _worst_frames(scores, labels, want, thumbnails)
        parts.append(f"<h2>{heading}</h2><div class='thumbs'>")
        if not picks:
            parts.append("<p>none (no labels, or no frame of this kind)</p>")
        for video, frame, score in picks:
            caption = f"{video} frame {frame}: score {score:.3g}"
            image = ""
            if video in sources:
                try:
                    with open_video(sources[video]) as reader:
                        image = _img(image_png(reader.read(frame)), caption)
                except (InputError, IndexError) as error:
                    image = f"<p>(frame unavailable: {html.escape(str(error))})</p>"
            parts.append(f"<figure>{image}<figcaption>{html.escape(caption)}</figcaption></figure>")
        parts.append("</div>")

    parts.append("<h2>Scores per video</h2>")
    for video in sorted(scores):
        auc = per_video.get(video)
        suffix = f" (AUC {auc:.3f})" if isinstance(auc, float) else ""
        truth = labels.get(video)
        if truth is not None and len(truth) != len(scores[video]):
            truth = None
        png = figure_png(score_figure(scores[video], truth, threshold, title=f"{video}{suffix}"))
        parts.append(f"<h3>{html.escape(video + suffix)}</h3>{_img(png, video)}")

    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title><style>"
            "body{font-family:sans-serif;max-width:1100px;margin:auto} table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left} .thumbs{display:flex;flex-wrap:wrap;gap:8px}"
            "figure{margin:0} figcaption{font-size:12px}</style></head><body>" + "\n".join(parts) + "</body></html>\n")
    return atomic_write_text(Path(out) if out else run / "report.html", page)
