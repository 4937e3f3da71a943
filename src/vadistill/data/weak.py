"""Weakly-supervised VAD on pre-extracted snippet features: datasets, splits, ground truth, metrics.

Weakly-supervised methods (MIL, RTFM, DAKD, ...) train on *video-level* labels (1 = the video
contains an anomaly somewhere) and features of 16-frame snippets, and are evaluated on frame labels.
This module reads the public splits and annotation files and the public feature-release
conventions, validates the features, and turns snippet scores back into frame scores.

Feature files (one per video and backbone, or one per video, backbone and crop):

- Names, searched recursively under a backbone's features folder: ``<video>_<backbone>.npy``
  (RTFM/TEVAD releases and :func:`vadistill.backbones.extract.extract_features`), ``<video>.npy``,
  or one file per crop ``<video>__<c>.npy`` (c = 0..9, the VadCLIP CLIP releases; stacked in crop
  order).
- Layouts: ``[T, D]`` (one crop), ``[crops, T, D]`` (vadistill's extractor) or ``[T, crops, D]``
  (the RTFM/ShanghaiTech/UCF I3D releases). Detection (:func:`detect_layout`): 2-D is ``[T, D]``;
  3-D with exactly one of the two leading axes in {1, 5, 10} (the crop counts used in practice) is
  read accordingly; when both are (e.g. 10 crops of a 10-snippet video) the loader's ``layout``
  hint decides — the release loaders (UCF-Crime, ShanghaiTech) hint ``[T, crops, D]``, everything
  else defaults to vadistill's ``[crops, T, D]``. Pass ``layout="TD"|"CTD"|"TCD"`` to skip detection.
  Loaded features are always returned as ``[crops, T, D]`` float32 (axis legend: types.py, K crops).
- Validation (when a file is read: :meth:`WeakVideo.load`, or all at once with :meth:`WeakDataset.check`;
  DAKD's ``fit`` reads every training video first): a file that is not a numeric 2-D/3-D array, has the wrong feature width or holds
  NaN/inf raises :class:`InputError` naming the file and the expected shape. Backbones of one video
  may differ by one snippet (releases drop a last partial snippet, vadistill pads it): they are
  truncated to the shortest; larger differences raise :class:`InputError`.

Snippets to frames (:func:`snippets_to_frames`): snippet t covers frames ``[16 t, 16 t + 16)``, so
every snippet score is repeated 16 times; the result is truncated to the video's frame count, or,
when the features cover fewer frames (releases drop a last partial snippet), padded by repeating
the last snippet's score. When a dataset does not give frame counts (UCF-Crime, XD-Violence, the
normal ShanghaiTech videos that come from its one-class *training* set), a video has ``16 T``
frames, as in the community ground-truth files (RTFM ``gt-ucf.npy``/``gt-sh.npy``).

Datasets and ground truth (loaders take the annotation folder; nothing is copied anywhere):

- UCF-Crime (:func:`load_ucf_crime`): splits ``Anomaly_Train.txt`` / ``Anomaly_Test.txt`` (1,610 /
  290 videos; a path with "Normal" in its category folder is a normal video), frame ranges from
  ``Temporal_Anomaly_Annotation.txt`` (``name category s1 e1 s2 e2``, -1 = no second range). Metric:
  frame AUC.
- XD-Violence (:func:`load_xd_violence`): test videos from ``*_CLIP_rgbtest.csv`` (800 names; required:
  normal test videos cannot be told from normal training videos by name); ``label_A`` in a name marks
  a normal video; ranges from ``annotations.txt`` (``name s1 e1 [s2 e2 ...]`` per abnormal test video;
  a trailing ".mp4" on some names is dropped). Training videos: every other video in the features
  folder. Metric: frame AP (the XD-Violence convention).
- ShanghaiTech-weak (:func:`load_shanghaitech_weak`): Zhong et al.'s split as released with RTFM
  (``rtfm_shanghai-i3d-{train,test}-10crop.list``, 238 / 199 videos); frame labels from
  ``test_frame_mask/<video>.npy``; a video with a frame mask containing an anomaly is abnormal (this
  reproduces RTFM's "first 63 training videos are abnormal"), videos without a mask come from the
  one-class training set and are normal. Metric: frame AUC.
- Ped2-weak (:func:`load_ped2_weak`): TEVAD's split (``tevad_ped2-i3d.list``: 10 training videos,
  ``tevad_ped2-i3d-test.list``: 18 test videos); ground truth rebuilt from the official
  ``UCSDped2.m`` (TEVAD's own ``gt-ped2.npy`` does not reproduce from it). ``TrainNNN`` videos come
  from the Ped2 training set and are normal (all-zero labels); ``TestNNN`` videos are anomalous
  (video label 1 when they are in the training list). Frame counts are Ped2's (constants below,
  checked against the frames in the tests). Metric: frame AUC.

Range conventions: UCSD ``.m`` ranges are 1-based inclusive (:func:`vadistill.data.labels.parse_ucsd_m`).
UCF-Crime and XD-Violence ranges are read as 0-based half-open ``[start, end)``, i.e. ``labels[start:end]
= 1`` as the community ground-truth scripts do; ranges past the end of a video are clipped to it.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from vadistill.data.labels import load_label_vector, parse_ucsd_m
from vadistill.errors import InputError
from vadistill.metrics import average_precision, micro_auc

SNIPPET_LENGTH = 16
LAYOUTS = ("auto", "TD", "CTD", "TCD")
CROP_COUNTS = (1, 5, 10)
METRICS = {"auc": micro_auc, "ap": average_precision}

# Ped2 frame counts (official UCSDped2 Test001-012 / Train001-016).
PED2_TEST_FRAMES = (180, 180, 150, 180, 150, 180, 180, 180, 120, 150, 180, 180)
PED2_TRAIN_FRAMES = (120, 150, 150, 180, 180, 150, 150, 120, 180, 180, 180, 180, 180, 150, 150, 150)

FeatureSource = str | os.PathLike | Mapping[str, str | os.PathLike]
Range = tuple[int, int]  # 0-based, inclusive


# -- feature files ------------------------------------------------------------------------------
def detect_layout(shape: Sequence[int], ambiguous: str = "CTD") -> str:
    """Layout of a feature array from its shape: "TD", "CTD" or "TCD" (module docstring).

    Args:
        shape: the array's shape.
        ambiguous: layout to use when both leading axes of a 3-D array look like crop counts.

    Raises:
        ValueError: not a 2-D or 3-D shape.
    """
    if len(shape) == 2:
        return "TD"
    if len(shape) != 3:
        raise ValueError(f"expected a 2-D or 3-D feature array, got shape {tuple(shape)}")
    first, second = shape[0] in CROP_COUNTS, shape[1] in CROP_COUNTS
    if first and not second:
        return "CTD"
    if second and not first:
        return "TCD"
    return ambiguous


def _expected(dim: int | None) -> str:
    d = "D" if dim is None else str(dim)
    return f"[T, {d}], [crops, T, {d}] or [T, crops, {d}] float (crops in {CROP_COUNTS})"


def load_features(paths: str | os.PathLike | Sequence[str | os.PathLike], dim: int | None = None,
                  layout: str = "auto", ambiguous: str = "CTD") -> np.ndarray:
    """Read and validate one video's features of one backbone.

    Args:
        paths: one ``.npy`` file, or one file per crop (each ``[T, D]``, stacked in order).
        dim: expected feature width D (None: any).
        layout: "auto" (detect), "TD", "CTD" or "TCD".
        ambiguous: layout for shapes "auto" cannot decide (see :func:`detect_layout`).

    Returns:
        (K, T, D) float32, K crops.

    Raises:
        InputError: unreadable file, wrong shape or width, NaN/inf values, no snippets.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    arrays = []
    for path in paths:
        try:
            array = np.load(path, allow_pickle=False)  # never unpickle a feature file
        except (OSError, ValueError, EOFError) as error:  # EOFError: an empty file
            raise InputError(path, f"not a readable numeric .npy feature file ({error}); expected {_expected(dim)}") from None
        if array.dtype.kind not in "fiu" or array.ndim not in (2, 3):
            raise InputError(path, f"found a {array.dtype} array of shape {array.shape}; expected {_expected(dim)}")
        if len(paths) > 1 and array.ndim != 2:
            raise InputError(path, f"per-crop feature files must be [T, D]; found shape {array.shape}")
        arrays.append(array)
    if len(arrays) > 1:
        lengths = {a.shape for a in arrays}
        if len(lengths) != 1:
            raise InputError(paths[0], f"crop files of one video have different shapes {sorted(lengths)}")
        array = np.stack(arrays)  # (K, T, D)
        chosen = "CTD"
    else:
        array = arrays[0]
        if layout not in LAYOUTS:
            raise ValueError(f"layout {layout!r}: expected one of {LAYOUTS}")
        chosen = detect_layout(array.shape, ambiguous) if layout == "auto" else layout
        if (chosen == "TD") != (array.ndim == 2):
            raise InputError(paths[0], f"shape {array.shape} does not match layout {chosen}; expected {_expected(dim)}")
    if chosen == "TD":
        array = array[None]  # (T, D) -> (1, T, D)
    elif chosen == "TCD":
        array = array.transpose(1, 0, 2)  # (T, K, D) -> (K, T, D)
    where = paths[0]
    if dim is not None and array.shape[-1] != dim:
        raise InputError(where, f"feature width {array.shape[-1]} (shape {arrays[0].shape}); expected {_expected(dim)}")
    if array.shape[1] == 0 or array.shape[-1] == 0:
        raise InputError(where, f"empty feature array of shape {arrays[0].shape}; expected {_expected(dim)}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise InputError(where, f"{bad} NaN/inf values in a {arrays[0].shape} feature array; expected finite {_expected(dim)}")
    return array


def snippets_to_frames(scores: np.ndarray, num_frames: int, snippet_length: int = SNIPPET_LENGTH) -> np.ndarray:
    """(T,) snippet scores -> (num_frames,) frame scores: repeat each score, then truncate or edge-pad."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if scores.size == 0:
        raise ValueError("no snippet scores")
    frames = np.repeat(scores, snippet_length)  # (T * snippet_length,)
    if frames.size >= num_frames:
        return frames[:num_frames]
    return np.concatenate([frames, np.full(num_frames - frames.size, scores[-1])])


def _strip_name(stem: str, backbone: str | None) -> tuple[str, int | None]:
    """File stem -> (video name, crop index or None)."""
    match = re.fullmatch(r"(.+)__(\d)", stem)
    if match:
        return match.group(1), int(match.group(2))
    if backbone and stem.endswith(f"_{backbone}"):
        return stem[: -len(backbone) - 1], None
    return stem, None


def index_feature_folder(folder: str | os.PathLike, backbone: str | None = None) -> dict[str, tuple[Path, ...]]:
    """Every video's feature file(s) under `folder` (recursive): {video name: (paths...)}.

    ``<video>_<backbone>.npy`` / ``<video>.npy`` give one path; ``<video>__<c>.npy`` give one per
    crop, in crop order. Raises InputError when the folder does not exist.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "features folder not found (expected one .npy file per video)")
    singles: dict[str, Path] = {}
    crops: dict[str, dict[int, Path]] = {}
    for path in sorted(folder.rglob("*.npy")):
        name, crop = _strip_name(path.stem, backbone)
        if crop is None:
            # "<video>_<backbone>.npy" wins over a bare "<video>.npy" of the same name.
            if name not in singles or path.stem != name:
                singles[name] = path
        else:
            crops.setdefault(name, {})[crop] = path
    index = {name: (path,) for name, path in singles.items()}
    for name, files in crops.items():
        index.setdefault(name, tuple(files[c] for c in sorted(files)))
    return index


