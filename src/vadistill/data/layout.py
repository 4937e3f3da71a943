"""Where datasets live on disk: the data root, each dataset's folder, extracted frame folders.

Shared by `prepare` (which writes these places) and `benchmarks` (which reads them), so the two
can never disagree.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "VADISTILL_DATA"


def default_data_root() -> Path:
    """Where prepared datasets live: ``$VADISTILL_DATA`` or ``~/.cache/vadistill/datasets``."""
    configured = os.environ.get(DATA_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "vadistill" / "datasets"


def dataset_root(name: str, data_root: str | os.PathLike | None = None) -> Path:
    """The folder of one prepared dataset: ``<data_root or default_data_root()>/<name>``."""
    return (Path(data_root).expanduser() if data_root is not None else default_data_root()) / name


def frames_dir_for(video: Path) -> Path:
    """Where the frames of `video` go, beside the videos, in the common ``frames/<video>/`` layout.

    ``.../videos/X.avi``           -> ``.../frames/X/``         (ShanghaiTech training)
    ``.../<split>_videos/X.avi``   -> ``.../<split>/frames/X/`` (Avenue: testing_videos -> testing/frames)
    ``.../X.avi`` (anything else)  -> ``.../frames/X/``
    """
    folder = video.parent
    lowered = folder.name.lower()
    if lowered == "videos":
        return folder.parent / "frames" / video.stem
    if lowered.endswith("_videos"):
        return folder.parent / folder.name[: -len("_videos")] / "frames" / video.stem
    return folder / "frames" / video.stem
