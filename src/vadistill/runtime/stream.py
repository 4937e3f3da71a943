"""Streaming scores: frames arrive one at a time, scores come out a few frames later.

:class:`ClipStreamScorer` is the streaming form of a clip method's scoring (AED-MAE: clips of
frames t-3, t, t+3). Memory is bounded whatever the stream's length: fixed-size ring buffers of
frames (``max(offsets) - min(offsets) + 1`` = 7 for AED-MAE), of per-frame error maps (the
temporal length of the 3-D map filter) and of raw scores (the causal filter's length).

Splitting network and bookkeeping (``push`` -> ``take_inputs`` -> engine -> ``give_outputs``)
lets one forward pass serve several streams (`vadistill watch` batches the newest clip of every
stream); :meth:`ClipStreamScorer.step` does all three for a single stream.

When is a frame's score final? Frame t's clip needs frame t + max(offsets) (t + 3); its map is
then filtered over time with the maps of frames t - f//2 .. t + f - 1 - f//2 (f = temporal size
of ``map_filter``, 9 by default), so the raw score of frame t is final when frame
t + 3 + 4 = t + 7 has arrived (t + 5 with ``demo_config``'s 5-frame filter): :attr:`latency`.

Equality with the offline path (``AedMae.anomaly_scores(video, raw=True)``): same clips (clamped
at the first frame, and at the last one when the stream ends), same graph, same 3-D mean filter
(temporal mean of the window with the edge frame repeated = scipy's ``mode="nearest"``, then the
spatial filter), same standardisation -> equal raw scores up to float32 rounding (batch size
changes the CPU kernels' summation order; tests use 1e-5). Two documented exceptions: videos
shorter than the temporal map filter (the offline filter shrinks to the video length; a stream
cannot know it) and ``score_norm="video-minmax"`` (transductive: needs the whole video; refused).

The online final score (what `watch` alarms on) uses a CAUSAL filter: the right half of the
method's Gaussian (same sigma and truncation, weights renormalised), over past raw scores only.
The offline final score uses the centred Gaussian (``scipy.ndimage.gaussian_filter1d``, reflect
borders), so the two differ: the causal one lags by about 0.8 sigma frames and is slightly noisier.
`vadistill score` on a finite source recomputes the offline final scores from the raw ones.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.ndimage import uniform_filter

from vadistill.errors import InputError
from vadistill.scoring import TemporalFilter

TERM_NAMES = ("teacher", "student", "classifier")


@dataclass
class FrameScore:
    """One frame's result once final.

    Attributes:
        index: frame number in the stream (0-based, counting pushed frames).
        raw: raw score (before the temporal filter), equal to the offline raw score.
        online: causal-filtered score (what a live monitor thresholds).
        terms: the frame-level terms {"teacher", "student", "classifier"} (unnormalised).
        map: (H, W) float32 standardised anomaly map at the model's input size, or None.
    """

    index: int
    raw: float
    online: float
    terms: dict[str, float]
    map: np.ndarray | None = None


class CausalFilter:
    """Causal version of a :class:`TemporalFilter`: out[t] = sum_k w_k raw[t - k], sum w = 1.

    Gaussian: w_k ∝ exp(-k^2 / 2 sigma^2), k = 0 .. round(truncate * sigma). The official
    AED-MAE kernel uses its sigma the same way. Near the start of a stream the available
    weights are renormalised. Memory: one deque of the kernel's length.
    """

    def __init__(self, spec: TemporalFilter):
        if spec.kind == "none" or spec.sigma == 0:
            weights = np.ones(1)
        else:
            truncate = spec.truncate if spec.kind == "gaussian" else 4.0
            radius = int(truncate * spec.sigma + 0.5)
            if spec.kind == "aed_official":
                radius = min(radius, spec.support // 2)
            k = np.arange(radius + 1)
            weights = np.exp(-0.5 * (k / spec.sigma) ** 2)
        self.weights = weights / weights.sum()
        self.history: deque[float] = deque(maxlen=len(self.weights))  # newest first

    def __call__(self, value: float) -> float:
        self.history.appendleft(float(value))
        w = self.weights[:len(self.history)]
        return float(np.dot(w, np.fromiter(self.history, dtype=np.float64, count=len(self.history))) / w.sum())


def _window(size: int) -> tuple[int, int]:
    """(frames before, frames after) the centre covered by scipy's uniform filter of `size`."""
    before = size // 2
    return before, size - 1 - before


