"""Object proposals for static-camera video, and the object crops object-centric models score.

Object-centric anomaly detectors (the teachers of Fast-AED, Croitoru et al. CVIU 2024, Sec. 3.1,
after Georgescu et al. 2021) look at one object at a time: a detector gives boxes in frame t, and
each box is cut out of frames (t-3, t, t+3) as appearance crops and as motion-gradient crops.
This module provides the boxes and the crops, with no learned detector required:

* :class:`ObjectProposer` (settings in :class:`ProposalConfig`), one of
    - ``"background"``: median background of the (normal) training frames -> |frame - background|
      above a threshold -> morphological opening/closing -> connected components -> boxes whose
      area lies between ``min_area`` and ``max_area`` (fractions of the frame area);
    - ``"mog2"``: OpenCV's MOG2 Gaussian-mixture background learned on the training frames and
      then FROZEN (learning rate 0 at proposal time, so a test video never teaches the model
      that its own anomaly is background, and proposals do not depend on frame order);
    - ``"hog"``: OpenCV's HOG + linear SVM people detector (Dalal & Triggs), frames upscaled by
      ``hog_upscale`` first because its window is 64x128 and surveillance people are small;
    - ``"background+hog"``: the union of both, duplicates removed by non-maximum suppression;
    - ``"onnx"``: a user-supplied ONNX detector (:class:`OnnxDetector`), only when
      ``onnxruntime`` is installed (it is not a dependency of vadistill).
* :func:`crop_clip` (appearance crops of every clip frame), :func:`motion_gradient_crops`
  (absolute differences of consecutive clip frames inside the box, as Georgescu et al.'s
  motion gradients), :func:`expand_boxes`.

Boxes are (N, 4) int32 arrays of ``x0, y0, x1, y1`` in pixels, end exclusive.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Sequence

import cv2
import numpy as np

from vadistill.config import check_bounds
from vadistill.errors import InputError

DETECTORS = ("background", "mog2", "hog", "background+hog", "onnx")


@dataclass(frozen=True)
class ProposalConfig:
    """Settings of :class:`ObjectProposer` (areas are fractions of the frame area)."""

    detector: str = "background"  # one of DETECTORS
    threshold: int = 25  # |grey frame - background| above this is foreground ("background")
    background_frames: int = 200  # training frames (evenly spaced) the median background is taken over
    open_kernel: int = 3  # opening removes speckle noise
    close_kernel: int = 9  # closing fills holes and joins the parts of one person
    min_area: float = 0.001  # smallest kept component / box (Ped2 360x240: 86 pixels)
    max_area: float = 0.3  # largest kept component / box
    margin: float = 0.1  # boxes are enlarged by this fraction of their width/height on every side
    max_boxes: int = 32  # at most this many boxes per frame (largest first)
    mog2_history: int = 500  # MOG2 history length while it learns the training frames
    mog2_var_threshold: float = 16.0  # MOG2 Mahalanobis threshold
    hog_upscale: float = 2.0  # HOG runs on the frame scaled by this factor (window 64x128)
    hog_min_score: float = 0.3  # HOG SVM score below this is dropped
    nms_iou: float = 0.5  # IoU above which the lower-scoring of two boxes is dropped ("background+hog")
    onnx_model: str = ""  # path of the ONNX detector ("onnx")
    onnx_input_size: tuple[int, int] = (640, 640)  # (H, W) the ONNX model expects
    onnx_min_score: float = 0.4  # ONNX detections below this score are dropped
    onnx_classes: tuple[int, ...] = ()  # class ids to keep (empty: all)

    def __post_init__(self):
        check_bounds(self, {"threshold": ">=0", "background_frames": ">=1", "open_kernel": ">=1", "close_kernel": ">=1",
                            "margin": ">=0", "max_boxes": ">=1", "mog2_history": ">=1", "mog2_var_threshold": ">0",
                            "hog_upscale": ">0", "nms_iou": "[0, 1]", "onnx_min_score": "[0, 1]"}, prefix="proposals.")
        if self.detector not in DETECTORS:
            raise ValueError(f"detector must be one of {DETECTORS}, got {self.detector!r}")
        if not 0 <= self.min_area < self.max_area <= 1:
            raise ValueError("need 0 <= min_area < max_area <= 1")

    @classmethod
    def from_dict(cls, values: dict) -> "ProposalConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown ProposalConfig keys: {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


# ----------------------------------------------------------------------------------------------
# Box helpers
# ----------------------------------------------------------------------------------------------
def empty_boxes() -> np.ndarray:
    return np.zeros((0, 4), dtype=np.int32)


def box_areas(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) boxes -> (N,) areas in pixels."""
    boxes = np.asarray(boxes).reshape(-1, 4)
    return (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)


