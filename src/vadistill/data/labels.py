"""Ground-truth parsers: benchmark annotation files -> per-video frame labels and pixel masks.

Every function here reads ground truth only (no frames), so it can be used and tested on the
annotation files alone. Conventions:

- Frame labels are (T,) uint8 arrays, 1 = anomalous frame.
- Pixel masks are (T, H, W) bool arrays, True = anomalous pixel.
- Frame ranges returned by parsers are 0-based and inclusive: ``(start, end)``.
- Anything wrong with a file (unparsable, ranges past the video end, lengths that do not add up)
  raises :class:`vadistill.errors.InputError` naming the file and what was expected.

Formats:

- UCSD Ped1/Ped2 ``UCSDpedN.m`` (official): one MATLAB line per test video,
  ``TestVideoFile{end+1}.gt_frame = [61:180];`` (or ``{3}`` instead of ``{end+1}``); ranges are
  1-based and inclusive, several ranges are comma separated (``[5:90, 140:200]``).
- UCSD pixel masks: official ``TestNNN_gt/NNN.bmp`` folders (any non-zero pixel is anomalous),
  or a ``ucsdpedN_pixel_gt.npz`` with one bool (T, H, W) array per video (keys ``Test001``...).
- CUHK Avenue ``N_label.mat`` (official ``ground_truth_demo/testing_label_mask``): variable
  ``volLabel``, a 1 x T MATLAB cell of H x W masks.
- ShanghaiTech ``test_frame_mask/NN_NNNN.npy``: (T,) 0/1 frame labels;
  ``test_pixel_mask/NN_NNNN.npy``: (T, H, W) masks.
- Concatenated label files used by frame-prediction code (``frame_labels_ped2.npy``,
  ``frame_labels_avenue.npy``, ...): shape (1, total) or (total,), split by per-video frame counts.
- UBnormal ``<video>_annotations/<video>_tracks.txt``: comma-separated rows
  ``object_id,start_frame,end_frame`` (0-based, inclusive) for each anomalous object; per-frame
  ``<video>_<NNNN>_gt.png`` maps whose pixel values are object ids.
- Custom label files: CSV rows ``video,start,end`` (0-based, inclusive; optional header line)
  or JSON ``{"video": [[start, end], ...]}``.
"""

from __future__ import annotations

import csv
import json
import os
import re
import zipfile
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

from vadistill.errors import InputError
from vadistill.io.video import list_frame_files, natural_key

Range = tuple[int, int]

# Matches `TestVideoFile{end+1}.gt_frame = [61:180];` and `TestVideoFile{3}.gt_frame = [...]`.
_UCSD_ENTRY = re.compile(r"TestVideoFile\s*\{\s*(end\s*\+\s*1|\d+)\s*\}\s*\.\s*gt_frame\s*=\s*\[([^\]]*)\]")


# -- generic helpers ----------------------------------------------------------------------------
def ranges_to_labels(ranges: Iterable[Range], num_frames: int, where: str | os.PathLike) -> np.ndarray:
    """Frame labels (T,) uint8 from 0-based inclusive ranges.

    Args:
        ranges: (start, end) pairs, 0-based, inclusive.
        num_frames: length of the video.
        where: ground-truth file (and video) named in errors.

    Raises:
        InputError: a range is reversed, negative or goes past the last frame.
    """
    labels = np.zeros(num_frames, dtype=np.uint8)
    for start, end in ranges:
        if start < 0 or end < start:
            raise InputError(where, f"invalid frame range [{start}, {end}] (expected 0 <= start <= end)")
        if end >= num_frames:
            raise InputError(where, f"frame range [{start}, {end}] goes past the end of the video: "
                                    f"expected frames 0..{num_frames - 1} ({num_frames} frames)")
        labels[start:end + 1] = 1
    return labels


def labels_from_masks(masks: np.ndarray) -> np.ndarray:
    """Frame labels (T,) uint8 from pixel masks (T, H, W): a frame is anomalous if any pixel is."""
    masks = np.asarray(masks)
    return masks.reshape(len(masks), -1).any(axis=1).astype(np.uint8)


