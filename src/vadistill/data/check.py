"""Dataset health check: everything that would silently skew an evaluation, listed with its place.

``check_dataset("ped2", root)`` loads the dataset the way the benchmark loaders do, but collects
ground-truth mismatches instead of stopping at the first one, then inspects every video:

- frame folders: gaps in the frame numbering (the exact missing file names), extra files
  (non-images, files outside the numbering pattern, duplicated numbers), empty files;
- with ``decode=True``: every frame is decoded (unreadable or truncated images, frames whose size
  differs from the folder's first frame; video files are decoded to the end, and MJPEG files are
  checked for frames stored at another size, which the decoder would silently rescale);
- ground truth: label length vs frame count, ranges past the video end, videos without ground
  truth and ground truth without video (reported by the loaders);
- pixel masks: one mask per frame, of the frames' height and width.

Each problem names the file or folder and says what was expected and what was found.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from vadistill.data.benchmarks import collect_problems, dataset_root, load_dataset
from vadistill.errors import InputError
from vadistill.io.video import (IMAGE_EXTENSIONS, list_frame_files, mjpeg_frame_sizes, natural_key, open_video,
                                read_image)
from vadistill.types import VideoDataset, VideoRef

MAX_MISSING_LISTED = 10  # per folder; a folder missing hundreds of frames gets one summary line
_NUMBERED = re.compile(r"^(.*?)(\d+)$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset.

    Attributes:
        where: the file or folder concerned.
        problem: what is wrong, with what was expected and what was found.
    """

    where: str
    problem: str

    def __str__(self) -> str:
        return f"{self.where}: {self.problem}"


@dataclass
class CheckReport:
    """Result of :func:`check_dataset`.

    Attributes:
        name: dataset name.
        root: folder checked.
        problems: everything found wrong (empty when the dataset is fine).
        notes: the loader's notes (layout found, label convention) when it could load.
        num_train, num_test, num_frames: what was checked.
        decoded: whether every frame was decoded.
    """

    name: str
    root: str
    problems: list[Problem] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)
    num_train: int = 0
    num_test: int = 0
    num_frames: int = 0
    decoded: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """Human-readable report: a status line, what was checked, then one line per problem."""
        status = "OK" if self.ok else f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}"
        lines = [f"{self.name} ({self.root}): {status}"]
        if self.notes.get("layout"):
            lines.append(f"  layout: {self.notes['layout']}")
        if self.notes.get("labels"):
            lines.append(f"  labels: {self.notes['labels']}")
        lines.append(f"  checked {self.num_train + self.num_test} videos ({self.num_train} train, {self.num_test} test), "
                     f"{self.num_frames:,} frames" + (", every frame decoded" if self.decoded else ", frames not decoded"))
        lines.extend(f"  - {problem}" for problem in self.problems)
        return "\n".join(lines)


def check_dataset(name: str, root: str | os.PathLike | None = None, *, decode: bool = False,
                  check_masks: bool = True, **options) -> CheckReport:
    """Check a prepared dataset and report exactly what is wrong and where.

    Args:
        name: dataset name ("ped2", "avenue", ...; see ``vadistill.data.benchmarks.DATASETS``).
        root: dataset folder; default ``dataset_root(name)``.
        decode: decode every frame (slow) to find unreadable ones; otherwise only file presence,
            numbering and sizes on disk are checked.
        check_masks: load each test video's pixel masks (one video at a time) and compare their
            shape with the frames.
        **options: passed to the dataset loader (e.g. ``labels="frame-prediction"``).

    Returns:
        A :class:`CheckReport`; ``report.ok`` is True when nothing is wrong.
    """
    root = Path(root).expanduser() if root is not None else dataset_root(name)
    report = CheckReport(name=name, root=str(root), decoded=decode)
    if not root.is_dir():
        report.problems.append(Problem(str(root), "missing: expected the dataset folder here"))
        return report

    dataset: VideoDataset | None = None
    with collect_problems() as recorded:
        try:
            dataset = load_dataset(name, root, **options)
        except InputError as error:
            recorded.append(error)
    report.problems.extend(Problem(error.path, error.problem) for error in recorded)

    if dataset is None:
        # The layout could not be read: still check every frame folder we can find, so that a
        # missing frame is named even when it is what broke the loader.
        folders = []
        for folder, subfolders, files in os.walk(root):
            subfolders[:] = [d for d in subfolders if not d.startswith(".")]  # bookkeeping / staging folders
            if any(Path(f).suffix.lower() in IMAGE_EXTENSIONS for f in files):
                folders.append(Path(folder))
        report.problems.extend(_check_frame_folders(sorted(folders, key=lambda p: natural_key(str(p))), decode))
        return report

    report.notes = dict(dataset.notes)
    report.num_train, report.num_test = len(dataset.train), len(dataset.test)
    report.num_frames = sum(v.num_frames for v in dataset.train + dataset.test)
    for videos in (dataset.train, dataset.test):
        folders = [Path(v.source) for v in videos if Path(v.source).is_dir()]
        report.problems.extend(_check_frame_folders(folders, decode))
        for video in videos:
            if not Path(video.source).is_dir():
                report.problems.extend(_check_video_file(Path(video.source), decode))
    for video in dataset.test:
        report.problems.extend(_check_ground_truth(video, check_masks))
    # A broken video file is seen both while loading and while checking it: list it once.
    report.problems = list(dict.fromkeys(report.problems))
    return report