# -- videos and datasets ------------------------------------------------------------------------
@dataclass(frozen=True)
class WeakVideo:
    """One video of a weakly-supervised split.

    Attributes:
        name: video name as in the split files ("Abuse028_x264", "Test001", "01_0014").
        label: video-level label, 1 = contains an anomaly.
        features: {backbone: feature file(s)} (one file, or one per crop).
        num_frames: frame count when the dataset gives it; None = ``16 T`` (module docstring).
        ranges: anomalous frame ranges, 0-based inclusive (test videos; empty for normal ones).
        layout: layout hint for :func:`load_features` ("auto", "TD", "CTD", "TCD").
        ambiguous: layout used when "auto" cannot decide.
    """

    name: str
    label: int
    features: Mapping[str, tuple[Path, ...]]
    num_frames: int | None = None
    ranges: tuple[Range, ...] = ()
    layout: str = "auto"
    ambiguous: str = "CTD"

    def load(self, backbone: str, dim: int | None = None) -> np.ndarray:
        """(K, T, D) float32 features of one backbone (validated)."""
        if backbone not in self.features:
            raise InputError(self.name, f"no {backbone} features for this video (have {sorted(self.features)})")
        return load_features(self.features[backbone], dim, self.layout, self.ambiguous)

    def load_all(self, backbones: Sequence[str], dims: Mapping[str, int] | None = None) -> dict[str, np.ndarray]:
        """{backbone: (K, T, D)} with T aligned across backbones (truncated to the shortest, max 1 apart)."""
        arrays = {b: self.load(b, (dims or {}).get(b)) for b in backbones}
        lengths = {b: a.shape[1] for b, a in arrays.items()}
        shortest = min(lengths.values())
        if max(lengths.values()) - shortest > 1:
            raise InputError(self.features[backbones[0]][0], f"video {self.name}: backbones give different snippet "
                             f"counts {lengths}; expected equal (or one apart: a dropped last partial snippet)")
        return {b: a[:, :shortest] for b, a in arrays.items()}

    def frame_count(self, num_snippets: int) -> int:
        return self.num_frames if self.num_frames is not None else num_snippets * SNIPPET_LENGTH

    def frame_labels(self, num_frames: int) -> np.ndarray:
        """(num_frames,) uint8 labels from `ranges` (ranges past the end are clipped)."""
        labels = np.zeros(num_frames, dtype=np.uint8)
        for start, end in self.ranges:
            labels[max(0, start):max(0, min(end + 1, num_frames))] = 1
        return labels


