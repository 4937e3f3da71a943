"""Temporal Aggregation Module (TAM) with disentangled cross-attention (DAKD, Dalvi et al. WACV 2025, Sec. 3.2).

The TAM fuses the snippet features of M backbones into one sequence. Each backbone's features are
projected to a common width, and each backbone attends over time with attention scores that are
*disentangled* into content and relative-position parts, as in DeBERTa (He et al., ICLR 2021,
Eqs. 2-4), plus a *cross-backbone* content term that lets the other backbones decide where a backbone
looks. Math (per attention head; shapes in the axis legend of :mod:`vadistill.types`)::

    (T1) H_m   = LN(X_m) W_m^in                      X_m: (T, D_m) -> H_m: (T, d)  per-backbone projection
    (T2) Q_m = H_m W_m^Q,  K_m = H_m W_m^K,  V_m = H_m W_m^V                   content projections
         Q^r = P W^{Q,r},  K^r = P W^{K,r}           P: (2k, d) relative-position embeddings (shared)
    (T3) delta(i, j) = 0          if i - j <= -k
                       2k - 1     if i - j >= k       relative distance clipped at k (DeBERTa Eq. 3)
                       i - j + k  otherwise
    (T4) A^m_ij = [ Q_m,i . K_m,j                                   content -> content, within backbone m
                  + 1/(M-1) sum_{n != m} Q_m,i . K_n,j              content -> content, across backbones
                  + Q_m,i . K^r_delta(i,j)                          content -> position
                  + K_m,j . Q^r_delta(j,i) ] / sqrt(s d_h)          position -> content
         (s = number of terms: 4, or 3 for a single backbone, which has no cross term; DeBERTa scales
         its 3 terms by 1/sqrt(3d) for the same reason: keep the logits' variance independent of s)
    (T5) O_m = softmax_j(A^m + mask) V_m              padded snippets masked out as keys
    (T6) U_m = LN(H_m + O_m W_m^O);   Z = GELU(concat_m U_m) W^F          Z: (T, d) aggregated features

With M = 1 the block is DeBERTa-style relative-position self-attention over time, which DAKD's
single-backbone Student reuses so that Teacher and Student differ only by the aggregation.

Why relative positions clipped at k: anomalies are local in time; the score between two snippets
should depend on how far apart they are (up to k snippets), not on their absolute index, which
differs between videos of very different lengths.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

TERMS = ("c2c_within", "c2c_cross", "c2p", "p2c")


def relative_position_index(length: int, k: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(T, T) long matrix of delta(i, j), Eq. (T3): values in [0, 2k - 1]."""
    if k < 1:
        raise ValueError(f"maximum relative distance k must be >= 1, got {k}")
    positions = torch.arange(length, device=device)
    relative = positions[:, None] - positions[None, :]  # (T, T): i - j
    return torch.clamp(relative, -k, k - 1) + k  # -k -> 0, ..., >= k -> 2k - 1 (clip(i-j, -k, k-1) + k)


