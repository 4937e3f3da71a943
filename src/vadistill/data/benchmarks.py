"""Benchmark loaders: one plain function per dataset, each returning a :class:`VideoDataset`.

Prepared data lives in ``<data root>/<name>/`` (data root: env ``VADISTILL_DATA``, else
``~/.cache/vadistill/datasets``). That folder holds the official download(s) unpacked as they
are, plus any extra ground-truth files, so every loader *detects* the layout by searching the
folder a few levels deep and records what it found in ``VideoDataset.notes["layout"]``.

Video naming (the same whatever the layout, so results and label files are comparable):

- UCSD Ped1/Ped2, CUHK Avenue: the video number as two digits, "01", "02", ... for both train
  and test (official ``Test001`` and frames-layout ``01`` are both "01").
- ShanghaiTech: the official stem, "01_0014" (test) / "01_001" (train).
- UBnormal: the official video name, "abnormal_scene_1_scenario_1".
- custom: the video file's stem or the frame folder's name.

Labels are (T,) uint8 with T == the video's frame count; a mismatch raises InputError naming
the video, the ground-truth file and both lengths. Pixel masks are loaded lazily
(``VideoRef.mask_loader``) because a whole benchmark's masks do not fit in memory.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
import zipfile
from functools import partial
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from vadistill.data import labels as gtio
from vadistill.data.layout import dataset_root, frames_dir_for
from vadistill.errors import InputError
from vadistill.io.video import VIDEO_EXTENSIONS, list_frame_files, natural_key, open_video
from vadistill.types import VideoDataset, VideoRef

SEARCH_DEPTH = 3  # how many folder levels below the dataset root a layout may start

# When set (by `collect_problems`), recoverable ground-truth problems are appended here instead
# of raised, so that `check_dataset` can list every problem of a dataset in one pass.
_problem_sink: contextvars.ContextVar[list[InputError] | None] = contextvars.ContextVar("problem_sink", default=None)


# -- roots -----------------------------------------------------------------------------------
def _existing_root(name: str, root: str | os.PathLike | None) -> Path:
    folder = Path(root).expanduser() if root is not None else dataset_root(name)
    if not folder.is_dir():
        raise InputError(folder, f"no such folder: expected the prepared '{name}' dataset here "
                                 f"(run `vadistill data prepare {name} --source ...`, or pass its folder)")
    return folder


# -- problem collection ------------------------------------------------------------------------
@contextlib.contextmanager
def collect_problems() -> Iterator[list[InputError]]:
    """Within this block, loaders record ground-truth/frame mismatches instead of raising them.

    Used by ``check_dataset`` to report every problem at once. Layout errors (missing folder,
    unknown layout, no ground truth at all) are still raised. Yields the list of InputErrors.
    """
    problems: list[InputError] = []
    token = _problem_sink.set(problems)
    try:
        yield problems
    finally:
        _problem_sink.reset(token)


def _report(error: InputError) -> None:
    """Raise `error`, or record it when a `collect_problems` block is active."""
    sink = _problem_sink.get()
    if sink is None:
        raise error
    sink.append(error)


def _fit_labels(labels: np.ndarray, num_frames: int, video: str, gt_file: str | os.PathLike, source: str) -> np.ndarray:
    """Check that a video's labels cover exactly its frames (pads/truncates when only recording)."""
    labels = np.asarray(labels, dtype=np.uint8).reshape(-1)
    if len(labels) != num_frames:
        _report(InputError(gt_file, f"video {video}: ground truth has {len(labels)} frame labels but "
                                    f"{source} has {num_frames} frames"))
        fitted = np.zeros(num_frames, dtype=np.uint8)
        fitted[:min(num_frames, len(labels))] = labels[:num_frames]
        return fitted
    return labels


def _labels_from_ranges(ranges: Sequence[tuple[int, int]], num_frames: int, video: str,
                        gt_file: str | os.PathLike, source: str) -> np.ndarray:
    try:
        return gtio.ranges_to_labels(ranges, num_frames, f"{gt_file}")
    except InputError as error:
        _report(InputError(gt_file, f"video {video} ({source}): {error.problem}"))
        # Keep what is valid so that checking can go on and report the other problems too.
        clipped = [(s, min(e, num_frames - 1)) for s, e in ranges if 0 <= s <= e and s < num_frames]
        return gtio.ranges_to_labels(clipped, num_frames, gt_file)