@dataclass(frozen=True)
class WeakDataset:
    """A weakly-supervised benchmark on features.

    Attributes:
        name: "ucf_crime", "xd_violence", "shanghaitech_weak", "ped2_weak".
        train: training videos (video-level labels only are used for training).
        test: test videos with frame ranges.
        metric: "auc" (frame ROC AUC, frames of all videos pooled) or "ap" (frame average precision).
        notes: facts a report must carry (split files, conventions).
    """

    name: str
    train: list[WeakVideo]
    test: list[WeakVideo]
    metric: str
    notes: dict[str, str] = field(default_factory=dict)

    def check(self, backbones: Sequence[str] | None = None, dims: Mapping[str, int] | None = None) -> None:
        """Read and validate every feature file now (loaders only index files; reading is lazy).

        Raises:
            InputError: the first missing, unreadable, misshapen or non-finite feature file.
        """
        for video in self.train + self.test:
            video.load_all(list(backbones or self.backbones()), dims)

    def backbones(self) -> list[str]:
        """Backbones available for every video."""
        sets = [set(v.features) for v in self.train + self.test]
        return sorted(set.intersection(*sets)) if sets else []


def frame_scores_and_labels(dataset: WeakDataset, snippet_scores: Mapping[str, np.ndarray]) -> tuple[dict, dict]:
    """Expand per-video snippet scores of the test videos to frames, with their frame labels."""
    scores, labels = {}, {}
    for video in dataset.test:
        if video.name not in snippet_scores:
            raise ValueError(f"no scores for test video {video.name}")
        s = np.asarray(snippet_scores[video.name]).reshape(-1)
        count = video.frame_count(len(s))
        scores[video.name] = snippets_to_frames(s, count)
        labels[video.name] = video.frame_labels(count)
    return scores, labels


