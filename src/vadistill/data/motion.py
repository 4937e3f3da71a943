"""Motion-gradient token weights for AED-MAE's reconstruction loss (Ristea et al., CVPR 2024, Sec. 3).

The paper weights the reconstruction error of every token by how much motion the token holds,
so that the masked AE spends its capacity on the foreground (people, vehicles) rather than on
the static background. Definition used here (it follows the authors' released preprocessing,
which takes the absolute temporal difference of the frames around t, no Sobel filter)::

    G      = | I[t+s] - I[t-s] |                      per pixel and colour channel, 0..255  (1)
             (s = 1; indices clamped at the video borders)
    G'     = G + A * max(m, max(G))                   A: pasted-object map of frame t in [0, 1],
                                                      m = 128; max over the whole sample      (2)
    g_i    = mean_c  max_{(y, x) in patch i} G'_c(y, x)                                      (3)
    w_i    = g_i / sum_j g_j                          normalised per sample, sum_i w_i = 1    (4)

(2) makes pasted synthetic anomalies count as motion even when the clean video is static there.
When a sample has no motion at all (sum_j g_j = 0, e.g. a static clip without a pasted object)
(4) would divide by zero; the authors' code then produces NaN. Here the weights fall back to
uniform, w_i = 1/N.

Worked example (hand-checkable, see tests/test_motion.py): a 1-channel 4x4 sample with patch 2,
G = 0 except G[0, 0] = 10 and G[3, 3] = 30, no anomaly map. Patch maxima g = [10, 0, 0, 30],
sum 40, so w = [0.25, 0, 0, 0.75].
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange


def temporal_gradient(previous: torch.Tensor | np.ndarray, following: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Eq. (1): |following - previous| as float32 (inputs uint8 or float, any matching shape).

    For training batches pass (B, 3, H, W) frames t-s and t+s; the result has the same shape.
    """
    previous = torch.as_tensor(previous).float()
    following = torch.as_tensor(following).float()
    return (following - previous).abs()


def motion_token_weights(
    gradients: torch.Tensor,
    patch_size: int,
    anomaly_map: torch.Tensor | None = None,
    min_anomaly_magnitude: float = 128.0,
) -> torch.Tensor:
    """Eqs. (2)-(4): per-token loss weights, one row per sample summing to 1.

    Args:
        gradients: (B, C, H, W) temporal gradients from :func:`temporal_gradient` (0..255 scale).
        patch_size: token size p; H and W must be multiples of p.
        anomaly_map: (B, 1, H, W) pasted-object map of frame t in [0, 1], or None.
        min_anomaly_magnitude: m in Eq. (2): a pasted pixel counts at least this much motion.

    Returns:
        (B, N) float32 weights, N = (H / p) * (W / p) tokens in raster order; uniform 1/N for a
        sample without any motion.
    """
    if gradients.ndim != 4:
        raise ValueError(f"gradients must be (B, C, H, W), got {tuple(gradients.shape)}")
    gradients = gradients.float()
    if anomaly_map is not None:
        peak = gradients.amax(dim=(1, 2, 3), keepdim=True).clamp_min(min_anomaly_magnitude)  # (B, 1, 1, 1)
        gradients = gradients + anomaly_map.float().clamp(0, 1) * peak  # (B, C, H, W), broadcast over C
    token_max = F.max_pool2d(gradients, kernel_size=patch_size)  # (B, C, H/p, W/p)
    g = rearrange(token_max.mean(dim=1), "b h w -> b (h w)")  # (B, N)
    total = g.sum(dim=1, keepdim=True)  # (B, 1)
    uniform = torch.full_like(g, 1.0 / g.shape[1])
    # torch.where evaluates both branches; clamp the divisor so the unused branch is finite too.
    return torch.where(total > 0, g / total.clamp_min(torch.finfo(g.dtype).tiny), uniform)