class _MaskLoader:
    """Lazy pixel masks of one video; checks there is one mask per frame. `path` names the source."""

    def __init__(self, load: Callable[[], np.ndarray], num_frames: int, video: str, path: str | os.PathLike):
        self.load, self.num_frames, self.video, self.path = load, num_frames, video, Path(path)

    def __call__(self) -> np.ndarray:
        masks = self.load()
        if len(masks) != self.num_frames:
            raise InputError(self.path, f"video {self.video}: {len(masks)} pixel masks but the video has "
                                        f"{self.num_frames} frames")
        return masks


# -- searching -------------------------------------------------------------------------------
def _folders(root: Path, max_depth: int = SEARCH_DEPTH) -> list[Path]:
    """Root and its sub-folders down to max_depth, breadth first, hidden folders skipped."""
    found, level = [root], [root]
    for _ in range(max_depth):
        next_level = []
        for folder in level:
            try:
                children = sorted((c for c in folder.iterdir() if c.is_dir() and not c.name.startswith(".")),
                                  key=lambda p: natural_key(p.name))
            except OSError:
                continue
            next_level.extend(children)
        found.extend(next_level)
        level = next_level
    return found


def _find_folder(root: Path, accept: Callable[[Path], bool], max_depth: int = SEARCH_DEPTH) -> Path | None:
    return next((folder for folder in _folders(root, max_depth) if accept(folder)), None)


def _find_file(root: Path, names: Sequence[str], max_depth: int = SEARCH_DEPTH) -> Path | None:
    """First file (breadth first) whose name matches one of `names` case-insensitively."""
    wanted = [n.lower() for n in names]
    for folder in _folders(root, max_depth):
        matches = {p.name.lower(): p for p in folder.iterdir() if p.is_file() and not p.name.startswith("._")}
        for name in wanted:
            if name in matches:
                return matches[name]
    return None


def _count_frames(folder: Path) -> int:
    count = len(list_frame_files(folder))
    if count == 0:
        _report(InputError(folder, "expected frame images, found none"))
    return count


def _count_video_frames(path: Path) -> int:
    try:
        with open_video(path) as reader:
            return reader.num_frames
    except InputError as error:
        _report(error)
        return 0


def _count_source(source: Path) -> int:
    """Frames of a frame folder (image files) or a video file (decoded count)."""
    return _count_frames(source) if source.is_dir() else _count_video_frames(source)


def _two_digits(text: str) -> str:
    """ "Test001" / "01" / "1" -> "01" (the UCSD/Avenue naming scheme)."""
    digits = re.findall(r"\d+", text)
    return f"{int(digits[-1]):02d}" if digits else text


def _prefer_frames(videos: Sequence[Path]) -> list[Path]:
    """Each video's extracted frame folder when it exists (indexed reads are faster), else the video.

    Extraction makes a folder appear only once it is complete, so a present folder is whole.
    """
    sources = []
    for video in videos:
        frames = frames_dir_for(video)
        sources.append(frames if frames.is_dir() and list_frame_files(frames) else video)
    return sources