def evaluate_snippet_scores(dataset: WeakDataset, snippet_scores: Mapping[str, np.ndarray]) -> float:
    """The dataset's metric (AUC or AP) of per-video snippet scores on its test videos."""
    scores, labels = frame_scores_and_labels(dataset, snippet_scores)
    return METRICS[dataset.metric](scores, labels)


# -- helpers ------------------------------------------------------------------------------------
def _read_lines(path: Path) -> list[str]:
    try:
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except OSError as error:
        raise InputError(path, f"could not be read ({error})") from None


def _strip_video_extension(name: str) -> str:
    """Drop a video-file extension only: XD-Violence names contain dots ("The.Fast.and.the.Furious.2001__#...")."""
    base, dot, ext = name.rpartition(".")
    return base if dot and ext.lower() in ("mp4", "avi", "mkv", "webm", "mov", "npy") else name


def _find(folder: Path, names: Sequence[str]) -> Path:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise InputError(folder, f"expected one of {list(names)} in this annotation folder")


def _feature_folders(features: FeatureSource, backbones: Sequence[str] | None) -> dict[str, Path]:
    """{backbone: folder}. A single folder holds either one subfolder per backbone or the files of `backbones[0]`."""
    if isinstance(features, Mapping):
        return {b: Path(p) for b, p in features.items()}
    root = Path(features)
    if not root.is_dir():
        raise InputError(root, "features folder not found")
    if backbones is None:
        subdirs = sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.rglob("*.npy")))
        if subdirs:
            return {b: root / b for b in subdirs}
        backbones = ["i3d"]
    if len(backbones) == 1 and not (root / backbones[0]).is_dir():
        return {backbones[0]: root}
    return {b: root / b for b in backbones}