def expand_boxes(boxes: np.ndarray, margin: float, height: int, width: int) -> np.ndarray:
    """Enlarge (N, 4) boxes by `margin` of their size on every side, clipped to the frame."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    out = np.stack([boxes[:, 0] - margin * w, boxes[:, 1] - margin * h,
                    boxes[:, 2] + margin * w, boxes[:, 3] + margin * h], axis=1)
    out = np.round(out).astype(np.int32)
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, width)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, height)
    return out


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices of the boxes kept by greedy non-maximum suppression (highest score first)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    areas = box_areas(boxes)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        iw = (np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0])).clip(0)
        ih = (np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1])).clip(0)
        inter = iw * ih
        overlap = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = rest[overlap <= iou]
    return np.asarray(keep, dtype=np.int64)


def boxes_from_mask(mask: np.ndarray, min_pixels: float, max_pixels: float) -> np.ndarray:
    """Bounding boxes of the connected components of a (H, W) {0, 1} mask within an area range."""
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    boxes = [(x, y, x + w, y + h) for x, y, w, h, area in stats[1:count].tolist()
             if min_pixels <= area and w * h <= max_pixels]
    return np.asarray(boxes, dtype=np.int32).reshape(-1, 4)


def grey(frames: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) uint8 RGB -> (..., H, W) uint8 luminance."""
    frames = np.asarray(frames)
    flat = frames.reshape(-1, *frames.shape[-3:])
    out = np.stack([cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in flat])
    return out.reshape(frames.shape[:-1])


