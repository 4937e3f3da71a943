"""`vadistill demo`: the whole job on an embedded default, offline, in a few minutes on 2 CPU cores.

1. Generate a walkway scene (vadistill.data.synthetic): normal training footage and a test clip
   in which a fast cart crosses the walkway (the anomaly, with known frames).
2. Write them as an ordinary `custom` dataset (train/*.avi, test/*.avi, labels.csv), so everything
   after this point is the same path a user's own footage takes.
3. Train AED-MAE (teacher, then student by self-distillation) with a small configuration.
4. Score the test clip and write per-frame scores (CSV + JSON), the anomalous segments above the
   threshold calibrated on normal data, a score plot with the ground truth shaded, an overlay
   video, and the frame-level AUC (this AUC is on generated data, for orientation only).
"""

from __future__ import annotations

import time
from pathlib import Path

import json

import numpy as np

from vadistill.data.benchmarks import load_custom
from vadistill.data.synthetic import demo_clips
from vadistill.io.atomic import atomic_write_text
from vadistill.io.video import write_video

FPS = 10.0


def write_demo_dataset(data_dir: Path, seed: int, quick: bool) -> Path:
    """Render the scene and write it as a `custom` dataset: train/*.avi, test/*.avi, labels.csv."""
    train_clips, test_clip = demo_clips(num_train=300 if quick else 600, num_test=240, seed=seed)
    for index, frames in enumerate(train_clips, start=1):
        write_video(data_dir / "train" / f"normal_{index:02d}.avi", frames, fps=FPS)
    write_video(data_dir / "test" / "cart_crossing.avi", test_clip.frames, fps=FPS)
    anomalous = np.flatnonzero(test_clip.labels)
    (data_dir / "labels.csv").write_text(f"video,start,end\ncart_crossing,{anomalous[0]},{anomalous[-1]}\n")
    return data_dir


def run_demo(out_dir: Path, seed: int = 0, quick: bool = False, progress: bool = True) -> dict:
    """Run the demo end to end; returns a summary dict (also written to summary.json)."""
    from vadistill.methods.aed_mae import AedMae, demo_config
    from vadistill.metrics import micro_auc
    from vadistill.runtime.score import score_video

    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    dataset = load_custom(write_demo_dataset(out_dir / "data", seed, quick))
    train, test = dataset.train, dataset.test[0]

    method = AedMae(demo_config(quick=quick, seed=seed))
    method.fit(train, run_dir=out_dir / "run", progress=progress)
    model_path = out_dir / "model.ckpt"
    method.save(model_path)
    trained = time.perf_counter()

    result = score_video(method, test, out_dir / "scores", fps=FPS, progress=progress)
    summary = {
        "method": "aed-mae",
        "model": str(model_path),
        "train_videos": [v.source for v in train],
        "test_video": test.source,
        "train_seconds": round(trained - started, 1),
        "score_seconds": round(time.perf_counter() - trained, 1),
        "frame_auc_on_generated_clip": round(micro_auc({test.name: result.scores}, {test.name: test.labels}), 4),
        "threshold": result.threshold,
        "segments": [s.__dict__ for s in result.segments],
        "outputs": {k: str(v) for k, v in result.files.items()},
    }
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2))
    return summary