def _attach(names_labels: Iterable[tuple[str, int, int | None, tuple[Range, ...]]], folders: Mapping[str, Path],
            indexes: Mapping[str, dict[str, tuple[Path, ...]]], layout: str, ambiguous: str) -> list[WeakVideo]:
    videos, missing = [], []
    for name, label, frames, ranges in names_labels:
        files = {}
        for backbone, index in indexes.items():
            if name in index:
                files[backbone] = index[name]
            else:
                missing.append((backbone, name))
        videos.append(WeakVideo(name, label, files, frames, ranges, layout, ambiguous))
    if missing:
        backbone, name = missing[0]
        raise InputError(folders[backbone], f"{len(missing)} feature file(s) missing, e.g. {name}_{backbone}.npy "
                         f"(or {name}.npy / {name}__0.npy) for video {name}")
    return videos


def _indexes(folders: Mapping[str, Path]) -> dict[str, dict[str, tuple[Path, ...]]]:
    return {b: index_feature_folder(f, b) for b, f in folders.items()}


def _pairs_to_ranges(values: Sequence[int], where: Path, name: str) -> tuple[Range, ...]:
    """[s1, e1, s2, e2, ...] half-open frame bounds (-1 = unused) -> 0-based inclusive ranges."""
    if len(values) % 2:
        raise InputError(where, f"video {name}: odd number of range bounds {list(values)}")
    ranges = []
    for start, end in zip(values[::2], values[1::2]):
        if start < 0 or end < 0:
            continue
        if end <= start:
            raise InputError(where, f"video {name}: empty or reversed range {start} {end}")
        ranges.append((start, end - 1))
    return tuple(ranges)


# -- UCF-Crime ----------------------------------------------------------------------------------
def parse_ucf_temporal_annotation(path: str | os.PathLike) -> dict[str, tuple[str, tuple[Range, ...]]]:
    """``Temporal_Anomaly_Annotation.txt`` -> {video: (category, 0-based inclusive ranges)}."""
    path = Path(path)
    result = {}
    for line in _read_lines(path):
        parts = line.split()
        if len(parts) != 6:
            raise InputError(path, f"cannot parse line {line!r} (expected 'name category s1 e1 s2 e2')")
        try:
            bounds = [int(p) for p in parts[2:]]
        except ValueError:
            raise InputError(path, f"cannot parse line {line!r} (frame numbers must be integers)") from None
        name = _strip_video_extension(parts[0])
        result[name] = (parts[1], _pairs_to_ranges(bounds, path, name))
    if not result:
        raise InputError(path, "no annotation lines")
    return result


def parse_ucf_split(path: str | os.PathLike) -> list[tuple[str, int]]:
    """``Anomaly_Train.txt``-style list -> [(video, video label)], label 0 for "Normal" category folders."""
    path = Path(path)
    out = []
    for line in _read_lines(path):
        parts = line.replace("\\", "/").split("/")
        name = _strip_video_extension(parts[-1])
        category = parts[-2] if len(parts) > 1 else name
        out.append((name, 0 if "normal" in category.lower() or name.lower().startswith("normal") else 1))
    return out