# -- frame folders ---------------------------------------------------------------------------
def _check_frame_folders(folders: list[Path], decode: bool) -> list[Problem]:
    """Check sibling frame folders; the usual first frame number is learnt from all of them."""
    numbered = {folder: _numbering(folder) for folder in folders}
    first_numbers = Counter(min(numbers) for _, numbers, _ in numbered.values() if numbers)
    # Most folders start at the same number (000 or 001); a folder starting later lost its first frames.
    usual_first = first_numbers.most_common(1)[0][0] if first_numbers else None
    problems = []
    for folder in folders:
        pattern, numbers, extras = numbered[folder]
        problems.extend(extras)
        problems.extend(_missing_frames(folder, pattern, numbers, usual_first))
        problems.extend(_check_frame_files(folder, decode))
    return problems


def _numbering(folder: Path) -> tuple[tuple[str, int, str] | None, dict[int, Path], list[Problem]]:
    """The folder's naming pattern (prefix, digits, extension), its frames by number, and extra files."""
    extras = []
    frames = list_frame_files(folder)
    frame_set = set(frames)
    others = [p for p in folder.iterdir() if not p.name.startswith(".") and p not in frame_set]
    for path in sorted(others, key=lambda p: natural_key(p.name)):
        kind = "folder" if path.is_dir() else "file"
        extras.append(Problem(str(path), f"extra {kind} in a frame folder (expected only frame images "
                                         f"{', '.join(IMAGE_EXTENSIONS)})"))
    parsed = []
    for path in frames:
        match = _NUMBERED.match(path.stem)
        parsed.append((path, match.group(1), match.group(2), path.suffix) if match else (path, None, None, path.suffix))
    styles = Counter((prefix, suffix.lower()) for _, prefix, _, suffix in parsed if prefix is not None)
    if not styles:
        extras.extend(Problem(str(p), "extra file: frame images should be numbered (e.g. 000.jpg)") for p in frames)
        return None, {}, extras
    (prefix, suffix), _ = styles.most_common(1)[0]
    digit_strings = [digits for _, p, digits, s in parsed if p == prefix and s.lower() == suffix]
    zero_padded = any(len(d) > 1 and d.startswith("0") for d in digit_strings)
    # Zero-padded names (007.jpg) keep their usual width; unpadded ones (7.jpg) have none.
    width = Counter(map(len, digit_strings)).most_common(1)[0][0] if zero_padded else 1
    example = next(f"{prefix}{digits}{s}" for _, p, digits, s in parsed if p == prefix and s.lower() == suffix)
    by_number: dict[int, Path] = {}
    for path, file_prefix, digits, file_suffix in parsed:
        if file_prefix != prefix or file_suffix.lower() != suffix:
            extras.append(Problem(str(path), f"extra file: does not follow this folder's frame naming (like {example})"))
        elif int(digits) in by_number:
            extras.append(Problem(str(path), f"extra file: duplicates frame number {int(digits)} "
                                             f"(already {by_number[int(digits)].name})"))
        else:
            by_number[int(digits)] = path
    real_suffix = next(s for _, p, _, s in parsed if p == prefix and s.lower() == suffix)
    return (prefix, width, real_suffix), by_number, extras


