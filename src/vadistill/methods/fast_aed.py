"""Fast-AED: a frame-level student distilled from object-level teachers, with adversarial distillation.

Croitoru, Ristea, Dascalescu, Ionescu, Khan, Shah. "Lightning Fast Video Anomaly Detection via
Multi-Scale Adversarial Distillation", CVIU 2024 (arXiv 2211.15597). Implemented from the paper;
the authors' code (CC BY-NC-SA) was only read to pin down two details named below, none is copied.

How it works (reads top to bottom):

1. Teachers (Sec. 3.1; :mod:`vadistill.teachers`, :mod:`vadistill.objects`): object proposals by
   background subtraction, then two object-level detectors, a kNN on MobileNetV2 + optical-flow
   features and an object auto-encoder on appearance + motion-gradient crops, all trained on the
   normal training videos. Each teacher's object scores are painted into their boxes (maximum over
   overlaps) and max-pooled to 1x1, 4x4 and 16x16 maps, once per frame, cached as npz files.
2. Student (Sec. 3.2): input frames t-3, t, t+3 stacked as 9 channels in [-1, 1]; three strided
   convolutions (a downsampling convolutional encoder, /8), CvT transformer blocks (self-attention
   with depthwise-convolutional Q/K/V projections, reused from AED-MAE's implementation) with a
   learnable CLS token, and three heads: 1x1 (MLP on the CLS token), 4x4 (adaptive max-pool + 1x1
   convolutions) and 16x16 (convolutions + adaptive average pool). Each head predicts one map per
   teacher.
3. Optional stage 0 (Sec. 3.3): the encoder and transformer are pre-trained as an auto-encoder
   that reconstructs the 9-channel input (a throw-away decoder).
4. Distillation (Sec. 3.3, Eq. 1-4): L = sum over teachers k and scales s of MSE(student_k,s,
   teacher_k,s) + w_adv * sum_k BCE(D_k(student_k maps), real). One discriminator D_k per teacher
   sees the three maps of that teacher (upsampled to 16x16, stacked) and learns real (teacher) vs
   fake (student) with its own optimizer. Both optimizer steps are in ``train_step``.
5. Inference (Sec. 3.4): per head, the student's maps of all teachers are combined (maximum over
   teachers and positions, as the authors' evaluation does; ``teacher_combine="mean"`` averages
   the teachers first); the frame score is the mean of the three heads' maxima, standardised with
   statistics of normal validation frames (saved in the checkpoint) and smoothed with a temporal
   Gaussian. The 16x16 map, upsampled to the frame, is the pixel anomaly map. The combination, the
   temporal filter and the threshold change without retraining (:meth:`FastAed.with_scoring`,
   ``vadistill rescore``).

Departures from the paper, and why:

* Teachers. The paper distils two published object-centric detectors (Georgescu et al. 2021's
  background-agnostic framework and SSMTL++), each built on a YOLOv3 detector. Those are large and
  GPU-bound; here two CPU teachers of different kinds stand in (a kNN on pretrained appearance +
  flow features, an object auto-encoder), on boxes from background subtraction (the static
  cameras of the benchmarks allow it) instead of a pretrained detector; an ONNX detector or HOG can
  be plugged in through :class:`vadistill.objects.ProposalConfig`.
* Teacher scores are normalised per teacher by the 99th percentile of their scores on normal
  validation objects, so that maps of different teachers share a scale (the paper min-max
  normalises the teachers' scores; that would need the test set's range).
* kNN teacher scores of TRAINING objects (the student's targets) are computed against the other
  folds of training videos (a training object's nearest neighbour would otherwise be itself).
* Pseudo-anomalies (``pseudo_count`` > 0; not in the paper): the training videos are normal, so
  the teachers' maps on them never show what an anomaly looks like, and a frame-level student
  trained only on them has to extrapolate. We paste object sequences (``vadistill.data.pseudo``,
  e.g. people from another scene, at random scale and speed) into training clips, let the TEACHERS
  score them exactly like real footage, and add these clips and their teacher maps to the
  student's training set. The labels still come from the teachers only; no test data is used.
* Input size and student size. The paper uses 640x360 and measures its speed on a GPU. The
  defaults here (128x192: Ped2's 240x360 scaled by 8/15, its 2:3 aspect kept and divisible by 8,
  so the encoder's /8 grid is 16x24; widths 24/48/64, two blocks; 0.14 M parameters, 0.14 GFLOPs)
  are a general-purpose student. The committed Ped2 configuration (``configs/fast_aed_ped2.yaml``)
  is sized for the speed target on a 2-core CPU instead: 64x96 (x 4/15), widths 16/32/48, one
  block, 9x fewer FLOPs. Its 8x12 grid is smaller than the 16x16 head, which then upsamples it
  (adaptive average pooling: each cell is the mean of 1-2 grid cells); the 4x4 head still pools.
  Both heads pool the non-square grid adaptively, as the teacher maps are pooled from a
  non-square frame.
* Adversarial training done right. The authors' code computes the discriminator's loss on fakes
  as BCE(D(fake).detach(), 0): the OUTPUT is detached, so that term carries no gradient and the
  discriminators only ever learn from real maps (they drift to "everything is real" and the
  generator's adversarial term becomes meaningless). Here the student's maps are detached at the
  discriminator's INPUT, so D_k learns from fakes while the student is not updated by D's loss;
  in the student step the discriminator's graph is kept so the adversarial gradient reaches the
  student (D's parameters are frozen for that step).
* Model selection and early stopping use the distillation loss on held-out NORMAL training frames
  (last ``val_fraction`` of every training video); the authors' code keeps the epoch with the best
  TEST AUC, which reports an operating point no deployed system could choose.
* Score standardisation with normal validation statistics (inductive); the authors' evaluation
  smooths with their own kernel (``scoring.official_filter("fast-aed")``), available through
  ``temporal_filter``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from vadistill import distributed
from vadistill.checkpoint import load_method_checkpoint, save_checkpoint
from vadistill.data.clips import FrameCache, VideoLike, batch_indices, clip_indices, load_frames, resize_frames, video_name
from vadistill.config import check_bounds
from vadistill.data.pseudo import HarvestConfig, ObjectBank, PasteConfig, paste_object
from vadistill.errors import InputError
from vadistill.io.atomic import atomic_write_text
from vadistill.blocks.cvt import CvtBlock, TokenGrid
from vadistill.methods.aed_mae import clips_to_input, count_parameters
from vadistill.methods.base import VadMethod
from vadistill.objects import ObjectProposer, ProposalConfig
from vadistill.scoring import TemporalFilter, calibrate_threshold, smooth
from vadistill.teachers import (SCALES, AeTeacherConfig, KnnTeacherConfig, ObjectTeacher, build_teacher,
                                cached_video_maps, clip_maps, video_maps)
from vadistill.train import prepare_run_dir, run_stage

FORMAT_VERSION = 1
TEACHER_COMBINES = ("max", "mean")


# ----------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FastAedConfig:
    """Every setting of Fast-AED: teachers, student, distillation and scoring."""

    # -- teachers (Sec. 3.1) --
    teachers: tuple[str, ...] = ("knn", "ae")  # names in vadistill.teachers.TEACHERS
    proposals: ProposalConfig = field(default_factory=ProposalConfig)
    knn: KnnTeacherConfig = field(default_factory=KnnTeacherConfig)
    ae: AeTeacherConfig = field(default_factory=AeTeacherConfig)
    frame_offsets: tuple[int, ...] = (-3, 0, 3)  # clip frames relative to t (teachers and student)

    # -- student (Sec. 3.2) --
    input_size: tuple[int, int] = (128, 192)  # (H, W); paper 360x640; multiples of 8, at least 32 (see Departures)
    channels: tuple[int, int, int] = (24, 48, 64)  # widths of the three stride-2 convolutions
    depth: int = 2  # CvT blocks
    num_heads: int = 4
    mlp_ratio: float = 2.0
    dw_kernel: int = 3

    # -- training (Sec. 3.3) --
    seed: int = 0
    batch_size: int = 32
    lr: float = 1e-3  # student AdamW
    weight_decay: float = 1e-4
    disc_lr: float = 2e-4  # discriminators' Adam
    epochs: int = 10  # max epochs of the distillation stage
    patience: int = 4
    pretrain_epochs: int = 0  # auto-encoder pre-training of encoder + transformer (0 = off)
    val_fraction: float = 0.1  # last share of every training video held out as normal validation
    max_steps_per_epoch: int = 0  # 0 = a full pass
    adv_weight: float = 0.1  # weight of the adversarial term (0 = no discriminators)
    pseudo_count: int = 512  # pasted pseudo-anomaly clips scored by the teachers (0 = off; see Departures)
    paste: PasteConfig = field(default_factory=lambda: PasteConfig(probability=1.0, scale=(0.15, 0.5)))
    harvest: HarvestConfig = field(default_factory=HarvestConfig)

    # -- scoring (Sec. 3.4) --
    teacher_combine: str = "max"  # "max" (authors' evaluation) or "mean" over the teachers' maps
    temporal_filter: TemporalFilter = field(default_factory=lambda: TemporalFilter(kind="gaussian", sigma=5.0))
    threshold_quantile: float = 0.99
    inference_batch_size: int = 32

    def __post_init__(self):
        check_bounds(self, {
            "channels": ">=1", "depth": ">=1", "num_heads": ">=1", "mlp_ratio": ">0", "dw_kernel": ">=1",
            "batch_size": ">=1", "lr": ">0", "weight_decay": ">=0", "disc_lr": ">0", "epochs": ">=1", "patience": ">=1",
            "pretrain_epochs": ">=0", "val_fraction": "(0, 1)", "max_steps_per_epoch": ">=0", "adv_weight": ">=0",
            "pseudo_count": ">=0", "threshold_quantile": "(0, 1]", "inference_batch_size": ">=1"})
        h, w = self.input_size
        if h % 8 or w % 8 or h < 32 or w < 32:
            # the /8 grid must have at least 4 cells each way for the 4x4 head; a grid under 16 cells
            # is upsampled to the 16x16 head by adaptive average pooling (cells of 1-2 grid cells)
            raise ValueError(f"input_size {self.input_size} must be multiples of 8 and at least 32")
        if self.channels[-1] % self.num_heads:
            raise ValueError("channels[-1] must be divisible by num_heads")
        if 0 not in self.frame_offsets:
            raise ValueError("frame_offsets must contain 0")
        if not self.teachers or len(set(self.teachers)) != len(self.teachers):
            raise ValueError("teachers must name at least one teacher, each once")
        if self.teacher_combine not in TEACHER_COMBINES:
            raise ValueError(f"teacher_combine must be one of {TEACHER_COMBINES}")

    @classmethod
    def from_dict(cls, values: dict) -> "FastAedConfig":
        """Build from a plain dict (YAML, checkpoint); unknown keys are errors."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown FastAedConfig keys: {unknown}")
        nested = {"proposals": ProposalConfig.from_dict, "knn": lambda d: KnnTeacherConfig(**d),
                  "ae": AeTeacherConfig.from_dict, "paste": PasteConfig.from_dict,
                  "harvest": lambda d: HarvestConfig(**d), "temporal_filter": lambda d: TemporalFilter(**d)}
        kwargs = {}
        for key, value in values.items():
            if key in nested and isinstance(value, dict):
                value = nested[key](value)
            elif isinstance(value, list):
                value = tuple(value)
            kwargs[key] = value
        return cls(**kwargs)

    def to_dict(self) -> dict:
        return asdict(self)

    def teacher_settings(self, name: str) -> dict:
        return asdict(self.knn) if name == "knn" else asdict(self.ae)