def load_ucf_crime(features: FeatureSource, annotations: str | os.PathLike,
                   backbones: Sequence[str] | None = None, layout: str = "auto") -> WeakDataset:
    """UCF-Crime (Sultani et al., CVPR 2018) on features; see the module docstring.

    Args:
        features: one folder per backbone ({backbone: folder}), or a folder of per-backbone subfolders,
            or the folder of a single backbone's files (then `backbones` names it).
        annotations: folder with ``[vadclip_]Anomaly_Train.txt``, ``[vadclip_]Anomaly_Test.txt`` and
            ``[vadclip_]Temporal_Anomaly_Annotation.txt``.
        backbones: backbones to use (default: the subfolders found).
        layout: feature layout hint; ambiguous shapes are read as the releases' ``[T, crops, D]``.
    """
    folder = Path(annotations)
    train = parse_ucf_split(_find(folder, ["Anomaly_Train.txt", "vadclip_Anomaly_Train.txt"]))
    test_list = parse_ucf_split(_find(folder, ["Anomaly_Test.txt", "vadclip_Anomaly_Test.txt"]))
    ann_path = _find(folder, ["Temporal_Anomaly_Annotation.txt", "vadclip_Temporal_Anomaly_Annotation.txt",
                              "Temporal_Anomaly_Annotation_for_Testing_Videos.txt"])
    annotation = parse_ucf_temporal_annotation(ann_path)
    missing = [n for n, _ in test_list if n not in annotation]
    if missing:
        raise InputError(ann_path, f"{len(missing)} test videos have no annotation line, e.g. {missing[0]}")
    folders = _feature_folders(features, backbones)
    indexes = _indexes(folders)
    train_videos = _attach(((n, lab, None, ()) for n, lab in train), folders, indexes, layout, "TCD")
    test_videos = _attach(((n, lab, None, annotation[n][1]) for n, lab in test_list), folders, indexes, layout, "TCD")
    return WeakDataset("ucf_crime", train_videos, test_videos, "auc", {
        "split": f"{len(train)} train / {len(test_list)} test videos",
        "ground truth": f"{ann_path.name}: ranges read as 0-based [start, end); frames = 16 x snippets",
        "metric": "frame AUC (micro)"})


# -- XD-Violence --------------------------------------------------------------------------------
def parse_xd_annotations(path: str | os.PathLike) -> dict[str, tuple[Range, ...]]:
    """XD-Violence ``annotations.txt`` (``name s1 e1 [s2 e2 ...]``) -> {video: 0-based inclusive ranges}."""
    path = Path(path)
    result = {}
    for line in _read_lines(path):
        parts = line.split()
        try:
            bounds = [int(p) for p in parts[1:]]
        except ValueError:
            raise InputError(path, f"cannot parse line {line[:80]!r} (expected 'name start end ...' integers)") from None
        if not bounds:
            raise InputError(path, f"line {line[:80]!r} has no ranges")
        name = _strip_video_extension(parts[0])  # 14 lines of the public file carry ".mp4"
        result[name] = _pairs_to_ranges(bounds, path, name)
    if not result:
        raise InputError(path, "no annotation lines")
    return result


def xd_is_normal(name: str) -> bool:
    """XD-Violence names carry their labels: ``..._label_A`` is normal, B1..B6/G are violent."""
    match = re.search(r"_label_([^_]+)$", name)
    return bool(match) and match.group(1).split("-")[0] == "A"


def parse_feature_csv(path: str | os.PathLike) -> list[str]:
    """Video names of a VadCLIP ``*_rgbtest.csv`` (``path,label``; files ``<video>__<crop>.npy``), in order."""
    path = Path(path)
    names: list[str] = []
    try:
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                name, _ = _strip_name(Path(row["path"].replace("\\", "/")).stem, None)
                if name not in names:
                    names.append(name)
    except (OSError, KeyError, csv.Error) as error:
        raise InputError(path, f"expected a CSV with a 'path' column ({error})") from None
    return names


