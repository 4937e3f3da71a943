"""Synthetic anomalies for AED-MAE: object sequences pasted into normal training clips.

The paper (Ristea et al., CVPR 2024, Sec. 3.3) pastes temporally consistent action segments cut
out of UBnormal into the normal training videos, and trains the model to reconstruct the CLEAN
frame plus a pixel map of where the pasted object is. This module provides:

* :class:`ObjectBank`: a set of object sequences, each a list of (RGB crop, mask) per frame.
  Banks come from two sources:

  (a) :meth:`ObjectBank.harvest`: automatic harvesting from any footage with a static camera:
      median background -> |frame - background| > threshold -> morphological opening/closing ->
      connected components (area within bounds) -> greedy tracking by box overlap (IoU) across
      consecutive frames -> tracks of at least ``min_track_length`` frames are cut out.
      So the method works without UBnormal.
  (b) :meth:`ObjectBank.from_ubnormal`: the anomalous objects of UBnormal's training videos, cut
      out with the official object maps (the paper's source).
  (c) :meth:`ObjectBank.from_folder`: a folder of prepared sequences (e.g. saved by
      :meth:`ObjectBank.save`). Layout (one sub-folder per sequence, frames in natural order)::

          <root>/<sequence>/<k>.png            RGBA: colour + alpha (alpha > 127 = object), or
          <root>/<sequence>/<k>.png|.jpg       colour, with
          <root>/<sequence>/<k>_mask.png       grey mask (> 127 = object)

      :meth:`ObjectBank.save` writes the RGBA form, so harvested banks can be inspected/reused.

* :func:`paste_object` / :func:`paste_batch`: paste one sequence into a (t-3, t, t+3) clip:
  random scale (object height as a fraction of the frame height), random position, a random
  playback speed (object frames advance ``speed`` steps per video frame, so people "run"),
  optional time reversal and horizontal flip, and a linear drift; the same object and one
  consistent trajectory across the clip's frames. The map of frame t is the training target of
  the anomaly-map channel; the classification target is 1.

Everything random takes a ``numpy.random.Generator``: same seed, same anomalies.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

from vadistill.config import check_bounds, check_ordered
from vadistill.errors import InputError


@dataclass(frozen=True)
class ObjectSequence:
    """One object over consecutive frames.

    Attributes:
        frames: per frame an (h, w, 3) uint8 RGB crop (sizes may vary along the sequence).
        masks: per frame an (h, w) bool mask of the object inside its crop.
        source: where it was cut from (for reports).
    """

    frames: tuple[np.ndarray, ...]
    masks: tuple[np.ndarray, ...]
    source: str = ""

    def __post_init__(self):
        if len(self.frames) != len(self.masks) or not self.frames:
            raise ValueError("an object sequence needs as many masks as frames, and at least one frame")
        for frame, mask in zip(self.frames, self.masks):
            if frame.shape[:2] != mask.shape or frame.ndim != 3 or frame.dtype != np.uint8:
                raise ValueError(f"crop {frame.shape} {frame.dtype} does not match its mask {mask.shape}")

    def __len__(self) -> int:
        return len(self.frames)


@dataclass(frozen=True)
class HarvestConfig:
    """Settings of :meth:`ObjectBank.harvest` (sizes are fractions of the frame area/size)."""

    threshold: int = 25  # |frame - median background| (max over channels) above this is foreground
    background_frames: int = 60  # frames (evenly spaced) the median background is taken over
    open_kernel: int = 3  # opening removes speckle noise
    close_kernel: int = 7  # closing fills holes inside objects
    min_area: float = 0.002  # smallest component, fraction of the frame area
    max_area: float = 0.2  # largest component, fraction of the frame area
    iou_threshold: float = 0.2  # box overlap that links a component to a track in the next frame
    min_track_length: int = 7  # shortest kept track: enough for t-3 .. t+3 at speed 1
    max_track_length: int = 48  # longer tracks are cut into pieces of this length
    margin: int = 2  # pixels added around each box before cropping
    max_objects: int = 300  # at most this many sequences (evenly spread over the tracks found)

    def __post_init__(self):
        check_bounds(self, {"threshold": ">=0", "background_frames": ">=1", "open_kernel": ">=1",
                            "close_kernel": ">=1", "min_area": "[0, 1]", "max_area": "(0, 1]", "iou_threshold": "[0, 1]",
                            "min_track_length": ">=1", "max_track_length": ">=1", "margin": ">=0", "max_objects": ">=1"},
                     prefix="harvest.")
        check_ordered(self, [("min_area", "max_area"), ("min_track_length", "max_track_length")], prefix="harvest.")


@dataclass(frozen=True)
class PasteConfig:
    """Settings of the pasted synthetic anomalies."""

    probability: float = 0.25  # fraction of training samples that receive an object (paper: 25%)
    scale: tuple[float, float] = (0.15, 0.6)  # object height, fraction of the frame height
    speed: tuple[int, int] = (1, 3)  # object frames advanced per video frame (inclusive range)
    drift: float = 0.02  # max linear drift per frame, fraction of the frame width
    # Drift speed range (fraction of the frame width per frame) with a uniform direction, so that
    # every object moves at least drift_speed[0]; None: each axis drifts uniformly within +-drift
    # (x: of the width, y: of half the height).
    drift_speed: tuple[float, float] | None = None
    flip_probability: float = 0.5  # horizontal flip (whole sequence)
    reverse_probability: float = 0.2  # play the object backwards
    match_grey: bool = True  # turn the object grey when the clip is grey (e.g. UCSD Ped2)
    # Shape and tone changes (not in the paper; off by default), drawn once per pasted sequence so the
    # object stays the same object over time. They widen a bank harvested from one kind of object
    # (e.g. pedestrians) toward other shapes: carts and bicycles are wider, a fallen person lies.
    stretch: tuple[float, float] = (1.0, 1.0)  # width multiplier, log-uniform in this range
    rotation: float = 0.0  # max rotation in degrees, uniform in +-rotation
    gain: tuple[float, float] = (1.0, 1.0)  # brightness multiplier, uniform in this range

    def __post_init__(self):
        check_bounds(self, {"probability": "[0, 1]", "scale": "(0, 1]", "speed": ">=0", "drift": ">=0",
                            "drift_speed": ">=0", "flip_probability": "[0, 1]", "reverse_probability": "[0, 1]"},
                     prefix="paste.")
        check_ordered(self, ["scale", "speed", "drift_speed"], prefix="paste.")
        for name in ("stretch", "gain"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"PasteConfig.{name} must be a range 0 < low <= high, got {getattr(self, name)}")
        if not 0 <= self.rotation <= 180:
            raise ValueError(f"PasteConfig.rotation must be in [0, 180] degrees, got {self.rotation}")

    @classmethod
    def from_dict(cls, values: dict) -> "PasteConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown PasteConfig keys: {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def _box_iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """IoU of two (x, y, w, h) boxes."""
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def foreground_masks(frames: np.ndarray, config: HarvestConfig) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, H, W) uint8 {0, 1} foreground by median background subtraction."""
    count = min(config.background_frames, len(frames))
    picks = np.linspace(0, len(frames) - 1, count).round().astype(int)
    background = np.median(frames[picks], axis=0).astype(np.int16)  # (H, W, 3)
    open_k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (config.open_kernel,) * 2)
    close_k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (config.close_kernel,) * 2)
    out = np.empty(frames.shape[:3], dtype=np.uint8)
    for index, frame in enumerate(frames):
        diff = np.abs(frame.astype(np.int16) - background).max(axis=2)  # (H, W)
        mask = (diff > config.threshold).astype(np.uint8)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, open_k)
        out[index] = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, close_k)
    return out