def _frame_folders(parent: Path) -> list[Path]:
    if not parent.is_dir():
        return []
    return sorted((p for p in parent.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: natural_key(p.name))


def _video_files(parent: Path) -> list[Path]:
    if not parent.is_dir():
        return []
    return sorted((p for p in parent.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS
                   and not p.name.startswith(".")), key=lambda p: natural_key(p.name))


def _unknown_layout(name: str, root: Path, expected: Sequence[str]) -> InputError:
    return InputError(root, f"no known {name} layout found (searched {SEARCH_DEPTH} folder levels deep); expected one of: "
                            + "; ".join(expected))


def _train_refs(sources: Sequence[Path], name_of: Callable[[Path], str]) -> list[VideoRef]:
    return [VideoRef(name=name_of(s), source=str(s),
                     num_frames=_count_source(s)) for s in sources]


# -- UCSD Ped1 / Ped2 --------------------------------------------------------------------------
def _ucsd_frame_labels(number: int, root: Path, test_dirs: list[Path], counts: list[int],
                       gt_path: Path | None) -> tuple[list[np.ndarray], str]:
    """Frame labels of UCSD test videos from a .m file or a concatenated .npy, and where they came from."""
    names = [_two_digits(d.name) for d in test_dirs]
    if gt_path is None:
        gt_path = (_find_file(root, [f"UCSDped{number}.m"])
                   or _find_file(root, [f"frame_labels_ped{number}.npy"]))
    if gt_path is None:
        raise InputError(root, f"no frame ground truth found: expected UCSDped{number}.m (official) or "
                               f"frame_labels_ped{number}.npy under this folder, or pass gt=<file>")
    gt_path = Path(gt_path)
    if not gt_path.is_file():
        raise InputError(gt_path, "ground-truth file not found")
    if gt_path.suffix.lower() == ".npy":
        try:
            parts = gtio.split_concatenated_labels(gtio.load_label_vector(gt_path), counts, gt_path)
        except InputError as error:
            _report(error)
            parts = [np.zeros(c, np.uint8) for c in counts]
        return [_fit_labels(p, c, n, gt_path, str(d)) for p, c, n, d in zip(parts, counts, names, test_dirs)], \
            f"{gt_path.name} (concatenated frame labels split by frame counts)"
    entries = gtio.parse_ucsd_m(gt_path)
    numbers = [int(n) for n in names]
    if sorted(numbers) != list(range(1, len(entries) + 1)):
        missing = sorted(set(range(1, len(entries) + 1)) - set(numbers))
        extra = sorted(set(numbers) - set(range(1, len(entries) + 1)))
        _report(InputError(gt_path, f"has {len(entries)} test videos but {len(test_dirs)} test folders were found"
                                    + (f"; missing test videos {', '.join(f'{m:02d}' for m in missing)}" if missing else "")
                                    + (f"; no ground truth for {', '.join(f'{e:02d}' for e in extra)}" if extra else "")))
    labels = []
    for number_, count, name, folder in zip(numbers, counts, names, test_dirs):
        ranges = entries[number_ - 1] if number_ <= len(entries) else []
        labels.append(_labels_from_ranges(ranges, count, name, gt_path, str(folder)))
    return labels, f"{gt_path.name} (official UCSD frame annotation, 1-based inclusive ranges)"


def _load_ucsd(number: int, root: str | os.PathLike | None, gt_file: str | os.PathLike | None) -> VideoDataset:
    name = f"ped{number}"
    root = _existing_root(name, root)
    official = _find_folder(root, lambda d: d.name.lower() == f"ucsdped{number}" and (d / "Test").is_dir())
    # Prefer a folder named pedN, in case Ped1 and Ped2 frames were unpacked side by side.
    frames = (_find_folder(root, lambda d: d.name.lower() == name and (d / "testing" / "frames").is_dir())
              or _find_folder(root, lambda d: (d / "testing" / "frames").is_dir()))
    npz_path = _find_file(root, [f"ucsdped{number}_pixel_gt.npz"])
    gt_path = Path(gt_file) if gt_file is not None else None

    if official is not None:
        layout = f"official: {official}/{{Train,Test}}/TrainNNN|TestNNN/NNN.tif"
        is_video = re.compile(r"^(Train|Test)\d+$", re.IGNORECASE).match
        train_dirs = [d for d in _frame_folders(official / "Train") if is_video(d.name)]
        test_dirs = [d for d in _frame_folders(official / "Test") if is_video(d.name)]
        if gt_path is None:
            candidate = official / "Test" / f"UCSDped{number}.m"
            gt_path = candidate if candidate.is_file() else None
    elif frames is not None:
        layout = f"frames: {frames}/{{training,testing}}/frames/NN/NNN.jpg"
        train_dirs = _frame_folders(frames / "training" / "frames")
        test_dirs = _frame_folders(frames / "testing" / "frames")
    else:
        raise _unknown_layout(name, root, [f"official 'UCSDped{number}/{{Train,Test}}/TestNNN/NNN.tif'",
                                           f"frames '{name}/{{training,testing}}/frames/NN/NNN.jpg'"])
    for folder in [d for d in train_dirs + test_dirs if not re.search(r"\d", d.name)]:
        _report(InputError(folder, "unexpected folder: expected numbered video folders (NN or TestNNN/TrainNNN)"))
    train_dirs = [d for d in train_dirs if re.search(r"\d", d.name)]
    test_dirs = [d for d in test_dirs if re.search(r"\d", d.name)]
    if not test_dirs:
        raise InputError(root, f"{name}: no test video folders found ({layout})")

    counts = [_count_frames(d) for d in test_dirs]
    labels, label_source = _ucsd_frame_labels(number, root, test_dirs, counts, gt_path)

    test = []
    mask_sources = set()
    for folder, count, frame_labels in zip(test_dirs, counts, labels):
        video = _two_digits(folder.name)
        mask_folder = folder.parent / f"{folder.name}_gt"
        key = f"Test{int(video):03d}"
        loader = None
        if mask_folder.is_dir() and list_frame_files(mask_folder):
            loader = _MaskLoader(partial(gtio.load_mask_folder, mask_folder), count, video, mask_folder)
            mask_sources.add("TestNNN_gt/*.bmp folders")
        elif npz_path is not None and _may_hold(npz_path, key):
            loader = _MaskLoader(partial(gtio.load_npz_masks, npz_path, key), count, video, npz_path)
            mask_sources.add(npz_path.name)
        test.append(VideoRef(name=video, source=str(folder), num_frames=count, labels=frame_labels, mask_loader=loader))
    train = _train_refs(train_dirs, lambda d: _two_digits(d.name))
    notes = {
        "layout": layout,
        "labels": label_source,
        "masks": ", ".join(sorted(mask_sources)) if mask_sources else "none",
        "names": "two-digit video numbers '01', '02', ... (official TestNNN/TrainNNN -> NN)",
    }
    return VideoDataset(name=name, root=str(root), train=train, test=test, notes=notes)


_npz_key_cache: dict[tuple[str, float], list[str] | None] = {}


def _npz_keys(path: Path) -> list[str] | None:
    """Array names of an .npz, or None when it cannot be read as one."""
    # Listing an .npz reads only its zip directory, but it is called once per video: cache it.
    key = (str(path), path.stat().st_mtime)
    if key not in _npz_key_cache:
        try:
            with np.load(path, allow_pickle=False) as archive:
                _npz_key_cache[key] = list(archive.files)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            _npz_key_cache[key] = None
    return _npz_key_cache[key]


def _may_hold(npz_path: Path, key: str) -> bool:
    """Whether the mask archive has masks for `key`. A damaged archive gets the benefit of the doubt:
    frame-level evaluation does not need masks, and the lazy mask loader names the file as soon as
    masks are read (``vadistill data check`` does)."""
    keys = _npz_keys(npz_path)
    return keys is None or key in keys


def load_ped1(root: str | os.PathLike | None = None, gt: str | os.PathLike | None = None) -> VideoDataset:
    """UCSD Ped1 (34 train / 36 test videos of 200 frames, 238x158).

    Args:
        root: dataset folder (default ``dataset_root("ped1")``); official ``UCSDped1/`` or the
            frames layout ``ped1/{training,testing}/frames/NN/``.
        gt: frame ground truth to use instead of the one found under root: ``UCSDped1.m`` or a
            concatenated ``frame_labels_ped1.npy``.

    Pixel masks exist for only some test videos (official ``TestNNN_gt`` folders or
    ``ucsdped1_pixel_gt.npz``); other test videos have ``mask_loader`` None.
    """
    return _load_ucsd(1, root, gt)


def load_ped2(root: str | os.PathLike | None = None, gt: str | os.PathLike | None = None) -> VideoDataset:
    """UCSD Ped2 (16 train videos / 2,550 frames, 12 test videos / 2,010 frames, 360x240).

    Args:
        root: dataset folder (default ``dataset_root("ped2")``); official ``UCSDped2/`` or the
            frames layout ``ped2/{training,testing}/frames/NN/NNN.jpg``.
        gt: frame ground truth to use instead of the one found under root: ``UCSDped2.m`` or a
            concatenated ``frame_labels_ped2.npy``. Found files are used in that order of preference.

    Pixel masks: official ``TestNNN_gt/*.bmp`` folders, else ``ucsdped2_pixel_gt.npz``.
    """
    return _load_ucsd(2, root, gt)


# -- CUHK Avenue -------------------------------------------------------------------------------
AVENUE_LABEL_CONVENTIONS = ("masks", "frame-prediction")


def load_avenue(root: str | os.PathLike | None = None, labels: str = "masks",
                gt: str | os.PathLike | None = None) -> VideoDataset:
    """CUHK Avenue (16 train / 21 test videos, 640x360).

    Args:
        root: dataset folder (default ``dataset_root("avenue")``): the official
            ``Avenue Dataset/{training_videos,testing_videos}/NN.avi`` or frame folders
            ``{training,testing}/frames/NN/``, plus the official ``ground_truth_demo/testing_label_mask``.
        labels: frame-label convention.
            "masks" (default): a frame is anomalous when its official pixel mask (``volLabel``) has
            any pixel set. This is the default because the masks are the dataset authors' own
            annotation; it totals 3,712 anomalous of 15,324 test frames.
            "frame-prediction": the ``frame_labels_avenue.npy`` vector distributed with the
            frame-prediction code (Liu et al. 2018) and reused by many papers; it differs from the
            masks on 15 of 21 videos by 6-59 frames (3,867 anomalous frames). Use it only to compare
            with numbers reported under that convention.
        gt: the ``frame_labels_avenue.npy`` file for labels="frame-prediction" when it is not under root.
    """
    if labels not in AVENUE_LABEL_CONVENTIONS:
        raise InputError(labels, f"unknown Avenue label convention; expected one of {', '.join(AVENUE_LABEL_CONVENTIONS)}")
    root = _existing_root("avenue", root)
    official = _find_folder(root, lambda d: (d / "testing_videos").is_dir())
    frames = _find_folder(root, lambda d: (d / "testing" / "frames").is_dir())
    if official is not None:
        layout = f"official videos: {official}/{{training_videos,testing_videos}}/NN.avi"
        train_sources = _prefer_frames(_video_files(official / "training_videos"))
        test_sources = _prefer_frames(_video_files(official / "testing_videos"))
    elif frames is not None:
        layout = f"frames: {frames}/{{training,testing}}/frames/NN/"
        train_sources = _frame_folders(frames / "training" / "frames")
        test_sources = _frame_folders(frames / "testing" / "frames")
    else:
        raise _unknown_layout("avenue", root, ["official 'Avenue Dataset/{training_videos,testing_videos}/NN.avi'",
                                               "frames '{training,testing}/frames/NN/NNNN.jpg'"])
    if not test_sources:
        raise InputError(root, f"avenue: no test videos found ({layout})")
    counts = [_count_source(s) for s in test_sources]
    names = [_two_digits(s.stem if s.is_file() else s.name) for s in test_sources]

    mask_dir = _find_folder(root, lambda d: d.name == "testing_label_mask")
    mask_files = gtio.avenue_mask_files(mask_dir) if mask_dir is not None else {}
    if labels == "masks" and not mask_files:
        raise InputError(root, "no official Avenue masks found: expected ground_truth_demo/testing_label_mask/N_label.mat "
                               "(labels='masks'), or use labels='frame-prediction' with frame_labels_avenue.npy")
    extra = sorted(set(mask_files) - set(names))
    if extra:
        _report(InputError(mask_dir, f"has masks for videos {', '.join(extra)} that are not among the test videos"))

    if labels == "frame-prediction":
        gt_path = Path(gt) if gt is not None else _find_file(root, ["frame_labels_avenue.npy"])
        if gt_path is None or not gt_path.is_file():
            raise InputError(gt_path or root, "labels='frame-prediction' needs frame_labels_avenue.npy (not found); pass gt=<file>")
        try:
            frame_labels = gtio.split_concatenated_labels(gtio.load_label_vector(gt_path), counts, gt_path)
        except InputError as error:
            _report(error)
            frame_labels = [np.zeros(c, np.uint8) for c in counts]
        label_note = f"frame-prediction convention: {gt_path.name} (differs from the official masks on 15 of 21 videos)"
    else:
        frame_labels = []
        for name, count, source in zip(names, counts, test_sources):
            if name not in mask_files:
                _report(InputError(mask_dir / f"{int(name)}_label.mat", f"missing: no official mask for test video {name} ({source})"))
                frame_labels.append(np.zeros(count, np.uint8))
                continue
            derived = gtio.labels_from_masks(gtio.load_avenue_masks(mask_files[name]))
            frame_labels.append(_fit_labels(derived, count, name, mask_files[name], str(source)))
        label_note = "masks convention (default): frame anomalous when any pixel of the official volLabel mask is set"

    test = []
    for name, count, source, frame_labels_ in zip(names, counts, test_sources, frame_labels):
        loader = None
        if name in mask_files:
            loader = _MaskLoader(partial(gtio.load_avenue_masks, mask_files[name]), count, name, mask_files[name])
        test.append(VideoRef(name=name, source=str(source), num_frames=count, labels=frame_labels_, mask_loader=loader))
    train = _train_refs(train_sources, lambda s: _two_digits(s.stem if s.is_file() else s.name))
    if official is not None and any(s.is_dir() for s in test_sources):
        layout += " (reading the extracted frames/ folders)"
    notes = {
        "layout": layout,
        "labels": label_note,
        "masks": f"{mask_dir}/N_label.mat (volLabel)" if mask_files else "none",
        "names": "two-digit video numbers '01'..'21'",
    }
    return VideoDataset(name="avenue", root=str(root), train=train, test=test, notes=notes)


# -- ShanghaiTech Campus -----------------------------------------------------------------------
def load_shanghaitech(root: str | os.PathLike | None = None) -> VideoDataset:
    """ShanghaiTech Campus (330 train videos, 107 test videos / 40,791 frames).

    Args:
        root: dataset folder (default ``dataset_root("shanghaitech")``) holding ``training/videos/*.avi``
            (official) or ``training/frames/NN_NNN/`` (extracted), and ``testing/frames/NN_NNNN/``,
            ``testing/test_frame_mask/NN_NNNN.npy`` (frame labels), ``testing/test_pixel_mask/NN_NNNN.npy``.
    """
    root = _existing_root("shanghaitech", root)
    base = _find_folder(root, lambda d: (d / "testing" / "frames").is_dir() or (d / "testing" / "test_frame_mask").is_dir())
    if base is None:
        raise _unknown_layout("shanghaitech", root, ["'training/videos/NN_NNN.avi' or 'training/frames/NN_NNN/', with "
                                                     "'testing/frames/NN_NNNN/', 'testing/test_frame_mask/NN_NNNN.npy'"])
    testing = base / "testing"
    label_dir, pixel_dir = testing / "test_frame_mask", testing / "test_pixel_mask"
    test_dirs = _frame_folders(testing / "frames")
    if not test_dirs:
        raise InputError(testing / "frames", "expected one frame folder per test video (NN_NNNN/), found none")
    if not label_dir.is_dir():
        raise InputError(label_dir, "missing: expected the official frame labels NN_NNNN.npy here")
    label_files = {p.stem: p for p in label_dir.glob("*.npy")}
    for orphan in sorted(set(label_files) - {d.name for d in test_dirs}, key=natural_key):
        _report(InputError(label_files[orphan], f"ground truth for test video {orphan} but no frame folder {testing / 'frames' / orphan}"))

    test = []
    for folder in test_dirs:
        count = _count_frames(folder)
        label_file = label_files.get(folder.name)
        if label_file is None:
            _report(InputError(label_dir / f"{folder.name}.npy", f"missing: no frame labels for test video {folder.name}"))
            frame_labels = np.zeros(count, np.uint8)
        else:
            frame_labels = _fit_labels(gtio.load_label_vector(label_file), count, folder.name, label_file, str(folder))
        pixel_file = pixel_dir / f"{folder.name}.npy"
        loader = _MaskLoader(partial(gtio.load_npy_masks, pixel_file), count, folder.name, pixel_file) \
            if pixel_file.is_file() else None
        test.append(VideoRef(name=folder.name, source=str(folder), num_frames=count, labels=frame_labels, mask_loader=loader))

    training = base / "training"
    if _video_files(training / "videos"):
        layout = f"official: {base}/training/videos/*.avi + testing/frames"
        train_sources = _prefer_frames(_video_files(training / "videos"))
    else:
        layout = f"frames: {base}/training/frames/NN_NNN/ + testing/frames"
        train_sources = _frame_folders(training / "frames")
    train = _train_refs(train_sources, lambda s: s.stem if s.is_file() else s.name)
    notes = {
        "layout": layout,
        "labels": "official testing/test_frame_mask/NN_NNNN.npy",
        "masks": "testing/test_pixel_mask/NN_NNNN.npy" if pixel_dir.is_dir() else "none",
        "names": "official video stems, e.g. '01_0014' (test), '01_001' (train)",
    }
    return VideoDataset(name="shanghaitech", root=str(root), train=train, test=test, notes=notes)


# -- UBnormal ----------------------------------------------------------------------------------
UBNORMAL_SPLITS = {"train": "training", "training": "training", "validation": "validation", "val": "validation",
                   "test": "test"}


def _ubnormal_split_file(root: Path, kind: str, split: str, splits_dir: Path | None) -> Path:
    names = [f"{kind}_{split}_video_names.txt"]
    if split == "training":  # tolerate the short spelling some copies use
        names.append(f"{kind}_train_video_names.txt")
    for name in names:
        if splits_dir is not None and (splits_dir / name).is_file():
            return splits_dir / name
    found = _find_file(root, names) if splits_dir is None else None
    if found is None:
        raise InputError(splits_dir or root, f"missing UBnormal split file {names[0]} (copy the official "
                                             f"scripts/*_video_names.txt files from github.com/lilygeorgescu/UBnormal)")
    return found


def load_ubnormal(root: str | os.PathLike | None = None, split: str = "test",
                  splits_dir: str | os.PathLike | None = None) -> VideoDataset:
    """UBnormal (synthetic scenes; supervised open-set benchmark).

    On-disk format (verified against the official repository's scripts): videos
    ``Scene<S>/<name>.mp4`` where S = ``name.split("_")[2]``; for abnormal videos
    ``Scene<S>/<name>_annotations/<name>_tracks.txt`` (rows ``object_id,start,end``, 0-based,
    inclusive) and per-frame object maps ``<name>_<NNNN>_gt.png``; official splits in
    ``{abnormal,normal}_{training,validation,test}_video_names.txt`` (the repo's ``scripts/`` folder).

    Args:
        root: dataset folder (default ``dataset_root("ubnormal")``) holding the ``Scene*`` folders
            and the split files (or pass `splits_dir`).
        split: which split becomes ``test`` (labelled): "test" (default), "validation" or "train".
            ``train`` always holds the normal training videos (one-class training); abnormal
            training videos are available, labelled, with split="train".
        splits_dir: folder of the six split files when they are not under root.

    Frame labels: union of the tracks' ranges (as the official ``write_frame_level_ground_truth.py``);
    normal videos are all 0.
    """
    if split not in UBNORMAL_SPLITS:
        raise InputError(split, f"unknown UBnormal split; expected one of {', '.join(sorted(set(UBNORMAL_SPLITS)))}")
    split_name = UBNORMAL_SPLITS[split]
    root = _existing_root("ubnormal", root)
    splits = Path(splits_dir) if splits_dir is not None else None
    scene_pattern = re.compile(r"^Scene\d+$")
    base = _find_folder(root, lambda d: any(scene_pattern.match(c.name) for c in _frame_folders(d)))
    if base is None:
        raise _unknown_layout("ubnormal", root, ["official 'Scene<N>/{normal,abnormal}_scene_<N>_scenario_<M>.mp4'"])

    def video_path(video: str) -> Path:
        return base / f"Scene{video.split('_')[2]}" / f"{video}.mp4"

    def refs(names: list[str], labelled: bool) -> list[VideoRef]:
        videos = []
        for video in names:
            path = video_path(video)
            if not path.is_file():
                _report(InputError(path, f"missing: video {video} is listed in the official split but not on disk"))
                continue
            source = _prefer_frames([path])[0]
            count = _count_source(source)
            if not labelled:
                videos.append(VideoRef(name=video, source=str(source), num_frames=count))
                continue
            annotations = path.parent / f"{video}_annotations"
            tracks_file = annotations / f"{video}_tracks.txt"
            tracks = np.zeros((0, 3), np.int64)
            if video.startswith("abnormal"):
                if tracks_file.is_file():
                    tracks = gtio.parse_ubnormal_tracks(tracks_file)
                else:
                    _report(InputError(tracks_file, f"missing: abnormal video {video} has no tracks file"))
            frame_labels = _labels_from_ranges([(int(s), int(e)) for _, s, e in tracks], count, video, tracks_file, str(source))
            loader = _MaskLoader(partial(_ubnormal_masks, annotations, video, tracks, source, count), count, video, annotations)
            videos.append(VideoRef(name=video, source=str(source), num_frames=count, labels=frame_labels, mask_loader=loader))
        return videos

    test_names = [n for kind in ("abnormal", "normal")
                  for n in gtio.read_name_list(_ubnormal_split_file(root, kind, split_name, splits))]
    train_names = gtio.read_name_list(_ubnormal_split_file(root, "normal", "training", splits))
    notes = {
        "layout": f"official: {base}/Scene<N>/<video>.mp4 + <video>_annotations/",
        "labels": "union of <video>_tracks.txt ranges (object_id,start,end; 0-based inclusive); normal videos all 0",
        "masks": "<video>_annotations/<video>_<NNNN>_gt.png object maps, pixels of the anomalous tracks' ids",
        "split": f"test = official {split_name} split (abnormal + normal); train = normal training videos",
        "names": "official video names, e.g. 'abnormal_scene_1_scenario_1'",
    }
    return VideoDataset(name="ubnormal", root=str(root), train=refs(train_names, labelled=False),
                        test=refs(test_names, labelled=True), notes=notes)


def _ubnormal_masks(annotations: Path, video: str, tracks: np.ndarray, path: Path, count: int) -> np.ndarray:
    with open_video(path) as reader:
        frame_size = tuple(reader.frame_size)
    return gtio.load_ubnormal_masks(annotations, video, tracks, count, frame_size)


# -- custom ------------------------------------------------------------------------------------
CUSTOM_LABEL_FILES = ("labels.csv", "labels.json")


def _custom_videos(folder: Path) -> dict[str, tuple[Path, str]]:
    """Videos directly inside `folder`: {name: (source, name as given on disk)}.

    A video file whose frames were extracted (``frames/<stem>/``) is read from its frames but keeps
    its file name, so labels may name it either way.
    """
    if not folder.is_dir():
        raise InputError(folder, "no such folder (expected video files or frame folders)")
    files = _video_files(folder)
    entries = [(f.stem, source, f.name) for f, source in zip(files, _prefer_frames(files))]
    entries += [(d.name, d, d.name) for d in _frame_folders(folder) if list_frame_files(d)]
    if not entries:
        raise InputError(folder, f"expected video files ({', '.join(VIDEO_EXTENSIONS)}) or folders of frame images, found none")
    names = [name for name, _, _ in entries]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(folder, f"several videos share the name(s) {', '.join(duplicates)} (names are file stems)")
    return {name: (source, on_disk) for name, source, on_disk in sorted(entries, key=lambda e: natural_key(e[0]))}


def load_custom(root: str | os.PathLike | None = None, *, train_dir: str | os.PathLike | None = None,
                test_dir: str | os.PathLike | None = None, labels_file: str | os.PathLike | None = None) -> VideoDataset:
    """Your own dataset.

    Layout: ``root/train/`` (normal videos), ``root/test/`` (videos to score), and a labels file
    ``root/labels.csv`` or ``root/labels.json`` (or pass the three paths explicitly). Videos are
    video files or folders of frame images; a video's name is its file stem / folder name.

    Labels file (frames 0-based, ranges inclusive; test videos not mentioned are all normal):

    - CSV: ``video,start,end`` rows (header optional), one row per anomalous range.
    - JSON: ``{"video": [[start, end], ...]}``.

    Raises:
        InputError: missing folders or labels file, a label naming a video not in the test
            folder, or a range past the video's last frame.
    """
    base = Path(root).expanduser() if root is not None else None
    if base is not None and not base.is_dir():
        raise InputError(base, "no such folder: expected a custom dataset with train/, test/ and labels.csv|labels.json")
    if base is None and (train_dir is None or test_dir is None or labels_file is None):
        raise InputError("custom", "give root, or all of train_dir, test_dir and labels_file")
    train_folder = Path(train_dir) if train_dir is not None else base / "train"
    test_folder = Path(test_dir) if test_dir is not None else base / "test"
    if labels_file is None:
        labels_file = next((base / n for n in CUSTOM_LABEL_FILES if (base / n).is_file()), None)
        if labels_file is None:
            raise InputError(base, f"no labels file: expected {' or '.join(CUSTOM_LABEL_FILES)} (rows video,start,end)")
    labels_file = Path(labels_file)
    ranges = gtio.parse_custom_labels(labels_file)

    test_videos = _custom_videos(test_folder)
    by_file_name = {on_disk: name for name, (_, on_disk) in test_videos.items()}
    ranges_by_video: dict[str, list[tuple[int, int]]] = {}
    for video, pairs in ranges.items():
        name = video if video in test_videos else by_file_name.get(video)
        if name is None:
            raise InputError(labels_file, f'names video "{video}", which is not in {test_folder} '
                                          f"(expected one of: {', '.join(test_videos)})")
        ranges_by_video.setdefault(name, []).extend(pairs)
    test = []
    for name, (source, _) in test_videos.items():
        count = _count_source(source)
        frame_labels = _labels_from_ranges(ranges_by_video.get(name, []), count, name, labels_file, str(source))
        test.append(VideoRef(name=name, source=str(source), num_frames=count, labels=frame_labels))
    train = [VideoRef(name=name, source=str(source), num_frames=_count_source(source))
             for name, (source, _) in _custom_videos(train_folder).items()]
    notes = {
        "layout": f"custom: train={train_folder}, test={test_folder}",
        "labels": f"{labels_file.name} (0-based inclusive frame ranges; unlisted test videos are normal)",
        "masks": "none",
        "names": "file stems / frame folder names",
    }
    return VideoDataset(name="custom", root=str(base or test_folder.parent), train=train, test=test, notes=notes)


# -- registry ----------------------------------------------------------------------------------
DATASETS: dict[str, Callable[..., VideoDataset]] = {
    "ped1": load_ped1,
    "ped2": load_ped2,
    "avenue": load_avenue,
    "shanghaitech": load_shanghaitech,
    "ubnormal": load_ubnormal,
    "custom": load_custom,
}


def load_dataset(name: str, root: str | os.PathLike | None = None, **options) -> VideoDataset:
    """Load a benchmark by name ("ped1", "ped2", "avenue", "shanghaitech", "ubnormal", "custom").

    Args:
        name: key of :data:`DATASETS`.
        root: the dataset folder; default ``dataset_root(name)``.
        **options: passed to the loader (e.g. ``labels="frame-prediction"`` for Avenue).
    """
    loader = DATASETS.get(name.lower())
    if loader is None:
        raise InputError(name, f"unknown dataset; expected one of {', '.join(DATASETS)}")
    if root is None:
        root = dataset_root(name.lower())
    return loader(root, **options)