def load_xd_violence(features: FeatureSource, annotations: str | os.PathLike,
                     backbones: Sequence[str] | None = None, layout: str = "auto") -> WeakDataset:
    """XD-Violence (Wu et al., ECCV 2020) on features; see the module docstring.

    Args:
        features: as :func:`load_ucf_crime`; every video of the folder that is not a test video is a training video.
        annotations: folder with ``[vadclip_]annotations.txt`` and ``*_rgbtest.csv`` (the test names).
    """
    folder = Path(annotations)
    ann_path = _find(folder, ["annotations.txt", "vadclip_annotations.txt"])
    ranges = parse_xd_annotations(ann_path)
    folders = _feature_folders(features, backbones)
    indexes = _indexes(folders)
    csvs = sorted(folder.glob("*rgbtest.csv"))
    first_index = next(iter(indexes.values()))
    if not csvs:
        # Normal test videos cannot be told from normal training videos by name: the list is needed.
        raise InputError(folder, "expected the test list *_rgbtest.csv (VadCLIP naming, 800 XD-Violence test videos)")
    test_names = parse_feature_csv(csvs[0])
    test_set = set(test_names)
    for name in test_names:
        if not xd_is_normal(name) and name not in ranges:
            raise InputError(ann_path, f"abnormal test video {name} has no annotation line")
    train_names = sorted(n for n in first_index if n not in test_set)
    train = _attach(((n, 0 if xd_is_normal(n) else 1, None, ()) for n in train_names), folders, indexes, layout, "CTD")
    test = _attach(((n, 0 if xd_is_normal(n) else 1, None, ranges.get(n, ())) for n in test_names),
                   folders, indexes, layout, "CTD")
    return WeakDataset("xd_violence", train, test, "ap", {
        "split": f"{len(train)} train (features folder minus test) / {len(test)} test videos",
        "ground truth": f"{ann_path.name}: ranges read as 0-based [start, end); frames = 16 x snippets; label_A = normal",
        "metric": "frame AP"})


# -- ShanghaiTech (weakly supervised split) -----------------------------------------------------
def _list_names(path: Path) -> list[str]:
    """Names from a feature list file (one path per line, ``.../<video>_i3d.npy``) or a plain name list."""
    names = []
    for line in _read_lines(path):
        stem = Path(line.replace("\\", "/")).name
        stem = stem[:-4] if stem.endswith(".npy") else stem
        stem = re.sub(r"_(i3d|c3d|clip|mobilenet_v2|handcrafted)$", "", stem)
        names.append(stem)
    return names


def load_shanghaitech_weak(features: FeatureSource, annotations: str | os.PathLike,
                           backbones: Sequence[str] | None = None, layout: str = "auto") -> WeakDataset:
    """ShanghaiTech in Zhong et al.'s weakly-supervised split (as released with RTFM).

    Args:
        features: as :func:`load_ucf_crime`.
        annotations: folder with ``rtfm_shanghai-i3d-{train,test}-10crop.list`` (or ``shanghai-i3d-...``
            / ``SH_Train.txt`` / ``SH_Test.txt``) and ``test_frame_mask/``.
    """
    folder = Path(annotations)
    train_list = _find(folder, ["rtfm_shanghai-i3d-train-10crop.list", "shanghai-i3d-train-10crop.list",
                                "rtfm_SH_Train.txt", "SH_Train.txt"])
    test_list = _find(folder, ["rtfm_shanghai-i3d-test-10crop.list", "shanghai-i3d-test-10crop.list",
                               "rtfm_SH_Test.txt", "SH_Test.txt"])
    mask_dir = folder / "test_frame_mask"
    if not mask_dir.is_dir():
        raise InputError(mask_dir, "expected the ShanghaiTech test_frame_mask/ folder of NN_NNNN.npy frame labels")
    masks = {p.stem: p for p in mask_dir.glob("*.npy")}

    def describe(name: str) -> tuple[str, int, int | None, tuple[Range, ...]]:
        if name not in masks:
            return name, 0, None, ()  # from the one-class training set: normal, frame count = 16 T
        labels = load_label_vector(masks[name]) != 0  # checked: numeric, 1-D, no NaN
        edges = np.flatnonzero(np.diff(np.concatenate([[0], labels.astype(np.int8), [0]])))
        ranges = tuple((int(s), int(e) - 1) for s, e in zip(edges[::2], edges[1::2]))
        return name, int(labels.any()), int(labels.size), ranges

    folders = _feature_folders(features, backbones)
    indexes = _indexes(folders)
    train = _attach((describe(n) for n in _list_names(train_list)), folders, indexes, layout, "TCD")
    test = _attach((describe(n) for n in _list_names(test_list)), folders, indexes, layout, "TCD")
    return WeakDataset("shanghaitech_weak", train, test, "auc", {
        "split": f"{train_list.name} ({len(train)}) / {test_list.name} ({len(test)})",
        "ground truth": "test_frame_mask/*.npy; videos without a mask are normal with 16 x snippets frames",
        "metric": "frame AUC (micro)"})


