"""Reading frames: the only module of vadistill that talks to a video decoder (OpenCV).

Sources:
    - a video file (anything FFmpeg inside OpenCV decodes: .avi, .mp4, .mkv, ...);
    - a folder of frame images (.jpg, .jpeg, .png, .tif, .tiff, .bmp), read in natural order;
    - a stream URL (rtsp://, http://, ...);
    - a webcam index (an int, or a string of digits).

Files and folders give frame-indexed access (`read(i)`); streams and webcams only iterate.
Every frame comes out as an (H, W, 3) uint8 array in RGB order, optionally resized to `size`.
Bad sources raise :class:`vadistill.errors.InputError` naming the source and what was expected.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator

# OpenCV and FFmpeg print their own warnings to stderr for every unreachable stream or missing
# camera; vadistill reports such problems itself in one line, so keep them quiet unless asked.
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import cv2  # noqa: E402  (must come after the environment above)
import numpy as np

from vadistill.errors import InputError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".mov", ".mpg", ".mpeg", ".m4v", ".webm", ".wmv", ".flv")
STREAM_PREFIXES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")


def natural_key(name: str) -> list:
    """Sort key so that "frame2" < "frame10" (frame files are often not zero-padded)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_frame_files(folder: str | os.PathLike) -> list[Path]:
    """The image files of a frame folder in natural order (hidden files ignored)."""
    folder = Path(folder)
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")]
    return sorted(files, key=lambda p: natural_key(p.name))


def is_stream(source: str | int) -> bool:
    return isinstance(source, int) or str(source).isdigit() or str(source).lower().startswith(STREAM_PREFIXES)


