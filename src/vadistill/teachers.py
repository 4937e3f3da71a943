"""Object-level teachers of Fast-AED and the multi-scale anomaly maps they hand to the student.

Fast-AED (Croitoru et al., CVIU 2024, Sec. 3.1) distils accurate but slow object-centric
detectors into a fast frame-level student. A teacher scores every object (box) of frame t; its
anomaly map is a frame-sized canvas on which each object's score is painted into its box (the
maximum where boxes overlap), max-pooled to 1x1, 4x4 and 16x16 (the student's three heads).

Two teachers, different in kind, each a detector on its own (frame score = max over objects):

* :class:`KnnTeacher` (non-parametric, pretrained features): per object, ImageNet MobileNetV2
  features of the appearance crop of frame t (PCA-reduced) and motion statistics of the box from
  dense optical flow (Farneback) between t-3 and t+3 (speed, per-object-height speed, direction
  histogram, box geometry). Score = mean distance to the k nearest NORMAL training objects,
  appearance and motion each divided by its mean on normal validation objects, summed.
* :class:`AeTeacher` (learned, trained on normal objects only): a convolutional auto-encoder on
  32x32 crops of [grey appearance at t, |t - (t-3)|, |(t+3) - t|] (appearance + Georgescu et
  al.'s motion gradients), trained with ``train.run_stage``. Score = reconstruction error of the
  appearance and of the motion channels, each divided by its normal-validation mean, summed.

Both normalise their object scores by the 99th percentile of the scores of normal validation
objects (the tail of every training video), so that maps of different teachers share a scale
(normal objects mostly <= 1, background 0) and can be compared, combined and distilled.

Scoring the TRAINING videos for the student's targets: a kNN teacher would find every training
object at distance 0 from itself, so training objects are scored against the objects of the
OTHER folds of training videos (``source`` argument), which makes their scores look like scores
of unseen normal objects.
"""

from __future__ import annotations

import os
import zipfile
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.neighbors import NearestNeighbors

from vadistill.checkpoint import load_checkpoint, save_checkpoint
from vadistill.config import check_bounds
from vadistill.data.clips import batch_indices, clip_indices
from vadistill.errors import InputError
from vadistill.io.atomic import atomic_path
from vadistill.objects import crop_clip, grey, motion_gradient_crops
from vadistill.train import run_stage

SCALES = (1, 4, 16)  # map resolutions of the student's heads (Sec. 3.2)


# ----------------------------------------------------------------------------------------------
# Maps
# ----------------------------------------------------------------------------------------------
def paint_map(boxes: np.ndarray, scores: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) float32 canvas: each object's score painted into its box, maximum over overlaps, 0 elsewhere."""
    canvas = np.zeros(shape, dtype=np.float32)
    H, W = shape
    for (x0, y0, x1, y1), s in zip(np.asarray(boxes, dtype=np.int64).reshape(-1, 4), np.asarray(scores, dtype=np.float32)):
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(W, x1), min(H, y1)
        if x1 > x0 and y1 > y0:
            region = canvas[y0:y1, x0:x1]
            np.maximum(region, s, out=region)
    return canvas


def pool_maps(canvas: np.ndarray, scales: Sequence[int] = SCALES) -> dict[int, np.ndarray]:
    """Max-pool (T, H, W) (or (H, W)) canvases to {s: (T, s, s)} (adaptive cells, as torch's pooling)."""
    x = torch.from_numpy(np.ascontiguousarray(canvas, dtype=np.float32))
    single = x.ndim == 2
    x = x[None] if single else x  # (T, H, W)
    out = {s: F.adaptive_max_pool2d(x[:, None], s)[:, 0].numpy() for s in scales}  # (T, s, s)
    return {s: m[0] for s, m in out.items()} if single else out