class ClipStreamScorer:
    """Streaming scores of a clip method (AED-MAE) for ONE stream.

    Args:
        method: the fitted method (for the ONNX engine: config and statistics without network).
        keep_maps: compute the standardised pixel map of each frame (for overlays).

    Usage::

        scorer = ClipStreamScorer(method)
        for frame in frames:                         # (H, W, 3) uint8 RGB, any size
            for result in scorer.step(frame, engine):
                ...                                  # FrameScore, `latency` frames behind
        for result in scorer.finish(engine): ...     # the last frames, clamped like offline
    """

    def __init__(self, method, keep_maps: bool = False):
        cfg = method.config
        if getattr(cfg, "score_norm", "val-zscore") != "val-zscore":
            raise InputError(method.name, f"score_norm={cfg.score_norm!r} normalises with the whole video's range "
                             "(transductive): it cannot score a stream; use a val-zscore model")
        if getattr(cfg, "inference_mask_ratio", 0) > 0 and not getattr(cfg, "complementary_masks", False):
            raise InputError(method.name, "inference_mask_ratio > 0 without complementary_masks (random test-time "
                             "masks) is not supported by the streaming runtime")
        self.method = method
        self.keep_maps = keep_maps
        self.size = tuple(cfg.input_size)
        self.offsets = np.asarray(cfg.frame_offsets, dtype=np.int64)
        self.before_clip, self.after_clip = int(-self.offsets.min()), int(self.offsets.max())
        # Temporal window of per-frame network outputs a frame's score needs (AED-MAE: the 3-D map
        # filter's length; Fast-AED: the frame alone).
        self.map_filter = tuple(getattr(cfg, "map_filter", (1, 1, 1)))
        self.before_map, self.after_map = _window(self.map_filter[0])
        self.latency = self.after_clip + self.after_map
        self.stats = method.score_stats_
        self.weights = dict(zip(TERM_NAMES, cfg.score_weights)) if hasattr(cfg, "score_weights") else {}
        self.causal = CausalFilter(cfg.temporal_filter)
        # Ring buffers (bounded: never grow with the stream's length).
        self.frames: deque[np.ndarray] = deque(maxlen=self.before_clip + self.after_clip + 1)
        self.outputs: deque[tuple] = deque(maxlen=self.before_map + self.after_map + 1)
        self.pushed = 0  # frames received
        self.next_centre = 0  # next frame whose clip goes to the network
        self.next_final = 0  # next frame whose score becomes final
        self.received = 0  # frames whose network outputs came back
        self.first_output = None  # outputs of frame 0 (the edge value repeated before it)
        self.closed = False
        self._pending: list[np.ndarray] = []

    # -- frames in -------------------------------------------------------------------------
    def push(self, frame: np.ndarray) -> None:
        """Add the next frame ((H, W, 3) uint8 RGB, resized here to the model's input size)."""
        if self.closed:
            raise RuntimeError("push() after finish()")
        if frame.shape[:2] != self.size:
            height, width = self.size
            shrink = height * width < frame.shape[0] * frame.shape[1]
            # Same resize as vadistill.data.clips.resize_frames (offline path).
            frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        self.frames.append(frame)
        self.pushed += 1
        while self.next_centre + self.after_clip < self.pushed:
            self._queue_clip(self.next_centre)

    def close(self) -> None:
        """End of stream: the last frames' clips are clamped at the last frame, like offline."""
        self.closed = True
        while self.next_centre < self.pushed:
            self._queue_clip(self.next_centre)

    def _queue_clip(self, centre: int) -> None:
        last = self.pushed - 1
        oldest = self.pushed - len(self.frames)  # stream index of self.frames[0]
        indices = np.clip(centre + self.offsets, 0, last) - oldest
        clip = [self.frames[i] for i in indices]  # K x (H, W, 3)
        stacked = np.concatenate(clip, axis=2)  # (H, W, 3K), channel order (k c) as clips_to_input
        # Same arithmetic as clips_to_input: float32, / 127.5, - 1.
        x = stacked.astype(np.float32).transpose(2, 0, 1) / np.float32(127.5) - np.float32(1.0)
        self._pending.append(x)
        self.next_centre += 1

    def take_inputs(self) -> np.ndarray | None:
        """(n, 3K, H, W) float32 network inputs queued since the last call (None when none)."""
        if not self._pending:
            return None
        batch = np.stack(self._pending)
        self._pending = []
        return batch

    # -- network outputs in, final scores out ----------------------------------------------
    def give_outputs(self, outputs: tuple[np.ndarray, ...]) -> list[FrameScore]:
        """Feed the graph outputs (in ``GraphSpec.output_names`` order) for the inputs taken last."""
        results = []
        for i in range(len(outputs[0])):
            item = tuple(np.array(o[i]) for o in outputs)  # copies: never pin a whole batch
            if self.first_output is None:
                self.first_output = item
            self.outputs.append(item)
            self.received += 1
            # One more map: the frame `after_map` before it now has its whole filter window.
            results += self._finalise(self.next_final + self.after_map < self.received)
        if self.closed and self.received == self.pushed:
            while self.next_final < self.pushed:
                results += self._finalise(True)
        return results

    def _finalise(self, ready: bool) -> list[FrameScore]:
        if not ready:
            return []
        t = self.next_final
        received = self.received
        oldest = received - len(self.outputs)  # stream index of self.outputs[0]
        window = []
        for j in range(t - self.before_map, t + self.after_map + 1):
            j = min(max(j, 0), received - 1)  # nearest-edge padding, as scipy mode="nearest"
            window.append(self.first_output if j < oldest else self.outputs[j - oldest])
        self.next_final += 1
        return [self._result(t, window)]

    def _result(self, t: int, window: list[tuple]) -> FrameScore:
        """AED-MAE: 3-D mean filter of the error maps, spatial maxima, standardised mix."""
        terms = {"classifier": float(window[self.before_map][2])}
        maps = {}
        spatial = self.map_filter[1:]
        for position, name in enumerate(("teacher", "student")):
            stack = np.stack([w[position] for w in window]).astype(np.float64)
            temporal = (stack.sum(axis=0) / len(window)).astype(np.float32)  # (H, W)
            size = tuple(min(s, n) for s, n in zip(spatial, temporal.shape))
            filtered = uniform_filter(temporal, size=size, mode="nearest") if max(size) > 1 else temporal
            terms[name] = float(filtered.max())
            maps[name] = filtered
        raw = sum(self.weights[name] * (terms[name] - self.stats[name]["mean"]) / self.stats[name]["std"]
                  for name in TERM_NAMES if self.weights[name])
        heat = None
        if self.keep_maps:
            heat = np.zeros(maps["teacher"].shape, dtype=np.float32)
            for name in ("teacher", "student"):
                s = self.stats[f"{name}_pixel"]
                heat += np.float32(self.weights[name]) * ((maps[name] - s["mean"]) / s["std"]).astype(np.float32)
        return FrameScore(t, float(raw), self.causal(raw), terms, heat)


    # -- one stream, one engine --------------------------------------------------------------
    def step(self, frame: np.ndarray, engine) -> list[FrameScore]:
        """push + run the engine on what is ready + collect the frames that became final."""
        self.push(frame)
        return self._run(engine)

    def finish(self, engine) -> list[FrameScore]:
        """End of stream: score the remaining frames."""
        self.close()
        results = self._run(engine)
        if self.received == self.pushed:
            while self.next_final < self.pushed:
                results += self._finalise(True)
        return results

    def _run(self, engine) -> list[FrameScore]:
        x = self.take_inputs()
        return self.give_outputs(engine(x)) if x is not None else []