def convert_frame(frame_bgr: np.ndarray, size: tuple[int, int] | None, where: str) -> np.ndarray:
    """BGR or grey decoder output -> (H, W, 3) uint8 RGB, resized to size=(H, W) if given."""
    if frame_bgr is None:
        raise InputError(where, "could not be decoded as an image")
    if frame_bgr.dtype != np.uint8:
        # 16-bit TIFFs exist in some datasets; scale to 8 bits rather than clip.
        frame_bgr = cv2.normalize(frame_bgr, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if frame_bgr.ndim == 2:
        frame = cv2.cvtColor(frame_bgr, cv2.COLOR_GRAY2RGB)
    elif frame_bgr.shape[2] == 4:
        frame = cv2.cvtColor(frame_bgr, cv2.COLOR_BGRA2RGB)
    else:
        frame = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
    if size is not None and frame.shape[:2] != tuple(size):
        height, width = size
        # INTER_AREA when shrinking avoids aliasing; INTER_LINEAR when enlarging.
        shrink = height * width < frame.shape[0] * frame.shape[1]
        frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return frame


class VideoReader:
    """Frames of one source. Use `open_video` to make one.

    Attributes:
        source: what was opened (path, URL or webcam index), as given.
        num_frames: frame count for files and folders; None for streams and webcams.
        fps: frames per second reported by the container (folders: 0.0, unknown).
        frame_size: (H, W) of the frames this reader returns (after resizing).
    """

    def __init__(self, source: str | int, size: tuple[int, int] | None = None):
        self.source = source
        self.size = tuple(size) if size is not None else None
        self.is_stream = is_stream(source)
        self._files: list[Path] | None = None
        self._capture: cv2.VideoCapture | None = None
        self._position = 0  # index of the frame the capture returns next
        self.fps = 0.0
        self.num_frames: int | None = None
        if self.is_stream:
            self._open_stream()
        elif Path(source).is_dir():
            self._open_folder(Path(source))
        else:
            self._open_file(Path(source))

    # -- opening -----------------------------------------------------------------------------
    def _open_folder(self, folder: Path) -> None:
        self._files = list_frame_files(folder)
        if not self._files:
            raise InputError(folder, f"expected a folder of frame images ({', '.join(IMAGE_EXTENSIONS)}), found none")
        self.num_frames = len(self._files)
        first = convert_frame(cv2.imread(str(self._files[0]), cv2.IMREAD_UNCHANGED), self.size, str(self._files[0]))
        self.frame_size = first.shape[:2]

    def _open_file(self, path: Path) -> None:
        if not path.exists():
            raise InputError(path, "no such video file or frame folder")
        if path.stat().st_size == 0:
            raise InputError(path, "the video file is empty (0 bytes)")
        self._capture = cv2.VideoCapture(str(path))
        if not self._capture.isOpened():
            raise InputError(path, "could not be opened as a video (unsupported or corrupt file)")
        self.fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.num_frames = self._count_frames(path)
        ok, frame = self._capture.read()
        if not ok:
            raise InputError(path, "no frame could be decoded (corrupt or truncated video)")
        self.frame_size = convert_frame(frame, self.size, str(path)).shape[:2]
        self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)

    def _count_frames(self, path: Path) -> int:
        # The container's frame count is a hint that is wrong for some AVI/MP4 files; decode
        # once with grab() (no colour conversion, cheap) for an exact count that indexing can trust.
        capture = cv2.VideoCapture(str(path))
        count = 0
        while capture.grab():
            count += 1
        capture.release()
        if count == 0:
            raise InputError(path, "no frame could be decoded (corrupt or truncated video)")
        return count

    def _open_stream(self) -> None:
        target = int(self.source) if str(self.source).isdigit() else str(self.source)
        self._capture = cv2.VideoCapture(target)
        if not self._capture.isOpened():
            what = "webcam" if isinstance(target, int) else "stream"
            raise InputError(self.source, f"could not open the {what} (unreachable, wrong URL or device index)")
        self.fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
        width = int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.frame_size = self.size if self.size is not None else (height, width)

    # -- access ------------------------------------------------------------------------------
    def __len__(self) -> int:
        if self.num_frames is None:
            raise TypeError(f"{self.source}: a live source has no length")
        return self.num_frames

    def read(self, index: int) -> np.ndarray:
        """Frame `index` (0-based) as (H, W, 3) uint8 RGB. Files and folders only."""
        if self.num_frames is None:
            raise InputError(self.source, "frame-indexed access needs a video file or a frame folder, not a live source")
        if not 0 <= index < self.num_frames:
            raise IndexError(f"{self.source}: frame {index} out of range [0, {self.num_frames})")
        if self._files is not None:
            path = self._files[index]
            return convert_frame(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), self.size, str(path))
        if index != self._position:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, index)
            self._position = index
        ok, frame = self._capture.read()
        if not ok:
            raise InputError(self.source, f"frame {index} could not be decoded (truncated or corrupt video)")
        self._position += 1
        return convert_frame(frame, self.size, f"{self.source} frame {index}")

    def __iter__(self) -> Iterator[np.ndarray]:
        """All frames in order. Streams end when the source stops delivering frames."""
        if self._files is not None:
            for index in range(self.num_frames):
                yield self.read(index)
            return
        if not self.is_stream:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self._position = 0
        while True:
            ok, frame = self._capture.read()
            if not ok:
                if not self.is_stream and self._position < self.num_frames:
                    raise InputError(self.source, f"frame {self._position} could not be decoded (truncated or corrupt video)")
                return
            self._position += 1
            yield convert_frame(frame, self.size, str(self.source))

    def read_all(self) -> np.ndarray:
        """Every frame as one (T, H, W, 3) uint8 array. Files and folders only."""
        if self.num_frames is None:
            raise InputError(self.source, "reading all frames needs a video file or a frame folder, not a live source")
        frames = np.empty((self.num_frames, *self.frame_size, 3), dtype=np.uint8)
        for index, frame in enumerate(self):
            if frame.shape[:2] != tuple(self.frame_size):
                raise InputError(self.source, f"frame {index} is {frame.shape[1]}x{frame.shape[0]}, expected "
                                 f"{self.frame_size[1]}x{self.frame_size[0]} like the first frame (mixed resolutions)")
            frames[index] = frame
        return frames

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_video(source: str | int | os.PathLike, size: tuple[int, int] | None = None) -> VideoReader:
    """Open a video file, frame folder, stream URL or webcam index.

    Args:
        source: path, URL or webcam index.
        size: (H, W) to resize every frame to; None keeps the native size.

    Raises:
        InputError: the source is missing, empty, corrupt or unreachable.
    """
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    return VideoReader(source, size)


def read_frames(source: str | int | os.PathLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """Shortcut: all frames of a file or folder as a (T, H, W, 3) uint8 RGB array."""
    with open_video(source, size) as reader:
        return reader.read_all()


def write_video(path: str | os.PathLike, frames, fps: float = 25.0) -> Path:
    """Write RGB uint8 frames (an iterable of (H, W, 3)) to a video file; returns the path.

    The codec follows the extension: .mp4 -> mp4v, anything else -> MJPG (.avi), both available
    in opencv-python-headless without extra libraries.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fourcc = cv2.VideoWriter_fourcc(*("mp4v" if path.suffix.lower() == ".mp4" else "MJPG"))
    writer = None
    try:
        for frame in frames:
            if writer is None:
                height, width = frame.shape[:2]
                writer = cv2.VideoWriter(str(path), fourcc, float(fps), (width, height))
                if not writer.isOpened():
                    raise InputError(path, "could not be opened for writing a video")
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        if writer is not None:
            writer.release()
    return path
