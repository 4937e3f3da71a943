"""`vadistill demo` timed end to end: the numbers the README quotes for the demo.

    python benchmarks/demo_run.py

Writes benchmarks/results/demo.json and .md (machine, command, git revision). The frame AUC is on
the generated clip the demo renders, for orientation only: it is not a benchmark accuracy.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from vadistill.demo import run_demo
from vadistill.provenance import command_line, git_revision, machine_info, provenance_header

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    machine = machine_info()  # load average before the run
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        summary = run_demo(Path(out), progress=False)
        seconds = time.perf_counter() - started
    result = {"command": command_line(), "git_revision": git_revision(), "machine": machine,
              "wall_seconds": round(seconds, 1), "train_seconds": summary["train_seconds"],
              "score_seconds": summary["score_seconds"],
              "frame_auc_on_generated_clip": summary["frame_auc_on_generated_clip"],
              "segments": summary["segments"], "ground_truth": "frames 80-160 (the cart is in view)"}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "demo.json").write_text(json.dumps(result, indent=2) + "\n")
    segments = ", ".join(f"{s['start']}-{s['end']}" for s in summary["segments"]) or "none"
    (RESULTS / "demo.md").write_text("\n".join([
        "# `vadistill demo` end to end", "",
        *provenance_header(result), "",
        f"- wall time (render + train + score + outputs): {result['wall_seconds']} s "
        f"(training {result['train_seconds']} s, scoring {result['score_seconds']} s)",
        f"- frame AUC on the generated test clip (orientation only): {result['frame_auc_on_generated_clip']}",
        f"- segments above the calibrated threshold: {segments}; {result['ground_truth']}", ""]))
    print((RESULTS / "demo.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
