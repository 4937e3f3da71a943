"""CvT blocks: transformer blocks whose Q/K/V come from a depthwise convolution on the token grid.

Wu et al., "CvT: Introducing Convolutions to Vision Transformers", ICCV 2021. Used by AED-MAE's
encoder and decoders (Ristea et al., CVPR 2024, Sec. 3.1) and by Fast-AED's student transformer
(Croitoru et al., CVIU 2024, Sec. 3.2). Tokens may be a masked subset of the grid (MAE): a
:class:`TokenGrid` scatters them back to their true positions before every convolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange


@dataclass
class TokenGrid:
    """Where the tokens of a sequence sit on the (h, w) patch grid.

    keep: (B, N') raster indices of the visible tokens, or None when all h*w tokens are present.
    """

    h: int
    w: int
    keep: torch.Tensor | None = None

    def to_image(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, N', D) tokens -> (B, D, h, w) grid, zeros at dropped positions."""
        if self.keep is not None:
            B, _, D = tokens.shape
            full = tokens.new_zeros(B, self.h * self.w, D)  # (B, N, D)
            tokens = full.scatter(1, self.keep[..., None].expand(-1, -1, D), tokens)
        # (B, N, D) -> (B, D, h, w): a permuted view, i.e. a channels-last image (no copy).
        return rearrange(tokens, "b (h w) d -> b d h w", h=self.h, w=self.w)

    def to_tokens(self, image: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) grid -> (B, N', C) tokens at the visible positions."""
        tokens = rearrange(image, "b c h w -> b (h w) c")  # (B, N, C)
        if self.keep is None:
            return tokens
        return tokens.gather(1, self.keep[..., None].expand(-1, -1, tokens.shape[-1]))  # (B, N', C)


class ConvAttention(nn.Module):
    """CvT attention: Q, K, V from a depthwise convolution on the token grid (Wu et al. 2021).

    One depthwise convolution with three outputs per channel computes the q, k and v maps at
    once; batch norm and a linear projection follow, as in CvT's "dw_bn" projection. The CLS
    token has no grid position and skips the convolution. Attention is PyTorch's SDPA.
    """

    def __init__(self, dim: int, heads: int, kernel: int):
        super().__init__()
        self.heads = heads
        self.dw = nn.Conv2d(dim, 3 * dim, kernel, padding=kernel // 2, groups=dim, bias=False)
        self.bn = nn.BatchNorm1d(3 * dim)
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, grid: TokenGrid) -> torch.Tensor:
        B, _, D = x.shape  # x: (B, 1 + N', D), CLS first
        cls, tokens = x[:, :1], x[:, 1:]
        y = grid.to_tokens(self.dw(grid.to_image(tokens)))  # (B, N', 3D)
        y = self.bn(y.reshape(-1, 3 * D)).view(B, -1, 3 * D)  # statistics over visible tokens only
        q, k, v = rearrange(y, "b n (d three) -> three b n d", three=3)  # 3 x (B, N', D)
        q, k, v = (torch.cat((cls, t), dim=1) for t in (q, k, v))  # 3 x (B, 1 + N', D)
        q, k, v = (rearrange(proj(t), "b n (h e) -> b h n e", h=self.heads)  # (B, heads, 1 + N', D/heads)
                   for proj, t in ((self.q, q), (self.k, k), (self.v, v)))
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, 1 + N', D/heads)
        return self.proj(rearrange(out, "b h n e -> b n (h e)"))  # (B, 1 + N', D)


class CvtBlock(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x)).

    The MLP is pointwise (a 1x1 convolution on the grid is a per-token linear layer).
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float, kernel: int, dropout: float):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = ConvAttention(dim, heads, kernel)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, grid: TokenGrid) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), grid)
        return x + self.mlp(self.norm2(x))
