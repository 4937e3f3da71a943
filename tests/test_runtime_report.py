"""`vadistill report RUN` (self-contained HTML) and `vadistill bench` (JSON)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from test_runtime_score import run_cli, tiny_config  # sibling test module: same tiny model

from vadistill.data.synthetic import render_scene
from vadistill.evaluate import evaluate_scores, write_report
from vadistill.io.video import write_video
from vadistill.methods.aed_mae import AedMae


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A RUN folder as `vadistill train` leaves it: model.ckpt, scores.json, metrics.json (+ videos, labels)."""
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("run")
    method = AedMae(tiny_config()).fit([render_scene(60, 48, 72, seed=1).frames], run_dir=run, progress=False)
    videos = run / "videos"
    scores, labels, rows = {}, {}, ["video,start,end"]
    for index, (first, last) in enumerate([(8, 16), (20, 27)]):
        clip = render_scene(32, 48, 72, seed=20 + index, cart_frames=(first, last))
        path = write_video(videos / f"clip{index}.avi", clip.frames, fps=10)
        scores[path.stem] = method.anomaly_scores(str(path))
        labels[path.stem] = clip.labels
        rows += [f"{path.stem},{s},{e}" for s, e in _ranges(clip.labels)]
    (run / "scores.json").write_text(json.dumps({k: v.tolist() for k, v in scores.items()}))
    write_report(evaluate_scores(scores, labels), run)
    (run / "labels.csv").write_text("\n".join(rows) + "\n")
    return run


def _ranges(labels: np.ndarray) -> list[tuple[int, int]]:
    flags = np.concatenate(([0], labels, [0]))
    changes = np.flatnonzero(np.diff(flags))
    return [(int(a), int(b) - 1) for a, b in zip(changes[::2], changes[1::2])]


def test_report_is_self_contained_html_with_plots_and_thumbnails(run_dir, tmp_path):
    out = tmp_path / "report.html"
    assert run_cli(["--quiet", "report", str(run_dir), "--out", str(out), "--labels", str(run_dir / "labels.csv"),
                    "--videos", str(run_dir / "videos")]) == 0
    page = out.read_text()
    assert "Micro AUC" in page and "Worst false alarms" in page and "Worst misses" in page
    images = re.findall(r'src="([^"]+)"', page)
    assert images and all(src.startswith("data:image/png;base64,") for src in images)  # nothing external
    assert len(images) >= 2 + 2  # two score plots and at least one thumbnail of each kind
    assert "calibrated on normal training data" in page


def test_report_of_a_folder_without_metrics_is_a_clear_error(tmp_path, capsys):
    assert run_cli(["report", str(tmp_path)]) == 2
    assert "metrics.json" in capsys.readouterr().err


def test_bench_reports_throughput_latency_and_accuracy(run_dir, tmp_path):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "bench.json"
    assert run_cli(["--quiet", "bench", str(run_dir / "model.ckpt"), "--batch", "1,2", "--engine", "torch,onnx",
                    "--precision", "fp32,int8", "--seconds", "0.2", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["machine"]["cpu_count"] >= 1 and "torch_cpu_capability" in result["machine"]
    runs = {(r["engine"], r["precision"]): r for r in result["runs"]}
    assert "skipped" in runs[("torch", "int8")]
    for key in (("torch", "fp32"), ("onnx", "fp32"), ("onnx", "int8")):
        run = runs[key]
        assert [row["batch"] for row in run["model_only"]] == [1, 2]
        assert all(row["items_per_s"] > 0 and row["p50_ms"] <= row["p99_ms"] for row in run["model_only"])
        assert run["end_to_end"]["fps"] > 0
    assert runs[("torch", "fp32")]["accuracy_vs_torch_fp32"]["max_abs_diff"] == 0.0
    assert runs[("onnx", "fp32")]["accuracy_vs_torch_fp32"]["pearson_r"] > 0.999
