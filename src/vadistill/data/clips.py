"""Frames in memory and the clips a frame-level model trains on.

Three small pieces, method-agnostic:

* :func:`load_frames` turns anything a user may pass as "a video" (a :class:`VideoRef`, a path
  or URL, a (T, H, W, 3) uint8 RGB array) into a (T, H, W, 3) uint8 array at a target size,
  decoding through :func:`vadistill.io.video.open_video`. :class:`FrameCache` keeps decoded
  videos so that every epoch does not decode them again.
* :func:`clip_indices` gives the frame indices of the clip around frame t, e.g. (t-3, t, t+3)
  for AED-MAE, clamped at the video borders (the first frame stands in for t-3 when t < 3).
* :class:`ClipDataset` (a torch Dataset) indexes (video, t) pairs of several videos, can hold
  back the last frames of each video as a normal validation split, and yields uint8 clips;
  :func:`batch_indices` shuffles them into batches with a seeded generator.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import Iterator, Sequence, Union

import cv2
import numpy as np
import torch

from vadistill.errors import InputError
from vadistill.io.video import open_video
from vadistill.types import VideoRef

VideoLike = Union[VideoRef, str, os.PathLike, np.ndarray]


def video_name(video: VideoLike) -> str:
    """A short human-readable name for messages and reports."""
    if isinstance(video, VideoRef):
        return video.name
    if isinstance(video, np.ndarray):
        return f"<array {tuple(video.shape)}>"
    return os.path.basename(os.fspath(video).rstrip("/")) or os.fspath(video)


def resize_frames(frames: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, h, w, 3) uint8 at size=(h, w); the same array if already there."""
    if size is None or frames.shape[1:3] == tuple(size):
        return frames
    height, width = size
    shrink = height * width < frames.shape[1] * frames.shape[2]
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    out = np.empty((frames.shape[0], height, width, 3), dtype=np.uint8)
    for index, frame in enumerate(frames):
        out[index] = cv2.resize(frame, (width, height), interpolation=interpolation)
    return out


def load_frames(video: VideoLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """All frames of `video` as a (T, H, W, 3) uint8 RGB array, resized to size=(H, W) if given.

    Raises:
        InputError: missing/corrupt source, a malformed array, or a frame count that does not
            match ``VideoRef.num_frames``.
    """
    if isinstance(video, np.ndarray):
        if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
            raise InputError("<array>", f"expected a (T, H, W, 3) uint8 RGB array, got {video.dtype} {video.shape}")
        if video.shape[0] == 0:
            raise InputError("<array>", "the video array holds no frame")
        return resize_frames(video, size)
    source = video.source if isinstance(video, VideoRef) else os.fspath(video)
    with open_video(source, size=size) as reader:
        frames = reader.read_all()
    if isinstance(video, VideoRef) and video.num_frames and frames.shape[0] != video.num_frames:
        raise InputError(source, f"holds {frames.shape[0]} frames, the dataset says {video.num_frames}")
    return frames


class FrameCache:
    """Decoded videos kept in memory, least recently used dropped first.

    Args:
        max_bytes: memory budget for the cached arrays (default 4 GiB).
    """

    def __init__(self, max_bytes: int = 4 << 30):
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple, np.ndarray] = OrderedDict()

    def get(self, video: VideoLike, size: tuple[int, int] | None) -> np.ndarray:
        if isinstance(video, np.ndarray):  # arrays are already in memory: nothing to cache
            return load_frames(video, size)
        key = (video.source if isinstance(video, VideoRef) else os.fspath(video), tuple(size) if size else None)
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        frames = load_frames(video, size)
        self._items[key] = frames
        while sum(a.nbytes for a in self._items.values()) > self.max_bytes and len(self._items) > 1:
            self._items.popitem(last=False)
        return frames

    def clear(self) -> None:
        self._items.clear()


def clip_indices(num_frames: int, t: int | np.ndarray, offsets: Sequence[int]) -> np.ndarray:
    """Frame indices t + offsets clamped to [0, num_frames - 1].

    Args:
        num_frames: length of the video.
        t: a centre frame, or a (B,) array of them.
        offsets: e.g. (-3, 0, 3).

    Returns:
        (K,) indices for a scalar t, (B, K) for an array (K = len(offsets)).
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    t = np.asarray(t, dtype=np.int64)
    return np.clip(t[..., None] + offsets, 0, num_frames - 1)


class ClipDataset(torch.utils.data.Dataset):
    """(video, t) items over in-memory videos; item i -> ((K, H, W, 3) uint8 clip, video index, t).

    Args:
        videos: decoded videos, each (T, H, W, 3) uint8 at the training size.
        offsets: frame offsets of a clip, e.g. (-3, 0, 3).
        items: (M, 2) int array of (video index, centre frame); default: every frame of every video.
    """

    def __init__(self, videos: Sequence[np.ndarray], offsets: Sequence[int], items: np.ndarray | None = None):
        self.videos = list(videos)
        self.offsets = tuple(int(o) for o in offsets)
        if items is None:
            items = np.array([(v, t) for v, frames in enumerate(self.videos) for t in range(len(frames))], dtype=np.int64)
        self.items = np.asarray(items, dtype=np.int64).reshape(-1, 2)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int, int]:
        video, t = (int(x) for x in self.items[index])
        frames = self.videos[video]
        return frames[clip_indices(len(frames), t, self.offsets)], video, t

    def split_tail(self, fraction: float, min_frames: int = 1) -> tuple["ClipDataset", "ClipDataset"]:
        """(train, validation): the last `fraction` of each video's frames become validation.

        Holding out the tail of every training video (rather than whole videos) keeps each
        scene in both parts; the validation frames are still normal footage never trained on.
        With fraction 0 the validation set is empty.
        """
        train, val = [], []
        for v, frames in enumerate(self.videos):
            n_val = 0 if fraction <= 0 else max(min_frames, int(round(len(frames) * fraction)))
            n_val = min(n_val, len(frames) - 1)
            cut = len(frames) - n_val
            train += [(v, t) for t in range(cut)]
            val += [(v, t) for t in range(cut, len(frames))]
        return (ClipDataset(self.videos, self.offsets, np.array(train, dtype=np.int64)),
                ClipDataset(self.videos, self.offsets, np.array(val, dtype=np.int64)))

    def gather(self, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Clips of several items at once: ((B, K, H, W, 3) uint8, (B, 2) items)."""
        items = self.items[np.asarray(indices, dtype=np.int64)]
        clips = np.stack([self.videos[v][clip_indices(len(self.videos[v]), t, self.offsets)] for v, t in items])
        return clips, items


def batch_indices(num_items: int, batch_size: int, *, shuffle: bool, seed: int | Sequence[int] | None = None,
                  drop_last: bool = False) -> Iterator[np.ndarray]:
    """Index batches over range(num_items); seeded shuffling so that epochs are reproducible."""
    order = np.random.default_rng(seed).permutation(num_items) if shuffle else np.arange(num_items)
    stop = num_items - (num_items % batch_size if drop_last else 0)
    for start in range(0, stop, batch_size):
        chunk = order[start:start + batch_size]
        if len(chunk):
            yield chunk
