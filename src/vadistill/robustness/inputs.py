"""Inputs for the bad-input suite: tiny videos, frame folders, datasets, features and checkpoints,
made on the spot (nothing is downloaded), and the ways of breaking them.

Everything here writes small files (48x64 frames, a dozen frames a video) so that a case builds in
milliseconds; :class:`Workshop` keeps the one input that costs more (a trained tiny model).
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import cv2
import numpy as np

FRAME_SIZE = (48, 64)  # (H, W) of the generated videos: tiny, so every case runs in seconds


# -- shared inputs ----------------------------------------------------------------------------------
class Workshop:
    """Inputs several cases share and that cost more than a file write: built once, on first use.

    Attributes:
        root: folder for the shared inputs.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self._model: Path | None = None

    def model(self) -> Path:
        """A tiny trained AED-MAE checkpoint (a few optimisation steps: ~2 s on one CPU thread)."""
        if self._model is None or not self._model.is_file():
            import torch

            from vadistill.data.pseudo import PasteConfig
            from vadistill.data.synthetic import render_scene
            from vadistill.methods.aed_mae import AedMae, AedMaeConfig
            from vadistill.scoring import TemporalFilter

            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                config = AedMaeConfig(input_size=(32, 48), patch_size=8, embed_dim=32, depth=1, num_heads=2,
                                      decoder_dim=32, decoder_heads=2, decoder_depth=2, teacher_epochs=1,
                                      student_epochs=1, max_steps_per_epoch=3, batch_size=8,
                                      paste=PasteConfig(probability=0.0), val_fraction=0.2,
                                      temporal_filter=TemporalFilter(kind="gaussian", sigma=2.0))
                run = self.root / "tiny-aed-mae"
                AedMae(config).fit([render_scene(30, 48, 72, seed=1).frames], run_dir=run, progress=False)
            finally:
                torch.set_num_threads(threads)
            self._model = run / "model.ckpt"
        return self._model


# -- input builders ---------------------------------------------------------------------------------
def make_frames(count: int, size: tuple[int, int] = FRAME_SIZE, seed: int = 0) -> list[np.ndarray]:
    """RGB uint8 frames of a bright square moving over a textured background (changes every frame)."""
    height, width = size
    rng = np.random.default_rng(seed)
    background = rng.integers(40, 90, (height, width, 3), dtype=np.uint8)
    frames = []
    for index in range(count):
        frame = background.copy()
        left = (3 * index) % max(1, width - 10)
        frame[height // 3:height // 3 + 10, left:left + 10] = (230, 200, 60)
        frames.append(frame)
    return frames


def make_video(path: Path, count: int = 24, size: tuple[int, int] = FRAME_SIZE, seed: int = 0) -> Path:
    from vadistill.io.video import write_video

    return write_video(path, make_frames(count, size, seed), fps=10)


def make_frame_folder(folder: Path, count: int = 20, size: tuple[int, int] = FRAME_SIZE, ext: str = ".jpg") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index, frame in enumerate(make_frames(count, size)):
        cv2.imwrite(str(folder / f"{index:03d}{ext}"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder


def write_mjpeg_avi(path: Path, frames_rgb: list[np.ndarray], fps: int = 10) -> Path:
    """An MJPEG .avi whose frames may have different sizes (OpenCV's own writers refuse that).

    A plain RIFF/AVI: header list (``avih``, one video stream ``strh``/``strf``), the JPEG frames
    as ``00dc`` chunks in ``movi``, and the ``idx1`` index. The headers carry the first frame's size.
    """
    def chunk(fourcc: bytes, data: bytes) -> bytes:
        return fourcc + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")

    def chunk_list(kind: bytes, payload: bytes) -> bytes:
        return chunk(b"LIST", kind + payload)

    jpegs = [cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR))[1].tobytes() for f in frames_rgb]
    height, width = frames_rgb[0].shape[:2]
    count, largest = len(jpegs), max(map(len, jpegs))
    avih = struct.pack("<10I4I", 1_000_000 // fps, 0, 0, 0x10, count, 0, 1, largest, width, height, 0, 0, 0, 0)
    strh = b"vidsMJPG" + struct.pack("<IHHIIIIIIiI4h", 0, 0, 0, 0, 1, fps, 0, count, largest, -1, 0,
                                     0, 0, width, height)
    strf = struct.pack("<IiiHH4sIiiII", 40, width, height, 1, 24, b"MJPG", width * height * 3, 0, 0, 0, 0)
    header = chunk_list(b"hdrl", chunk(b"avih", avih) + chunk_list(b"strl", chunk(b"strh", strh) + chunk(b"strf", strf)))
    movi, index, offset = b"", b"", 4  # idx1 offsets count from the 'movi' tag
    for data in jpegs:
        frame_chunk = chunk(b"00dc", data)
        index += b"00dc" + struct.pack("<III", 0x10, offset, len(data))
        offset += len(frame_chunk)
        movi += frame_chunk
    body = b"AVI " + header + chunk_list(b"movi", movi) + chunk(b"idx1", index)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def truncate(path: Path, fraction: float) -> Path:
    """Cut a file to `fraction` of its bytes (an interrupted download or copy)."""
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * fraction)])
    return path