class TemporalAggregation(nn.Module):
    """Disentangled cross-attention over M backbones (module docstring, Eqs. T1-T6).

    Args:
        input_dims: feature width D_m of each backbone, in the order features are passed.
        dim: common width d.
        heads: attention heads (d must be divisible by heads).
        max_distance: k, the clipping distance of relative positions.
        dropout: dropout on the projected features and the attention output.
    """

    def __init__(self, input_dims: Sequence[int], dim: int = 128, heads: int = 4, max_distance: int = 8,
                 dropout: float = 0.1):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.input_dims = tuple(int(d) for d in input_dims)
        self.num_backbones = len(self.input_dims)
        self.dim, self.heads, self.head_dim, self.max_distance = dim, heads, dim // heads, max_distance
        self.input_norm = nn.ModuleList(nn.LayerNorm(d) for d in self.input_dims)
        self.input_proj = nn.ModuleList(nn.Linear(d, dim) for d in self.input_dims)  # (T1)
        self.query = nn.ModuleList(nn.Linear(dim, dim) for _ in self.input_dims)  # (T2)
        self.key = nn.ModuleList(nn.Linear(dim, dim) for _ in self.input_dims)
        self.value = nn.ModuleList(nn.Linear(dim, dim) for _ in self.input_dims)
        self.rel_embedding = nn.Parameter(torch.randn(2 * max_distance, dim) * 0.02)  # P
        self.rel_query = nn.Linear(dim, dim)  # W^{Q,r}
        self.rel_key = nn.Linear(dim, dim)  # W^{K,r}
        self.out_proj = nn.ModuleList(nn.Linear(dim, dim) for _ in self.input_dims)
        self.out_norm = nn.ModuleList(nn.LayerNorm(dim) for _ in self.input_dims)
        self.fuse = nn.Linear(dim * self.num_backbones, dim)  # W^F (T6)
        self.dropout = nn.Dropout(dropout)

    @property
    def num_terms(self) -> int:
        return 4 if self.num_backbones > 1 else 3

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, d) -> (B, heads, T, d_h)."""
        b, t, _ = x.shape
        return x.view(b, t, self.heads, self.head_dim).transpose(1, 2)

    def project(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Eq. (T1): [(B, T, D_m)] -> [(B, T, d)]."""
        if len(features) != self.num_backbones:
            raise ValueError(f"expected {self.num_backbones} feature tensors, got {len(features)}")
        return [self.dropout(proj(norm(x))) for x, norm, proj in zip(features, self.input_norm, self.input_proj)]

    def attention_terms(self, hidden: Sequence[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """The four unscaled score terms of Eq. (T4) for every backbone.

        Args:
            hidden: [(B, T, d)] projected features H_m.

        Returns:
            One dict per backbone m: {"c2c_within", "c2c_cross" (absent for M = 1), "c2p", "p2c"},
            each (B, heads, T, T), entry [.., i, j] for query snippet i and key snippet j.
        """
        length = hidden[0].shape[1]
        queries = [self._split(q(h)) for q, h in zip(self.query, hidden)]  # (B, h, T, d_h) each
        keys = [self._split(k(h)) for k, h in zip(self.key, hidden)]
        k = self.max_distance
        rel = self.rel_embedding  # (2k, d)
        rel_q = self.rel_query(rel).view(2 * k, self.heads, self.head_dim).transpose(0, 1)  # (h, 2k, d_h)
        rel_k = self.rel_key(rel).view(2 * k, self.heads, self.head_dim).transpose(0, 1)  # (h, 2k, d_h)
        index = relative_position_index(length, k, hidden[0].device)  # (T, T) delta(i, j)
        out = []
        for m in range(self.num_backbones):
            q_m, k_m = queries[m], keys[m]
            terms = {"c2c_within": q_m @ k_m.transpose(-1, -2)}  # (B, h, T, T)
            if self.num_backbones > 1:
                cross = sum(q_m @ keys[n].transpose(-1, -2) for n in range(self.num_backbones) if n != m)
                terms["c2c_cross"] = cross / (self.num_backbones - 1)
            # c2p[i, j] = Q_i . K^r_delta(i,j): all 2k products per query, then pick delta(i, j).
            c2p_all = torch.einsum("bhid,hrd->bhir", q_m, rel_k)  # (B, h, T, 2k)
            terms["c2p"] = torch.gather(c2p_all, -1, index.expand(*c2p_all.shape[:2], length, length))
            # p2c[i, j] = K_j . Q^r_delta(j,i): products per key j, pick delta(j, i), then transpose to [i, j].
            p2c_all = torch.einsum("bhjd,hrd->bhjr", k_m, rel_q)  # (B, h, T, 2k)
            terms["p2c"] = torch.gather(p2c_all, -1, index.expand(*p2c_all.shape[:2], length, length)).transpose(-1, -2)
            out.append(terms)
        return out

    def attention(self, hidden: Sequence[torch.Tensor], mask: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Eq. (T4)-(T5) attention weights: [(B, heads, T, T)] per backbone (rows sum to 1)."""
        scale = 1.0 / math.sqrt(self.num_terms * self.head_dim)
        weights = []
        for terms in self.attention_terms(hidden):
            logits = sum(terms.values()) * scale
            if mask is not None:
                logits = logits.masked_fill(~mask[:, None, None, :], torch.finfo(logits.dtype).min)
            weights.append(torch.softmax(logits, dim=-1))
        return weights

    def forward(self, features: Sequence[torch.Tensor], mask: torch.Tensor | None = None) -> torch.Tensor:
        """Aggregate M backbones: [(B, T, D_m)] -> (B, T, d) (Eqs. T1-T6).

        Args:
            features: one tensor per backbone, same B and T.
            mask: (B, T) bool, True = valid snippet (padding of shorter videos is False).
        """
        hidden = self.project(features)
        weights = self.attention(hidden, mask)
        fused = []
        for m, (h, w) in enumerate(zip(hidden, weights)):
            v = self._split(self.value[m](h))  # (B, heads, T, d_h)
            o = (w @ v).transpose(1, 2).reshape(h.shape)  # (B, T, d)
            fused.append(self.out_norm[m](h + self.dropout(self.out_proj[m](o))))  # (T6)
        return self.fuse(F.gelu(torch.cat(fused, dim=-1)))  # (B, T, d)
