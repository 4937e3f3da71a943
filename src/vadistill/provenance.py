"""Where a measured number came from: the machine, the software, the git revision, the command.

Every benchmark result and `vadistill bench` output carries this, so a number in the README can
always be traced to the run that produced it.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import torch


def cpu_flags() -> set[str]:
    """CPU feature flags from /proc/cpuinfo (empty where that file does not exist)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            return next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "")
    except OSError:
        return platform.processor()


def machine_info() -> dict:
    """CPU, load, threads and library versions."""
    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = None
    return {
        "cpu_model": cpu_model(), "cpu_count": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "cpu_flags": sorted(cpu_flags() & {"avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8"}),
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "onnxruntime": ort_version, "python": platform.python_version(), "platform": platform.platform(),
    }


def describe_machine(info: dict) -> str:
    """One line for a markdown report (also reads the older key names of earlier result files)."""
    cpu = info.get("cpu_model") or info.get("cpu") or "unknown CPU"
    cores = info.get("cpu_count") or info.get("cores") or info.get("logical_cores")
    load = info.get("load_average") or info.get("load_average_at_start")
    return (f"{cpu}, {cores} cores, torch {info.get('torch')} with {info.get('torch_threads')} thread(s)"
            + (f", load average {load}" if load else ""))


def provenance_header(result: dict, machine_note: str = "") -> list[str]:
    """The three lines a benchmark's markdown report starts with: the command, the git revision and the
    machine of ``result`` (its "command", "git_revision" and "machine" keys). ``machine_note`` follows
    the machine, for example " (at start)" where the load was read before a long run."""
    return [f"- command: `{result['command']}`",
            f"- git revision: {result.get('git_revision') or 'n/a'}",
            f"- machine: {describe_machine(result['machine'])}{machine_note}"]


def git_revision(root: str | os.PathLike | None = None) -> str:
    """HEAD's hash, with "+uncommitted changes" when the tree differs from it; "unknown" outside git."""
    cwd = Path(root) if root is not None else Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head.stdout.strip() + ("+uncommitted changes" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def command_line() -> str:
    """The command that is running, as a user would retype it."""
    return " ".join([Path(sys.executable).name, *sys.argv])