class FastAedStreamScorer(ClipStreamScorer):
    """Fast-AED: the frame's own head maxima, averaged and standardised (no map filter over time).

    The heat map is the teacher-combined 16x16 head (teacher-score units), as ``anomaly_maps``.
    """

    def _result(self, t: int, window: list[tuple]) -> FrameScore:
        term1, term4, term16, map16 = window[self.before_map]
        terms = {1: float(term1), 4: float(term4), 16: float(term16)}
        raw = (np.mean([terms[1], terms[4], terms[16]]) - self.stats["mean"]) / self.stats["std"]
        heat = np.asarray(map16, dtype=np.float32) if self.keep_maps else None
        return FrameScore(t, float(raw), self.causal(raw), terms, heat)


STREAM_SCORERS = {"aed-mae": ClipStreamScorer, "fast-aed": FastAedStreamScorer}


def supports_streaming(method) -> bool:
    """True for methods with a streaming scorer here (clip methods: AED-MAE, Fast-AED)."""
    return method.name in STREAM_SCORERS


def stream_scorer(method, keep_maps: bool = False) -> ClipStreamScorer:
    """The streaming scorer of a method.

    Raises:
        InputError: the method cannot score a stream (e.g. DAKD: its temporal attention runs over
            the whole video's snippets, so scores exist only once the video has ended).
    """
    if method.name in STREAM_SCORERS:
        return STREAM_SCORERS[method.name](method, keep_maps=keep_maps)
    raise InputError(method.name, "this method scores whole videos only (no streaming scorer): "
                     "give it video files or frame folders, not live streams")