def _missing_frames(folder: Path, pattern: tuple[str, int, str] | None, numbers: dict[int, Path],
                    usual_first: int | None) -> list[Problem]:
    if pattern is None or not numbers:
        return []
    prefix, width, suffix = pattern
    first = min(numbers) if usual_first is None else min(usual_first, min(numbers))
    last = max(numbers)
    missing = [n for n in range(first, last + 1) if n not in numbers]
    expectation = (f"expected frames {prefix}{first:0{width}d}{suffix} to {prefix}{last:0{width}d}{suffix} "
                   f"with no gaps ({last - first + 1} frames), found {len(numbers)}")
    problems = [Problem(str(folder / f"{prefix}{n:0{width}d}{suffix}"), f"missing frame {n}: {expectation}")
                for n in missing[:MAX_MISSING_LISTED]]
    if len(missing) > MAX_MISSING_LISTED:
        problems.append(Problem(str(folder), f"{len(missing) - MAX_MISSING_LISTED} more missing frames "
                                             f"(numbers {', '.join(map(str, missing[MAX_MISSING_LISTED:][:20]))}"
                                             f"{', ...' if len(missing) > MAX_MISSING_LISTED + 20 else ''})"))
    return problems


def _check_frame_files(folder: Path, decode: bool) -> list[Problem]:
    problems = []
    first_size = first_name = None
    for path in list_frame_files(folder):
        if path.stat().st_size == 0:
            problems.append(Problem(str(path), "empty frame file (0 bytes), expected an image"))
            continue
        if not decode:
            continue
        try:
            # The reader's own checks: undecodable, and JPEGs cut short (which OpenCV would
            # otherwise decode without error, with grey bottom rows).
            image = read_image(path)
        except InputError as error:
            problems.append(Problem(error.path, f"unreadable frame: {error.problem}"))
            continue
        size = image.shape[:2]
        if first_size is None:
            first_size, first_name = size, path.name
        elif size != first_size:
            problems.append(Problem(str(path), f"frame is {size[1]}x{size[0]}, expected {first_size[1]}x{first_size[0]} "
                                               f"like {first_name}"))
    return problems


# -- video files -----------------------------------------------------------------------------
def _check_video_file(path: Path, decode: bool) -> list[Problem]:
    try:
        with open_video(path) as reader:
            if decode:
                for _ in reader:
                    pass
    except InputError as error:
        return [Problem(error.path, error.problem)]
    if decode:
        return _check_stored_sizes(path)
    return []


def _check_stored_sizes(path: Path) -> list[Problem]:
    """MJPEG frames stored at another size than the first (FFmpeg rescales them without a word)."""
    sizes = mjpeg_frame_sizes(path) or []
    odd = [index for index, size in enumerate(sizes) if size != sizes[0]]
    if not odd:
        return []
    (height, width), (first_h, first_w) = sizes[odd[0]], sizes[0]
    return [Problem(str(path), f"{len(odd)} frames stored at another size than frame 0 (mixed resolutions), "
                               f"first frame {odd[0]}: {width}x{height}, expected {first_w}x{first_h}")]


# -- ground truth ----------------------------------------------------------------------------
def _check_ground_truth(video: VideoRef, check_masks: bool) -> list[Problem]:
    problems = []
    if video.labels is None:
        problems.append(Problem(video.source, f"test video {video.name} has no frame labels"))
    elif len(video.labels) != video.num_frames:
        problems.append(Problem(video.source, f"test video {video.name}: {len(video.labels)} frame labels, "
                                              f"expected {video.num_frames} (one per frame)"))
    if not (check_masks and video.has_masks and video.num_frames):
        return problems
    mask_file = str(getattr(video.mask_loader, "path", video.source))
    try:
        masks = video.load_masks()
        with open_video(video.source) as reader:
            frame_size = tuple(reader.frame_size)
    except InputError as error:
        return problems + [Problem(error.path, error.problem)]
    if len(masks) != video.num_frames:
        problems.append(Problem(mask_file, f"video {video.name}: {len(masks)} pixel masks, expected {video.num_frames} "
                                           f"(one per frame of {video.source})"))
    if tuple(masks.shape[1:]) != frame_size:
        problems.append(Problem(mask_file, f"video {video.name}: masks are {masks.shape[2]}x{masks.shape[1]}, "
                                           f"expected {frame_size[1]}x{frame_size[0]} like the frames of {video.source}"))
    return problems
