"""DAKD: Distilling Aggregated Knowledge with Disentangled Attention, for weakly-supervised VAD.

Dalvi, Dabouei, Dhanuka, Xu. "Distilling Aggregated Knowledge for Weakly-Supervised Video Anomaly
Detection", WACV 2025 (arXiv 2406.02831). Implemented from the paper's description.

How it works (reads top to bottom; shapes use the axis legend of :mod:`vadistill.types`):

1. Input: pre-extracted snippet features (16 frames each) of several backbones per video, with a
   video-level label only (1 = the video contains an anomaly somewhere); see :mod:`vadistill.data.weak`.
2. Teacher (Sec. 3.2): the Temporal Aggregation Module (TAM,
   :class:`vadistill.blocks.temporal_aggregation.TemporalAggregation`) projects every backbone to a
   common width d and fuses them with disentangled cross-attention (content->content within and across
   backbones, content->position, position->content, relative distances clipped at k). A snippet
   classifier (MLP, sigmoid) scores each fused snippet. Trained with the top-k MIL loss on video
   labels (:func:`vadistill.blocks.mil.topk_mil_loss`).
3. Student (Sec. 3.3): the same network on ONE backbone (the TAM with M = 1 is relative-position
   self-attention), trained with bi-level distillation from the frozen Teacher::

       L_student = L_MIL(s) + alpha * L_pred(s, t) + lambda * L_feat(z_s, z_t; tau, delta)

   * prediction level: BCE between the Student's snippet scores s and the Teacher's soft snippet
     scores t (soft labels), weight alpha;
   * feature level: InfoNCE with temperature tau between the Student's projected snippet embedding
     z_s and the Teacher's aggregated features z_t: the positive of a Student snippet is the Teacher
     feature of the same snippet, its negatives are the Teacher features of snippets whose Teacher
     pseudo-label (t > delta, and only inside abnormal videos) differs
     (:func:`vadistill.blocks.mil.pseudo_label_info_nce`);
   * the Student's own top-k MIL loss on the video labels.
4. Scoring: the Student's snippet scores (averaged over crops when the features have several),
   repeated over the 16 frames of each snippet (:func:`vadistill.data.weak.snippets_to_frames`).
   The Teacher can score too (:meth:`Dakd.teacher_snippet_scores`) when all its backbones are available.
5. Baseline: ``DakdConfig(distill=False)`` trains the same Student with its MIL loss only
   ("MIL-only"), the comparison that tells whether distillation helps.

Training uses :func:`vadistill.train.run_stage` (stages "teacher" and "student"): checkpoints each
epoch, resume, early stopping and best-epoch selection on a validation value computed on HELD-OUT
TRAINING videos with their video labels only (mean video-level top-k MIL loss); test labels are never
seen. Each step samples ``batch_size`` abnormal and ``batch_size`` normal training videos (RTFM-style
balanced batches) and one random crop per video.

Departures from the paper, and why:

* The paper's full text (exact equations, loss weighting and hyper-parameter values) could not be
  consulted while writing this (only its abstract and summaries were reachable). Everything below the
  level of the abstract's description — TAM with disentangled cross-attention, bi-level distillation
  (prediction level from MIL-trained soft labels, feature level with InfoNCE and a temperature), a
  single-backbone Student — is our reading, and the default values of alpha, tau, k, delta, lambda,
  the widths and the optimiser settings are our choices, not the paper's. The benchmark sweeps them.
* The loss is L_MIL + alpha L_pred + lambda L_feat with a separate weight lambda (default 1) for the
  feature level; the paper's exact combination was not available.
* InfoNCE positives / negatives (see 3.): other Teacher features with the *same* pseudo-label are
  excluded from the denominator instead of being negatives, so the contrast never pushes normal
  snippets away from other normal snippets. Pseudo-labels of snippets of normal videos are forced to
  normal (the video label says so).
* The Student reuses the TAM with one backbone (DeBERTa-style relative self-attention) so that
  Teacher and Student differ only by the aggregation over backbones; the paper's Student network may
  be a different base model.
* Backbones: the paper aggregates large pretrained video/image backbones (e.g. I3D and CLIP-like
  models). Here any of :data:`vadistill.backbones.BACKBONES` (I3D, MobileNetV2, and a weight-free
  HOG + optical-flow descriptor for diversity) can be combined; the Ped2 benchmark uses all three.
* Training videos longer than ``train_segments`` snippets are averaged into that many segments
  (RTFM's 32-segment preprocessing) to bound memory and time; scoring always uses every snippet.
* Multi-crop features: one random crop per video per step in training, scores averaged over crops
  at test time (the RTFM convention).
* Validation / model selection on held-out training videos with video labels (the paper selects
  on the test set as is common in this literature; we never do).

Shapes: B videos in a batch, T snippets, K crops, D feature width, d common width.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from vadistill import distributed
from vadistill.backbones import BACKBONES
from vadistill.config import check_bounds
from vadistill.blocks.mil import pseudo_label_info_nce, soft_label_bce, topk_count, topk_mean, topk_mil_loss
from vadistill.blocks.temporal_aggregation import TemporalAggregation
from vadistill.checkpoint import load_method_checkpoint, save_checkpoint
from vadistill.data.weak import SNIPPET_LENGTH, WeakDataset, WeakVideo, evaluate_snippet_scores, \
    load_features, load_weak_dataset, snippets_to_frames
from vadistill.errors import InputError
from vadistill.io.atomic import atomic_write_text
from vadistill.methods.base import VadMethod
from vadistill.train import prepare_run_dir, run_stage

FORMAT_VERSION = 1


@dataclass(frozen=True)
class DakdConfig:
    """Hyper-parameters of DAKD (defaults are our choices; see the module's "Departures").

    Attributes:
        teacher_backbones: backbones the Teacher aggregates (keys of ``BACKBONES`` or any feature name).
        student_backbone: the Student's single backbone.
        distill: False = MIL-only baseline (no Teacher; the Student learns from video labels only).
        dim: common width d of the TAM.
        heads: attention heads.
        max_distance: k, clipping distance of relative positions (snippets).
        dropout: dropout in the TAM and the classifier.
        alpha: weight of the prediction-level distillation (soft labels).
        feature_weight: lambda, weight of the feature-level distillation (InfoNCE).
        temperature: tau of the InfoNCE.
        threshold: delta, Teacher score above which a snippet is a pseudo-anomaly.
        topk: snippets averaged into the bag score (None: ``T // topk_ratio + 1``).
        topk_ratio: see `topk`.
        lr, weight_decay: Adam(W) settings.
        teacher_epochs, student_epochs: maximum epochs per stage.
        steps_per_epoch: optimisation steps per epoch.
        batch_size: abnormal videos per step (and as many normal ones).
        val_fraction: held-out share of the training videos (per class) for validation.
        patience: early-stopping patience in epochs (None: run all epochs, keep the best).
        train_segments: training videos longer than this are averaged into this many segments.
        max_contrast_snippets: snippets per step in the InfoNCE (random subset beyond this).
        seed: everything random derives from it.
    """

    teacher_backbones: tuple[str, ...] = ("i3d", "mobilenet_v2", "handcrafted")
    student_backbone: str = "i3d"
    distill: bool = True
    dim: int = 128
    heads: int = 4
    max_distance: int = 4
    dropout: float = 0.3
    alpha: float = 1.0
    feature_weight: float = 1.0
    temperature: float = 0.1
    threshold: float = 0.5
    topk: int | None = 3
    topk_ratio: float = 16.0
    lr: float = 5e-4
    weight_decay: float = 1e-3
    teacher_epochs: int = 30
    student_epochs: int = 30
    steps_per_epoch: int = 10
    batch_size: int = 8
    val_fraction: float = 0.2
    patience: int | None = None
    train_segments: int = 32
    max_contrast_snippets: int = 512
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "teacher_backbones", tuple(self.teacher_backbones))
        if not self.teacher_backbones and self.distill:
            raise ValueError("distillation needs at least one Teacher backbone")
        check_bounds(self, {
            "dim": ">=1", "heads": ">=1", "max_distance": ">=1", "dropout": "[0, 1)", "alpha": ">=0",
            "feature_weight": ">=0", "temperature": ">0", "threshold": "[0, 1]", "topk": ">=1", "topk_ratio": ">0",
            "lr": ">0", "weight_decay": ">=0", "teacher_epochs": ">=1", "student_epochs": ">=1",
            "steps_per_epoch": ">=1", "batch_size": ">=1", "val_fraction": "[0, 1)", "patience": ">=1",
            "train_segments": ">=1", "max_contrast_snippets": ">=2"})

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "DakdConfig":
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown DAKD config keys {sorted(unknown)}")
        return cls(**values)

    @property
    def backbones(self) -> tuple[str, ...]:
        """Every backbone the method reads (Teacher's and Student's, no duplicates)."""
        needed = self.teacher_backbones if self.distill else ()
        return tuple(dict.fromkeys(needed + (self.student_backbone,)))


# -- networks -----------------------------------------------------------------------------------
class SnippetClassifier(nn.Module):
    """(B, T, d) -> (B, T) anomaly scores in (0, 1): a small MLP, as the heads of RTFM-style models."""

    def __init__(self, dim: int, hidden: int = 128, dropout: float = 0.3):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, hidden // 4), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden // 4, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(x).squeeze(-1))


class DakdNet(nn.Module):
    """TAM over one or more backbones + snippet classifier (+ a projection head for the Student's InfoNCE)."""

    def __init__(self, input_dims: Sequence[int], config: DakdConfig, contrast_head: bool = False):
        super().__init__()
        self.aggregate = TemporalAggregation(input_dims, config.dim, config.heads, config.max_distance, config.dropout)
        self.classifier = SnippetClassifier(config.dim, dropout=config.dropout)
        self.contrast = nn.Sequential(nn.Linear(config.dim, config.dim), nn.ReLU(),
                                      nn.Linear(config.dim, config.dim)) if contrast_head else None

    def forward(self, features: Sequence[torch.Tensor], mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """[(B, T, D_m)] -> scores (B, T), aggregated features (B, T, d)."""
        z = self.aggregate(features, mask)
        return self.classifier(z), z


# -- data in memory -----------------------------------------------------------------------------
def _segment(x: np.ndarray, segments: int) -> np.ndarray:
    """(K, T, D) -> (K, segments, D) by averaging contiguous groups (RTFM's process_feat), if T > segments."""
    length = x.shape[1]
    if length <= segments:
        return x
    bounds = np.linspace(0, length, segments + 1).round().astype(int)
    return np.stack([x[:, a:max(b, a + 1)].mean(axis=1) for a, b in zip(bounds[:-1], bounds[1:])], axis=1)


@dataclass
class _Bank:
    """Features of the training videos, loaded once: per video {backbone: (K, T, D)}."""

    videos: list[WeakVideo]
    features: list[dict[str, np.ndarray]] = field(default_factory=list)

    @classmethod
    def load(cls, videos: Sequence[WeakVideo], backbones: Sequence[str], dims: Mapping[str, int] | None,
             segments: int) -> "_Bank":
        bank = cls(list(videos))
        for video in videos:
            arrays = video.load_all(list(backbones), dims)
            bank.features.append({b: _segment(a, segments) for b, a in arrays.items()})
        return bank

    def labels(self) -> np.ndarray:
        return np.array([v.label for v in self.videos], dtype=np.int64)

    def batch(self, indices: Sequence[int], backbones: Sequence[str], crops: Sequence[int] | None = None
              ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """Padded batch: {backbone: (B, T, D)}, mask (B, T), labels (B,). `crops`: one crop index per video."""
        lengths = [next(iter(self.features[i].values())).shape[1] for i in indices]
        longest = max(lengths)
        out = {}
        for b in backbones:
            rows = []
            for n, i in enumerate(indices):
                x = self.features[i][b]  # (K, T, D)
                crop = 0 if crops is None else crops[n] % x.shape[0]
                rows.append(np.pad(x[crop], ((0, longest - x.shape[1]), (0, 0))))
            out[b] = torch.from_numpy(np.stack(rows))  # (B, T, D)
        mask = torch.arange(longest)[None, :] < torch.tensor(lengths)[:, None]  # (B, T)
        labels = torch.tensor([self.videos[i].label for i in indices])
        return out, mask, labels


def split_train_val(videos: Sequence[WeakVideo], fraction: float, seed: int) -> tuple[list[WeakVideo], list[WeakVideo]]:
    """Stratified hold-out of training videos for validation (video labels only).

    Holds out ``round(fraction * n_c)`` videos of each class c (at least one when ``fraction > 0``),
    keeping at least one of each class for training. When a class is too small the whole training
    set doubles as validation (documented fallback for tiny splits).
    """
    rng = np.random.default_rng([seed, 7])
    train, val = [], []
    for label in (0, 1):
        group = [v for v in videos if v.label == label]
        order = rng.permutation(len(group))
        count = 0 if fraction <= 0 else max(1, int(round(fraction * len(group))))
        if len(group) - count < 1:
            count = 0
        val += [group[i] for i in order[:count]]
        train += [group[i] for i in order[count:]]
    if not val or len({v.label for v in val}) < 2:
        return list(videos), list(videos)
    return train, val


# -- the method ---------------------------------------------------------------------------------
class Dakd(VadMethod):
    """DAKD Teacher/Student on snippet features (module docstring). Learned attributes end in "_".

    Example::

        data = load_ped2_weak("features/", "/data/ucsd_ped2")   # {backbone}/ subfolders
        model = Dakd(DakdConfig()).fit(data.train, run_dir="runs/dakd")
        scores = model.snippet_scores(data.test[0])              # (T,) Student scores
        frames = model.frame_scores(data.test[0])                # (num_frames,)
    """

    name = "dakd"
    config_class = DakdConfig

    def __init__(self, config: DakdConfig | None = None, device: str | torch.device = "cpu"):
        self.config = config or DakdConfig()
        self.device = torch.device(device)
        self.student_: DakdNet | None = None
        self.teacher_: DakdNet | None = None
        self.input_dims_: dict[str, int] | None = None
        self.history_: list[dict] | None = None

    # -- training ------------------------------------------------------------------------------
    def fit(self, train_videos: Sequence[WeakVideo], *, run_dir: str | os.PathLike, resume: bool = False,
            progress: bool = True, teacher: "Dakd | None" = None) -> "Dakd":
        """Train the Teacher (unless `teacher` is given or ``distill=False``), then the Student.

        Args:
            train_videos: :class:`WeakVideo` training videos with video labels and features of
                ``config.backbones``.
            run_dir: run folder (config.json, history.jsonl, stage checkpoints, model.ckpt).
            resume: continue an interrupted run in `run_dir`.
            progress: tqdm bars and per-epoch lines.
            teacher: a fitted Dakd whose Teacher is reused (same Teacher backbones); skips stage 1.
                Used by ablations that only change Student-side settings (alpha, tau, delta).

        Raises:
            InputError: no training videos of one class, features missing or invalid.
        """
        cfg = self.config
        videos = list(train_videos)
        if not videos or not all(isinstance(v, WeakVideo) for v in videos):
            raise InputError(run_dir, "DAKD trains on WeakVideo features (vadistill.data.weak); "
                             "extract features first (vadistill extract) and load a weak dataset")
        if {v.label for v in videos} != {0, 1}:
            raise InputError(run_dir, "weakly-supervised training needs abnormal AND normal training videos")
        torch.manual_seed(cfg.seed)
        train_set, val_set = split_train_val(videos, cfg.val_fraction, cfg.seed)
        dims = {b: BACKBONES[b].feature_dim for b in cfg.backbones if b in BACKBONES}
        train_bank = _Bank.load(train_set, cfg.backbones, dims, cfg.train_segments)
        val_bank = _Bank.load(val_set, cfg.backbones, dims, cfg.train_segments)
        self.input_dims_ = {b: next(iter(x[b] for x in train_bank.features)).shape[-1] for b in cfg.backbones}
        prepare_run_dir(run_dir, {"method": self.name, "config": cfg.to_dict(),
                                  "train_videos": [v.name for v in train_set], "val_videos": [v.name for v in val_set],
                                  "teacher": "given" if teacher is not None else "trained"}, resume=resume,
                        defaults={"config": DakdConfig().to_dict()})
        history: list[dict] = []

        if cfg.distill:
            if teacher is not None:
                if teacher.teacher_ is None or tuple(teacher.config.teacher_backbones) != cfg.teacher_backbones:
                    raise ValueError("the given teacher has no Teacher network for these backbones")
                self.teacher_ = copy.deepcopy(teacher.teacher_).to(self.device)
            else:
                self.teacher_ = DakdNet([self.input_dims_[b] for b in cfg.teacher_backbones], cfg).to(self.device)
                history += self._train_net("teacher", self.teacher_, cfg.teacher_backbones, train_bank, val_bank,
                                           run_dir, resume, progress, distill_from=None)
            self.teacher_.eval()
            for p in self.teacher_.parameters():
                p.requires_grad_(False)

        self.student_ = DakdNet([self.input_dims_[cfg.student_backbone]], cfg, contrast_head=cfg.distill).to(self.device)
        history += self._train_net("student", self.student_, (cfg.student_backbone,), train_bank, val_bank,
                                   run_dir, resume, progress, distill_from=self.teacher_ if cfg.distill else None)
        self.student_.eval()
        self.history_ = history
        if distributed.is_main():
            self.save(Path(run_dir) / "model.ckpt")
        distributed.barrier()
        return self

    def _batches(self, bank: _Bank, epoch: int, stage: int):
        """Balanced batches of one epoch; randomness from (seed, stage, epoch) so resume is exact."""
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, stage, epoch])
        labels = bank.labels()
        abnormal, normal = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
        for _ in range(cfg.steps_per_epoch):
            picks = np.concatenate([rng.choice(abnormal, cfg.batch_size, replace=len(abnormal) < cfg.batch_size),
                                    rng.choice(normal, cfg.batch_size, replace=len(normal) < cfg.batch_size)])
            yield picks.tolist(), rng.integers(0, 10, size=len(picks)).tolist()

    def _k(self, mask: torch.Tensor) -> torch.Tensor:
        return topk_count(mask.sum(dim=1), self.config.topk, self.config.topk_ratio)

    def _train_net(self, stage: str, net: DakdNet, backbones: Sequence[str], train_bank: _Bank, val_bank: _Bank,
                   run_dir: str | os.PathLike, resume: bool, progress: bool, distill_from: DakdNet | None) -> list[dict]:
        cfg = self.config
        device = self.device
        optimizer = distributed.synchronize(torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay), net)
        stage_id = 1 if stage == "teacher" else 2
        all_backbones = list(dict.fromkeys(list(backbones) + (list(cfg.teacher_backbones) if distill_from else [])))

        def step(batch: tuple[list[int], list[int]]) -> dict[str, float]:
            indices, crops = batch
            feats, mask, labels = train_bank.batch(indices, all_backbones, crops)
            feats = {b: x.to(device) for b, x in feats.items()}
            mask, labels = mask.to(device), labels.to(device)
            net.train()
            scores, z = net([feats[b] for b in backbones], mask)  # (B, T), (B, T, d)
            mil = topk_mil_loss(scores, labels, self._k(mask), mask)
            losses = {"mil": mil}
            loss = mil
            if distill_from is not None:
                with torch.no_grad():
                    t_scores, t_z = distill_from([feats[b] for b in cfg.teacher_backbones], mask)
                pred = soft_label_bce(scores, t_scores, mask)  # prediction level
                # Feature level: pseudo-labels by delta, forced normal inside normal videos.
                pseudo = (t_scores > cfg.threshold) & (labels[:, None] == 1)  # (B, T)
                flat = mask.reshape(-1)
                s_emb = net.contrast(z).reshape(-1, z.shape[-1])[flat]  # (N, d)
                t_emb = t_z.reshape(-1, t_z.shape[-1])[flat]  # (N, d)
                p_flat = pseudo.reshape(-1)[flat]
                if len(s_emb) > cfg.max_contrast_snippets:
                    keep = torch.randperm(len(s_emb), device=device)[:cfg.max_contrast_snippets]
                    s_emb, t_emb, p_flat = s_emb[keep], t_emb[keep], p_flat[keep]
                feat = pseudo_label_info_nce(s_emb, t_emb, p_flat, cfg.temperature)
                loss = mil + cfg.alpha * pred + cfg.feature_weight * feat
                losses.update(pred=pred, feat=feat)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return {"loss": loss.item(), **{k: v.item() for k, v in losses.items()}}

        def validate() -> float:
            """Mean video-level MIL loss on held-out training videos (all crops averaged)."""
            net.eval()
            losses = []
            with torch.inference_mode():
                for i, video in enumerate(val_bank.videos):
                    arrays = val_bank.features[i]
                    x = [torch.from_numpy(arrays[b]).to(device) for b in backbones]  # (K, T, D) each
                    scores = net(x)[0].mean(dim=0, keepdim=True)  # crops as batch -> (1, T)
                    bag = topk_mean(scores, self._k(torch.ones_like(scores, dtype=torch.bool))).clamp(1e-6, 1 - 1e-6)
                    y = float(video.label)
                    losses.append(-(y * torch.log(bag) + (1 - y) * torch.log(1 - bag)).item())
            return float(np.mean(losses))

        def get_state() -> dict:
            return {"net": net.state_dict(), "optimizer": optimizer.state_dict()}

        def set_state(saved: dict) -> None:
            net.load_state_dict(saved["net"])
            optimizer.load_state_dict(saved["optimizer"])

        epochs = cfg.teacher_epochs if stage == "teacher" else cfg.student_epochs
        result = run_stage(stage, train_step=step, make_batches=lambda e: self._batches(train_bank, e, stage_id),
                           validate=validate, get_state=get_state, set_state=set_state, num_epochs=epochs,
                           patience=cfg.patience, run_dir=run_dir, resume=resume, progress=progress,
                           on_epoch_start=lambda e: torch.manual_seed(cfg.seed * 1000 + 100 * stage_id + e))
        return result.history

    # -- scoring -------------------------------------------------------------------------------
    def _inputs(self, features: Any, backbones: Sequence[str]) -> list[np.ndarray]:
        """WeakVideo / {backbone: array or path} / one array or path (single backbone) -> [(K, T, D)] aligned."""
        if isinstance(features, WeakVideo):
            arrays = features.load_all(list(backbones), {b: self.input_dims_[b] for b in backbones})
            return [arrays[b] for b in backbones]
        if not isinstance(features, Mapping):
            if len(backbones) != 1:
                raise ValueError(f"the Teacher needs features of {list(backbones)}: pass a dict or a WeakVideo")
            features = {backbones[0]: features}
        out = []
        for b in backbones:
            if b not in features:
                raise InputError(b, f"no features of backbone {b} given (need {list(backbones)})")
            value = features[b]
            if isinstance(value, (str, os.PathLike)):
                value = load_features(value, self.input_dims_[b])
            value = np.asarray(value, dtype=np.float32)
            if value.ndim == 2:
                value = value[None]
            elif value.ndim == 3 and value.shape[0] not in (1, 5, 10) and value.shape[1] in (1, 5, 10):
                value = value.transpose(1, 0, 2)  # (T, K, D) -> (K, T, D)
            if value.ndim != 3 or value.shape[-1] != self.input_dims_[b] or not np.isfinite(value).all():
                raise InputError(b, f"features of shape {value.shape}: expected finite [T, {self.input_dims_[b]}] "
                                 f"or [crops, T, {self.input_dims_[b]}]")
            out.append(value)
        shortest = min(x.shape[1] for x in out)
        return [x[:, :shortest] for x in out]

    def _score(self, net: DakdNet, arrays: Sequence[np.ndarray]) -> np.ndarray:
        net.eval()
        with torch.inference_mode():
            x = [torch.from_numpy(np.ascontiguousarray(a)).to(self.device) for a in arrays]  # (K, T, D) each
            return net(x)[0].mean(dim=0).double().cpu().numpy()  # crops averaged -> (T,)

    def snippet_scores(self, features: Any) -> np.ndarray:
        """(T,) Student snippet scores in (0, 1), higher = more anomalous.

        Args:
            features: a :class:`WeakVideo`, the Student backbone's features (array or ``.npy`` path,
                ``[T, D]`` / ``[crops, T, D]`` / ``[T, crops, D]``), or ``{backbone: features}``.
        """
        self.check_fitted()
        return self._score(self.student_, self._inputs(features, [self.config.student_backbone]))

    def teacher_snippet_scores(self, features: Any) -> np.ndarray:
        """(T,) Teacher snippet scores (needs the features of every Teacher backbone)."""
        self.check_fitted()
        if self.teacher_ is None:
            raise ValueError("this model has no Teacher (MIL-only baseline)")
        return self._score(self.teacher_, self._inputs(features, list(self.config.teacher_backbones)))

    def frame_scores(self, features: Any, num_frames: int | None = None, teacher: bool = False) -> np.ndarray:
        """(num_frames,) frame scores: snippet scores repeated over 16 frames, truncated / edge-padded.

        `num_frames` defaults to the WeakVideo's frame count, else 16 x snippets.
        """
        scores = self.teacher_snippet_scores(features) if teacher else self.snippet_scores(features)
        if num_frames is None:
            num_frames = features.frame_count(len(scores)) if isinstance(features, WeakVideo) else len(scores) * SNIPPET_LENGTH
        return snippets_to_frames(scores, num_frames)

    def evaluate(self, dataset: WeakDataset, teacher: bool = False) -> float:
        """The dataset's frame metric (AUC / AP) of the Student's (or Teacher's) scores on its test videos."""
        score = self.teacher_snippet_scores if teacher else self.snippet_scores
        return evaluate_snippet_scores(dataset, {v.name: score(v) for v in dataset.test})

    # VadMethod contract on raw videos: features are extracted on the fly with the Student backbone.
    def anomaly_scores(self, video: Any, *, raw: bool = False) -> np.ndarray:
        """(T,) frame scores of a video file / frame folder (Student backbone features, centre crop).

        DAKD applies no temporal filter, so `raw` changes nothing.
        """
        from vadistill.backbones.extract import extract_video  # lazy: pulls in the video stack
        from vadistill.io.video import open_video

        self.check_fitted()
        source = getattr(video, "source", video)
        if not isinstance(source, (str, os.PathLike)):
            raise InputError("video", "DAKD scores video files or frame folders (features are extracted from them)")
        backbone = self.config.student_backbone
        if backbone not in BACKBONES:
            raise InputError(backbone, "the Student backbone is not a built-in backbone: extract its features yourself")
        model = BACKBONES[backbone].build().to(self.device)
        feats = extract_video(source, model, backbone, "center", device=self.device)  # (T, D)
        with open_video(source) as reader:
            num_frames = len(reader)
        return snippets_to_frames(self.snippet_scores(feats), num_frames)

    def anomaly_maps(self, video: Any) -> np.ndarray:
        raise NotImplementedError("DAKD scores snippets from global features: it has no pixel-level anomaly maps")

    # -- persistence ---------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        self.check_fitted()
        save_checkpoint(path, {
            "format_version": FORMAT_VERSION, "method": self.name, "config": self.config.to_dict(),
            "input_dims": dict(self.input_dims_),
            "student": self.student_.state_dict(),
            "teacher": self.teacher_.state_dict() if self.teacher_ is not None else None,
            "history": json.loads(json.dumps(self.history_ or [])),
            "threshold": None,
        })

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> "Dakd":
        payload = load_method_checkpoint(path, cls.name, FORMAT_VERSION)
        try:
            method = cls(DakdConfig.from_dict(payload["config"]), device=device)
            cfg = method.config
            dims = dict(payload["input_dims"])
            student = DakdNet([dims[cfg.student_backbone]], cfg, contrast_head=cfg.distill)
            student.load_state_dict(payload["student"])
            teacher = None
            if payload.get("teacher") is not None:
                teacher = DakdNet([dims[b] for b in cfg.teacher_backbones], cfg)
                teacher.load_state_dict(payload["teacher"])
        except (KeyError, ValueError, TypeError, RuntimeError) as error:
            raise InputError(path, f"checkpoint does not match this DAKD implementation: {error}") from None
        method.input_dims_ = dims
        method.student_ = student.to(method.device).eval()
        method.teacher_ = teacher.to(method.device).eval() if teacher is not None else None
        method.history_ = payload.get("history", [])
        return method


def train_dakd(features_dir: str | os.PathLike | Mapping[str, str | os.PathLike], dataset: str,
               config: DakdConfig | Mapping[str, Any] | None = None, run_dir: str | os.PathLike = "runs/dakd", *,
               annotations: str | os.PathLike | None = None, resume: bool = False, progress: bool = True) -> dict:
    """Train DAKD on a weakly-supervised dataset's features and evaluate it (for the CLI).

    Args:
        features_dir: folder with one subfolder per backbone (``<features_dir>/<backbone>/<video>_<backbone>.npy``,
            what ``vadistill extract ... --out <features_dir>/<backbone>`` writes), or {backbone: folder}.
        dataset: "ucf_crime", "xd_violence", "shanghaitech_weak" or "ped2_weak".
        config: a DakdConfig or a dict of its fields (None: defaults).
        run_dir: run folder: config.json, history.jsonl, stage checkpoints, ``model.ckpt``, ``results.json``.
        annotations: the dataset's annotation folder (split lists and ground truth; see
            :mod:`vadistill.data.weak`); default ``<data root>/<dataset>``.
        resume: continue an interrupted run.
        progress: progress bars.

    Returns:
        {"dataset", "metric", "student", "teacher" (None for MIL-only), "checkpoint", "run_dir"}; also
        written to ``<run_dir>/results.json``.

    Raises:
        InputError: unknown dataset, missing annotations or features, invalid features.
    """
    from vadistill.data.layout import dataset_root

    if config is None:
        config = DakdConfig()
    elif isinstance(config, Mapping):
        try:
            config = DakdConfig.from_dict(config)
        except (TypeError, ValueError) as error:
            raise InputError("config", str(error)) from None
    annotations = Path(annotations) if annotations is not None else dataset_root(dataset)
    data = load_weak_dataset(dataset, features_dir, annotations, backbones=list(config.backbones))
    # Every video's features (test ones too) are checked before training, not found bad after it.
    data.check(list(config.backbones), {b: BACKBONES[b].feature_dim for b in config.backbones if b in BACKBONES})
    model = Dakd(config).fit(data.train, run_dir=run_dir, resume=resume, progress=progress)
    if not distributed.is_main():  # the other training processes stop here; rank 0 evaluates
        return {"run_dir": str(run_dir), "rank": distributed.rank()}
    result = {"dataset": data.name, "metric": data.metric, "student": model.evaluate(data),
              "teacher": model.evaluate(data, teacher=True) if model.teacher_ is not None else None,
              "checkpoint": str(Path(run_dir) / "model.ckpt"), "run_dir": str(run_dir), "notes": data.notes}
    atomic_write_text(Path(run_dir) / "results.json", json.dumps(result, indent=2) + "\n")
    return result


__all__ = ["Dakd", "DakdConfig", "DakdNet", "train_dakd", "split_train_val"]
