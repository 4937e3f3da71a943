"""Small data types shared by every part of vadistill.

Axis legend used in shape comments across the code base:
    B batch, T time (frames or snippets), C channels, H height, W width,
    N tokens, D feature width, K crops, P pixels.

Direction: every score in vadistill is "higher = more anomalous".
Labels: 1 = anomalous frame / pixel, 0 = normal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class VideoRef:
    """One video of a dataset: where its frames are and, for test videos, its ground truth.

    Attributes:
        name: identifier unique within the dataset split (e.g. "01", "Test001", "01_0014").
        source: a video file or a folder of frame images (anything `vadistill.io.video.open_video` takes).
        num_frames: number of frames the source holds (checked against the ground truth).
        labels: (T,) uint8 frame labels, 1 = anomalous; None for unlabelled (training) videos.
        mask_loader: returns (T, H, W) bool pixel ground truth when the dataset has it, else None.
    """

    name: str
    source: str
    num_frames: int
    labels: np.ndarray | None = None
    mask_loader: Callable[[], np.ndarray] | None = field(default=None, compare=False, repr=False)

    @property
    def has_masks(self) -> bool:
        return self.mask_loader is not None

    def load_masks(self) -> np.ndarray:
        if self.mask_loader is None:
            raise ValueError(f"video {self.name} has no pixel-level ground truth")
        return self.mask_loader()


@dataclass(frozen=True)
class VideoDataset:
    """A benchmark: normal training videos and labelled test videos.

    Attributes:
        name: benchmark name as used on the command line ("ped2", "avenue", ...).
        root: folder the dataset was read from.
        train: normal training videos (labels None, or all zero).
        test: test videos with frame labels.
        notes: human-readable facts a report must carry (label convention, layout found, ...).
    """

    name: str
    root: str
    train: list[VideoRef]
    test: list[VideoRef]
    notes: dict[str, str] = field(default_factory=dict)

    def test_labels(self) -> dict[str, np.ndarray]:
        return {v.name: v.labels for v in self.test if v.labels is not None}


@dataclass(frozen=True)
class Segment:
    """A run of consecutive anomalous frames: [start, end] inclusive, with its peak score."""

    start: int
    end: int
    peak_frame: int
    peak_score: float
