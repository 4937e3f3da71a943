"""Shared test fixtures.

Real benchmark data lives beside the repository in ``../shared/data`` (override with the env
variable ``VADISTILL_SHARED_DATA``). It is never copied into the repository: tests that need it
take the ``shared_data`` fixture, which skips them with the reason when the folder is absent, and
unpack archives into pytest temporary folders.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest

SHARED_DATA_ENV = "VADISTILL_SHARED_DATA"


def shared_data_dir() -> Path:
    """``$VADISTILL_SHARED_DATA`` or ``../shared/data`` beside the repository."""
    configured = os.environ.get(SHARED_DATA_ENV)
    return Path(configured) if configured else Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real-data folder; skips the test when it is not there."""
    folder = shared_data_dir()
    if not folder.is_dir():
        pytest.skip(f"real benchmark data not found at {folder} (set {SHARED_DATA_ENV} to its location)")
    return folder


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data file {path} is missing")
    return path


@pytest.fixture(scope="session")
def ped2_root(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """UCSD Ped2 prepared as `vadistill data prepare ped2` leaves it (read-only by convention).

    Layout: ``<root>/ped2/{training,testing}/frames/NN/NNN.jpg`` plus ``<root>/UCSDped2.m`` and
    ``<root>/ucsdped2_pixel_gt.npz``. Unpacked once per session: tests must not modify it (copy
    it first, e.g. ``shutil.copytree(ped2_root, tmp, copy_function=os.link)`` and only delete files).
    """
    archive = _need(shared_data / "ucsd_ped2" / "ped2_frames.tar")
    ground_truth = [_need(shared_data / "ucsd_gt" / "UCSDped2.m"), _need(shared_data / "ucsd_gt" / "ucsdped2_pixel_gt.npz")]
    root = tmp_path_factory.mktemp("ped2")
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(root, filter="data")  # refuses absolute paths and links out of root
        else:  # Python < 3.10.12 has no extraction filters
            tar.extractall(root)
    for file in ground_truth:
        shutil.copy(file, root / file.name)
    return root


@pytest.fixture
def write_frame_folder() -> Callable[..., Path]:
    """Returns ``write(folder, num_frames, size=(24, 32), ext=".jpg", first=0, digits=3, grey=False)``.

    Writes numbered frame images (``000.jpg``, ``001.jpg``, ...) whose content changes from frame
    to frame, and returns the folder.
    """

    def write(folder: Path, num_frames: int, size: tuple[int, int] = (24, 32), ext: str = ".jpg",
              first: int = 0, digits: int = 3, grey: bool = False) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        height, width = size
        for index in range(num_frames):
            frame = np.full((height, width) if grey else (height, width, 3), (index * 17) % 256, dtype=np.uint8)
            frame[: height // 2, : width // 2] = 255 - frame[: height // 2, : width // 2]
            if not cv2.imwrite(str(folder / f"{first + index:0{digits}d}{ext}"), frame):
                raise RuntimeError(f"could not write a test frame to {folder}")
        return folder

    return write


@pytest.fixture(scope="session")
def custom_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny `custom` dataset (generated walkway): 2 normal training videos, 1 test video in which
    a cart crosses, and its labels.csv."""
    from vadistill.data.synthetic import render_scene
    from vadistill.io.video import write_video

    root = tmp_path_factory.mktemp("custom")
    for index in range(2):
        write_video(root / "train" / f"normal_{index}.avi", render_scene(30, 72, 120, seed=index).frames, fps=10)
    test = render_scene(30, 72, 120, cart_frames=(10, 20), seed=99)
    write_video(root / "test" / "cart.avi", test.frames, fps=10)
    anomalous = np.flatnonzero(test.labels)
    (root / "labels.csv").write_text(f"video,start,end\ncart,{anomalous[0]},{anomalous[-1]}\n")
    return root
