"""Reading frames: the only module of vadistill that talks to a video decoder (OpenCV).

Sources:
    - a video file (anything FFmpeg inside OpenCV decodes: .avi, .mp4, .mkv, ...);
    - a folder of frame images (.jpg, .jpeg, .png, .tif, .tiff, .bmp), read in natural order;
    - a stream URL (rtsp://, http://, ...);
    - a webcam index (an int, or a string of digits).

Files and folders give frame-indexed access (`read(i)`); streams and webcams only iterate.
Every frame comes out as an (H, W, 3) uint8 array in RGB order, optionally resized to `size`.
Bad sources raise :class:`vadistill.errors.InputError` naming the source and what was expected:

- a missing, empty (0 bytes) or undecodable video file, or one that decodes to fewer frames than
  its container declares (truncated: see :func:`is_truncated`);
- in a frame folder: an empty, undecodable or truncated (JPEG without its end marker) image, or a
  frame whose size differs from the folder's first frame (mixed resolutions);
- an unreachable stream or webcam.

Frames inside one video *file* always come out at one size: FFmpeg scales every decoded frame to
the stream's size, so a resolution change inside a file never reaches vadistill as mixed shapes
(``vadistill data check --decode`` still reports it for MJPEG files, see :func:`mjpeg_frame_sizes`).
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path
from typing import Iterator

# OpenCV and FFmpeg print their own warnings to stderr for every unreachable stream or missing
# camera; vadistill reports such problems itself in one line, so keep them quiet unless asked.
_OPENCV_LEVEL_CHOSEN = "OPENCV_LOG_LEVEL" in os.environ  # by the user, who then gets what they asked for
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import cv2  # noqa: E402  (must come after the environment above)
import numpy as np

if not _OPENCV_LEVEL_CHOSEN:
    # The variable only counts when cv2 is first imported; a program may have imported it earlier.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

from vadistill.errors import InputError
from vadistill.io.atomic import atomic_path

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".mov", ".mpg", ".mpeg", ".m4v", ".webm", ".wmv", ".flv")
STREAM_PREFIXES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")

# Files are opened with FFmpeg only. When FFmpeg cannot open a file, OpenCV's default (CAP_ANY)
# goes on to its other backends, and the built-in MJPEG reader prints parser complaints
# ("Unexpected element...") straight to stderr whatever the log level, breaking the one-line
# error. FFmpeg reads everything the others would; CAP_ANY remains for OpenCV builds without it.
FILE_BACKEND = cv2.CAP_FFMPEG if cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG) else cv2.CAP_ANY

# A JPEG ends with the marker FFD9. Depending on the OpenCV build, a JPEG cut short either fails to
# decode or decodes "fine" with grey bottom rows; frame images are checked for the marker in their
# last bytes (some writers pad after it), so it is always named as what it is.
JPEG_END = b"\xff\xd9"
JPEG_TAIL_BYTES = 1024


def is_truncated(declared_frames: int, decoded_frames: int) -> bool:
    """True when a video decodes to clearly fewer frames than its container declares.

    The container's count is exact for intact AVI/MP4 files and stays at its old value when a file
    is cut short, so a shortfall means lost frames. Some containers only estimate the count
    (from duration x fps), so a shortfall of up to 1% (at least one frame) is tolerated.
    """
    if declared_frames <= 0:  # no count in the container: nothing to compare with
        return False
    return declared_frames - decoded_frames > max(1, declared_frames // 100)


def has_jpeg_end(data: bytes) -> bool:
    """True when JPEG bytes end with the end-of-image marker (possibly followed by padding)."""
    return JPEG_END in data[-JPEG_TAIL_BYTES:]


def read_image(path: str | os.PathLike) -> np.ndarray:
    """One frame image as decoded by OpenCV (BGR, BGRA or grey; any depth), checked for damage.

    Raises:
        InputError: the file is unreadable, empty, not an image, or a JPEG cut short.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputError(path, f"could not be read ({error.strerror or error})") from None
    if not data:
        raise InputError(path, "empty frame file (0 bytes), expected an image")
    if path.suffix.lower() in (".jpg", ".jpeg") and data[:2] == b"\xff\xd8" and not has_jpeg_end(data):
        raise InputError(path, "truncated JPEG: no end-of-image marker (FFD9) at the end of the file")
    # imdecode, not imread: imread lets libjpeg print "Premature end of JPEG file" to stderr.
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InputError(path, "could not be decoded as an image (corrupt file)")
    return image


def _check_same_size(image: np.ndarray, expected: tuple[int, int], where: str, reference: str) -> None:
    size = image.shape[:2]
    if size != tuple(expected):
        raise InputError(where, f"frame is {size[1]}x{size[0]}, expected {expected[1]}x{expected[0]} like {reference} "
                                "(mixed resolutions inside one video)")