# ----------------------------------------------------------------------------------------------
# Networks
# ----------------------------------------------------------------------------------------------
def _conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.GELU())


class FastAedStudent(nn.Module):
    """Frame-level student: 9-channel clip -> {1: (B, n, 1, 1), 4: (B, n, 4, 4), 16: (B, n, 16, 16)}."""

    def __init__(self, cfg: FastAedConfig, num_teachers: int):
        super().__init__()
        c1, c2, D = cfg.channels
        self.encoder = nn.Sequential(_conv(3 * len(cfg.frame_offsets), c1, 2), _conv(c1, c2, 2), _conv(c2, D, 2))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        self.blocks = nn.ModuleList(CvtBlock(D, cfg.num_heads, cfg.mlp_ratio, cfg.dw_kernel, 0.0) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(D, eps=1e-6)
        n = num_teachers
        self.head1 = nn.Sequential(nn.Linear(D, D), nn.GELU(), nn.Linear(D, n))
        self.head4 = nn.Sequential(nn.Conv2d(D, D, 1), nn.GELU(), nn.Conv2d(D, n, 1))
        self.head16 = nn.Sequential(nn.Conv2d(D, D // 2, 3, 1, 1), nn.GELU(), nn.Conv2d(D // 2, n, 1))
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, 9, H, W) -> (CLS (B, D), grid (B, D, H/8, W/8))."""
        grid = self.encoder(x)  # (B, D, h, w)
        B, D, h, w = grid.shape
        z = torch.cat((self.cls_token.expand(B, -1, -1), rearrange(grid, "b d h w -> b (h w) d")), dim=1)  # (B, 1+N, D)
        tokens = TokenGrid(h, w)
        for block in self.blocks:
            z = block(z, tokens)
        z = self.norm(z)
        return z[:, 0], tokens.to_image(z[:, 1:])

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        cls, grid = self.features(x)
        return {1: self.head1(cls)[..., None, None],  # (B, n, 1, 1)
                4: self.head4(F.adaptive_max_pool2d(grid, 4)),  # (B, n, 4, 4)
                16: F.adaptive_avg_pool2d(self.head16(grid), 16)}  # (B, n, 16, 16)


class InputDecoder(nn.Module):
    """Throw-away decoder of the auto-encoder pre-training: (B, D, H/8, W/8) -> (B, 9, H, W)."""

    def __init__(self, cfg: FastAedConfig):
        super().__init__()
        c1, c2, D = cfg.channels
        self.net = nn.Sequential(nn.ConvTranspose2d(D, c2, 4, 2, 1), nn.GELU(), nn.ConvTranspose2d(c2, c1, 4, 2, 1),
                                 nn.GELU(), nn.ConvTranspose2d(c1, 3 * len(cfg.frame_offsets), 4, 2, 1))

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        return self.net(grid)


class MapDiscriminator(nn.Module):
    """D_k: one teacher's three maps (1x1, 4x4, 16x16), upsampled to 16x16 and stacked -> real/fake logit."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, width, 3, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(width, 2 * width, 3, 2, 1),
                                 nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(2 * width * 16, 1))

    def forward(self, maps: dict[int, torch.Tensor]) -> torch.Tensor:
        """maps: {s: (B, 1, s, s)} -> (B,) logits."""
        x = torch.cat([F.interpolate(maps[s], size=16, mode="nearest") for s in SCALES], dim=1)  # (B, 3, 16, 16)
        return self.net(x).squeeze(1)


def teacher_slice(maps: dict[int, torch.Tensor], k: int) -> dict[int, torch.Tensor]:
    """{s: (B, n, s, s)} -> {s: (B, 1, s, s)} of teacher k."""
    return {s: m[:, k:k + 1] for s, m in maps.items()}


def discriminator_loss(disc: MapDiscriminator, real: dict[int, torch.Tensor], fake: dict[int, torch.Tensor]
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """BCE of D on real (teacher) maps -> 1 and on fake (student) maps -> 0; returns (real, fake) terms.

    The fakes are detached HERE, at D's input: D's loss then has gradients for D's parameters on
    both terms but never reaches the student. (Detaching D's OUTPUT instead, as the authors' code
    does, leaves the fake term without any gradient: D would never learn from the fakes.)
    """
    real_logit = disc(real)
    fake_logit = disc({s: m.detach() for s, m in fake.items()})
    return (F.binary_cross_entropy_with_logits(real_logit, torch.ones_like(real_logit)),
            F.binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit)))


