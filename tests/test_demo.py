"""`vadistill demo --quick` end to end: every promised output is written and readable."""

import json

import cv2
import numpy as np
import pytest
import torch

from vadistill.demo import run_demo
from vadistill.io.video import open_video


@pytest.mark.slow
def test_quick_demo_writes_scores_plot_and_overlay(tmp_path):
    torch.set_num_threads(1)
    summary = run_demo(tmp_path, quick=True, progress=False)
    outputs = {k: tmp_path / v if not v.startswith("/") else v for k, v in summary["outputs"].items()}
    scores = json.loads(open(outputs["scores_json"]).read())
    assert len(scores["scores"]) == 240 and np.isfinite(scores["scores"]).all()
    assert scores["threshold"] == summary["threshold"]
    plot = cv2.imread(str(outputs["plot"]))
    assert plot is not None and plot.shape[0] > 100
    with open_video(outputs["overlay"]) as overlay:
        assert overlay.num_frames == 240 and overlay.frame_size == (144, 240)
    assert json.loads((tmp_path / "summary.json").read_text())["method"] == "aed-mae"
    assert 0.0 <= summary["frame_auc_on_generated_clip"] <= 1.0