# ----------------------------------------------------------------------------------------------
# Iterating over the objects of a video
# ----------------------------------------------------------------------------------------------
def video_clips(frames: np.ndarray, offsets: Sequence[int], times: np.ndarray, chunk: int = 32
                ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield (times (M,), clips (M, K, H, W, 3), deltas (M, K)) for the given centre frames, in chunks."""
    T = len(frames)
    for start in range(0, len(times), chunk):
        ts = np.asarray(times[start:start + chunk], dtype=np.int64)
        idx = clip_indices(T, ts, offsets)  # (M, K)
        yield ts, frames[idx], idx - ts[:, None]


def flow_motion_features(clip: np.ndarray, deltas: np.ndarray, boxes: np.ndarray, downscale: int = 2) -> np.ndarray:
    """Motion statistics of every box from Farneback flow between the first and last clip frames.

    Returns (N, 20) float32: mean dx, mean dy, mean / p90 / max / std of the speed (pixels per
    frame at native scale), mean / p90 speed divided by the box height (perspective), an 8-bin
    speed-weighted direction histogram, and box height / width / bottom (fractions of the frame)
    and aspect ratio.
    """
    H, W = clip.shape[1:3]
    gap = int(deltas[-1] - deltas[0])
    boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    if gap > 0:
        a, b = grey(clip[[0, -1]])
        small = (W // downscale, H // downscale)
        flow = cv2.calcOpticalFlowFarneback(cv2.resize(a, small, interpolation=cv2.INTER_AREA),
                                            cv2.resize(b, small, interpolation=cv2.INTER_AREA),
                                            None, 0.5, 3, 15, 3, 5, 1.2, 0)  # (h, w, 2)
        flow = flow * (downscale / gap)  # native pixels per frame
    else:
        flow = np.zeros((H // downscale, W // downscale, 2), dtype=np.float32)
    out = np.zeros((len(boxes), 20), dtype=np.float32)
    for n, (x0, y0, x1, y1) in enumerate(boxes):
        region = flow[y0 // downscale:max(y1 // downscale, y0 // downscale + 1),
                      x0 // downscale:max(x1 // downscale, x0 // downscale + 1)].reshape(-1, 2)
        if region.size == 0:
            region = np.zeros((1, 2), dtype=np.float32)
        speed = np.hypot(region[:, 0], region[:, 1])
        h = max(1, y1 - y0)
        angle = np.arctan2(region[:, 1], region[:, 0])
        hist = np.bincount(((angle + np.pi) / (2 * np.pi) * 8).astype(int).clip(0, 7), weights=speed, minlength=8)
        hist = hist / max(hist.sum(), 1e-6)
        p90 = float(np.percentile(speed, 90))
        out[n] = [region[:, 0].mean(), region[:, 1].mean(), speed.mean(), p90, speed.max(), speed.std(),
                  speed.mean() / h * 10, p90 / h * 10, *hist, h / H, (x1 - x0) / W, y1 / H, (x1 - x0) / h]
    return out


# ----------------------------------------------------------------------------------------------
# Teachers
# ----------------------------------------------------------------------------------------------
class ObjectTeacher(ABC):
    """An object-level anomaly detector: per-object scores, normalised on normal validation objects."""

    name: str = ""

    def __init__(self):
        self.scale_: float | None = None  # 99th percentile of raw scores of normal validation objects

    @abstractmethod
    def fit(self, videos: Sequence[np.ndarray], boxes: Sequence[Sequence[np.ndarray]], *, offsets: Sequence[int],
            val_fraction: float, run_dir: str | os.PathLike, resume: bool = False, progress: bool = False
            ) -> "ObjectTeacher":
        """Learn from normal (T, H, W, 3) videos and their per-frame boxes."""

    @abstractmethod
    def raw_scores(self, clips: np.ndarray, deltas: np.ndarray, boxes: Sequence[np.ndarray],
                   sources: Sequence[tuple[int, int]] | None = None) -> list[np.ndarray]:
        """Raw object scores of a batch of clips.

        Args:
            clips: (M, K, H, W, 3) uint8 clips (frames t+offsets, clamped).
            deltas: (M, K) actual frame offsets of the clip frames from t.
            boxes: M arrays (N_i, 4) of boxes of frame t.
            sources: for clips cut from the TRAINING videos, (video index, t) of each clip: the
                teacher then ignores what it learned from that video's fold (see module docstring).

        Returns:
            M arrays (N_i,) float64, higher = more anomalous.
        """

    def scores(self, clips: np.ndarray, deltas: np.ndarray, boxes: Sequence[np.ndarray],
               sources: Sequence[tuple[int, int]] | None = None) -> list[np.ndarray]:
        """Normalised object scores (raw / 99th percentile on normal validation objects)."""
        return [s / self.scale_ for s in self.raw_scores(clips, deltas, boxes, sources)]

    def _set_scale(self, val_raw: np.ndarray) -> None:
        val_raw = np.asarray(val_raw, dtype=np.float64)
        self.scale_ = float(max(np.quantile(val_raw, 0.99), 1e-8)) if val_raw.size else 1.0

    @abstractmethod
    def state(self) -> dict:
        """Checkpoint-safe state (plain types and tensors)."""

    @classmethod
    @abstractmethod
    def from_state(cls, state: dict) -> "ObjectTeacher":
        """Inverse of :meth:`state`."""

    def save(self, path: str | os.PathLike) -> None:
        save_checkpoint(path, {"teacher": self.name, "state": self.state()})

    @staticmethod
    def load(path: str | os.PathLike) -> "ObjectTeacher":
        payload = load_checkpoint(path)
        kind = TEACHERS.get(payload.get("teacher"))
        if kind is None:
            raise InputError(path, f"not a teacher checkpoint (teacher {payload.get('teacher')!r})")
        return kind.from_state(payload["state"])


def _split_times(num_frames: int, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) centre frames: the last `val_fraction` of the video validates (as ClipDataset.split_tail)."""
    n_val = 0 if val_fraction <= 0 else min(max(1, int(round(num_frames * val_fraction))), num_frames - 1)
    cut = num_frames - n_val
    return np.arange(cut), np.arange(cut, num_frames)


@dataclass(frozen=True)
class KnnTeacherConfig:
    """Settings of :class:`KnnTeacher`."""

    crop_size: int = 64  # appearance crop fed to MobileNetV2
    pca_dim: int = 64  # appearance features are L2-normalised and PCA-reduced to this width
    k: int = 3  # neighbours averaged
    folds: int = 4  # training videos are split into this many folds (scores of training objects)
    max_train_objects: int = 40000  # subsample the index beyond this (memory/time)
    motion_weight: float = 1.0  # weight of the normalised motion distance (appearance: 1)
    batch_size: int = 64  # crops per MobileNetV2 forward pass
    seed: int = 0

    def __post_init__(self):
        check_bounds(self, {"crop_size": ">=8", "pca_dim": ">=1", "k": ">=1", "folds": ">=2",
                            "max_train_objects": ">=1", "motion_weight": ">=0", "batch_size": ">=1"}, prefix="knn.")


class KnnTeacher(ObjectTeacher):
    """k-nearest-neighbour distance of appearance (MobileNetV2) and motion (optical flow) features."""

    name = "knn"

    def __init__(self, config: KnnTeacherConfig | dict | None = None, backbone: nn.Module | None = None):
        super().__init__()
        if isinstance(config, dict):
            config = KnnTeacherConfig(**config)
        self.config = config or KnnTeacherConfig()
        self._backbone = backbone
        self.app_: np.ndarray | None = None  # (N, pca_dim) appearance of normal training objects
        self.mot_: np.ndarray | None = None  # (N, 20) standardised motion
        self.fold_: np.ndarray | None = None  # (N,) fold of each training object
        self.pca_mean_ = self.pca_components_ = self.mot_mean_ = self.mot_std_ = None
        self.app_norm_ = self.mot_norm_ = 1.0
        self.num_videos_ = 1
        self._index: dict[int, tuple[NearestNeighbors, NearestNeighbors]] = {}

    # -- features --
    def backbone(self) -> nn.Module:
        if self._backbone is None:
            from vadistill.backbones.mobilenet_v2 import mobilenet_v2  # noqa: PLC0415 - heavy, only when needed
            self._backbone = mobilenet_v2()
        return self._backbone

    @torch.inference_mode()
    def _appearance(self, crops: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 crops -> (N, 1280) L2-normalised MobileNetV2 features."""
        from vadistill.backbones.mobilenet_v2 import normalize  # noqa: PLC0415
        net = self.backbone()
        out = []
        for i in range(0, len(crops), self.config.batch_size):
            x = normalize(torch.from_numpy(crops[i:i + self.config.batch_size]).permute(0, 3, 1, 2))
            out.append(F.normalize(net.features(x), dim=1).numpy())
        return np.concatenate(out) if out else np.zeros((0, 1280), dtype=np.float32)

    def features(self, clips: np.ndarray, deltas: np.ndarray, boxes: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Raw (appearance (N, 1280), motion (N, 20)) features of all boxes of a batch of clips."""
        centre = int(np.argmin(np.abs(deltas[0])))
        crops, motion = [], []
        for clip, d, b in zip(clips, deltas, boxes):
            if len(b) == 0:
                continue
            crops.append(crop_clip(clip[centre:centre + 1], b, self.config.crop_size)[:, 0])  # (N_i, S, S, 3)
            motion.append(flow_motion_features(clip, d, b))
        if not crops:
            return np.zeros((0, 1280), np.float32), np.zeros((0, 20), np.float32)
        return self._appearance(np.concatenate(crops)), np.concatenate(motion)

    def _project(self, app: np.ndarray, mot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return ((app - self.pca_mean_) @ self.pca_components_.T).astype(np.float32), \
            ((mot - self.mot_mean_) / self.mot_std_).astype(np.float32)

    # -- learning --
    def fit(self, videos, boxes, *, offsets, val_fraction, run_dir, resume=False, progress=False) -> "KnnTeacher":
        cfg = self.config
        self.num_videos_ = len(videos)
        parts = {"train": ([], [], []), "val": ([], [], [])}
        for v, (frames, frame_boxes) in enumerate(zip(videos, boxes)):
            train_t, val_t = _split_times(len(frames), val_fraction)
            for split, times in (("train", train_t), ("val", val_t)):
                for ts, clips, deltas in video_clips(frames, offsets, times):
                    app, mot = self.features(clips, deltas, [frame_boxes[t] for t in ts])
                    parts[split][0].append(app)
                    parts[split][1].append(mot)
                    counts = [len(frame_boxes[t]) for t in ts]
                    parts[split][2].append(np.repeat([self.fold_of(v, t) for t in ts], counts).astype(np.int64))
        app, mot, fold = (np.concatenate(p) for p in parts["train"])
        if len(app) == 0:
            raise InputError(run_dir, "the object proposer found no object in the training videos")
        if len(app) > cfg.max_train_objects:
            keep = np.sort(np.random.default_rng(cfg.seed).choice(len(app), cfg.max_train_objects, replace=False))
            app, mot, fold = app[keep], mot[keep], fold[keep]
        # PCA by SVD of the centred appearance features (kept as plain arrays: checkpoint-friendly).
        self.pca_mean_ = app.mean(axis=0)
        _, _, vt = np.linalg.svd(app - self.pca_mean_, full_matrices=False)
        self.pca_components_ = vt[: min(cfg.pca_dim, vt.shape[0])].astype(np.float32)
        self.mot_mean_ = mot.mean(axis=0)
        self.mot_std_ = mot.std(axis=0) + 1e-3
        self.app_, self.mot_ = self._project(app, mot)
        self.fold_ = fold
        self._index = {}
        val_app, val_mot, _ = (np.concatenate(p) for p in parts["val"])
        self.app_norm_ = self.mot_norm_ = 1.0
        if len(val_app):
            d_app, d_mot = self._distances(*self._project(val_app, val_mot), np.full(len(val_app), -1))
            self.app_norm_ = float(max(d_app.mean(), 1e-8))
            self.mot_norm_ = float(max(d_mot.mean(), 1e-8))
            self._set_scale(d_app / self.app_norm_ + cfg.motion_weight * d_mot / self.mot_norm_)
        else:
            self.scale_ = 1.0
        return self

    def fold_of(self, video: int, t: int) -> int:
        """Fold of a training clip: by video, or by 50-frame block when there is a single video."""
        folds = self.config.folds
        return int(video % folds) if self.num_videos_ > 1 else int((t // 50) % folds)

    def _neighbours(self, fold: int) -> tuple[NearestNeighbors, NearestNeighbors]:
        """kNN indices over all training objects (fold -1) or all but one fold."""
        if fold not in self._index:
            keep = np.ones(len(self.app_), bool) if fold < 0 else self.fold_ != fold
            if keep.sum() < self.config.k:  # too few objects left: fall back to all of them
                keep[:] = True
            k = min(self.config.k, int(keep.sum()))
            self._index[fold] = (NearestNeighbors(n_neighbors=k).fit(self.app_[keep]),
                                 NearestNeighbors(n_neighbors=k).fit(self.mot_[keep]))
        return self._index[fold]

    def _distances(self, app: np.ndarray, mot: np.ndarray, folds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d_app, d_mot = np.zeros(len(app)), np.zeros(len(app))
        for fold in np.unique(folds):
            rows = folds == fold
            nn_app, nn_mot = self._neighbours(int(fold))
            d_app[rows] = nn_app.kneighbors(app[rows])[0].mean(axis=1)
            d_mot[rows] = nn_mot.kneighbors(mot[rows])[0].mean(axis=1)
        return d_app, d_mot

    def raw_scores(self, clips, deltas, boxes, sources=None) -> list[np.ndarray]:
        counts = [len(b) for b in boxes]
        if sum(counts) == 0:
            return [np.zeros(0) for _ in boxes]
        app, mot = self._project(*self.features(clips, deltas, boxes))
        folds = np.full(len(boxes), -1) if sources is None else np.array([self.fold_of(v, t) for v, t in sources])
        d_app, d_mot = self._distances(app, mot, np.repeat(folds, counts))
        raw = d_app / self.app_norm_ + self.config.motion_weight * d_mot / self.mot_norm_
        return np.split(raw, np.cumsum(counts)[:-1])

    # -- persistence --
    def state(self) -> dict:
        t = lambda a: torch.as_tensor(np.asarray(a))  # noqa: E731
        return {"config": asdict(self.config), "app": t(self.app_), "mot": t(self.mot_), "fold": t(self.fold_),
                "pca_mean": t(self.pca_mean_), "pca_components": t(self.pca_components_), "mot_mean": t(self.mot_mean_),
                "mot_std": t(self.mot_std_), "app_norm": self.app_norm_, "mot_norm": self.mot_norm_,
                "scale": self.scale_, "num_videos": self.num_videos_}

    @classmethod
    def from_state(cls, state: dict) -> "KnnTeacher":
        teacher = cls(KnnTeacherConfig(**state["config"]))
        for key in ("app", "mot", "fold", "pca_mean", "pca_components", "mot_mean", "mot_std"):
            setattr(teacher, f"{key}_", state[key].numpy())
        teacher.app_norm_, teacher.mot_norm_ = state["app_norm"], state["mot_norm"]
        teacher.scale_, teacher.num_videos_ = state["scale"], state["num_videos"]
        return teacher


@dataclass(frozen=True)
class AeTeacherConfig:
    """Settings of :class:`AeTeacher`."""

    crop_size: int = 32  # crops are resized to this (divisible by 8)
    widths: tuple[int, int, int] = (32, 64, 64)  # encoder widths (each conv halves the size)
    latent: int = 16  # bottleneck channels at crop_size/8 x crop_size/8
    epochs: int = 10
    patience: int = 3
    batch_size: int = 64
    lr: float = 1e-3
    motion_weight: float = 1.0  # weight of the normalised motion-gradient error (appearance: 1)
    seed: int = 0

    def __post_init__(self):
        check_bounds(self, {"crop_size": ">=8", "widths": ">=1", "latent": ">=1", "epochs": ">=1", "patience": ">=1",
                            "batch_size": ">=1", "lr": ">0", "motion_weight": ">=0"}, prefix="ae.")
        if isinstance(self.crop_size, int) and self.crop_size % 8:
            raise ValueError(f"ae.crop_size must be a multiple of 8 (three stride-2 convolutions), got {self.crop_size}")

    @classmethod
    def from_dict(cls, values: dict) -> "AeTeacherConfig":
        known = {f.name for f in fields(cls)}
        if set(values) - known:
            raise ValueError(f"unknown AeTeacherConfig keys: {sorted(set(values) - known)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


class ObjectAutoEncoder(nn.Module):
    """Small convolutional auto-encoder: (B, 3, S, S) in [0, 1] -> (B, 3, S, S)."""

    def __init__(self, widths: Sequence[int] = (32, 64, 64), latent: int = 16):
        super().__init__()
        a, b, c = widths
        self.encoder = nn.Sequential(
            nn.Conv2d(3, a, 3, 2, 1), nn.ReLU(inplace=True), nn.Conv2d(a, b, 3, 2, 1), nn.ReLU(inplace=True),
            nn.Conv2d(b, c, 3, 2, 1), nn.ReLU(inplace=True), nn.Conv2d(c, latent, 1))
        self.decoder = nn.Sequential(
            nn.Conv2d(latent, c, 1), nn.ReLU(inplace=True), nn.ConvTranspose2d(c, b, 4, 2, 1), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(b, a, 4, 2, 1), nn.ReLU(inplace=True), nn.ConvTranspose2d(a, 3, 4, 2, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class AeTeacher(ObjectTeacher):
    """Object-centric auto-encoder on appearance and motion-gradient crops (reconstruction error)."""

    name = "ae"

    def __init__(self, config: AeTeacherConfig | dict | None = None):
        super().__init__()
        if isinstance(config, dict):
            config = AeTeacherConfig.from_dict(config)
        self.config = config or AeTeacherConfig()
        self.net_: ObjectAutoEncoder | None = None
        self.norms_: tuple[float, float] = (1.0, 1.0)  # mean appearance / motion error on normal validation objects

    def crops(self, clips: np.ndarray, deltas: np.ndarray, boxes: Sequence[np.ndarray]) -> np.ndarray:
        """(N, 3, S, S) float32: grey appearance of frame t and the two motion gradients, in [0, 1]."""
        size = self.config.crop_size
        centre = int(np.argmin(np.abs(deltas[0])))
        out = []
        for clip, b in zip(clips, boxes):
            if len(b) == 0:
                continue
            app = crop_clip(grey(clip[centre:centre + 1])[..., None], b, size)[:, 0, ..., 0].astype(np.float32) / 255.0
            out.append(np.concatenate([app[:, None], motion_gradient_crops(clip, b, size)], axis=1))
        return np.concatenate(out) if out else np.zeros((0, 3, size, size), np.float32)

    @torch.inference_mode()
    def _errors(self, crops: np.ndarray) -> np.ndarray:
        """(N, 3, S, S) -> (N, 2) mean squared error of the appearance channel and of the motion channels."""
        self.net_.eval()
        out = []
        for i in range(0, len(crops), 256):
            x = torch.from_numpy(crops[i:i + 256])
            err = (self.net_(x) - x).square().mean(dim=(2, 3))  # (B, 3)
            out.append(torch.stack([err[:, 0], err[:, 1:].mean(dim=1)], dim=1).numpy())
        return np.concatenate(out) if out else np.zeros((0, 2))

    def fit(self, videos, boxes, *, offsets, val_fraction, run_dir, resume=False, progress=False) -> "AeTeacher":
        cfg = self.config
        parts: dict[str, list[np.ndarray]] = {"train": [], "val": []}
        for frames, frame_boxes in zip(videos, boxes):
            train_t, val_t = _split_times(len(frames), val_fraction)
            for split, times in (("train", train_t), ("val", val_t)):
                for ts, clips, deltas in video_clips(frames, offsets, times):
                    parts[split].append(self.crops(clips, deltas, [frame_boxes[t] for t in ts]).astype(np.float16))
        train = np.concatenate(parts["train"])
        val = np.concatenate(parts["val"]) if parts["val"] else train[:0]
        if len(train) == 0:
            raise InputError(run_dir, "the object proposer found no object in the training videos")
        torch.manual_seed(cfg.seed)
        net = ObjectAutoEncoder(cfg.widths, cfg.latent)
        self.net_ = net
        optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr)
        train_t = torch.from_numpy(train)
        val_t = torch.from_numpy(val if len(val) else train[: max(1, len(train) // 10)])

        def step(indices: np.ndarray) -> dict[str, float]:
            net.train()
            x = train_t[indices].float()
            loss = F.mse_loss(net(x), x)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return {"loss": loss.item()}

        def validate() -> float:
            net.eval()
            with torch.inference_mode():
                return float(np.mean([F.mse_loss(net(val_t[i:i + 512].float()), val_t[i:i + 512].float()).item()
                                      for i in range(0, len(val_t), 512)]))

        run_stage("teacher-ae", train_step=step,
                  make_batches=lambda e: batch_indices(len(train), cfg.batch_size, shuffle=True, seed=[cfg.seed, e]),
                  validate=validate,
                  get_state=lambda: {"net": net.state_dict(), "optimizer": optimizer.state_dict()},
                  set_state=lambda s: (net.load_state_dict(s["net"]), optimizer.load_state_dict(s["optimizer"])),
                  num_epochs=cfg.epochs, patience=cfg.patience, run_dir=run_dir, resume=resume, progress=progress)
        net.eval()
        errors = self._errors(val_t.float().numpy())
        self.norms_ = (float(max(errors[:, 0].mean(), 1e-8)), float(max(errors[:, 1].mean(), 1e-8)))
        self._set_scale(self._combine(errors))
        return self

    def _combine(self, errors: np.ndarray) -> np.ndarray:
        return errors[:, 0] / self.norms_[0] + self.config.motion_weight * errors[:, 1] / self.norms_[1]

    def raw_scores(self, clips, deltas, boxes, sources=None) -> list[np.ndarray]:
        counts = [len(b) for b in boxes]
        if sum(counts) == 0:
            return [np.zeros(0) for _ in boxes]
        raw = self._combine(self._errors(self.crops(clips, deltas, boxes)))
        return np.split(raw, np.cumsum(counts)[:-1])

    def state(self) -> dict:
        return {"config": asdict(self.config), "net": self.net_.state_dict(), "norms": list(self.norms_),
                "scale": self.scale_}

    @classmethod
    def from_state(cls, state: dict) -> "AeTeacher":
        teacher = cls(AeTeacherConfig.from_dict(state["config"]))
        teacher.net_ = ObjectAutoEncoder(teacher.config.widths, teacher.config.latent)
        teacher.net_.load_state_dict(state["net"])
        teacher.net_.eval()
        teacher.norms_ = tuple(state["norms"])
        teacher.scale_ = state["scale"]
        return teacher


TEACHERS: dict[str, type[ObjectTeacher]] = {"knn": KnnTeacher, "ae": AeTeacher}


def build_teacher(name: str, config: dict | None = None) -> ObjectTeacher:
    """A fresh teacher by name ("knn" or "ae") with an optional config dict."""
    if name not in TEACHERS:
        raise ValueError(f"unknown teacher {name!r}; expected one of {sorted(TEACHERS)}")
    return TEACHERS[name](config or None)


# ----------------------------------------------------------------------------------------------
# Teacher maps of whole videos (cached)
# ----------------------------------------------------------------------------------------------
def clip_maps(teacher: ObjectTeacher, clips: np.ndarray, deltas: np.ndarray, boxes: Sequence[np.ndarray],
              sources: Sequence[tuple[int, int]] | None = None) -> tuple[dict[int, np.ndarray], list[np.ndarray]]:
    """Multi-scale maps {s: (M, s, s)} and object scores of a batch of clips."""
    scores = teacher.scores(clips, deltas, boxes, sources)
    H, W = clips.shape[2:4]
    canvases = np.stack([paint_map(b, s, (H, W)) for b, s in zip(boxes, scores)])  # (M, H, W)
    return pool_maps(canvases), scores


def video_maps(teacher: ObjectTeacher, frames: np.ndarray, boxes: Sequence[np.ndarray], offsets: Sequence[int],
               source_video: int | None = None, chunk: int = 32) -> dict[str, np.ndarray]:
    """Maps of every frame of a video: {"m1": (T, 1, 1), "m4": (T, 4, 4), "m16": (T, 16, 16),
    "frame": (T,) max object score (0 without objects)}.

    Args:
        source_video: index of the training video this is (its fold is ignored by the teacher),
            None for any other video.
    """
    out: dict[int, list[np.ndarray]] = {s: [] for s in SCALES}
    for ts, clips, deltas in video_clips(frames, offsets, np.arange(len(frames)), chunk):
        sources = None if source_video is None else [(source_video, int(t)) for t in ts]
        maps, _ = clip_maps(teacher, clips, deltas, [boxes[t] for t in ts], sources)
        for s in SCALES:
            out[s].append(maps[s])
    result = {f"m{s}": np.concatenate(out[s]).astype(np.float32) for s in SCALES}
    result["frame"] = result["m1"].reshape(-1).astype(np.float64)
    return result


def cached_video_maps(path: str | os.PathLike, compute) -> dict[str, np.ndarray]:
    """Load an npz of maps if it exists, else compute and write it atomically (resumable caches).

    An unreadable cache file (damaged on disk, or left by another program) is recomputed, not trusted.
    """
    path = Path(path)
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            pass
    maps = compute()
    with atomic_path(path) as temporary:  # np.savez keeps the name: it already ends with .npz
        np.savez(temporary, **maps)
    return maps