def mjpeg_frame_sizes(path: str | os.PathLike) -> list[tuple[int, int]] | None:
    """(H, W) of every frame of an MJPEG video file as stored, before FFmpeg scales them to one size.

    Reads the compressed packets only (no decoding). Returns None for other codecs, whose frame
    headers are not parsed here.
    """
    capture = cv2.VideoCapture(str(path), FILE_BACKEND)
    try:
        if not capture.isOpened():
            return None
        fourcc = int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode("latin-1").upper()
        if fourcc not in ("MJPG", "AVRN", "LJPG", "JPGL", "MJLS") or not capture.set(cv2.CAP_PROP_FORMAT, -1):
            return None
        sizes = []
        while True:
            ok, packet = capture.read()
            if not ok:
                return sizes
            size = _jpeg_size(packet.tobytes())
            if size is not None:
                sizes.append(size)
    finally:
        capture.release()


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(H, W) from a JPEG's start-of-frame header, or None if there is none."""
    position = 2 if data[:2] == b"\xff\xd8" else None
    while position is not None and position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length field
            position += 2
            continue
        (length,) = struct.unpack(">H", data[position + 2:position + 4])
        # Start-of-frame markers C0-CF, except C4 (Huffman tables), C8 (reserved) and CC (arithmetic).
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) and position + 9 <= len(data):
            height, width = struct.unpack(">HH", data[position + 5:position + 9])
            return height, width
        if marker == 0xDA:  # start of scan: the header is over
            return None
        position += 2 + length
    return None


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
        declared_frames: the frame count the container declares (files; 0 when it gives none).
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
        self.declared_frames = 0
        self._native_size: tuple[int, int] | None = None  # (H, W) of the first frame as stored
        self._first_name = ""  # the frame the others are compared with, for messages
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
        first = read_image(self._files[0])
        self._native_size, self._first_name = first.shape[:2], self._files[0].name
        self.frame_size = convert_frame(first, self.size, str(self._files[0])).shape[:2]

    def _open_file(self, path: Path) -> None:
        if not path.exists():
            raise InputError(path, "no such video file or frame folder")
        if path.stat().st_size == 0:
            raise InputError(path, "the video file is empty (0 bytes)")
        self._capture = cv2.VideoCapture(str(path), FILE_BACKEND)
        if not self._capture.isOpened():
            raise InputError(path, "could not be opened as a video (unsupported or corrupt file)")
        self.fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.declared_frames = max(0, int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
        self.num_frames = self._count_frames(path)
        if is_truncated(self.declared_frames, self.num_frames):
            raise InputError(path, f"truncated or corrupt video: the container declares {self.declared_frames} frames "
                                   f"but decoding stops after {self.num_frames}")
        ok, frame = self._capture.read()
        if not ok:
            raise InputError(path, "no frame could be decoded (corrupt or truncated video)")
        self._native_size, self._first_name = frame.shape[:2], "frame 0"
        self.frame_size = convert_frame(frame, self.size, str(path)).shape[:2]
        self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)

    def _count_frames(self, path: Path) -> int:
        # The container's frame count is a hint that is wrong for some AVI/MP4 files; decode
        # once with grab() (no colour conversion, cheap) for an exact count that indexing can trust.
        capture = cv2.VideoCapture(str(path), FILE_BACKEND)
        count = 0
        while capture.grab():
            count += 1
        capture.release()
        if count == 0:
            raise InputError(path, "no frame could be decoded (corrupt or truncated video)")
        return count

    def _checked(self, frame_bgr: np.ndarray | None, where: str) -> np.ndarray:
        """A decoded frame of a file or folder, size-checked against the first one, converted."""
        if frame_bgr is not None and self._native_size is not None:
            _check_same_size(frame_bgr, self._native_size, where, self._first_name)
        return convert_frame(frame_bgr, self.size, where)

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
            return self._checked(read_image(path), str(path))
        if index != self._position:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, index)
            self._position = index
        ok, frame = self._capture.read()
        if not ok:
            raise InputError(self.source, f"frame {index} could not be decoded (truncated or corrupt video)")
        self._position += 1
        return self._checked(frame, f"{self.source} frame {index}")

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
            if self.is_stream:  # live sources may renegotiate their size; `size` evens it out
                yield convert_frame(frame, self.size, str(self.source))
            else:
                yield self._checked(frame, f"{self.source} frame {self._position - 1}")

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
    in opencv-python-headless without extra libraries. The file appears only once it is complete
    (written beside it, read back, then renamed): OpenCV's writer does not report failed writes,
    so a full disk would otherwise leave a video that silently stops early.

    Raises:
        InputError: the file could not be written, or not every frame could be read back from it
            (disk full, file-size limit).
        ValueError: `frames` is empty.
    """
    path = Path(path)
    with atomic_path(path) as temporary:
        written = _encode_video(temporary, path, frames, fps)
        if written == 0:
            raise ValueError(f"{path}: no frames to write")
        readable = _count_readable_frames(temporary)
        if readable < written:
            raise InputError(path, f"the video could not be written completely: {readable} of {written} frames "
                                   "are readable (disk full or file-size limit?); no partial file was left there")
    return path


def _encode_video(target: Path, path: Path, frames, fps: float) -> int:
    """Encode `frames` into `target` (codec chosen by `path`'s extension); returns the frame count."""
    fourcc = cv2.VideoWriter_fourcc(*("mp4v" if path.suffix.lower() == ".mp4" else "MJPG"))
    writer = None
    count = 0
    try:
        for frame in frames:
            if writer is None:
                height, width = frame.shape[:2]
                writer = cv2.VideoWriter(str(target), fourcc, float(fps), (width, height))
                if not writer.isOpened():
                    raise InputError(path, "could not be opened for writing a video")
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            count += 1
    finally:
        if writer is not None:
            writer.release()
    return count


def _count_readable_frames(path: Path) -> int:
    capture = cv2.VideoCapture(str(path), FILE_BACKEND)
    count = 0
    while capture.isOpened() and capture.grab():
        count += 1
    capture.release()
    return count