# ----------------------------------------------------------------------------------------------
# Detectors
# ----------------------------------------------------------------------------------------------
class HogPeopleDetector:
    """OpenCV's default HOG people detector (64x128 window, linear SVM trained on INRIA persons)."""

    def __init__(self, upscale: float = 2.0, min_score: float = 0.3):
        self.upscale = upscale
        self.min_score = min_score
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(H, W, 3) uint8 RGB -> ((N, 4) boxes, (N,) SVM scores) in frame pixels."""
        image = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        if self.upscale != 1:
            image = cv2.resize(image, None, fx=self.upscale, fy=self.upscale, interpolation=cv2.INTER_LINEAR)
        rects, weights = self.hog.detectMultiScale(image, winStride=(8, 8), padding=(8, 8), scale=1.1)
        if len(rects) == 0:
            return empty_boxes(), np.zeros(0)
        rects = np.asarray(rects, dtype=np.float64) / self.upscale
        scores = np.asarray(weights, dtype=np.float64).reshape(-1)
        boxes = np.round(np.stack([rects[:, 0], rects[:, 1], rects[:, 0] + rects[:, 2], rects[:, 1] + rects[:, 3]], 1))
        keep = scores >= self.min_score
        return boxes[keep].astype(np.int32), scores[keep]


class OnnxDetector:
    """A user-supplied ONNX object detector run with onnxruntime (optional, not a dependency).

    The model takes one (1, 3, H, W) float32 RGB image in [0, 1] at `input_size` and returns, as
    its first output, detections of shape (N, >= 5) or (1, N, >= 5): ``x0, y0, x1, y1, score[,
    class]`` in input-image pixels, after non-maximum suppression (the layout of detectors exported
    with NMS included, e.g. YOLO "end2end" exports). Other layouts: subclass and override
    :meth:`postprocess`.

    Raises:
        InputError: onnxruntime is not installed, or the model file is missing.
    """

    def __init__(self, path: str | os.PathLike, input_size: tuple[int, int] = (640, 640), min_score: float = 0.4,
                 classes: Sequence[int] = ()):
        try:
            import onnxruntime  # noqa: PLC0415 - optional dependency, imported only when asked for
        except ImportError:
            raise InputError(path, "an ONNX detector needs the optional package onnxruntime "
                             "(pip install onnxruntime); vadistill does not install it") from None
        if not os.path.isfile(path):
            raise InputError(path, "no such ONNX model file")
        self.session = onnxruntime.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.input_size = tuple(input_size)
        self.min_score = min_score
        self.classes = tuple(classes)

    def postprocess(self, output: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = np.asarray(output, dtype=np.float64).reshape(-1, np.asarray(output).shape[-1])
        if rows.shape[1] < 5:
            raise InputError("<onnx output>", f"expected rows of x0, y0, x1, y1, score[, class], got shape {output.shape}")
        keep = rows[:, 4] >= self.min_score
        if self.classes and rows.shape[1] >= 6:
            keep &= np.isin(rows[:, 5].astype(int), self.classes)
        return rows[keep, :4], rows[keep, 4]

    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(H, W, 3) uint8 RGB -> ((N, 4) boxes, (N,) scores) in frame pixels."""
        H, W = frame.shape[:2]
        ih, iw = self.input_size
        image = cv2.resize(frame, (iw, ih)).astype(np.float32) / 255.0
        output = self.session.run(None, {self.input_name: image.transpose(2, 0, 1)[None]})[0]
        boxes, scores = self.postprocess(output)
        boxes = boxes * np.array([W / iw, H / ih, W / iw, H / ih])
        return np.round(boxes).astype(np.int32).reshape(-1, 4), scores


