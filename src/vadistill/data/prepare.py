"""`vadistill data prepare`: put a benchmark's official download(s) under one data root.

Result layout: ``<data_root>/<name>/`` holds the unpacked official download(s) as they are (no
reorganisation; the loaders in `vadistill.data.benchmarks` find the official layouts and the common
``pedN/{training,testing}/frames/NN/NNN.jpg`` layout by searching this folder). Downloads are kept
in ``<data_root>/downloads/`` so that ``--force`` does not fetch them again (delete them to save
space). Hidden entries (names starting with ".") are vadistill's bookkeeping, never data.

Each source may be:
    - a URL: downloaded (resumable), then unpacked if it is an archive, else copied;
    - a local archive (.tar, .tar.gz/.tgz, .tar.bz2, .tar.xz, .zip): unpacked;
    - a local folder: mirrored as ``<dataset root>/<folder name>/`` with hard links where the file
      system allows (no second copy on disk), else copies;
    - a single file (``UCSDped2.m``, ``ucsdped2_pixel_gt.npz``, a labels CSV, a video): put into the
      dataset root the same way.

Finished sources are recorded in ``.vadistill-progress.json`` as they complete, so an interrupted
run resumes where it stopped; the marker ``.vadistill-prepared.json`` is written only once every
source (and frame extraction, if asked for) is done. Re-running skips finished sources unless
``force`` is set.

Frame extraction decodes every video under the dataset root into a folder of JPEG frames (layout
in :func:`frames_dir_for`), one video at a time, each made complete before it appears.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence
from urllib.parse import unquote, urlparse

import cv2
from tqdm import tqdm

from vadistill.data.archive import (
    DISK_FULL_ERRNOS,
    STAGING_PREFIX,
    is_archive,
    move_merging,
    remove_tree,
    unpack_archive,
)
from vadistill.data.download import download_file
from vadistill.data.layout import default_data_root, frames_dir_for
from vadistill.errors import InputError
from vadistill.io.video import VIDEO_EXTENSIONS, list_frame_files, open_video

log = logging.getLogger(__name__)

MARKER_NAME = ".vadistill-prepared.json"
PROGRESS_NAME = ".vadistill-progress.json"
FRAMES_DONE_NAME = ".vadistill-frames-done.json"
DOWNLOADS_DIR = "downloads"
JPEG_QUALITY = 95
URL_PREFIXES = ("http://", "https://")


@dataclass(frozen=True)
class Source:
    """Where a dataset's official files come from.

    Attributes:
        url: direct download URL, or (when `manual`) the web page that links to the file.
        filename: name the download is saved under in ``<data_root>/downloads/``.
        sha256: hex SHA-256 of the file, when known; checked after downloading.
        size: size in bytes, when known; checked after downloading.
        note: what the file is, or (when `manual`) how to get it by hand.
        manual: True when there is no direct link (cloud drives need a browser).
        include: unpack only these paths of the archive (and what lies below them).
    """

    url: str
    filename: str | None = None
    sha256: str | None = None
    size: int | None = None
    note: str = ""
    manual: bool = False
    include: tuple[str, ...] = ()


# UCSD Anomaly Detection Dataset v1p2 (Ped1 + Ped2 in one archive), from the SVCL project page
# http://www.svcl.ucsd.edu/projects/anomaly/dataset.html. Size and SHA-256 as recorded by two
# independent users of this URL: anomalib's `ucsd_ped.py` DOWNLOAD_INFO (same SHA-256; older
# anomalib releases give the official MD5 5006421b89885f45a6f93b041145f2eb) and a published
# provenance note that also checked that MD5. Unpacks to UCSD_Anomaly_Dataset.v1p2/UCSDped{1,2}/.
_UCSD = Source(
    url="http://www.svcl.ucsd.edu/projects/anomaly/UCSD_Anomaly_Dataset.tar.gz",
    filename="UCSD_Anomaly_Dataset.tar.gz",
    sha256="2329af326951f5097fdd114c50e853957d3e569493a49d22fc082a9fd791915b",
    size=740_306_953,
    note="UCSD Ped1 and Ped2 (TIFF frames, frame-level .m and pixel-level *_gt ground truth)",
)

OFFICIAL_SOURCES: dict[str, list[Source]] = {
    # Both Ped sets share the UCSD archive (downloaded once); each unpacks only its own folder.
    "ped1": [replace(_UCSD, include=("UCSD_Anomaly_Dataset.v1p2/UCSDped1",))],
    "ped2": [replace(_UCSD, include=("UCSD_Anomaly_Dataset.v1p2/UCSDped2",))],
    # CUHK Avenue, from the official page
    # http://www.cse.cuhk.edu.hk/leojia/projects/detectabnormal/dataset.html. Sizes and SHA-256
    # as recorded in anomalib's `avenue.py` DOWNLOAD_INFO and, independently, a published
    # provenance note (both files' SHA-256 agree between the two).
    "avenue": [
        Source(
            url="http://www.cse.cuhk.edu.hk/leojia/projects/detectabnormal/Avenue_Dataset.zip",
            filename="Avenue_Dataset.zip",
            sha256="fc9cb8432a11ca79c18aa180c72524011411b69d3b0ff27c8816e41c0de61531",
            size=813_227_845,
            note="Avenue videos (training_videos/, testing_videos/ .avi) and volumes",
        ),
        Source(
            url="http://www.cse.cuhk.edu.hk/leojia/projects/detectabnormal/ground_truth_demo.zip",
            filename="ground_truth_demo.zip",
            sha256="60fec1728ec8f73a58aad3aeb5729d70a805a47e0b8eb4bf91ab67ef06386d77",
            size=931_269,
            note="Avenue pixel-level test ground truth (testing_label_mask/*.mat)",
        ),
    ],
    # ShanghaiTech Campus: the official page https://svip-lab.github.io/dataset/campus_dataset.html
    # links the archive on OneDrive / Google Drive / Baidu Pan only, which need a browser.
    "shanghaitech": [
        Source(
            url="https://svip-lab.github.io/dataset/campus_dataset.html",
            manual=True,
            note="the archive (shanghaitech.tar.gz) is only on cloud drives linked from this page",
        ),
    ],
    # UBnormal (CVPR 2022): the official README https://github.com/lilygeorgescu/UBnormal links a
    # Google Drive file (id 1Q-CiKN0jGkxcpLWszY0E2CMBFHc5Ns_w), which needs a browser.
    "ubnormal": [
        Source(
            url="https://drive.google.com/file/d/1Q-CiKN0jGkxcpLWszY0E2CMBFHc5Ns_w/view",
            manual=True,
            note="the archive is a Google Drive file (see https://github.com/lilygeorgescu/UBnormal)",
        ),
    ],
    # Your own videos, frame folders and label files: --source is required.
    "custom": [],
}
DATASET_NAMES = tuple(OFFICIAL_SOURCES)

# Datasets whose loader needs JPEG frames rather than the videos the download holds: frames are
# extracted for these even without --extract-frames. Empty because every loader can read the
# videos themselves through `open_video`; add a name here if a loader comes to need frames.
DATASETS_NEEDING_FRAMES: frozenset[str] = frozenset()


@dataclass(frozen=True)
class _Step:
    """One source to bring into the dataset root."""

    key: str  # identifies the source in the progress records (URL or absolute path)
    kind: str  # "url", "archive", "folder" or "file"
    fingerprint: dict  # changes when the local source changes, so a re-run redoes the step
    official: Source | None = None


def prepare_dataset(
    name: str,
    sources: Sequence[str] | None = None,
    data_root: str | os.PathLike | None = None,
    extract_frames: bool = False,
    progress: bool = True,
    force: bool = False,
) -> Path:
    """Download and/or unpack a dataset into ``<data_root>/<name>/``.

    Args:
        name: one of :data:`DATASET_NAMES`.
        sources: URLs, archives, folders or files; None or empty uses the official download(s).
        data_root: parent folder of all datasets; None uses :func:`default_data_root`.
        extract_frames: also decode every video under the dataset root into JPEG frame folders.
        progress: show progress bars.
        force: delete ``<data_root>/<name>/`` first and redo everything (downloads are kept).

    Returns:
        The dataset root, ``<data_root>/<name>``.

    Raises:
        InputError: unknown name, a missing source, a dataset without a direct download and no
            `sources`, a failed download, a corrupt archive or a full disk.
    """
    name = name.strip().lower()
    if name not in OFFICIAL_SOURCES:
        raise InputError(name, f"unknown dataset; known datasets: {', '.join(DATASET_NAMES)}")
    data_root = Path(data_root).expanduser() if data_root is not None else default_data_root()
    dataset_root = data_root / name
    steps = _plan(name, list(sources or []), dataset_root)  # validate every source before changing anything

    if force:
        remove_tree(dataset_root)
    dataset_root.mkdir(parents=True, exist_ok=True)
    _remove_staging_leftovers(dataset_root)
    marker, progress_file = dataset_root / MARKER_NAME, dataset_root / PROGRESS_NAME
    records = _read_records(progress_file if progress_file.exists() else marker)
    pending = [step for step in steps if records.get(step.key, {}).get("fingerprint") != step.fingerprint]
    needs_frames = extract_frames or name in DATASETS_NEEDING_FRAMES
    if not pending and marker.exists() and not needs_frames:
        log.info("%s is already prepared in %s", name, dataset_root)
        return dataset_root

    def mark_incomplete() -> None:
        # Called just before the dataset folder changes: from then until the end it is not complete.
        _write_json(progress_file, {"dataset": name, "sources": list(records.values())})
        marker.unlink(missing_ok=True)

    changing = False
    for step in pending:
        local_path = _obtain(step, data_root / DOWNLOADS_DIR, progress)  # a failed download changes nothing
        if not changing:
            mark_incomplete()
            changing = True
        size = _install(step, local_path, dataset_root, progress)
        records[step.key] = {"source": step.key, "kind": step.kind, "size": size,
                             "fingerprint": step.fingerprint, "finished_at": _now()}
        _write_json(progress_file, {"dataset": name, "sources": list(records.values())})

    if needs_frames and not changing:
        mark_incomplete()
    extracted = extract_all_frames(dataset_root, progress=progress) if needs_frames else []
    _write_json(marker, {
        "dataset": name,
        "prepared_at": _now(),
        "sources": list(records.values()),  # earlier runs' sources too: their files are still here
        "frames_extracted": {str(path.relative_to(dataset_root)): count for path, count in extracted},
    })
    progress_file.unlink(missing_ok=True)
    return dataset_root


# -- planning --------------------------------------------------------------------------------
def _plan(name: str, sources: list[str], dataset_root: Path) -> list[_Step]:
    """Turn the user's sources (or the official ones) into steps, failing early on bad ones."""
    if not sources:
        official = OFFICIAL_SOURCES[name]
        if not official:
            raise InputError(name, "needs at least one --source PATH|URL (a folder, archive, video or label file)")
        for source in official:
            if source.manual:
                raise InputError(source.url, f"{name} has no direct download: {source.note}. Download it by hand, "
                                             f"then run: vadistill data prepare {name} --source PATH")
        return [_Step(source.url, "url", _official_fingerprint(source), source) for source in official]

    steps = []
    for source in sources:
        if source.lower().startswith(URL_PREFIXES):
            official = _official_source_for(source)
            fingerprint = _official_fingerprint(official) if official else {}
            steps.append(_Step(source, "url", fingerprint, official))
            continue
        path = Path(source).expanduser().resolve()
        if not path.exists():
            raise InputError(source, "no such file or folder (expected a URL, an archive, a folder or a file)")
        if path == dataset_root.resolve() or path in dataset_root.resolve().parents:
            raise InputError(source, f"is (or contains) the dataset folder {dataset_root} itself")
        kind = "folder" if path.is_dir() else "archive" if is_archive(path) else "file"
        stat = path.stat()
        fingerprint = {} if kind == "folder" else {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        steps.append(_Step(str(path), kind, fingerprint))
    return steps


def _official_source_for(url: str) -> Source | None:
    """The known official source with this URL (for its checksum and include filter), if any."""
    for name in DATASET_NAMES:
        for source in OFFICIAL_SOURCES[name]:
            if source.url == url and not source.manual:
                return source
    return None


def _official_fingerprint(source: Source) -> dict:
    return {"size": source.size, "sha256": source.sha256}


# -- running ---------------------------------------------------------------------------------
def _obtain(step: _Step, downloads: Path, progress: bool) -> Path:
    """The source as a local path: URLs are downloaded (resumably) into `downloads`."""
    if step.kind != "url":
        return Path(step.key)
    official = step.official
    filename = official.filename if official and official.filename else _filename_from_url(step.key)
    log.info("downloading %s", step.key)
    return download_file(step.key, downloads / filename, progress=progress,
                         expected_size=official.size if official else None,
                         sha256=official.sha256 if official else None)


def _install(step: _Step, path: Path, dataset_root: Path, progress: bool) -> int | None:
    """Bring a local source into the dataset root; returns its size in bytes (None for folders)."""
    if step.kind == "folder":
        log.info("linking %s into %s", path, dataset_root)
        mirror_folder(path, dataset_root / path.name, progress=progress)
        return None
    if is_archive(path):
        log.info("unpacking %s into %s", path, dataset_root)
        unpack_archive(path, dataset_root, include=step.official.include if step.official else (), progress=progress)
    else:
        log.info("copying %s into %s", path, dataset_root)
        _link_or_copy_file(path, dataset_root / path.name)
    return path.stat().st_size


def _filename_from_url(url: str) -> str:
    name = Path(unquote(urlparse(url).path)).name
    return name or "download"


def mirror_folder(source: Path, target: Path, progress: bool = True) -> None:
    """Mirror folder `source` at `target` with hard links (copies where linking is impossible).

    Hard links cost no disk space and look like ordinary files to every loader (symlinks would
    be skipped by recursive searches that do not follow links). Linking fails across file systems
    and for files owned by another user on systems with protected hard links; those files are
    copied. The mirror is built in a hidden staging folder and moved into place when complete.
    """
    staging = target.with_name(f".{target.name}.partial")
    remove_tree(staging)
    try:
        files = [Path(folder) / name for folder, _dirs, names in os.walk(source) for name in names]
        for path in tqdm(files, desc=f"linking {source.name}", unit=" files", disable=not progress, leave=False):
            _link_or_copy_file(path, staging / path.relative_to(source))
        for folder, dirs, _names in os.walk(source):  # keep empty folders too
            for name in dirs:
                (staging / Path(folder).relative_to(source) / name).mkdir(parents=True, exist_ok=True)
        staging.mkdir(parents=True, exist_ok=True)
        move_merging(staging, target)
    except OSError as error:
        remove_tree(staging)
        if error.errno in DISK_FULL_ERRNOS:
            raise InputError(target, f"disk full while copying {source}; the partial copy was removed") from None
        raise


def _link_or_copy_file(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.partial")
    temporary.unlink(missing_ok=True)
    try:
        os.link(source, temporary)
    except OSError:
        try:
            # copyfile, not copy2: read-only permission bits of the source must not follow,
            # or later steps could not write next to (or delete) the copy.
            shutil.copyfile(source, temporary)
        except OSError as error:
            temporary.unlink(missing_ok=True)
            if error.errno in DISK_FULL_ERRNOS:
                raise InputError(target, f"disk full while copying {source}; the partial copy was removed") from None
            raise
    os.replace(temporary, target)


# -- frame extraction ------------------------------------------------------------------------
def find_videos(root: Path) -> list[Path]:
    """Video files under `root`, skipping hidden (bookkeeping) folders, in a stable order."""
    videos = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != DOWNLOADS_DIR)
        videos += [Path(folder) / n for n in sorted(names)
                   if n.lower().endswith(VIDEO_EXTENSIONS) and not n.startswith(".")]
    return videos


def extract_all_frames(root: str | os.PathLike, progress: bool = True) -> list[tuple[Path, int]]:
    """Extract the frames of every video under `root`; returns (frames folder, frame count) pairs."""
    root = Path(root)
    videos = find_videos(root)
    results = []
    for video in tqdm(videos, desc="extracting frames", unit=" videos", disable=not progress or not videos):
        results.append((frames_dir_for(video), extract_video_frames(video)))
    return results


def extract_video_frames(video: str | os.PathLike, frames_dir: str | os.PathLike | None = None,
                         quality: int = JPEG_QUALITY) -> int:
    """Decode `video` into ``frames_dir/NNN.jpg`` (0-based, zero-padded); returns the frame count.

    Resumable: a finished folder carries a done marker and is skipped next time; an unfinished
    one is built in a hidden staging folder and never appears under its final name. A frames
    folder that exists without our marker (shipped with the dataset) is left untouched.

    Raises:
        InputError: the video cannot be decoded completely, or the disk is full.
    """
    video = Path(video)
    frames_dir = Path(frames_dir) if frames_dir is not None else frames_dir_for(video)
    done = frames_dir / FRAMES_DONE_NAME
    if done.is_file():
        record = json.loads(done.read_text())
        if (record.get("video_size") == video.stat().st_size
                and record.get("num_frames") == len(list_frame_files(frames_dir))):
            return record["num_frames"]
    elif frames_dir.is_dir() and list_frame_files(frames_dir):
        log.info("%s already has frames not made by vadistill; leaving them as they are", frames_dir)
        return len(list_frame_files(frames_dir))

    staging = frames_dir.with_name(f".{frames_dir.name}.partial")
    remove_tree(staging)
    staging.mkdir(parents=True)
    try:
        with open_video(video) as reader:
            expected = len(reader)
            digits = max(3, len(str(expected - 1)))
            written = 0
            for index, frame in enumerate(reader):
                # imencode + a Python write instead of cv2.imwrite: imwrite reports a full disk
                # only as False, while write() raises OSError with errno ENOSPC.
                ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                                        [cv2.IMWRITE_JPEG_QUALITY, quality])
                if not ok:
                    raise InputError(video, f"frame {index} could not be encoded as JPEG")
                (staging / f"{index:0{digits}d}.jpg").write_bytes(jpeg.tobytes())
                written += 1
        if written != expected or len(list_frame_files(staging)) != expected:
            raise InputError(video, f"decoded {written} frames, expected {expected} (truncated video?)")
        _write_json(staging / FRAMES_DONE_NAME, {"video": str(video), "video_size": video.stat().st_size,
                                                 "num_frames": expected, "finished_at": _now()})
        remove_tree(frames_dir)  # an older, unfinished or outdated extraction of ours
        frames_dir.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, frames_dir)
        return expected
    except OSError as error:
        if error.errno in DISK_FULL_ERRNOS:
            raise InputError(video, f"disk full while extracting frames to {frames_dir}; the partial frames were "
                                    "removed — free some space and re-run") from None
        raise
    finally:
        remove_tree(staging)


# -- bookkeeping -----------------------------------------------------------------------------
def _remove_staging_leftovers(dataset_root: Path) -> None:
    """Staging folders of a run that was killed (SIGKILL, power loss) before it could clean up."""
    for entry in dataset_root.iterdir():
        if entry.name.startswith(STAGING_PREFIX) or (entry.name.startswith(".") and entry.name.endswith(".partial")):
            remove_tree(entry)


def _read_records(path: Path) -> dict[str, dict]:
    """Finished sources by key, from a progress file or marker (empty if missing or unreadable)."""
    try:
        data = json.loads(path.read_text())
        return {record["source"]: record for record in data.get("sources", [])}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _write_json(path: Path, data: dict) -> None:
    """Write JSON atomically (temp file + rename): a marker is either old or new, never half."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(temporary, path)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