# -- UCSD Ped2 (weakly supervised split of TEVAD) -----------------------------------------------
def ped2_frame_count(name: str) -> int:
    """Frame count of Ped2 ``TestNNN`` / ``TrainNNN``."""
    match = re.fullmatch(r"(Test|Train)(\d{3})", name)
    counts = PED2_TEST_FRAMES if match and match.group(1) == "Test" else PED2_TRAIN_FRAMES
    if not match or not 1 <= int(match.group(2)) <= len(counts):
        raise ValueError(f"{name!r} is not a UCSD Ped2 video name (Test001-Test012, Train001-Train016)")
    return counts[int(match.group(2)) - 1]


def ped2_weak_split(train_list: str | os.PathLike, test_list: str | os.PathLike,
                    ucsd_m: str | os.PathLike) -> tuple[list[tuple[str, int, int, tuple[Range, ...]]], ...]:
    """TEVAD's Ped2 lists + ``UCSDped2.m`` -> (train, test) lists of (name, video label, frames, ranges).

    ``TrainNNN`` videos are normal (no ranges); ``TestNNN`` videos take their ranges from the .m file.
    """
    gt = parse_ucsd_m(ucsd_m)
    out = []
    for path in (Path(train_list), Path(test_list)):
        items = []
        for name in _list_names(path):
            try:
                frames = ped2_frame_count(name)
            except ValueError as error:
                raise InputError(path, str(error)) from None
            ranges = tuple(gt[int(name[4:]) - 1]) if name.startswith("Test") else ()
            if any(end >= frames for _, end in ranges):
                raise InputError(ucsd_m, f"{name}: a range ends past its {frames} frames")
            items.append((name, int(bool(ranges)), frames, ranges))
        out.append(items)
    return out[0], out[1]


def load_ped2_weak(features: FeatureSource, annotations: str | os.PathLike,
                   backbones: Sequence[str] | None = None, layout: str = "auto",
                   ucsd_m: str | os.PathLike | None = None) -> WeakDataset:
    """UCSD Ped2 in TEVAD's weakly-supervised split, ground truth rebuilt from ``UCSDped2.m``.

    Args:
        features: as :func:`load_ucf_crime`; files named ``TestNNN_<backbone>.npy`` / ``TrainNNN_<backbone>.npy``.
        annotations: folder with ``[tevad_]ped2-i3d.list`` and ``[tevad_]ped2-i3d-test.list``.
        ucsd_m: the official ``UCSDped2.m`` (default: ``<annotations>/UCSDped2.m``, then
            ``<annotations>/../ucsd_gt/UCSDped2.m``).
    """
    folder = Path(annotations)
    train_list = _find(folder, ["tevad_ped2-i3d.list", "ped2-i3d.list"])
    test_list = _find(folder, ["tevad_ped2-i3d-test.list", "ped2-i3d-test.list"])
    if ucsd_m is None:
        candidates = [folder / "UCSDped2.m", folder.parent / "ucsd_gt" / "UCSDped2.m"]
        ucsd_m = next((c for c in candidates if c.is_file()), candidates[0])
    train, test = ped2_weak_split(train_list, test_list, ucsd_m)
    folders = _feature_folders(features, backbones)
    indexes = _indexes(folders)
    return WeakDataset("ped2_weak", _attach(train, folders, indexes, layout, "CTD"),
                       _attach(test, folders, indexes, layout, "CTD"), "auc", {
                           "split": f"{train_list.name} ({len(train)}) / {test_list.name} ({len(test)})",
                           "ground truth": f"rebuilt from {Path(ucsd_m).name} (1-based inclusive); TrainNNN all normal",
                           "metric": "frame AUC (micro)"})


WEAK_LOADERS = {"ucf_crime": load_ucf_crime, "xd_violence": load_xd_violence,
                "shanghaitech_weak": load_shanghaitech_weak, "ped2_weak": load_ped2_weak}


def load_weak_dataset(name: str, features: FeatureSource, annotations: str | os.PathLike, **options) -> WeakDataset:
    """Dispatch to the loader of `name` (a key of :data:`WEAK_LOADERS`)."""
    if name not in WEAK_LOADERS:
        raise InputError(name, f"unknown weakly-supervised dataset; expected one of {sorted(WEAK_LOADERS)}")
    return WEAK_LOADERS[name](features, annotations, **options)
