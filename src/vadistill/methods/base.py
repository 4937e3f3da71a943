"""The contract every anomaly-detection method of vadistill follows.

PyOD / scikit-learn style::

    method = AedMae(config)                    # hyper-parameters only, nothing learned yet
    method.fit(train_videos, run_dir="runs/x") # learns; learned attributes end in "_"
    scores = method.anomaly_scores(video)      # (T,) float, higher = more anomalous
    maps = method.anomaly_maps(video)          # (T, H, W) float32 at the video's resolution
    method.save("model.ckpt"); same = AedMae.load("model.ckpt")

`video` is a :class:`vadistill.types.VideoRef`, a path/URL string, or a (T, H, W, 3) uint8 RGB
array. ``anomaly_scores`` returns the final, temporally filtered scores; ``raw=True`` returns the
per-frame scores before the temporal filter.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import replace
from typing import ClassVar, Sequence

import numpy as np

from vadistill.data.clips import FrameCache, VideoLike
from vadistill.types import VideoRef


class NotFittedError(RuntimeError):
    """The method was asked for scores before `fit` or `load`."""


class VadMethod(ABC):
    """Base class of the methods in ``vadistill.methods.METHODS``."""

    #: name used on the command line and in checkpoints ("aed-mae", ...)
    name: ClassVar[str] = ""
    #: the frozen config dataclass (with ``from_dict``) the constructor takes
    config_class: ClassVar[type]
    #: config fields that only change how a trained model is scored (``with_scoring``, ``vadistill
    #: rescore``); empty when the method has none
    SCORING_FIELDS: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def fit(self, train_videos: Sequence[VideoRef], *, run_dir: str | os.PathLike, resume: bool = False,
            progress: bool = True) -> "VadMethod":
        """Train on normal videos; writes checkpoints and logs into `run_dir`; returns self."""

    @abstractmethod
    def anomaly_scores(self, video: VideoLike, *, raw: bool = False) -> np.ndarray:
        """(T,) float scores, higher = more anomalous (raw=True: before temporal filtering)."""

    @abstractmethod
    def anomaly_maps(self, video: VideoLike) -> np.ndarray:
        """(T, H, W) float32 per-pixel anomaly maps at the input video's resolution."""

    def anomaly_scores_and_maps(self, video: VideoLike, *, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Both at once; methods override this when one pass of their network gives both."""
        return self.anomaly_scores(video), self.anomaly_maps(video)

    @abstractmethod
    def save(self, path: str | os.PathLike) -> None:
        """Write everything needed to score (config, weights, score statistics) to one file."""

    @classmethod
    @abstractmethod
    def load(cls, path: str | os.PathLike) -> "VadMethod":
        """Rebuild a fitted method from a file written by `save`."""

    # -- shared helpers -----------------------------------------------------------------------
    def is_fitted(self) -> bool:
        """True once `fit` or `load` has set the learned attributes (names ending in "_")."""
        return any(k.endswith("_") and not k.startswith("_") and v is not None for k, v in vars(self).items())

    def check_fitted(self) -> None:
        if not self.is_fitted():
            raise NotFittedError(f"{type(self).__name__} is not fitted yet: call fit() or load() first")

    def _copy_with_scoring(self, changes: dict) -> "VadMethod":
        """A copy of this fitted method (sharing its network) whose config has `changes`, and an
        empty frame cache; ``with_scoring`` recalibrates it. Raises ValueError for a change outside
        SCORING_FIELDS (it needs retraining)."""
        self.check_fitted()
        unknown = sorted(set(changes) - set(self.SCORING_FIELDS))
        if unknown:
            raise ValueError(f"not scoring settings (they need retraining): {unknown}")
        copy = type(self).__new__(type(self))
        copy.__dict__.update(self.__dict__)
        copy.config = replace(self.config, **changes)
        copy._cache = FrameCache()
        return copy