class ObjectProposer:
    """Boxes of the objects in a frame of a static camera (see the module docstring).

    Call :meth:`fit` with the normal training frames first (background detectors learn the
    background there; the others ignore it), then :meth:`propose` frame by frame.
    """

    def __init__(self, config: ProposalConfig | None = None):
        self.config = config or ProposalConfig()
        self.background_: np.ndarray | None = None  # (H, W) uint8 median background
        self._mog2 = None
        self._hog = None
        self._onnx = None
        cfg = self.config
        if "hog" in cfg.detector:
            self._hog = HogPeopleDetector(cfg.hog_upscale, cfg.hog_min_score)
        if cfg.detector == "onnx":
            self._onnx = OnnxDetector(cfg.onnx_model, cfg.onnx_input_size, cfg.onnx_min_score, cfg.onnx_classes)

    def fit(self, videos: Sequence[np.ndarray]) -> "ObjectProposer":
        """Learn the background from normal (T, H, W, 3) uint8 videos of one camera."""
        cfg = self.config
        if not videos:
            raise InputError("<videos>", "no training video to learn the background from")
        total = sum(len(v) for v in videos)
        picks = np.linspace(0, total - 1, min(cfg.background_frames, total)).round().astype(int)
        starts = np.cumsum([0] + [len(v) for v in videos])
        which = np.searchsorted(starts, picks, side="right") - 1  # video of every picked frame
        sample = grey(np.stack([videos[v][p - starts[v]] for v, p in zip(which, picks)]))  # (S, H, W)
        self.background_ = np.median(sample, axis=0).astype(np.uint8)
        if cfg.detector == "mog2":
            self._mog2 = cv2.createBackgroundSubtractorMOG2(history=cfg.mog2_history, varThreshold=cfg.mog2_var_threshold,
                                                            detectShadows=True)
            for frame in sample:
                self._mog2.apply(frame)
        return self

    def foreground(self, frame: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 -> (H, W) uint8 {0, 1} cleaned foreground mask."""
        if self.background_ is None:
            raise RuntimeError("ObjectProposer.fit must be called before proposing boxes")
        cfg = self.config
        g = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        if self._mog2 is not None:
            # learningRate=0: the frozen training background; 127 marks shadows, which are not objects.
            mask = (self._mog2.apply(g, learningRate=0) > 200).astype(np.uint8)
        else:
            mask = (cv2.absdiff(g, self.background_) > cfg.threshold).astype(np.uint8)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (cfg.open_kernel,) * 2))
        return cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (cfg.close_kernel,) * 2))

    def propose(self, frame: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB frame -> (N, 4) int32 boxes (enlarged by the margin, largest first)."""
        cfg = self.config
        H, W = frame.shape[:2]
        area = H * W
        parts, scores = [], []
        if cfg.detector in ("background", "mog2", "background+hog"):
            boxes = boxes_from_mask(self.foreground(frame), cfg.min_area * area, cfg.max_area * area)
            parts.append(boxes)
            scores.append(np.full(len(boxes), np.inf))  # background boxes win the NMS against HOG
        if self._hog is not None:
            boxes, s = self._hog(frame)
            parts.append(boxes)
            scores.append(s)
        if self._onnx is not None:
            boxes, s = self._onnx(frame)
            parts.append(boxes)
            scores.append(s)
        boxes = np.concatenate(parts).astype(np.int32).reshape(-1, 4)
        score = np.concatenate(scores)
        if len(parts) > 1 and len(boxes):
            keep = nms(boxes, np.where(np.isinf(score), 1e9, score), cfg.nms_iou)
            boxes = boxes[keep]
        boxes = expand_boxes(boxes, cfg.margin, H, W)
        areas = box_areas(boxes)
        boxes = boxes[(areas >= max(1.0, cfg.min_area * area)) & (areas <= cfg.max_area * area)]
        order = np.argsort(-box_areas(boxes), kind="stable")[: cfg.max_boxes]
        return boxes[order]

    def propose_video(self, frames: np.ndarray) -> list[np.ndarray]:
        """Boxes of every frame of a (T, H, W, 3) video."""
        return [self.propose(frame) for frame in frames]


# ----------------------------------------------------------------------------------------------
# Crops
# ----------------------------------------------------------------------------------------------
def crop_clip(clip: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Appearance crops of every box in every clip frame.

    Args:
        clip: (K, H, W, C) frames (e.g. t-3, t, t+3; uint8 or float).
        boxes: (N, 4) boxes of frame t, used in every clip frame (a static box around a moving object).
        size: crops are resized to size x size (aspect not kept, as in object-centric VAD).

    Returns:
        (N, K, size, size, C) crops of the clip's dtype.
    """
    K, H, W = clip.shape[:3]
    out = np.zeros((len(boxes), K, size, size, *clip.shape[3:]), dtype=clip.dtype)
    for n, (x0, y0, x1, y1) in enumerate(np.asarray(boxes, dtype=np.int64).reshape(-1, 4)):
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(W, max(x1, x0 + 1)), min(H, max(y1, y0 + 1))
        for k in range(K):
            patch = np.ascontiguousarray(clip[k, y0:y1, x0:x1])
            if patch.size == 0:
                continue
            resized = cv2.resize(patch, (size, size), interpolation=cv2.INTER_LINEAR)
            out[n, k] = resized.reshape(out.shape[2:])
    return out


def motion_gradient_crops(clip: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Motion-gradient crops: |grey[k+1] - grey[k]| of consecutive clip frames inside each box.

    Args:
        clip: (K, H, W, 3) uint8 RGB frames (e.g. t-3, t, t+3).
        boxes: (N, 4) boxes of frame t.
        size: output crop size.

    Returns:
        (N, K-1, size, size) float32 in [0, 1] (for (t-3, t, t+3): backward and forward gradients).
    """
    g = grey(clip).astype(np.int16)  # (K, H, W)
    grads = np.abs(np.diff(g, axis=0)).astype(np.uint8)  # (K-1, H, W)
    crops = crop_clip(grads[..., None], boxes, size)[..., 0]  # (N, K-1, size, size)
    return crops.astype(np.float32) / 255.0
