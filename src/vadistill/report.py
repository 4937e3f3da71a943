"""Pictures of results: score-over-time plots, overlay videos (heat map plus score bar) and PNG bytes.

Two overlay colour scales:
    * whole-video (:func:`overlay_frames`): scores and maps scaled by the video's own range (offline);
    * fixed (:func:`fixed_overlay_range` + :func:`overlay_frame`): a range set from the threshold
      before the first frame, for live sources whose range is unknown in advance.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np

from vadistill.io.atomic import atomic_write_bytes
from vadistill.io.video import write_video


def score_figure(
    scores: np.ndarray,
    labels: np.ndarray | None = None,
    threshold: float | None = None,
    title: str = "",
    fps: float | None = None,
):
    """A matplotlib figure of the anomaly score over time; ground-truth anomalous frames shaded."""
    import matplotlib

    matplotlib.use("Agg")  # headless: never needs a display
    import matplotlib.pyplot as plt

    x = np.arange(len(scores)) / fps if fps else np.arange(len(scores))
    fig, ax = plt.subplots(figsize=(10, 3), dpi=100)
    if labels is not None:
        ax.fill_between(x, 0, 1, where=np.asarray(labels)[:len(x)] > 0, transform=ax.get_xaxis_transform(),
                        color="tab:red", alpha=0.15, step="mid", label="ground truth: anomalous")
    ax.plot(x, scores, color="tab:blue", lw=1.2, label="anomaly score")
    if threshold is not None:
        ax.axhline(threshold, color="tab:orange", ls="--", lw=1, label="threshold")
    ax.set_xlabel("seconds" if fps else "frame")
    ax.set_ylabel("score (higher = more anomalous)")
    ax.set_title(title)
    ax.set_xlim(x[0], x[-1] if len(x) > 1 else 1)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def plot_scores(
    path: str | os.PathLike,
    scores: np.ndarray,
    labels: np.ndarray | None = None,
    threshold: float | None = None,
    title: str = "",
    fps: float | None = None,
) -> Path:
    """Save a PNG of the anomaly score over time (atomically); ground-truth anomalous frames shaded when given."""
    return atomic_write_bytes(path, figure_png(score_figure(scores, labels, threshold, title, fps)))


def overlay_frame(frame: np.ndarray, anomaly_map: np.ndarray | None, score: float, low: float, high: float,
                  threshold: float | None) -> np.ndarray:
    """One RGB frame with the anomaly map blended in as a heat map and a score bar at the bottom.

    Args:
        frame: (H, W, 3) uint8 RGB.
        anomaly_map: (h, w) float map (any size, resized to the frame) or None.
        score: this frame's anomaly score; low/high: the score range that maps to an empty/full bar.
        threshold: drawn as a tick on the bar; the bar turns red above it.
    """
    height, width = frame.shape[:2]
    out = frame.copy()
    if anomaly_map is not None:
        heat = cv2.resize(anomaly_map.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
        heat = np.clip((heat - low) / max(high - low, 1e-8), 0, 1)
        coloured = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
        alpha = (0.6 * heat)[..., None]  # normal regions stay visible, hot regions show colour
        out = (out * (1 - alpha) + coloured * alpha).astype(np.uint8)
    bar_height = max(6, height // 20)
    fill = int(np.clip((score - low) / max(high - low, 1e-8), 0, 1) * width)
    is_alarm = threshold is not None and score > threshold
    out[-bar_height:] = (out[-bar_height:] * 0.4).astype(np.uint8)
    out[-bar_height:, :fill] = (230, 40, 40) if is_alarm else (40, 200, 40)
    if threshold is not None:
        tick = int(np.clip((threshold - low) / max(high - low, 1e-8), 0, 1) * (width - 1))
        out[-bar_height:, tick] = (255, 255, 255)
    return out


#: Standardised pixel-map values (z units) drawn as "cold" and "hot" on a fixed scale.
FIXED_MAP_RANGE = (1.0, 8.0)


def fixed_overlay_range(threshold: float | None) -> tuple[float, float]:
    """(low, high) score range of a fixed-scale overlay: the threshold sits in the middle of the bar."""
    if threshold is None:
        return -3.0, 3.0
    low = min(0.0, threshold) - 1.0
    return low, threshold + (threshold - low)


def scale_map(anomaly_map: np.ndarray, low: float, high: float,
              map_range: tuple[float, float] = FIXED_MAP_RANGE) -> np.ndarray:
    """A standardised map brought into the score range [low, high] (fixed scale), for overlay_frame."""
    map_low, map_high = map_range
    return low + (anomaly_map - map_low) / max(map_high - map_low, 1e-8) * (high - low)


def figure_png(fig) -> bytes:
    """A matplotlib figure as PNG bytes (for self-contained HTML); closes the figure."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def image_png(image: np.ndarray, max_width: int = 320) -> bytes:
    """An (H, W, 3) uint8 RGB image as PNG bytes, shrunk to `max_width` pixels wide."""
    height, width = image.shape[:2]
    if width > max_width:
        image = cv2.resize(image, (max_width, round(height * max_width / width)), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return data.tobytes()


def overlay_frames(frames: Iterable[np.ndarray], scores: np.ndarray, maps: np.ndarray | None = None,
                   threshold: float | None = None) -> Iterator[np.ndarray]:
    """Overlay every frame; maps (T, h, w) are scaled with the same range as the scores."""
    low, high = float(np.min(scores)), float(np.max(scores))
    map_low, map_high = (float(np.min(maps)), float(np.percentile(maps, 99.9))) if maps is not None else (low, high)
    for index, frame in enumerate(frames):
        heat = None
        if maps is not None:
            # Bring the map into the score range so the colour means the same on every frame.
            heat = low + (maps[index] - map_low) / max(map_high - map_low, 1e-8) * (high - low)
        yield overlay_frame(frame, heat, float(scores[index]), low, high, threshold)


def write_overlay_video(path: str | os.PathLike, frames: Iterable[np.ndarray], scores: np.ndarray,
                        maps: np.ndarray | None = None, threshold: float | None = None, fps: float = 25.0) -> Path:
    """Write the overlay video (heat map + score bar) to `path` (.avi MJPG or .mp4)."""
    return write_video(path, overlay_frames(frames, scores, maps, threshold), fps=fps)