def split_concatenated_labels(labels: np.ndarray, lengths: Sequence[int], where: str | os.PathLike) -> list[np.ndarray]:
    """Split one concatenated label vector ((1, total) or (total,)) into per-video labels.

    Raises:
        InputError: the total length differs from the sum of the per-video frame counts.
    """
    flat = np.asarray(labels).reshape(-1)
    total = int(sum(lengths))
    if flat.size != total:
        raise InputError(where, f"holds {flat.size} frame labels, expected {total} "
                                f"(the sum of the {len(lengths)} test videos' frame counts)")
    bounds = np.cumsum([0, *lengths])
    return [(flat[bounds[i]:bounds[i + 1]] != 0).astype(np.uint8) for i in range(len(lengths))]


def load_label_vector(path: str | os.PathLike) -> np.ndarray:
    """A (T,) uint8 frame-label vector from a .npy file (1 = anomalous)."""
    path = Path(path)
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise InputError(path, f"could not be read as a .npy label array ({error})") from None
    if array.ndim == 2 and 1 in array.shape:
        array = array.reshape(-1)
    if array.ndim != 1:
        raise InputError(path, f"expected a 1-D frame-label array, found shape {array.shape}")
    if array.dtype.kind not in "biuf":
        raise InputError(path, f"expected numeric 0/1 frame labels, found a {array.dtype} array")
    # NaN != 0 is True: without this check a NaN label would silently count as an anomalous frame.
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = int(np.flatnonzero(~np.isfinite(array))[0])
        raise InputError(path, f"frame label {bad} is {array[bad]}; expected 0/1 frame labels")
    return (array != 0).astype(np.uint8)


# -- UCSD ---------------------------------------------------------------------------------------
def parse_ucsd_m(path: str | os.PathLike) -> list[list[Range]]:
    """Parse an official UCSD ``UCSDpedN.m`` file.

    Returns:
        One list of 0-based inclusive (start, end) ranges per test video, in file order
        (entry k belongs to TestNNN with NNN = k + 1).

    Raises:
        InputError: the file is missing or holds no ``gt_frame`` entries.
    """
    path = Path(path)
    try:
        text = path.read_text(errors="replace")
    except OSError as error:
        raise InputError(path, f"could not be read ({error})") from error
    videos: list[list[Range]] = []
    for index, body in _UCSD_ENTRY.findall(text):
        if not index.replace(" ", "").startswith("end") and int(index) != len(videos) + 1:
            raise InputError(path, f"entry TestVideoFile{{{index}}} is out of order (expected {{{len(videos) + 1}}})")
        ranges: list[Range] = []
        for part in filter(None, (p.strip() for p in body.split(","))):
            bounds = part.split(":")
            if len(bounds) not in (1, 2) or not all(b.strip().isdigit() for b in bounds):
                raise InputError(path, f"cannot parse range '{part}' (expected 1-based 'first:last')")
            first, last = int(bounds[0]), int(bounds[-1])
            if first < 1 or last < first:
                raise InputError(path, f"invalid 1-based range '{part}'")
            ranges.append((first - 1, last - 1))
        videos.append(ranges)
    if not videos:
        raise InputError(path, "no 'TestVideoFile{...}.gt_frame = [...]' entries found (expected an official UCSD .m file)")
    return videos