def generator_loss(disc: MapDiscriminator, fake: dict[int, torch.Tensor]) -> torch.Tensor:
    """Adversarial term of the student: BCE(D(fake), 1); the graph through D reaches the student."""
    logit = disc(fake)
    return F.binary_cross_entropy_with_logits(logit, torch.ones_like(logit))


def distillation_loss(pred: dict[int, torch.Tensor], target: dict[int, torch.Tensor]) -> torch.Tensor:
    """Sum over scales and teachers of the MSE between student and teacher maps (Sec. 3.3)."""
    return sum(F.mse_loss(pred[s], target[s], reduction="none").mean(dim=(0, 2, 3)).sum() for s in SCALES)


# ----------------------------------------------------------------------------------------------
# The method
# ----------------------------------------------------------------------------------------------
@dataclass
class TeacherData:
    """Teacher maps for the student: per training video {s: (T, n, s, s)}, and the pseudo-anomaly set
    (clips (P, K, h, w, 3) uint8 at the student size, maps {s: (P, n, s, s)})."""

    video_maps: list[dict[int, np.ndarray]]
    pseudo_clips: np.ndarray
    pseudo_maps: dict[int, np.ndarray]


class FastAed(VadMethod):
    """Fast-AED behind the common method contract (see `vadistill.methods.base`).

    Args:
        config: a FastAedConfig, a dict of its fields, or None for the defaults.
        object_bank: objects pasted as pseudo-anomalies; None: harvested from the training videos.
        device: torch device of the student.

    Learned attributes: ``student_``, ``score_stats_``, ``threshold_``, ``history_``; after ``fit``
    (not after ``load``: only the student is deployed) also ``teachers_`` and ``proposer_``.
    """

    name = "fast-aed"
    config_class = FastAedConfig

    def __init__(self, config: FastAedConfig | dict | None = None, *, object_bank: ObjectBank | None = None,
                 device: str | torch.device = "cpu"):
        if isinstance(config, dict):
            config = FastAedConfig.from_dict(config)
        self.config = config or FastAedConfig()
        self.object_bank = object_bank
        self.device = torch.device(device)
        self.student_: FastAedStudent | None = None
        self.score_stats_: dict | None = None
        self.threshold_: float | None = None
        self.history_: list | None = None
        self.teachers_: dict[str, ObjectTeacher] | None = None
        self.proposer_: ObjectProposer | None = None
        self._cache = FrameCache()

    # -- teachers ------------------------------------------------------------------------------
    def _teacher_config(self, names: list[str]) -> dict:
        cfg = self.config
        return {"proposals": asdict(cfg.proposals), "frame_offsets": list(cfg.frame_offsets),
                "val_fraction": cfg.val_fraction, "train_videos": names,
                "teachers": {t: cfg.teacher_settings(t) for t in ("knn", "ae")}}

    def fit_teachers(self, videos: Sequence[np.ndarray], names: list[str], teacher_dir: str | os.PathLike, *,
                     resume: bool = True, progress: bool = True) -> list[list[np.ndarray]]:
        """Proposals and teachers on native-size normal videos, cached in `teacher_dir`; returns the boxes.

        The folder is a cache keyed by its config.json: every run with the same teacher settings
        and training videos reuses it (e.g. the ablations of a benchmark); other settings raise.
        """
        cfg = self.config
        folder = Path(teacher_dir)
        folder.mkdir(parents=True, exist_ok=True)
        settings = json.loads(json.dumps(self._teacher_config(names), default=str))
        config_path = folder / "config.json"
        if config_path.exists():
            try:
                cached = json.loads(config_path.read_text())
            except (OSError, ValueError) as error:
                raise InputError(config_path, f"unreadable teacher cache config ({error}); use another teacher_dir") from None
            if cached != settings:
                raise InputError(config_path, "teacher cache made with other teacher settings or training videos; "
                                 "use another teacher_dir")
        atomic_write_text(config_path, json.dumps(settings, indent=2, sort_keys=True) + "\n")
        self.proposer_ = ObjectProposer(cfg.proposals).fit(videos)
        boxes = []
        for name, frames in zip(names, videos):
            path = folder / "proposals" / f"train_{name}.npz"
            boxes.append(self._cached_boxes(path, lambda f=frames: self.proposer_.propose_video(f)))
        self.teachers_ = {}
        for teacher_name in cfg.teachers:
            path = folder / teacher_name / "teacher.ckpt"
            if resume and path.exists():
                teacher = ObjectTeacher.load(path)
            else:
                if progress:
                    print(f"[fast-aed] fitting teacher {teacher_name!r}", flush=True)
                teacher = build_teacher(teacher_name, cfg.teacher_settings(teacher_name))
                teacher.fit(videos, boxes, offsets=cfg.frame_offsets, val_fraction=cfg.val_fraction,
                            run_dir=folder / teacher_name, resume=resume, progress=progress)
                teacher.save(path)
            self.teachers_[teacher_name] = teacher
        return boxes

    @staticmethod
    def _cached_boxes(path: Path, compute) -> list[np.ndarray]:
        def pack():
            per_frame = compute()
            return {"boxes": np.concatenate(per_frame).astype(np.int32).reshape(-1, 4),
                    "counts": np.array([len(b) for b in per_frame], dtype=np.int64)}
        data = cached_video_maps(path, pack)
        return np.split(data["boxes"], np.cumsum(data["counts"])[:-1])

    def teacher_maps(self, video: VideoLike, teacher_dir: str | os.PathLike | None = None,
                     source_video: int | None = None, key: str | None = None) -> dict[str, dict[str, np.ndarray]]:
        """Maps of every fitted teacher on a video: {teacher: {"m1", "m4", "m16", "frame"}}.

        With `teacher_dir`, proposals and maps are cached per video under `key` (default
        ``"eval_<video name>"``: ``proposals/<key>.npz``, ``<teacher>/maps/<key>.npz``) and reused;
        give distinct keys to videos of the same name. `source_video`: index of the training video
        this is (its fold is ignored by the kNN teacher).
        """
        if self.teachers_ is None:
            raise RuntimeError("teacher maps need fitted teachers: call fit (teachers are not saved with the student)")
        name = key or f"eval_{video_name(video)}"
        state: dict = {}

        def frames() -> np.ndarray:
            if "frames" not in state:
                state["frames"] = load_frames(video)
            return state["frames"]

        def boxes() -> list[np.ndarray]:
            if "boxes" not in state:
                compute = lambda: self.proposer_.propose_video(frames())  # noqa: E731
                state["boxes"] = compute() if teacher_dir is None else \
                    self._cached_boxes(Path(teacher_dir) / "proposals" / f"{name}.npz", compute)
            return state["boxes"]

        out = {}
        for teacher_name, teacher in self.teachers_.items():
            compute = lambda t=teacher: video_maps(t, frames(), boxes(), self.config.frame_offsets, source_video)  # noqa: E731
            out[teacher_name] = compute() if teacher_dir is None else \
                cached_video_maps(Path(teacher_dir) / teacher_name / "maps" / f"{name}.npz", compute)
        return out

    def _pseudo_set(self, videos: Sequence[np.ndarray], names: list[str], teacher_dir: Path,
                    progress: bool) -> tuple[np.ndarray, dict[int, np.ndarray], str]:
        """Pasted clips scored by the teachers (cached): clips (P, K, h, w, 3), maps {s: (P, n, s, s)},
        and a description of the object bank."""
        cfg = self.config
        P, K = cfg.pseudo_count, len(cfg.frame_offsets)
        h, w = cfg.input_size
        empty = (np.zeros((0, K, h, w, 3), np.uint8), {s: np.zeros((0, len(cfg.teachers), s, s), np.float32) for s in SCALES})
        if P <= 0:
            return (*empty, "none")
        bank = self.object_bank
        description = bank.description if bank is not None else "harvested from the training videos"
        digest = hashlib.sha1(json.dumps([asdict(cfg.paste), asdict(cfg.harvest)], sort_keys=True).encode()).hexdigest()[:8]
        key = f"pseudo_{P}_{h}x{w}_seed{cfg.seed}_{digest}"

        def compute() -> dict[str, np.ndarray]:
            nonlocal bank
            if bank is None:  # harvested only when the cache has to be built
                bank = ObjectBank.harvest(videos, config=cfg.harvest, names=names, description=description)
            if len(bank) == 0:
                raise InputError(teacher_dir, "no object sequence for the pseudo-anomalies (set pseudo_count=0)")
            if progress:
                print(f"[fast-aed] scoring {P} pseudo-anomaly clips with the teachers", flush=True)
            centre = cfg.frame_offsets.index(0)
            lengths = np.array([len(v) for v in videos], dtype=np.float64)
            cuts = lengths - np.array([0 if cfg.val_fraction <= 0 else max(1, round(n * cfg.val_fraction)) for n in lengths])
            cuts = np.maximum(cuts, 1).astype(int)
            clips, deltas, boxes, sources = [], [], [], []
            for i in range(P):
                rng = np.random.default_rng([cfg.seed, 77, i])
                v = int(rng.choice(len(videos), p=cuts / cuts.sum()))
                t = int(rng.integers(cuts[v]))
                idx = clip_indices(len(videos[v]), t, cfg.frame_offsets)
                pasted, _ = paste_object(videos[v][idx], idx - t, bank.sample(rng), rng, cfg.paste)
                clips.append(pasted)
                deltas.append(idx - t)
                boxes.append(self.proposer_.propose(pasted[centre]))
                sources.append((v, t))
            clips, deltas = np.stack(clips), np.stack(deltas)
            out = {}
            for name, teacher in self.teachers_.items():
                parts = {s: [] for s in SCALES}
                for start in range(0, P, 32):
                    sl = slice(start, start + 32)
                    maps, _ = clip_maps(teacher, clips[sl], deltas[sl], boxes[sl], sources[sl])
                    for s in SCALES:
                        parts[s].append(maps[s])
                for s in SCALES:
                    out[f"{name}/m{s}"] = np.concatenate(parts[s]).astype(np.float32)
            out["clips"] = np.stack([resize_frames(c, cfg.input_size) for c in clips])
            return out

        data = cached_video_maps(teacher_dir / f"{key}.npz", compute)
        missing = [n for n in cfg.teachers if f"{n}/m1" not in data]
        if missing:
            raise InputError(teacher_dir / f"{key}.npz", f"pseudo-anomaly cache lacks teachers {missing}; delete it")
        maps = {s: np.stack([data[f"{n}/m{s}"] for n in cfg.teachers], axis=1) for s in SCALES}
        return data["clips"], maps, description

    # -- training ------------------------------------------------------------------------------
    def fit(self, train_videos: Sequence[VideoLike], *, run_dir: str | os.PathLike, resume: bool = False,
            progress: bool = True, teacher_dir: str | os.PathLike | None = None) -> "FastAed":
        """Teachers (cached), then optional auto-encoder pre-training, then adversarial distillation.

        Args:
            train_videos: normal videos of one static camera.
            run_dir: run folder (config.json, history.jsonl, stage checkpoints, model.ckpt).
            resume: continue an interrupted run.
            progress: progress bars and messages.
            teacher_dir: cache of proposals, teachers and teacher maps (default ``run_dir/teachers``);
                share it between runs that differ only in student settings.
        """
        cfg = self.config
        if not train_videos:
            raise InputError(run_dir, "no training video given")
        names = [video_name(v) for v in train_videos]
        if len(set(names)) != len(names):
            names = [f"{i:03d}_{n}" for i, n in enumerate(names)]
        teacher_dir = Path(teacher_dir) if teacher_dir is not None else Path(run_dir) / "teachers"
        native = [self._cache.get(v, None) for v in train_videos]  # (T, H0, W0, 3) each
        # Teachers and their maps are fitted once and cached: on several processes rank 0 does it
        # alone while the others wait, then they read the cache (only the student is data-parallel).
        with distributed.main_first(), distributed.alone():
            boxes = self.fit_teachers(native, names, teacher_dir, resume=True, progress=progress)
            video_targets = []
            for v, (name, frames) in enumerate(zip(names, native)):
                maps = {}
                for t_name, teacher in self.teachers_.items():
                    maps[t_name] = cached_video_maps(
                        teacher_dir / t_name / "train_maps" / f"{name}.npz",
                        lambda t=teacher, f=frames, b=boxes[v], i=v: video_maps(t, f, b, cfg.frame_offsets, source_video=i))
                video_targets.append({s: np.stack([maps[n][f"m{s}"] for n in cfg.teachers], axis=1) for s in SCALES})
            pseudo_clips, pseudo_maps, bank_description = self._pseudo_set(native, names, teacher_dir, progress)
        data = TeacherData(video_targets, pseudo_clips, pseudo_maps)
        small = [resize_frames(f, cfg.input_size) for f in native]
        del native
        self._cache.clear()

        prepare_run_dir(run_dir, {"method": self.name, "config": cfg.to_dict(), "train_videos": names,
                                  "teacher_dir": str(teacher_dir),
                                  "pseudo_anomalies": f"{len(pseudo_clips)} clips; objects {bank_description}"},
                        resume=resume, defaults={"config": FastAedConfig().to_dict()})
        torch.manual_seed(cfg.seed)
        student = FastAedStudent(cfg, len(cfg.teachers)).to(self.device)
        self.student_ = student
        train_items, val_items = self._split(small)
        history = []
        if cfg.pretrain_epochs > 0:
            history += self._pretrain(student, small, train_items, val_items, run_dir, resume, progress)
        history += self._distill(student, small, data, train_items, val_items, run_dir, resume, progress)
        student.eval()
        self.history_ = history
        self._calibrate(small, val_items)
        if distributed.is_main():
            self.save(Path(run_dir) / "model.ckpt")
        distributed.barrier()
        return self

    def _split(self, videos: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(M, 2) (video, t) items of training and of normal validation (last val_fraction of each video)."""
        train, val = [], []
        for v, frames in enumerate(videos):
            n = len(frames)
            n_val = 0 if self.config.val_fraction <= 0 else min(max(1, int(round(n * self.config.val_fraction))), n - 1)
            train += [(v, t) for t in range(n - n_val)]
            val += [(v, t) for t in range(n - n_val, n)]
        if not val:
            raise InputError("<train videos>", "val_fraction must hold back at least one normal validation frame")
        return np.array(train, dtype=np.int64), np.array(val, dtype=np.int64)

    def _inputs(self, videos: list[np.ndarray], items: np.ndarray) -> torch.Tensor:
        clips = np.stack([videos[v][clip_indices(len(videos[v]), t, self.config.frame_offsets)] for v, t in items])
        return clips_to_input(clips).to(self.device)  # (B, 9, H, W)

    def _batches(self, videos, data: TeacherData | None, items: np.ndarray, *, epoch: int, stage: int, shuffle: bool):
        """Batches (x, targets) over normal items and (when `data` has them) pseudo-anomaly clips.

        Sample index i < len(items) is a normal clip, i >= len(items) pseudo clip i - len(items).
        All randomness derives from (seed, stage, epoch).
        """
        cfg = self.config
        n_pseudo = 0 if data is None or not shuffle else len(data.pseudo_clips)
        total = len(items) + n_pseudo
        rng = np.random.default_rng([cfg.seed, stage, epoch])
        order = batch_indices(total, cfg.batch_size, shuffle=shuffle, seed=rng.integers(2**63),
                              drop_last=shuffle and total >= cfg.batch_size)
        for step, chunk in enumerate(order):
            if shuffle and cfg.max_steps_per_epoch and step >= cfg.max_steps_per_epoch:
                break
            normal = chunk[chunk < len(items)]
            pseudo = chunk[chunk >= len(items)] - len(items)
            clips = [videos[v][clip_indices(len(videos[v]), t, cfg.frame_offsets)] for v, t in items[normal]]
            clips += [data.pseudo_clips[i] for i in pseudo] if n_pseudo else []
            x = clips_to_input(np.stack(clips)).to(self.device)
            targets = None
            if data is not None:
                targets = {}
                for s in SCALES:
                    parts = [np.stack([data.video_maps[v][s][t] for v, t in items[normal]])] if len(normal) else []
                    if len(pseudo):
                        parts.append(data.pseudo_maps[s][pseudo])
                    targets[s] = torch.from_numpy(np.concatenate(parts)).float().to(self.device)  # (B, n, s, s)
            yield x, targets

    def _pretrain(self, student, videos, train_items, val_items, run_dir, resume, progress) -> list:
        """Stage 0: encoder + transformer as an auto-encoder of the 9-channel input (Sec. 3.3)."""
        cfg = self.config
        decoder = InputDecoder(cfg).to(self.device)
        params = [*student.encoder.parameters(), student.cls_token, *student.blocks.parameters(),
                  *student.norm.parameters(), *decoder.parameters()]
        optimizer = distributed.synchronize(torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay),
                                            student, decoder)

        def loss_of(x: torch.Tensor) -> torch.Tensor:
            return F.mse_loss(decoder(student.features(x)[1]), x)

        def step(batch) -> dict[str, float]:
            student.train()
            decoder.train()
            loss = loss_of(batch[0])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return {"loss": loss.item()}

        def validate() -> float:
            student.eval()
            decoder.eval()
            with torch.inference_mode():
                return float(np.mean([loss_of(x).item() for x, _ in
                                      self._batches(videos, None, val_items, epoch=0, stage=98, shuffle=False)]))

        result = run_stage("pretrain", train_step=step,
                           make_batches=lambda e: self._batches(videos, None, train_items, epoch=e, stage=0, shuffle=True),
                           validate=validate,
                           get_state=lambda: {"student": student.state_dict(), "decoder": decoder.state_dict(),
                                              "optimizer": optimizer.state_dict()},
                           set_state=lambda s: (student.load_state_dict(s["student"]), decoder.load_state_dict(s["decoder"]),
                                                optimizer.load_state_dict(s["optimizer"])),
                           num_epochs=cfg.pretrain_epochs, patience=cfg.patience, run_dir=run_dir, resume=resume,
                           progress=progress, on_epoch_start=lambda e: torch.manual_seed(cfg.seed * 1000 + e))
        return result.history

    def _distill(self, student, videos, data: TeacherData, train_items, val_items, run_dir, resume, progress) -> list:
        """Stage 1: multi-scale distillation + adversarial distillation with one discriminator per teacher."""
        cfg = self.config
        n = len(cfg.teachers)
        adversarial = cfg.adv_weight > 0
        discs = nn.ModuleList(MapDiscriminator() for _ in range(n)).to(self.device)
        opt_s = distributed.synchronize(torch.optim.AdamW(student.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay),
                                        student)
        opt_d = distributed.synchronize(torch.optim.Adam(discs.parameters(), lr=cfg.disc_lr, betas=(0.5, 0.999)), discs)

        def train_step(batch) -> dict[str, float]:
            x, target = batch
            student.train()
            pred = student(x)  # {s: (B, n, s, s)}
            out: dict[str, float] = {}
            if adversarial:
                # (1) discriminators: real = teacher maps, fake = student maps detached at D's input.
                discs.train()
                d_real = d_fake = 0.0
                for k, disc in enumerate(discs):
                    real_k, fake_k = discriminator_loss(disc, teacher_slice(target, k), teacher_slice(pred, k))
                    d_real, d_fake = d_real + real_k, d_fake + fake_k
                opt_d.zero_grad(set_to_none=True)
                (d_real + d_fake).backward()
                opt_d.step()
                out.update(d_real=d_real.item(), d_fake=d_fake.item())
            # (2) student: distillation + fooling the (now frozen) discriminators.
            kd = distillation_loss(pred, target)
            loss = kd
            if adversarial:
                discs.requires_grad_(False)
                adv = sum(generator_loss(disc, teacher_slice(pred, k)) for k, disc in enumerate(discs))
                discs.requires_grad_(True)
                loss = kd + cfg.adv_weight * adv
                out["adv"] = adv.item()
            opt_s.zero_grad(set_to_none=True)
            loss.backward()
            opt_s.step()
            out.update(loss=loss.item(), kd=kd.item())
            return out

        def validate() -> float:
            student.eval()
            with torch.inference_mode():
                losses = [distillation_loss(student(x), t).item() for x, t in
                          self._batches(videos, data, val_items, epoch=0, stage=99, shuffle=False)]
            return float(np.mean(losses))

        def get_state() -> dict:
            return {"student": student.state_dict(), "discs": discs.state_dict(),
                    "opt_s": opt_s.state_dict(), "opt_d": opt_d.state_dict()}

        def set_state(s: dict) -> None:
            student.load_state_dict(s["student"])
            discs.load_state_dict(s["discs"])
            opt_s.load_state_dict(s["opt_s"])
            opt_d.load_state_dict(s["opt_d"])

        result = run_stage("distill", train_step=train_step,
                           make_batches=lambda e: self._batches(videos, data, train_items, epoch=e, stage=1, shuffle=True),
                           validate=validate, get_state=get_state, set_state=set_state, num_epochs=cfg.epochs,
                           patience=cfg.patience, run_dir=run_dir, resume=resume, progress=progress,
                           on_epoch_start=lambda e: torch.manual_seed(cfg.seed * 1000 + 500 + e))
        return result.history

    # -- scoring -------------------------------------------------------------------------------
    def _combine_teachers(self, m: torch.Tensor) -> torch.Tensor:
        """(B, n, s, s) -> (B, s, s) over teachers."""
        return m.amax(dim=1) if self.config.teacher_combine == "max" else m.mean(dim=1)

    @torch.inference_mode()
    def head_terms(self, frames: np.ndarray, keep_maps: bool = False) -> tuple[dict[int, np.ndarray], np.ndarray | None]:
        """Per-head raw frame terms {s: (T,)} (max of the teacher-combined map) and optionally the
        teacher-combined 16x16 maps (T, 16, 16), for (T, h, w, 3) frames at the student size."""
        cfg, net = self.config, self.student_
        net.eval()
        T = len(frames)
        terms: dict[int, list] = {s: [] for s in SCALES}
        maps = []
        for first in range(0, T, cfg.inference_batch_size):
            ts = np.arange(first, min(T, first + cfg.inference_batch_size))
            x = clips_to_input(frames[clip_indices(T, ts, cfg.frame_offsets)]).to(self.device)
            pred = net(x)
            for s in SCALES:
                combined = self._combine_teachers(pred[s])  # (B, s, s)
                terms[s].append(combined.flatten(1).amax(dim=1).float().cpu().numpy())
                if keep_maps and s == 16:
                    maps.append(combined.float().cpu().numpy())
        return {s: np.concatenate(v).astype(np.float64) for s, v in terms.items()}, (np.concatenate(maps) if keep_maps else None)

    @staticmethod
    def raw_from_terms(terms: dict[int, np.ndarray], heads: Sequence[int] = SCALES) -> np.ndarray:
        """Frame score before standardisation: mean over heads of the heads' maxima (Sec. 3.4)."""
        return np.mean([terms[s] for s in heads], axis=0)

    def _standardise(self, raw: np.ndarray) -> np.ndarray:
        s = self.score_stats_
        return (raw - s["mean"]) / s["std"]

    def _calibrate(self, videos: list[np.ndarray], val_items: np.ndarray) -> None:
        """Mean/std of the raw frame score on normal validation frames, and the decision threshold."""
        raws = []
        for v in np.unique(val_items[:, 0]):
            ts = val_items[val_items[:, 0] == v, 1]
            frames = videos[v][ts.min():ts.max() + 1]
            raws.append(self.raw_from_terms(self.head_terms(frames)[0]))
        values = np.concatenate(raws)
        self.score_stats_ = {"mean": float(values.mean()), "std": float(max(values.std(), 1e-6 * (1 + abs(values.mean()))))}
        finals = [smooth(self._standardise(r), self.config.temporal_filter) for r in raws]
        self.threshold_ = float(calibrate_threshold(np.concatenate(finals), quantile=self.config.threshold_quantile))

    def _load_video(self, video: VideoLike) -> tuple[np.ndarray, tuple[int, int]]:
        native = load_frames(video)  # (T, H0, W0, 3)
        return resize_frames(native, self.config.input_size), native.shape[1:3]

    def score_terms(self, video: VideoLike) -> dict[int, np.ndarray]:
        """Raw per-head frame terms {1, 4, 16: (T,)} (for ablations over heads without re-running)."""
        self.check_fitted()
        return self.head_terms(self._load_video(video)[0])[0]

    def combine_terms(self, terms: dict[int, np.ndarray], *, heads: Sequence[int] = SCALES, raw: bool = False) -> np.ndarray:
        """Final frame scores from :meth:`score_terms` (the one scoring path)."""
        scores = self._standardise(self.raw_from_terms(terms, heads))
        return scores if raw else smooth(scores, self.config.temporal_filter)

    def anomaly_scores(self, video: VideoLike, *, raw: bool = False) -> np.ndarray:
        """(T,) frame scores, higher = more anomalous (raw=True: before the temporal filter)."""
        return self.combine_terms(self.score_terms(video), raw=raw)

    def anomaly_maps(self, video: VideoLike) -> np.ndarray:
        """(T, H, W) float32: the teacher-combined 16x16 head, upsampled (bilinear) to the frame.

        Units: teacher object scores (1 = 99th percentile of normal objects; 0 = no object).
        """
        return self.anomaly_scores_and_maps(video)[1]

    def anomaly_scores_and_maps(self, video: VideoLike, *, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        self.check_fitted()
        frames, (H, W) = self._load_video(video)
        terms, maps = self.head_terms(frames, keep_maps=True)
        pixel = np.stack([cv2.resize(m, (W, H), interpolation=cv2.INTER_LINEAR) for m in maps]).astype(np.float32)
        return self.combine_terms(terms), pixel

    # Settings that only change how the trained student is scored: the student predicts one map per
    # teacher, so how they are combined, the temporal filter and the threshold need no retraining.
    SCORING_FIELDS = ("teacher_combine", "temporal_filter", "threshold_quantile", "inference_batch_size")

    def with_scoring(self, train_videos: Sequence[VideoLike], *, object_bank: ObjectBank | None = None,
                     progress: bool = False, **changes) -> "FastAed":
        """A copy of this trained model with other scoring settings (SCORING_FIELDS), recalibrated
        on the held-out tail of the NORMAL training videos, as at the end of `fit` (the score
        statistics and the threshold depend on the settings). `object_bank` and `progress` are
        accepted for the common ``vadistill rescore`` call and unused: nothing is pasted here.

        Example: ``FastAed.load(path).with_scoring(train_videos, teacher_combine="mean")``.
        """
        copy = self._copy_with_scoring(changes)
        small = [copy._load_video(v)[0] for v in train_videos]
        copy._calibrate(small, copy._split(small)[1])
        return copy

    # -- persistence ---------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        self.check_fitted()
        save_checkpoint(path, {
            "format_version": FORMAT_VERSION, "method": self.name, "config": self.config.to_dict(),
            "state_dict": self.student_.state_dict(), "score_stats": self.score_stats_,
            "threshold": self.threshold_, "history": self.history_ or [],
        })

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> "FastAed":
        payload = load_method_checkpoint(path, cls.name, FORMAT_VERSION)
        try:
            method = cls(FastAedConfig.from_dict(payload["config"]), device=device)
            net = FastAedStudent(method.config, len(method.config.teachers))
            net.load_state_dict(payload["state_dict"])
        except (KeyError, ValueError, TypeError, RuntimeError) as error:
            raise InputError(path, f"checkpoint does not match this Fast-AED implementation: {error}") from None
        method.student_ = net.to(method.device).eval()
        method.score_stats_ = payload["score_stats"]
        method.threshold_ = payload["threshold"]
        method.history_ = payload.get("history", [])
        return method


def student_parameters(method: FastAed) -> int:
    """Learnable parameters of the deployed student (discriminators and pre-training decoder excluded)."""
    return count_parameters(method.student_)
