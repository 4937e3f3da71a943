"""Hand-crafted appearance + motion descriptors per snippet: HOG and histograms of optical flow.

A backbone of a different *kind* from the learned ones (I3D, MobileNetV2), so that a multi-backbone
Teacher (DAKD) aggregates diverse knowledge: fixed, weight-free descriptors that see low-level
appearance and, above all, motion magnitude — the cue of most UCSD Ped2 anomalies (bicycles, carts,
skaters move faster than pedestrians). Everything is computed with OpenCV; there are no weights.

For one snippet of 16 RGB frames (the extractor's 224x224 crop), each frame is converted to grey and
resized to 128x128 (``WORK_SIZE``), then:

- HOG (Dalal & Triggs, CVPR 2005) of every frame: ``cv2.HOGDescriptor`` with a 128x128 window,
  32x32 blocks at stride 32 (non-overlapping, 4x4 blocks), 16x16 cells, 9 unsigned orientation
  bins, L2-Hys block normalisation -> 576 values, averaged over the 16 frames.
- Optical flow (Farneback, ``cv2.calcOpticalFlowFarneback``: pyramid scale 0.5, 3 levels, window
  15, 3 iterations, poly_n 5, sigma 1.1) between the 15 consecutive frame pairs *inside* the snippet:
    * HOF: on a 4x4 grid of cells, a histogram of flow orientations in 8 bins weighted by the flow
      magnitude, plus a 9th bin with the count fraction of near-static pixels (magnitude < 0.5 px)
      -> 4x4x9 = 144 values;
    * the mean flow magnitude of each of the 4x4 cells -> 16 values;
    * the fraction of pixels in 8 magnitude bins with edges 0, 0.25, 0.5, 1, 2, 4, 8, 16, inf
      pixels / frame (at 128x128) -> 8 values;
  each averaged over the 15 pairs. Magnitudes are not normalised away (speed matters for anomalies);
  the orientation and mean-magnitude parts are square-rooted (power normalisation) so a few very
  fast pixels do not dominate.

Output: ``FEATURE_DIM`` = 576 + 144 + 16 + 8 = 744 float32 values per snippet, always the same
length. The module follows the backbone protocol of :mod:`vadistill.backbones` (``features(x)`` on
clips ``(B, 3, T, H, W)`` in [0, 255], ``temporal=True``) so :mod:`vadistill.backbones.extract`
handles it like I3D; it runs on the CPU whatever the device of the input (OpenCV).
"""

from __future__ import annotations

import os

import cv2
import numpy as np
import torch
from torch import nn

WORK_SIZE = 128
INPUT_SIZE = 224
HOG_DIM = 576
GRID = 4
ORIENTATION_BINS = 8
STATIC_THRESHOLD = 0.5  # pixels / frame at WORK_SIZE
MAGNITUDE_EDGES = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, np.inf)
HOF_DIM = GRID * GRID * (ORIENTATION_BINS + 1)
FEATURE_DIM = HOG_DIM + HOF_DIM + GRID * GRID + len(MAGNITUDE_EDGES) - 1  # 744

_HOG = cv2.HOGDescriptor((WORK_SIZE, WORK_SIZE), (32, 32), (32, 32), (16, 16), 9)


def _grey(frame_rgb: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(np.ascontiguousarray(frame_rgb, dtype=np.uint8), cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (WORK_SIZE, WORK_SIZE), interpolation=cv2.INTER_AREA)


def hog(grey: np.ndarray) -> np.ndarray:
    """(128, 128) uint8 -> (576,) HOG."""
    return _HOG.compute(grey).reshape(-1)


def flow_histograms(previous: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Two (128, 128) uint8 frames -> (168,) [HOF 144 | cell mean magnitude 16 | magnitude histogram 8]."""
    flow = cv2.calcOpticalFlowFarneback(previous, current, None, 0.5, 3, 15, 3, 5, 1.1, 0)  # (H, W, 2)
    magnitude, angle = cv2.cartToPolar(flow[..., 0], flow[..., 1])  # (H, W) each, angle in [0, 2pi)
    orientation = np.minimum((angle / (2 * np.pi) * ORIENTATION_BINS).astype(np.int64), ORIENTATION_BINS - 1)
    static = magnitude < STATIC_THRESHOLD
    cell = WORK_SIZE // GRID
    hof = np.zeros((GRID, GRID, ORIENTATION_BINS + 1), dtype=np.float64)
    cell_magnitude = np.zeros((GRID, GRID), dtype=np.float64)
    for row in range(GRID):
        for col in range(GRID):
            window = np.s_[row * cell:(row + 1) * cell, col * cell:(col + 1) * cell]
            mag, ori, still = magnitude[window], orientation[window], static[window]
            hof[row, col, :ORIENTATION_BINS] = np.bincount(ori[~still], weights=mag[~still],
                                                           minlength=ORIENTATION_BINS) / mag.size
            hof[row, col, ORIENTATION_BINS] = still.mean()
            cell_magnitude[row, col] = mag.mean()
    counts, _ = np.histogram(magnitude, bins=np.asarray(MAGNITUDE_EDGES))
    return np.concatenate([hof.reshape(-1), cell_magnitude.reshape(-1), counts / magnitude.size])


def snippet_descriptor(frames_rgb: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 RGB frames of one snippet -> (744,) float32 descriptor (module docstring)."""
    if frames_rgb.ndim != 4 or frames_rgb.shape[-1] != 3 or len(frames_rgb) < 1:
        raise ValueError(f"expected (T, H, W, 3) frames, got shape {frames_rgb.shape}")
    greys = [_grey(frame) for frame in frames_rgb]
    appearance = np.mean([hog(g) for g in greys], axis=0)  # (576,)
    if len(greys) > 1:
        motion = np.mean([flow_histograms(a, b) for a, b in zip(greys[:-1], greys[1:])], axis=0)  # (168,)
    else:
        motion = np.zeros(HOF_DIM + GRID * GRID + len(MAGNITUDE_EDGES) - 1)
    hof, rest = motion[:HOF_DIM], motion[HOF_DIM:]
    cell_mag, mag_hist = rest[:GRID * GRID], rest[GRID * GRID:]
    # Power normalisation of the magnitude-weighted parts (why: module docstring).
    return np.concatenate([appearance, np.sqrt(hof), np.sqrt(cell_mag), mag_hist]).astype(np.float32)


class HandcraftedDescriptor(nn.Module):
    """Weight-free HOG + HOF snippet descriptor with the vadistill backbone protocol."""

    feature_dim = FEATURE_DIM

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) RGB in [0, 255] -> (B, 744) float32 (on the input's device)."""
        clips = x.detach().to("cpu", torch.float32).clamp(0, 255).round().to(torch.uint8)
        clips = clips.permute(0, 2, 3, 4, 1).numpy()  # (B, T, H, W, 3)
        feats = np.stack([snippet_descriptor(clip) for clip in clips])  # (B, 744)
        return torch.from_numpy(feats).to(x.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def handcrafted(pretrained: bool = True, weights: str | os.PathLike | None = None,
                download: bool = True) -> HandcraftedDescriptor:
    """Build the descriptor (the arguments exist for the backbone protocol; there are no weights)."""
    return HandcraftedDescriptor().eval()


def identity_normalize(x: torch.Tensor) -> torch.Tensor:
    """The descriptor wants plain RGB values in [0, 255]."""
    return x