def load_mask_folder(folder: str | os.PathLike) -> np.ndarray:
    """Pixel masks (T, H, W) bool from a folder of mask images (UCSD ``TestNNN_gt``; non-zero = anomalous)."""
    folder = Path(folder)
    files = list_frame_files(folder) if folder.is_dir() else []
    if not files:
        raise InputError(folder, "expected a folder of mask images (e.g. 001.bmp), found none")
    masks = []
    for file in files:
        image = cv2.imread(str(file), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise InputError(file, "could not be decoded as a mask image")
        masks.append(image > 0)
    shapes = {m.shape for m in masks}
    if len(shapes) > 1:
        raise InputError(folder, f"mask images have different sizes {sorted(shapes)}")
    return np.stack(masks)


def load_npz_masks(path: str | os.PathLike, key: str) -> np.ndarray:
    """One video's (T, H, W) bool masks from an .npz of masks (e.g. ``ucsdped2_pixel_gt.npz``, key ``Test001``)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if key not in archive.files:
                raise InputError(path, f"has no masks for {key} (found {', '.join(sorted(archive.files)) or 'nothing'})")
            masks = archive[key]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise InputError(path, f"could not be read as an .npz of (T, H, W) mask arrays ({error})") from None
    if masks.ndim != 3:
        raise InputError(path, f"{key}: expected (T, H, W) masks, found shape {masks.shape}")
    return masks != 0


# -- CUHK Avenue -------------------------------------------------------------------------------
def avenue_mask_files(folder: str | os.PathLike) -> dict[str, Path]:
    """Official Avenue mask files ``N_label.mat`` in a folder, keyed by two-digit video name ("01".."21")."""
    folder = Path(folder)
    files = {}
    for path in sorted(folder.glob("*_label.mat"), key=lambda p: natural_key(p.name)):
        number = path.name.split("_")[0]
        if number.isdigit():
            files[f"{int(number):02d}"] = path
    if not files:
        raise InputError(folder, "expected Avenue mask files named N_label.mat (testing_label_mask), found none")
    return files


def load_avenue_masks(path: str | os.PathLike) -> np.ndarray:
    """(T, H, W) bool masks from an official Avenue ``N_label.mat`` (variable ``volLabel``)."""
    import scipy.io  # local import: only Avenue needs it, and it is slow to import

    path = Path(path)
    try:
        content = scipy.io.loadmat(str(path))
    except (OSError, ValueError, NotImplementedError) as error:
        raise InputError(path, f"could not be read as a MATLAB .mat file ({error})") from error
    if "volLabel" not in content:
        raise InputError(path, f"expected a 'volLabel' variable, found {sorted(k for k in content if not k.startswith('__'))}")
    cells = np.asarray(content["volLabel"]).reshape(-1)
    if cells.size == 0:
        raise InputError(path, "volLabel is empty (expected one mask per frame)")
    masks = [np.asarray(cell) != 0 for cell in cells]
    shapes = {m.shape for m in masks}
    if len(shapes) != 1 or masks[0].ndim != 2:
        raise InputError(path, f"volLabel masks should all be H x W of one size, found shapes {sorted(shapes)}")
    return np.stack(masks)


def avenue_mask_labels(folder: str | os.PathLike) -> dict[str, np.ndarray]:
    """Frame labels of every Avenue test video from the official masks (frame = any pixel set).

    Args:
        folder: the official ``testing_label_mask`` folder.

    Returns:
        {"01": labels, ..., "21": labels}.
    """
    return {name: labels_from_masks(load_avenue_masks(path)) for name, path in avenue_mask_files(folder).items()}


# -- ShanghaiTech -------------------------------------------------------------------------------
def shanghaitech_frame_labels(folder: str | os.PathLike) -> dict[str, np.ndarray]:
    """Frame labels of every ShanghaiTech test video from ``test_frame_mask/NN_NNNN.npy`` files.

    Returns:
        {"01_0014": labels, ...} in natural name order.
    """
    folder = Path(folder)
    files = sorted(folder.glob("*.npy"), key=lambda p: natural_key(p.name)) if folder.is_dir() else []
    if not files:
        raise InputError(folder, "expected ShanghaiTech frame-label files NN_NNNN.npy (test_frame_mask), found none")
    return {path.stem: load_label_vector(path) for path in files}


def load_npy_masks(path: str | os.PathLike) -> np.ndarray:
    """(T, H, W) bool masks from one .npy file (ShanghaiTech ``test_pixel_mask``)."""
    path = Path(path)
    try:
        masks = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise InputError(path, f"could not be read as a .npy mask array ({error})") from error
    if masks.ndim != 3:
        raise InputError(path, f"expected (T, H, W) pixel masks, found shape {masks.shape}")
    return masks != 0


# -- UBnormal -----------------------------------------------------------------------------------
def parse_ubnormal_tracks(path: str | os.PathLike) -> np.ndarray:
    """Rows (object_id, start_frame, end_frame) of a UBnormal ``*_tracks.txt`` file, as int64 (N, 3).

    The official ``write_frame_level_ground_truth.py`` reads these with
    ``np.loadtxt(path, delimiter=",")`` and marks ``ground_truth[start:end + 1] = 1``: frames are
    0-based and ranges inclusive. An empty file means no anomalous object.
    """
    path = Path(path)
    rows = []
    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        raise InputError(path, f"could not be read ({error})") from error
    for line_number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        try:
            values = [int(float(f)) for f in fields[:3]]
        except ValueError:
            values = []
        if len(values) != 3:
            raise InputError(path, f"line {line_number}: expected 'object_id,start_frame,end_frame', found '{line.strip()}'")
        rows.append(values)
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def ubnormal_frame_labels(tracks: np.ndarray, num_frames: int, where: str | os.PathLike) -> np.ndarray:
    """Frame labels: the union of the tracks' [start, end] ranges (see :func:`parse_ubnormal_tracks`)."""
    return ranges_to_labels(((int(s), int(e)) for _, s, e in tracks), num_frames, where)


def load_ubnormal_masks(annotations_dir: str | os.PathLike, video_name: str, tracks: np.ndarray,
                        num_frames: int, frame_size: tuple[int, int]) -> np.ndarray:
    """(T, H, W) bool anomaly masks of one UBnormal video.

    The per-frame maps ``<video>_<NNNN>_gt.png`` hold object ids as pixel values (NNNN = the same
    0-based frame index as the tracks file). A pixel is anomalous in frame t when its id belongs
    to a track whose [start, end] range contains t — exactly how the official
    ``create_tracks_for_tbdc_rbdc.py`` cuts each anomalous object out of the maps.

    Raises:
        InputError: a map is missing for a frame that a track covers, or has the wrong size.
    """
    annotations_dir = Path(annotations_dir)
    masks = np.zeros((num_frames, *frame_size), dtype=bool)
    for frame in range(num_frames):
        active_ids = [int(i) for i, s, e in tracks if s <= frame <= e]
        if not active_ids:
            continue
        path = annotations_dir / f"{video_name}_{frame:04d}_gt.png"
        object_map = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if object_map is None:
            raise InputError(path, f"missing or unreadable object map (tracks mark frame {frame} anomalous)")
        if object_map.shape != tuple(frame_size):
            raise InputError(path, f"object map is {object_map.shape[1]}x{object_map.shape[0]}, "
                                   f"expected {frame_size[1]}x{frame_size[0]} like the video")
        masks[frame] = np.isin(object_map, active_ids)
    return masks


def read_name_list(path: str | os.PathLike) -> list[str]:
    """Non-empty lines of a split file (e.g. UBnormal ``abnormal_test_video_names.txt``)."""
    path = Path(path)
    try:
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except OSError as error:
        raise InputError(path, f"could not be read ({error})") from error


# -- custom datasets ----------------------------------------------------------------------------
def parse_custom_labels(path: str | os.PathLike) -> dict[str, list[Range]]:
    """Anomalous frame ranges per video from a custom labels file.

    Formats (frames 0-based, ranges inclusive; several rows/ranges per video allowed):

    - CSV: rows ``video,start,end``; a first line ``video,start,end`` is taken as a header.
    - JSON: ``{"video": [[start, end], ...], ...}``.

    Video names may be given with or without the file extension (``clip1`` or ``clip1.mp4``).

    Raises:
        InputError: unknown extension, unparsable rows, or reversed/negative ranges.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "labels file not found (expected a .csv or .json file)")
    suffix = path.suffix.lower()
    ranges: dict[str, list[Range]] = {}
    if suffix == ".json":
        try:
            content = json.loads(path.read_text())
        except ValueError as error:
            raise InputError(path, f"is not valid JSON ({error})") from error
        if not isinstance(content, dict):
            raise InputError(path, 'expected a JSON object {"video": [[start, end], ...]}')
        for video, pairs in content.items():
            if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
                raise InputError(path, f'video "{video}": expected a list of [start, end] pairs, found {pairs!r}')
            try:
                ranges[str(video)] = [(int(s), int(e)) for s, e in pairs]
            except (TypeError, ValueError) as error:
                raise InputError(path, f'video "{video}": frame numbers must be integers ({pairs!r})') from error
    elif suffix == ".csv":
        try:
            with path.open(newline="") as handle:
                rows = list(csv.reader(handle))
        except (UnicodeDecodeError, csv.Error) as error:
            raise InputError(path, f"is not a text CSV file ({error}); expected 'video,start,end' rows") from None
        for line_number, row in enumerate(rows, 1):
            row = [cell.strip() for cell in row]
            if not any(row) or row[0].startswith("#"):
                continue
            if line_number == 1 and [c.lower() for c in row[:3]] == ["video", "start", "end"]:
                continue
            if len(row) != 3 or not row[1].lstrip("-").isdigit() or not row[2].lstrip("-").isdigit():
                raise InputError(path, f"line {line_number}: expected 'video,start,end' with integer frames, found {','.join(row)!r}")
            ranges.setdefault(row[0], []).append((int(row[1]), int(row[2])))
    else:
        raise InputError(path, "unknown labels file type (expected .csv with 'video,start,end' rows or .json)")
    for video, pairs in ranges.items():
        for start, end in pairs:
            if start < 0 or end < start:
                raise InputError(path, f'video "{video}": invalid range [{start}, {end}] (expected 0 <= start <= end)')
    return ranges