def random_bytes(path: Path, size: int = 4096, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes())
    return path


# Tiny UCSD Ped2 in the frames layout: two test videos of 6 and 5 frames, two training videos.
PED2_TEST_FRAMES = {"01": 6, "02": 5}
PED2_M = "TestVideoFile{end+1}.gt_frame = [2:4];\nTestVideoFile{end+1}.gt_frame = [1:5];\n"
PED2_SIZE = (24, 32)


def make_ped2(root: Path, ucsd_m: str | None = PED2_M, masks: tuple[int, int] | bytes | None = None) -> Path:
    """``root/ped2/{training,testing}/frames/NN/NNN.jpg`` plus ``root/UCSDped2.m`` (unless None) and masks.

    Args:
        ucsd_m: the .m ground truth's text, or None for no frame ground truth.
        masks: None (no pixel masks), the (H, W) of every mask in ``ucsdped2_pixel_gt.npz``, or raw
            bytes written as that file.
    """
    for video in ("01", "02"):
        make_frame_folder(root / "ped2" / "training" / "frames" / video, 4, PED2_SIZE)
    for video, count in PED2_TEST_FRAMES.items():
        make_frame_folder(root / "ped2" / "testing" / "frames" / video, count, PED2_SIZE)
    if ucsd_m is not None:
        (root / "UCSDped2.m").write_text(ucsd_m)
    if isinstance(masks, bytes):
        (root / "ucsdped2_pixel_gt.npz").write_bytes(masks)
    elif masks is not None:
        np.savez(root / "ucsdped2_pixel_gt.npz", **{f"Test{int(v):03d}": np.zeros((n, *masks), bool)
                                                     for v, n in PED2_TEST_FRAMES.items()})
    return root


def ped2_scores(path: Path, lengths: dict[str, int] | None = None, nan_in: str | None = None) -> Path:
    """A scores.json for the tiny Ped2 (one score per frame unless `lengths` says otherwise)."""
    lengths = lengths or PED2_TEST_FRAMES
    scores = {video: np.linspace(0.1, 0.9, count).tolist() for video, count in lengths.items()}
    if nan_in is not None:
        scores[nan_in][1] = float("nan")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(scores))  # json writes NaN as the literal NaN, which json.loads reads back
    return path


def make_custom(root: Path, labels: str = "video,start,end\na,3,6\n") -> Path:
    """``root/train/walk.avi``, ``root/test/{a,b}.avi`` (12 frames each) and ``root/labels.csv``."""
    make_video(root / "train" / "walk.avi", 12, seed=1)
    make_video(root / "test" / "a.avi", 12, seed=2)
    make_video(root / "test" / "b.avi", 12, seed=3)
    (root / "labels.csv").write_text(labels)
    return root


# Tiny weakly-supervised Ped2 (TEVAD's split format) on handcrafted features, for `train dakd`.
WEAK_TRAIN = ("Test001", "Test002", "Train001", "Train002")
WEAK_TEST = ("Test003", "Train003")
WEAK_DIM = 744  # the handcrafted backbone's feature width
DAKD_SETTINGS = ("teacher_backbones=[handcrafted]", "student_backbone=handcrafted", "dim=8", "heads=1",
                 "teacher_epochs=1", "student_epochs=1", "steps_per_epoch=1", "batch_size=1")


def make_weak_ped2(root: Path) -> tuple[Path, Path]:
    """(annotation folder, features folder) of a four-video training split; returns both."""
    annotations, features = root / "annotations", root / "features" / "handcrafted"
    annotations.mkdir(parents=True)
    features.mkdir(parents=True)
    (annotations / "tevad_ped2-i3d.list").write_text("".join(f"{name}\n" for name in WEAK_TRAIN))
    (annotations / "tevad_ped2-i3d-test.list").write_text("".join(f"{name}\n" for name in WEAK_TEST))
    (annotations / "UCSDped2.m").write_text("TestVideoFile{end+1}.gt_frame = [20:90];\n" * 12)
    rng = np.random.default_rng(0)
    for name in WEAK_TRAIN + WEAK_TEST:
        np.save(features / f"{name}_handcrafted.npy", rng.random((8, WEAK_DIM), dtype=np.float32))
    return annotations, features.parent


def dakd_argv(annotations: Path, features: Path, run_dir: Path) -> list[str]:
    argv = ["--quiet", "train", "dakd", "--dataset", "ped2_weak", "--root", str(annotations),
            "--features", str(features), "--run-dir", str(run_dir)]
    for setting in DAKD_SETTINGS:
        argv += ["--set", setting]
    return argv


class RunsACommand:
    """Unpickling this runs ``touch <marker>`` through os.system: the classic malicious pickle."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)
