"""Losses for weakly-supervised snippet scoring: top-k multiple-instance learning and InfoNCE.

Top-k MIL (the bag score of RTFM, Tian et al. ICCV 2021, and of DAKD's base models): a video is a
bag of T snippets with one video-level label y in {0, 1}; the bag score is the mean of its k
highest snippet scores and is trained with binary cross-entropy::

    s_bag = (1/k) sum_{t in topk(s)} s_t,        L_MIL = -[y log s_bag + (1 - y) log(1 - s_bag)]   (1)

so an abnormal video must contain a few high-scoring snippets and a normal video none.

InfoNCE (van den Oord et al. 2018) for one anchor q with positive keys P and negative keys N,
cosine similarity sim and temperature tau::

    L(q) = -log( sum_{p in P} exp(sim(q, p)/tau) / (sum_{p in P} exp(sim(q, p)/tau) + sum_{n in N} exp(sim(q, n)/tau)) )   (2)

averaged over anchors that have at least one positive and one negative. With one positive per
anchor this is the usual InfoNCE; DAKD's feature-level distillation (paper Sec. 3.3) builds P and N
from the Teacher's pseudo-labels (:func:`pseudo_label_info_nce`).

Shapes (axis legend in :mod:`vadistill.types`): B videos, T snippets, N anchors, M keys, D width.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

EPS = 1e-6


def topk_count(lengths: torch.Tensor, k: int | None = None, ratio: float | None = None) -> torch.Tensor:
    """Per-video k: a fixed `k`, or ``floor(T / ratio) + 1`` snippets (RTFM's UCF setting uses 1/16), at most T.

    Args:
        lengths: (B,) valid snippets per video.
        k: fixed count (wins when given).
        ratio: snippets per selected snippet when `k` is None.
    """
    lengths = lengths.long()
    if k is not None:
        counts = torch.full_like(lengths, int(k))
    elif ratio is not None:
        counts = torch.div(lengths, ratio, rounding_mode="floor").long() + 1
    else:
        raise ValueError("give k or ratio")
    return torch.clamp(torch.minimum(counts, lengths), min=1)


def topk_mean(scores: torch.Tensor, k: torch.Tensor | int, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of the k largest valid scores of each row.

    Args:
        scores: (B, T) snippet scores.
        k: int, or (B,) per-row counts (each >= 1 and <= the row's valid count).
        mask: (B, T) bool, True = valid snippet (None: all valid).

    Returns:
        (B,) bag scores, Eq. (1).
    """
    batch, length = scores.shape
    if mask is None:
        mask = torch.ones_like(scores, dtype=torch.bool)
    k = torch.as_tensor(k, device=scores.device).long().expand(batch)
    # Padded snippets sort last; only the first k of each row are averaged.
    ordered = torch.sort(scores.masked_fill(~mask, float("-inf")), dim=1, descending=True).values  # (B, T)
    keep = torch.arange(length, device=scores.device)[None, :] < k[:, None]  # (B, T)
    return torch.where(keep, ordered, torch.zeros_like(ordered)).sum(dim=1) / k.to(scores.dtype)


def topk_mil_loss(scores: torch.Tensor, labels: torch.Tensor, k: torch.Tensor | int,
                  mask: torch.Tensor | None = None) -> torch.Tensor:
    """Top-k MIL loss, Eq. (1), averaged over videos.

    Args:
        scores: (B, T) snippet scores in (0, 1).
        labels: (B,) video labels (1 = abnormal).
        k: int or (B,) counts (see :func:`topk_count`).
        mask: (B, T) valid snippets.
    """
    bag = topk_mean(scores, k, mask).clamp(EPS, 1 - EPS)  # (B,)
    return F.binary_cross_entropy(bag, labels.to(bag.dtype))


def info_nce(anchors: torch.Tensor, keys: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
             temperature: float) -> torch.Tensor:
    """InfoNCE with cosine similarity and explicit positive / negative masks, Eq. (2).

    Args:
        anchors: (N, D) queries.
        keys: (M, D) candidates.
        positive: (N, M) bool, True where key m is a positive of anchor n.
        negative: (N, M) bool, True where key m is a negative of anchor n (pairs in neither mask are ignored).
        temperature: tau > 0.

    Returns:
        Scalar mean over anchors with at least one positive and one negative (0 when none has).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    logits = F.normalize(anchors, dim=-1) @ F.normalize(keys, dim=-1).T / temperature  # (N, M)
    neg_inf = torch.finfo(logits.dtype).min
    pos_lse = torch.logsumexp(logits.masked_fill(~positive, neg_inf), dim=1)  # (N,)
    all_lse = torch.logsumexp(logits.masked_fill(~(positive | negative), neg_inf), dim=1)  # (N,)
    valid = positive.any(dim=1) & negative.any(dim=1)
    if not bool(valid.any()):
        return logits.sum() * 0.0  # keeps the graph, contributes nothing
    return (all_lse - pos_lse)[valid].mean()


def pseudo_label_info_nce(student: torch.Tensor, teacher: torch.Tensor, pseudo_labels: torch.Tensor,
                          temperature: float) -> torch.Tensor:
    """DAKD feature-level distillation (paper Sec. 3.3) as InfoNCE over snippets.

    Anchor: the Student's embedding of snippet i. Positive: the Teacher's aggregated feature of the
    same snippet i. Negatives: the Teacher features of the snippets whose pseudo-label differs from
    snippet i's (normal vs. abnormal by the threshold delta on the Teacher's scores). Teacher features
    of *other* snippets with the same pseudo-label are neither: pushing a normal snippet away from
    other normal snippets would fight the MIL objective.

    Args:
        student: (N, D) Student embeddings (projected to the Teacher's width).
        teacher: (N, D) Teacher aggregated features of the same snippets (detached by the caller).
        pseudo_labels: (N,) bool/int, 1 = Teacher says abnormal.
        temperature: tau.
    """
    n = student.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=student.device)
    labels = pseudo_labels.bool()
    different = labels[:, None] != labels[None, :]  # (N, N)
    return info_nce(student, teacher, eye, different, temperature)


def soft_label_bce(student_scores: torch.Tensor, teacher_scores: torch.Tensor,
                   mask: torch.Tensor | None = None) -> torch.Tensor:
    """Prediction-level distillation: BCE of Student snippet scores against the Teacher's soft scores.

    Args:
        student_scores: (B, T) in (0, 1).
        teacher_scores: (B, T) soft labels in [0, 1] (no gradient).
        mask: (B, T) valid snippets.
    """
    per = F.binary_cross_entropy(student_scores.clamp(EPS, 1 - EPS), teacher_scores.detach(), reduction="none")
    if mask is None:
        return per.mean()
    return (per * mask).sum() / mask.sum().clamp(min=1)


def bce_value(p: float, y: float) -> float:
    """Plain-Python binary cross-entropy (for reports and tests)."""
    p = min(max(p, EPS), 1 - EPS)
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))
