"""Where the Fast-AED and DAKD benchmarks find UCSD Ped2's frames (unpacked once, gitignored)."""

from __future__ import annotations

from pathlib import Path

from vadistill.data.archive import unpack_archive

ROOT = Path(__file__).resolve().parents[1]
PED2_TAR = ROOT.parent / "shared" / "data" / "ucsd_ped2" / "ped2_frames.tar"


def frames_root() -> Path:
    """The ``ped2/{training,testing}/frames`` folder under ``benchmarks/work``, unpacked from the tar if missing."""
    for candidate in (ROOT / "benchmarks" / "work" / "ped2", ROOT / "benchmarks" / "work" / "ped2_data" / "ped2"):
        if (candidate / "testing" / "frames" / "12").is_dir() and (candidate / "training" / "frames" / "16").is_dir():
            return candidate
    target = ROOT / "benchmarks" / "work" / "ped2_data"
    unpack_archive(PED2_TAR, target)  # refuses unsafe members (path traversal, escaping links)
    return target / "ped2"