def foreground_objects(mask: np.ndarray, config: HarvestConfig) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
    """(box (x, y, w, h), component mask) of every foreground component of one (H, W) mask whose
    area is within the configured bounds."""
    area = mask.shape[0] * mask.shape[1]
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    objects = []
    for label in range(1, count):
        x, y, w, h, a = (int(v) for v in stats[label])
        if config.min_area * area <= a <= config.max_area * area:
            objects.append(((x, y, w, h), labels == label))
    return objects


def scene_objects(videos: Sequence[np.ndarray], config: HarvestConfig = HarvestConfig(), *,
                  every: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Heights and centres of the moving objects of a static-camera scene.

    Background subtraction as in :meth:`ObjectBank.harvest` on every ``every``-th frame of the
    (normal) videos.

    Returns:
        (N,) heights as fractions of the frame height and (N, 2) box centres as (y / H, x / W).

    Raises:
        InputError: no moving object found.
    """
    heights, centres = [], []
    for frames in videos:
        for mask in foreground_masks(np.asarray(frames)[::every], config):  # background from the same frames
            H, W = mask.shape
            for (x, y, w, h), _ in foreground_objects(mask, config):
                heights.append(h / H)
                centres.append(((y + h / 2) / H, (x + w / 2) / W))
    if not heights:
        raise InputError("scene_objects", "no moving object found in the videos (static scene or wrong threshold)")
    return np.asarray(heights, dtype=np.float64), np.asarray(centres, dtype=np.float64).reshape(-1, 2)


def scene_object_speeds(videos: Sequence[np.ndarray], config: HarvestConfig = HarvestConfig(), *,
                        min_iou: float = 0.5) -> np.ndarray:
    """Speeds of the moving objects of a static-camera scene, in fractions of the frame width per frame.

    Background subtraction as in :meth:`ObjectBank.harvest` on every frame; each object of frame t
    is matched to the object of frame t-1 it overlaps most, and the distance between their box
    centres is one speed. Only clear matches (box IoU >= `min_iou`) count, so that blobs that merge
    or split do not read as fast motion.

    Raises:
        InputError: no object moves from one frame to the next.
    """
    speeds = []
    for frames in videos:
        previous: list[tuple[int, int, int, int]] = []
        for mask in foreground_masks(np.asarray(frames), config):
            W = mask.shape[1]
            boxes = [box for box, _ in foreground_objects(mask, config)]
            for box in boxes:
                best = max(previous, key=lambda other: _box_iou(other, box), default=None)
                if best is not None and _box_iou(best, box) >= min_iou:
                    dx = (box[0] + box[2] / 2) - (best[0] + best[2] / 2)
                    dy = (box[1] + box[3] / 2) - (best[1] + best[3] / 2)
                    speeds.append(float(np.hypot(dx, dy)) / W)
            previous = boxes
    if not speeds:
        raise InputError("scene_object_speeds", "no object tracked from one frame to the next "
                                                "(static scene or wrong threshold)")
    return np.asarray(speeds, dtype=np.float64)


def height_range(heights: np.ndarray, quantiles: tuple[float, float] = (0.1, 0.9)) -> tuple[float, float]:
    """The given quantiles of object heights (fractions of the frame height), e.g. of :func:`scene_objects`."""
    low, high = np.quantile(heights, quantiles)
    return float(low), float(high)


def scene_object_scale(videos: Sequence[np.ndarray], config: HarvestConfig = HarvestConfig(), *,
                       quantiles: tuple[float, float] = (0.1, 0.9), every: int = 5) -> tuple[float, float]:
    """Height range of the moving objects of a static-camera scene, as fractions of the frame height:
    the given quantiles of :func:`scene_objects`' heights. Used to paste validation anomalies at the
    size of the scene's own objects (e.g. Ped2's pedestrians are 0.11-0.23 of the frame height; the
    training pastes default to 0.15-0.6)."""
    return height_range(scene_objects(videos, config, every=every)[0], quantiles)


def harvest_sequences(frames: np.ndarray, config: HarvestConfig, source: str = "") -> list[ObjectSequence]:
    """Object sequences of one static-camera video ((T, H, W, 3) uint8 RGB)."""
    T, H, W = frames.shape[:3]
    fg = foreground_masks(frames, config)
    finished: list[list[tuple[int, tuple, np.ndarray]]] = []
    active: list[list[tuple[int, tuple, np.ndarray]]] = []  # per track: (frame, box, component mask)
    for t in range(T):
        comps = foreground_objects(fg[t], config)
        # Greedy matching: best-overlapping (track, component) pairs first.
        pairs = sorted(((_box_iou(track[-1][1], box), i, j) for i, track in enumerate(active)
                        for j, (box, _) in enumerate(comps)), reverse=True)
        used_tracks, used_comps = set(), set()
        for iou, i, j in pairs:
            if iou < config.iou_threshold:
                break
            if i in used_tracks or j in used_comps:
                continue
            active[i].append((t, *comps[j]))
            used_tracks.add(i)
            used_comps.add(j)
        still = []
        for i, track in enumerate(active):
            (still if i in used_tracks else finished).append(track)
        active = still + [[(t, *comps[j])] for j in range(len(comps)) if j not in used_comps]
    finished += active

    sequences = []
    for track in finished:
        for start in range(0, len(track), config.max_track_length):
            piece = track[start:start + config.max_track_length]
            if len(piece) < config.min_track_length:
                continue
            crops, masks = [], []
            for t, (x, y, w, h), mask in piece:
                x0, y0 = max(0, x - config.margin), max(0, y - config.margin)
                x1, y1 = min(W, x + w + config.margin), min(H, y + h + config.margin)
                crops.append(np.ascontiguousarray(frames[t, y0:y1, x0:x1]))
                masks.append(np.ascontiguousarray(mask[y0:y1, x0:x1]))
            sequences.append(ObjectSequence(tuple(crops), tuple(masks), f"{source}@{piece[0][0]}"))
    return sequences


class ObjectBank:
    """A collection of :class:`ObjectSequence` to paste as synthetic anomalies."""

    def __init__(self, sequences: Sequence[ObjectSequence], description: str = ""):
        self.sequences = list(sequences)
        self.description = description

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index: int) -> ObjectSequence:
        return self.sequences[index]

    def sample(self, rng: np.random.Generator) -> ObjectSequence:
        if not self.sequences:
            raise ValueError("the object bank is empty")
        return self.sequences[int(rng.integers(len(self.sequences)))]

    @classmethod
    def harvest(cls, videos: Iterable[np.ndarray], *, config: HarvestConfig = HarvestConfig(),
                names: Sequence[str] | None = None, description: str = "",
                progress: bool = False) -> "ObjectBank":
        """Cut moving objects out of static-camera videos ((T, H, W, 3) uint8 RGB arrays).

        ``videos`` may be a generator: each video is processed and dropped before the next is read
        (the sequences keep copies of their crops only), so a long list of files needs the memory
        of one video. Deterministic (no randomness). When more than ``config.max_objects``
        sequences are found, an evenly spaced subset is kept so that every video contributes.
        ``progress``: one line per video on stderr.
        """
        sequences: list[ObjectSequence] = []
        count = 0
        for count, frames in enumerate(videos, 1):
            name = names[count - 1] if names is not None else str(count - 1)
            found = harvest_sequences(np.asarray(frames), config, source=name)
            if progress:
                print(f"[bank] harvested {len(found)} sequence(s) from video {count}: {name}", file=sys.stderr,
                      flush=True)
            sequences += found
        if len(sequences) > config.max_objects:
            keep = np.linspace(0, len(sequences) - 1, config.max_objects).round().astype(int)
            sequences = [sequences[i] for i in keep]
        return cls(sequences, description or f"harvested from {count} video(s)")

    @classmethod
    def from_ubnormal(cls, root: str | os.PathLike | None = None, split: str = "training", *, margin: int = 2,
                      min_length: int = 3, splits_dir: str | os.PathLike | None = None,
                      progress: bool = False) -> "ObjectBank":
        """Cut the anomalous objects of UBnormal's abnormal videos of one split, the paper's object
        source (Sec. 3.3): each row (object id, first, last frame) of ``<video>_tracks.txt`` becomes one
        sequence whose pixels in frame t are those of its id in ``<video>_<t:04d>_gt.png``, cropped to
        their box plus ``margin``. Frames where the object is hidden are skipped; sequences shorter
        than ``min_length`` frames are dropped. Default split "training", so none of UBnormal's own
        test objects is used. ``progress``: one line per video on stderr.

        Raises:
            InputError: no UBnormal layout, a missing tracks file or object map, a map of another size
                than its video, or no anomalous object at all.
        """
        from vadistill.data import labels as gtio
        from vadistill.data.benchmarks import load_ubnormal
        from vadistill.io.video import open_video

        dataset = load_ubnormal(root, split=split, splits_dir=splits_dir)
        abnormal = [v for v in dataset.test if v.name.startswith("abnormal")]
        sequences = []
        for index, ref in enumerate(abnormal, 1):
            if progress:
                print(f"[bank] UBnormal {split} video {index}/{len(abnormal)}: {ref.name}", file=sys.stderr, flush=True)
            source = Path(ref.source)
            # the video's folder, or (frames extracted) the one above its frames/<video>/ folder
            annotations = next((d / f"{ref.name}_annotations" for d in (source.parent, source.parent.parent)
                                if (d / f"{ref.name}_annotations").is_dir()), source.parent / f"{ref.name}_annotations")
            tracks = gtio.parse_ubnormal_tracks(annotations / f"{ref.name}_tracks.txt")
            cut = [([], []) for _ in tracks]  # per track: crops, masks
            with open_video(source) as reader:
                last = len(reader) - 1
                # each frame's object map and image are read once, for every track that covers it
                for t in sorted({t for _, s, e in tracks for t in range(int(s), min(int(e), last) + 1)}):
                    path = annotations / f"{ref.name}_{t:04d}_gt.png"
                    object_map = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
                    if object_map is None:
                        raise InputError(path, f"missing or unreadable object map (the tracks mark frame {t} anomalous)")
                    frame = None
                    for (object_id, s, e), (crops, masks) in zip(tracks, cut):
                        mask = object_map == object_id
                        if not s <= t <= e or not mask.any():
                            continue  # not this track's frame, or the object is hidden in it
                        if frame is None:
                            frame = reader.read(t)
                            if frame.shape[:2] != mask.shape:
                                raise InputError(path, f"object map is {mask.shape[1]}x{mask.shape[0]}, expected "
                                                       f"{frame.shape[1]}x{frame.shape[0]} like the video")
                        ys, xs = np.nonzero(mask)
                        y0, x0 = max(0, ys.min() - margin), max(0, xs.min() - margin)
                        y1, x1 = min(mask.shape[0], ys.max() + 1 + margin), min(mask.shape[1], xs.max() + 1 + margin)
                        crops.append(np.ascontiguousarray(frame[y0:y1, x0:x1]))
                        masks.append(mask[y0:y1, x0:x1].copy())
            sequences += [ObjectSequence(tuple(crops), tuple(masks), f"{ref.name}/{object_id}")
                          for (object_id, _, _), (crops, masks) in zip(tracks, cut) if len(crops) >= min_length]
        if not sequences:
            raise InputError(dataset.root, f"no anomalous object of at least {min_length} frames in UBnormal's "
                                           f"{split} split")
        return cls(sequences, f"cut from UBnormal's {split} anomalies ({dataset.root})")

    @classmethod
    def from_folder(cls, path: str | os.PathLike) -> "ObjectBank":
        """Load sequences laid out as described in the module docstring.

        Raises:
            InputError: missing folder, no sequence, unreadable image or a crop without mask.
        """
        root = Path(path)
        if not root.is_dir():
            raise InputError(root, "no such object-bank folder")
        from vadistill.io.video import natural_key  # the one natural sort of the code base

        sequences = []
        for folder in sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name)):
            images = sorted((p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg")
                             and not p.stem.endswith("_mask")), key=lambda p: natural_key(p.name))
            crops, masks = [], []
            for image_path in images:
                image = cv2.imread(str(image_path), cv2.IMREAD_UNCHANGED)
                if image is None:
                    raise InputError(image_path, "could not be read as an image")
                mask_path = image_path.with_name(image_path.stem + "_mask.png")
                if mask_path.exists():
                    mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
                    if mask is None or mask.shape != image.shape[:2]:
                        raise InputError(mask_path, f"expected a grey mask of size {image.shape[1]}x{image.shape[0]}")
                    mask = mask > 127
                elif image.ndim == 3 and image.shape[2] == 4:
                    mask = image[:, :, 3] > 127
                else:
                    raise InputError(image_path, "needs an alpha channel (RGBA PNG) or a <name>_mask.png beside it")
                if image.ndim == 2:
                    image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
                else:
                    image = cv2.cvtColor(image[:, :, :3], cv2.COLOR_BGR2RGB)
                crops.append(image)
                masks.append(mask)
            if crops:
                sequences.append(ObjectSequence(tuple(crops), tuple(masks), f"{root.name}/{folder.name}"))
        if not sequences:
            raise InputError(root, "no object sequence found (expected <root>/<sequence>/<k>.png)")
        # absolute: a run records this description and resume compares it, so it must not depend on the cwd
        return cls(sequences, f"loaded from {root.absolute()}")

    def save(self, path: str | os.PathLike) -> Path:
        """Write the bank as ``<path>/<NNNN>/<k>.png`` RGBA images (readable by from_folder)."""
        root = Path(path)
        for index, seq in enumerate(self.sequences):
            folder = root / f"{index:04d}"
            folder.mkdir(parents=True, exist_ok=True)
            for k, (crop, mask) in enumerate(zip(seq.frames, seq.masks)):
                rgba = np.dstack([cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), mask.astype(np.uint8) * 255])
                cv2.imwrite(str(folder / f"{k}.png"), rgba)
        return root


def paste_object(clip: np.ndarray, deltas: Sequence[int], sequence: ObjectSequence, rng: np.random.Generator,
                 config: PasteConfig = PasteConfig(), centre: tuple[float, float] | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Paste one object sequence into one clip along one consistent trajectory.

    Args:
        clip: (K, H, W, 3) uint8 frames of the clip (e.g. t-3, t, t+3; not modified).
        deltas: (K,) time of each clip frame relative to the centre frame t, after clamping at
            the video borders (e.g. (-3, 0, 3), or (0, 0, 3) for t = 0).
        sequence: the object to paste.
        rng: randomness (scale, position, speed, flip, drift, reversal).
        config: ranges of the random choices.
        centre: the object's centre in frame t as (y / H, x / W) (kept inside the frame like the
            random one); None: anywhere, uniformly.

    Returns:
        (K, H, W, 3) uint8 pasted clip and (K, H, W) float32 {0, 1} object masks.
    """
    K, H, W = clip.shape[:3]
    deltas = np.asarray(deltas, dtype=np.int64)
    L = len(sequence)
    lo, hi = int(deltas.min()), int(deltas.max())
    speed = int(rng.integers(config.speed[0], config.speed[1] + 1))
    if hi > lo:
        speed = max(1, min(speed, (L - 1) // (hi - lo))) if L > 1 else 1
    first, last = -lo * speed, L - 1 - hi * speed  # valid range of the object index at frame t
    middle = int(rng.integers(first, last + 1)) if last >= first else (L - 1) // 2
    reverse = rng.random() < config.reverse_probability
    flip = rng.random() < config.flip_probability
    object_index = np.clip(middle + deltas * speed * (-1 if reverse else 1), 0, L - 1)

    # drawn only when switched on, so the default keeps the random stream (and the runs) of before
    stretch = float(np.exp(rng.uniform(*np.log(config.stretch)))) if config.stretch != (1.0, 1.0) else 1.0
    turn = float(rng.uniform(-config.rotation, config.rotation)) if config.rotation > 0 else 0.0
    gain = float(rng.uniform(*config.gain)) if config.gain != (1.0, 1.0) else 1.0

    ref_h, ref_w = sequence.frames[int(object_index[np.argmin(np.abs(deltas))])].shape[:2]
    factor = rng.uniform(*config.scale) * H / max(ref_h, 1)
    factor = min(factor, 0.9 * W / max(ref_w, 1))  # keep the object narrower than the frame
    factor_w = min(factor * stretch, 0.9 * W / max(ref_w, 1))
    box_h, box_w = rotated_size(ref_h * factor, ref_w * factor_w, turn)
    half_h, half_w = box_h / 2, box_w / 2
    y_range = (min(half_h, H / 2), max(H - half_h, H / 2))  # centres that keep the object inside
    x_range = (min(half_w, W / 2), max(W - half_w, W / 2))
    if centre is None:
        cy, cx = rng.uniform(*y_range), rng.uniform(*x_range)
    else:
        cy, cx = float(np.clip(centre[0] * H, *y_range)), float(np.clip(centre[1] * W, *x_range))
    if config.drift_speed is None:
        vx, vy = rng.uniform(-1, 1, size=2) * config.drift * np.array([W, H / 2])
    else:
        speed_px, angle = rng.uniform(*config.drift_speed) * W, rng.uniform(0, 2 * np.pi)
        vx, vy = speed_px * np.cos(angle), speed_px * np.sin(angle)
    grey = config.match_grey and bool(np.all(clip[..., 0] == clip[..., 1])) and bool(np.all(clip[..., 1] == clip[..., 2]))

    out = clip.copy()
    masks = np.zeros((K, H, W), dtype=np.float32)
    for k in range(K):
        crop = sequence.frames[int(object_index[k])]
        mask = sequence.masks[int(object_index[k])].astype(np.float32)
        h = max(1, int(round(crop.shape[0] * factor)))
        w = max(1, int(round(crop.shape[1] * factor_w)))
        crop = cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
        mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR)
        if flip:
            crop, mask = crop[:, ::-1], mask[:, ::-1]
        if turn:
            crop, mask = rotate_object(crop, mask, turn)
            h, w = mask.shape
        if gain != 1.0:
            crop = np.clip(crop.astype(np.float32) * gain + 0.5, 0, 255).astype(np.uint8)
        if grey:
            crop = np.repeat(cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)
        # top-left corner of this frame's crop: centre + drift * time offset
        y0 = int(round(cy + vy * deltas[k] - h / 2))
        x0 = int(round(cx + vx * deltas[k] - w / 2))
        ys, xs = max(0, y0), max(0, x0)
        ye, xe = min(H, y0 + h), min(W, x0 + w)
        if ye <= ys or xe <= xs:
            continue  # drifted out of the frame
        m = mask[ys - y0:ye - y0, xs - x0:xe - x0, None]  # (h', w', 1) soft alpha
        region = out[k, ys:ye, xs:xe].astype(np.float32)
        pasted = m * crop[ys - y0:ye - y0, xs - x0:xe - x0].astype(np.float32) + (1 - m) * region
        out[k, ys:ye, xs:xe] = np.clip(pasted + 0.5, 0, 255).astype(np.uint8)
        masks[k, ys:ye, xs:xe] = (m[..., 0] > 0.5).astype(np.float32)
    return out, masks


def rotated_size(height: float, width: float, angle: float) -> tuple[float, float]:
    """Height and width of the box that holds a (height, width) box turned by angle degrees."""
    c, s = abs(np.cos(np.radians(angle))), abs(np.sin(np.radians(angle)))
    return height * c + width * s, height * s + width * c


def rotate_object(crop: np.ndarray, mask: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Turn an object crop and its mask by angle degrees (counter-clockwise) onto a canvas that holds
    all of it; the corners outside the turned crop get mask 0."""
    h, w = mask.shape
    out_h, out_w = (max(1, int(np.ceil(v))) for v in rotated_size(h, w, angle))
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    matrix[:, 2] += ((out_w - w) / 2, (out_h - h) / 2)  # centre the turned object on the new canvas
    crop = cv2.warpAffine(np.ascontiguousarray(crop), matrix, (out_w, out_h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    mask = cv2.warpAffine(np.ascontiguousarray(mask), matrix, (out_w, out_h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return crop, mask


def draw_centre(centres: np.ndarray | None, rng: np.random.Generator) -> tuple[float, float] | None:
    """One of the (N, 2) candidate centres at random (None: none given, the paste goes anywhere)."""
    return None if centres is None else centres[rng.integers(len(centres))]


def paste_batch(clips: np.ndarray, deltas: np.ndarray, bank: ObjectBank | None, rng: np.random.Generator,
                config: PasteConfig = PasteConfig(), centres: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paste objects into a random `config.probability` share of a batch of clips.

    Args:
        clips: (B, K, H, W, 3) uint8.
        deltas: (B, K) clamped frame offsets of each clip relative to its centre frame.
        bank: objects to paste; None or empty: nothing is pasted.
        rng: randomness.
        config: paste settings.
        centres: (N, 2) candidate object centres in frame t as (y / H, x / W), one drawn per pasted
            object (e.g. where the scene's own objects are, :func:`scene_objects`); None: anywhere.

    Returns:
        clips (B, K, H, W, 3) uint8 (a new array only if something was pasted), maps (B, K, H, W)
        float32 object masks, labels (B,) float32 (1 = a pasted object is visible in frame t).
    """
    B, K, H, W = clips.shape[:4]
    maps = np.zeros((B, K, H, W), dtype=np.float32)
    labels = np.zeros(B, dtype=np.float32)
    if bank is None or len(bank) == 0 or config.probability <= 0:
        return clips, maps, labels
    chosen = rng.random(B) < config.probability
    if not chosen.any():
        return clips, maps, labels
    clips = clips.copy()
    for b in np.flatnonzero(chosen):
        sequence = bank.sample(rng)
        clips[b], maps[b] = paste_object(clips[b], deltas[b], sequence, rng, config, centre=draw_centre(centres, rng))
        frame_t = int(np.argmin(np.abs(deltas[b])))
        labels[b] = float(maps[b, frame_t].any())
    return clips, maps, labels
