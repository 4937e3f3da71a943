"""Turn raw per-frame anomaly scores into final frame scores and decisions.

Three steps, each a small function:

1. temporal smoothing (:class:`TemporalFilter`, :func:`smooth`): anomalies last many frames, so
   averaging neighbouring frames removes single-frame noise. Every report names the filter it
   used through :meth:`TemporalFilter.describe`.
2. per-video normalisation (:func:`normalize_per_video`): only for reproducing official code that
   min-max normalises each test video (this uses the test video's own score range, so it is an
   evaluation convention, not something a deployed detector can do online).
3. decisions: a threshold learned from normal data (:func:`calibrate_threshold`,
   :class:`Threshold`) and the runs of frames above it (:func:`find_segments`).

Direction: higher score = more anomalous, everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
from scipy.ndimage import gaussian_filter1d

from vadistill.types import Segment

FILTER_KINDS = ("none", "gaussian", "aed_official")
GAUSSIAN_MODES = ("reflect", "nearest", "mirror", "constant", "wrap")
NORMALIZATION_METHODS = ("none", "minmax")


@dataclass(frozen=True)
class TemporalFilter:
    """How per-frame scores are smoothed over time, one video at a time.

    Attributes:
        kind: ``"none"`` (scores unchanged), ``"gaussian"`` (normalised, centred Gaussian,
            :func:`gaussian_smooth`) or ``"aed_official"`` (the hand-made kernel of the official
            AED-MAE / Fast-AED code, :func:`aed_official_smooth`; for reproducing their numbers).
        sigma: standard deviation of the Gaussian, in frames.
        mode: border handling of ``"gaussian"`` (a ``scipy.ndimage`` mode; default ``"reflect"``).
        truncate: ``"gaussian"`` kernel radius in sigmas (scipy's default, 4).
        support: ``"aed_official"`` only: the official ``range`` argument; the kernel has
            ``support - 1`` taps.
    """

    kind: str = "gaussian"
    sigma: float = 0.0
    mode: str = "reflect"
    truncate: float = 4.0
    support: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FILTER_KINDS:
            raise ValueError(f"unknown filter kind {self.kind!r}; expected one of {FILTER_KINDS}")
        if self.sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {self.sigma}")
        if self.kind == "gaussian" and self.mode not in GAUSSIAN_MODES:
            raise ValueError(f"unknown mode {self.mode!r}; expected one of {GAUSSIAN_MODES}")
        if self.kind == "aed_official":
            if self.sigma <= 0:
                raise ValueError("aed_official filter needs sigma > 0")
            if self.support < 2 or self.support % 2:
                # An even `range` gives an odd number of taps, which is what keeps the output
                # as long as the input in the official code (both published settings are even).
                raise ValueError(f"aed_official filter needs an even support >= 2, got {self.support}")

    def describe(self) -> str:
        """One line naming the filter and its parameters, written into every report."""
        if self.kind == "none" or (self.kind == "gaussian" and self.sigma == 0):
            return "none (raw per-frame scores)"
        if self.kind == "gaussian":
            return (
                f"gaussian (sigma={self.sigma:g} frames, weights sum to 1, centred, "
                f"truncate={self.truncate:g} sigma, border mode={self.mode}; scipy.ndimage.gaussian_filter1d)"
            )
        taps = self.support - 1
        return (
            f"aed_official (sigma={self.sigma:g}, range={self.support}: {taps}-tap Gaussian pdf kernel, "
            f"weights sum to {official_kernel(self.sigma, self.support).sum():.3f}, peak 1 frame "
            f"off-centre so output lags input by 1 frame, zero padding; as in the AED-MAE/Fast-AED code)"
        )


NO_FILTER = TemporalFilter(kind="none")

# Settings found in the official code (see aed_official_smooth for the sources):
# AED-MAE inference.py uses range=900, mu(sigma)=282 for ShanghaiTech (its non-Avenue branch) and
# range=38, sigma=11 for Avenue; Fast-AED utils/stats_manager.py uses range=302, sigma=21.
OFFICIAL_FILTERS: dict[str, TemporalFilter] = {
    "aed-mae-shanghai": TemporalFilter(kind="aed_official", sigma=282, support=900),
    "aed-mae-avenue": TemporalFilter(kind="aed_official", sigma=11, support=38),
    "fast-aed": TemporalFilter(kind="aed_official", sigma=21, support=302),
}


def official_filter(name: str) -> TemporalFilter:
    """The temporal filter of an official code base by name (keys of ``OFFICIAL_FILTERS``)."""
    try:
        return OFFICIAL_FILTERS[name]
    except KeyError:
        raise ValueError(f"unknown official filter {name!r}; expected one of {sorted(OFFICIAL_FILTERS)}") from None


def _as_score_vector(scores: np.ndarray) -> np.ndarray:
    vector = np.asarray(scores, dtype=np.float64)
    if vector.ndim != 1:
        raise ValueError(f"expected a 1-D array of per-frame scores, got shape {vector.shape}")
    return vector


def gaussian_smooth(scores: np.ndarray, sigma: float, mode: str = "reflect", truncate: float = 4.0) -> np.ndarray:
    """Smooth per-frame scores with a normalised, centred 1-D Gaussian.

    Uses ``scipy.ndimage.gaussian_filter1d``: the kernel weights sum to 1 (a constant signal stays
    constant) and are symmetric about the current frame (no delay). ``mode="reflect"`` pads the
    ends by mirroring the scores including the edge frame (``d c b a | a b c d | d c b a``), so the
    first and last frames are not pulled towards zero.

    Args:
        scores: (T,) per-frame scores of one video.
        sigma: standard deviation in frames; 0 returns a copy.
        mode: scipy border mode.
        truncate: kernel radius in sigmas.

    Returns:
        (T,) float64 smoothed scores.
    """
    vector = _as_score_vector(scores)
    if sigma == 0:
        return vector.copy()
    return gaussian_filter1d(vector, sigma=sigma, mode=mode, truncate=truncate)


def official_kernel(sigma: float, support: int) -> np.ndarray:
    """The Gaussian kernel built by the AED-MAE / Fast-AED official code.

    The kernel is the Gaussian *pdf* evaluated at the integers ``1 .. support-1`` with its mean at
    the element of index ``(support-1)//2 - 1``, i.e. one tap left of the middle. It is not
    rescaled, so its weights sum to less than 1 when the support is short relative to sigma
    (about 0.89 for sigma=282, range=900).
    """
    positions = np.arange(1, support, dtype=np.float64)
    mean = positions[len(positions) // 2 - 1]
    return np.exp(-0.5 * ((positions - mean) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))


def aed_official_smooth(scores: np.ndarray, sigma: float, support: int) -> np.ndarray:
    """Temporal filter of the official AED-MAE (CVPR 2024) and Fast-AED (CVIU 2024) code.

    Behaviour (read from ``util/abnormal_utils.py::filt`` of github.com/ristea/aed-mae and
    ``utils/stats_manager.py::StatsManager.filt`` of github.com/ristea/fast-aed; re-implemented
    from that description, not copied):

    * kernel: :func:`official_kernel` (unnormalised pdf, peak one tap left of the centre);
    * the scores are padded with ``len(kernel)//2`` zeros on each side (zero padding, so scores
      near both ends of a video are pulled towards 0);
    * ``numpy.correlate(padded, kernel, "valid")``. Because the peak sits one tap left of the
      centre, a score impulse at frame t peaks at frame t+1 in the output (a one-frame lag).

    Args:
        scores: (T,) per-frame scores of one video.
        sigma: the official ``mu`` argument (it is used as the standard deviation).
        support: the official ``range`` argument (even; kernel has ``support - 1`` taps).

    Returns:
        (T,) float64 smoothed scores.
    """
    vector = _as_score_vector(scores)
    kernel = official_kernel(sigma, support)
    pad = len(kernel) // 2
    padded = np.concatenate((np.zeros(pad), vector, np.zeros(pad)))
    return np.correlate(padded, kernel, mode="valid")


def smooth(scores: np.ndarray, filter: TemporalFilter) -> np.ndarray:  # noqa: A002 - name fixed by the CLI contract
    """Apply a :class:`TemporalFilter` to the (T,) scores of one video."""
    if filter.kind == "none":
        return _as_score_vector(scores).copy()
    if filter.kind == "gaussian":
        return gaussian_smooth(scores, filter.sigma, mode=filter.mode, truncate=filter.truncate)
    return aed_official_smooth(scores, filter.sigma, filter.support)


def _minmax(vector: np.ndarray) -> np.ndarray:
    low, high = vector.min(), vector.max()
    if high == low:
        # The official code divides by zero here and then maps the NaNs to 0 (np.nan_to_num).
        return np.zeros_like(vector)
    return (vector - low) / (high - low)


def normalize_per_video(
    scores: np.ndarray | Mapping[str, np.ndarray], method: str = "minmax"
) -> np.ndarray | dict[str, np.ndarray]:
    """Rescale the scores of each video on its own.

    ``"minmax"`` maps each video to [0, 1]: ``(s - min) / (max - min)``; a constant video becomes
    all zeros (what AED-MAE's ``evaluate_model`` gets after ``np.nan_to_num``). AED-MAE applies it
    after smoothing, for ShanghaiTech but not for Avenue. ``"none"`` returns copies.

    Args:
        scores: one video's (T,) scores, or a dict of them.
        method: ``"minmax"`` or ``"none"``.

    Returns:
        the same structure with float64 arrays.
    """
    if method not in NORMALIZATION_METHODS:
        raise ValueError(f"unknown normalisation {method!r}; expected one of {NORMALIZATION_METHODS}")
    if isinstance(scores, Mapping):
        return {name: normalize_per_video(values, method) for name, values in scores.items()}
    vector = _as_score_vector(scores)
    if vector.size == 0:
        return vector.copy()
    return _minmax(vector) if method == "minmax" else vector.copy()


def _concatenate_scores(scores: np.ndarray | Mapping[str, np.ndarray]) -> np.ndarray:
    if isinstance(scores, Mapping):
        parts = [_as_score_vector(scores[name]) for name in sorted(scores)]
        return np.concatenate(parts) if parts else np.zeros(0)
    return _as_score_vector(scores)


def calibrate_threshold(normal_scores: np.ndarray | Mapping[str, np.ndarray], quantile: float = 0.99) -> float:
    """Learn a decision threshold from scores of *normal* frames.

    The threshold is the ``quantile`` of the scores (numpy's linear interpolation), so about
    ``1 - quantile`` of normal frames lie above it: it fixes the false-alarm rate on normal data.
    Use scores of normal training or validation videos, computed exactly like the test scores
    (same filter). Never calibrate on test labels: that would report an operating point no
    deployed system could choose.

    Args:
        normal_scores: (N,) scores, or a dict of per-video score arrays (concatenated).
        quantile: in (0, 1].

    Returns:
        the threshold; a frame is anomalous when its score is strictly above it.
    """
    if not 0.0 < quantile <= 1.0:
        raise ValueError(f"quantile must be in (0, 1], got {quantile}")
    values = _concatenate_scores(normal_scores)
    if values.size == 0:
        raise ValueError("no normal scores to calibrate a threshold on")
    if not np.all(np.isfinite(values)):
        raise ValueError("normal scores contain NaN or infinite values")
    return float(np.quantile(values, quantile))


@dataclass(frozen=True)
class Threshold:
    """A decision threshold and where it came from (for reports).

    Attributes:
        value: frames with a score strictly above it are anomalous.
        quantile: quantile of the normal scores it was set at.
        num_normal_frames: how many normal frames it was learned from.
    """

    value: float
    quantile: float
    num_normal_frames: int

    @classmethod
    def from_normal_scores(
        cls, normal_scores: np.ndarray | Mapping[str, np.ndarray], quantile: float = 0.99
    ) -> "Threshold":
        """Calibrate on normal data with :func:`calibrate_threshold`."""
        value = calibrate_threshold(normal_scores, quantile)
        return cls(value=value, quantile=quantile, num_normal_frames=int(_concatenate_scores(normal_scores).size))

    def decide(self, scores: np.ndarray) -> np.ndarray:
        """(T,) bool: True where the score is strictly above the threshold."""
        return _as_score_vector(scores) > self.value

    def describe(self) -> str:
        return (
            f"{self.value:.6g} (quantile {self.quantile:g} of {self.num_normal_frames} normal frames; "
            f"anomalous when score > threshold)"
        )


def _runs_of_true(flags: np.ndarray) -> list[tuple[int, int]]:
    """[start, end] inclusive index pairs of the maximal runs of True."""
    padded = np.concatenate(([False], flags, [False])).astype(np.int8)
    changes = np.flatnonzero(np.diff(padded))
    return [(int(start), int(stop) - 1) for start, stop in zip(changes[::2], changes[1::2])]


def _merge_close_runs(runs: list[tuple[int, int]], merge_gap: int) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in runs:
        # gap = number of below-threshold frames between the previous run and this one
        if merged and start - merged[-1][1] - 1 <= merge_gap:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def find_segments(scores: np.ndarray, threshold: float, min_length: int = 1, merge_gap: int = 0) -> list[Segment]:
    """Runs of consecutive frames whose score is strictly above ``threshold``.

    Runs separated by at most ``merge_gap`` below-threshold frames are merged first (the gap frames
    become part of the segment); then segments shorter than ``min_length`` frames are dropped.

    Args:
        scores: (T,) final per-frame scores of one video.
        threshold: decision threshold (e.g. from :func:`calibrate_threshold`).
        min_length: minimum segment length in frames (>= 1).
        merge_gap: largest gap, in frames, that is bridged (>= 0).

    Returns:
        segments in time order, each with ``start``/``end`` inclusive and the frame and value of
        its highest score (first one on ties).
    """
    if min_length < 1:
        raise ValueError(f"min_length must be >= 1, got {min_length}")
    if merge_gap < 0:
        raise ValueError(f"merge_gap must be >= 0, got {merge_gap}")
    vector = _as_score_vector(scores)
    runs = _merge_close_runs(_runs_of_true(vector > threshold), merge_gap)
    segments = []
    for start, end in runs:
        if end - start + 1 < min_length:
            continue
        peak = start + int(np.argmax(vector[start : end + 1]))
        segments.append(Segment(start=start, end=end, peak_frame=peak, peak_score=float(vector[peak])))
    return segments
