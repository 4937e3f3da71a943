"""`vadistill score` and the streaming scorer: same scores as the evaluation path, outputs readable,
bad sources reported in one line while the others finish."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from vadistill.data.pseudo import PasteConfig
from vadistill.data.synthetic import render_scene
from vadistill.errors import EXIT_USER_ERROR, InputError
from vadistill.io.video import open_video, write_video
from vadistill.methods.aed_mae import AedMae, AedMaeConfig
from vadistill.runtime import score as score_module
from vadistill.runtime.commands import add_runtime_verbs
from vadistill.runtime.model import load_method, load_model
from vadistill.runtime.score import finished_outputs, score_source
from vadistill.runtime.stream import CausalFilter, ClipStreamScorer
from vadistill.scoring import TemporalFilter

# Streaming vs offline raw scores: same arithmetic, but the CPU kernels sum in another order for
# another batch size (float32), so equality holds to rounding.
STREAM_ATOL, STREAM_RTOL = 1e-5, 1e-6


def tiny_config(**changes) -> AedMaeConfig:
    values = dict(input_size=(32, 48), patch_size=8, embed_dim=32, depth=1, num_heads=2, decoder_dim=32,
                  decoder_heads=2, decoder_depth=2, teacher_epochs=1, student_epochs=1, max_steps_per_epoch=3,
                  batch_size=8, paste=PasteConfig(probability=0.0), val_fraction=0.2,
                  temporal_filter=TemporalFilter(kind="gaussian", sigma=2.0))
    values.update(changes)
    return AedMaeConfig(**values)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A tiny AED-MAE (default 9x9x9 map filter: streaming latency 7) trained for a few steps."""
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("aed_run")
    AedMae(tiny_config(pixel_norm=True)).fit([render_scene(60, 48, 72, seed=1).frames], run_dir=run,
                                              progress=False)  # pixel_norm: its statistics live in the graph
    return run / "model.ckpt"


@pytest.fixture(scope="module")
def test_video(tmp_path_factory) -> tuple[Path, np.ndarray]:
    clip = render_scene(40, 48, 72, seed=5, cart_frames=(10, 25))
    path = tmp_path_factory.mktemp("videos") / "cart.avi"
    write_video(path, clip.frames, fps=10)
    return path, clip.labels


def run_cli(argv: list[str]) -> int:
    """The runtime verbs behind a parser shaped like vadistill.cli's (global --quiet, one-line errors)."""
    parser = argparse.ArgumentParser(prog="vadistill")
    parser.add_argument("--quiet", action="store_true")
    add_runtime_verbs(parser.add_subparsers(dest="verb", required=True))
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except InputError as error:
        import sys

        print(f"vadistill: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR


def test_load_method_reads_the_method_name_from_the_checkpoint(tiny, tmp_path):
    assert isinstance(load_method(tiny), AedMae)
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError):
        load_method(bad)


def test_streaming_raw_scores_equal_offline_raw_scores(tiny, test_video):
    torch.set_num_threads(1)
    model = load_model(tiny)
    frames = open_video(test_video[0]).read_all()
    offline = model.method.anomaly_scores(frames, raw=True)
    scorer = ClipStreamScorer(model.method)
    assert scorer.latency == 3 + 4  # t+3 clip frame, then half of the 9-frame temporal map filter
    results = []
    for index, frame in enumerate(frames):
        new = scorer.step(frame, model.engine)
        # A frame's score is final exactly `latency` frames after it arrived.
        assert [r.index for r in new] == ([index - scorer.latency] if index >= scorer.latency else [])
        results += new
    results += scorer.finish(model.engine)
    assert [r.index for r in results] == list(range(len(frames)))
    streamed = np.array([r.raw for r in results])
    np.testing.assert_allclose(streamed, offline, atol=STREAM_ATOL, rtol=STREAM_RTOL)


def test_stream_memory_is_bounded(tiny):
    model = load_model(tiny)
    scorer = ClipStreamScorer(model.method, keep_maps=True)
    frame = render_scene(1, 48, 72, seed=3).frames[0]
    for _ in range(60):
        scorer.step(frame, model.engine)
    assert len(scorer.frames) == scorer.frames.maxlen == 7
    assert len(scorer.outputs) == scorer.outputs.maxlen == 9
    assert len(scorer.causal.history) <= len(scorer.causal.weights)


def test_causal_filter_is_normalised_and_causal():
    causal = CausalFilter(TemporalFilter(kind="gaussian", sigma=2.0))
    assert causal(5.0) == pytest.approx(5.0)  # constant signals stay constant from the first frame
    assert causal(5.0) == pytest.approx(5.0)
    spike = CausalFilter(TemporalFilter(kind="gaussian", sigma=2.0))
    outputs = [spike(v) for v in [0, 0, 10, 0, 0]]
    assert outputs[:2] == [0, 0] and outputs[2] > outputs[3] > outputs[4] > 0  # no response before the spike


def test_score_equals_evaluation_path_and_writes_readable_outputs(tiny, test_video, tmp_path):
    torch.set_num_threads(1)
    path, labels = test_video
    model = load_model(tiny)
    labels_file = tmp_path / "labels.csv"
    labels_file.write_text("video,start,end\ncart.avi,10,25\n")
    result = score_source(model, str(path), tmp_path / "out", labels_file=labels_file, progress=False)
    evaluation = model.method.anomaly_scores(str(path))  # what `vadistill train`/evaluate use
    np.testing.assert_allclose(result.scores, evaluation, atol=STREAM_ATOL, rtol=STREAM_RTOL)
    saved = json.loads((tmp_path / "out" / "cart.scores.json").read_text())
    np.testing.assert_allclose(saved["scores"], evaluation, atol=1e-5)
    assert saved["threshold"] == pytest.approx(model.threshold)
    rows = (tmp_path / "out" / "cart.scores.csv").read_text().splitlines()
    assert rows[0] == "frame,seconds,score,raw_score,is_anomalous" and len(rows) == 41
    for segment in saved["segments"]:
        assert segment["start"] <= segment["peak_frame"] <= segment["end"]
    plot = cv2.imread(str(result.files["plot"]))
    assert plot is not None and plot.shape[0] > 100
    with open_video(result.files["overlay"]) as overlay:
        assert len(overlay) == 40 and overlay.frame_size == (48, 72)


def test_score_cli_reports_bad_sources_in_one_line_and_finishes_the_others(tiny, test_video, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4096))
    missing = tmp_path / "missing.avi"
    url = "http://127.0.0.1:9/none.mjpg"  # port 9 (discard): nothing listens, refused at once
    out = tmp_path / "out"
    code = run_cli(["--quiet", "score", str(tiny), str(missing), str(corrupt), url, str(test_video[0]),
                    "--out", str(out), "--no-overlay"])
    assert code == EXIT_USER_ERROR
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("vadistill: error:")]
    assert len(errors) == 3
    assert any(str(missing) in line for line in errors) and any(str(corrupt) in line for line in errors)
    assert any(url in line for line in errors)
    assert (out / "cart.scores.csv").is_file() and (out / "cart.plot.png").is_file()
    assert not (out / "cart.overlay.avi").exists()


def test_score_cli_threshold_override(tiny, test_video, tmp_path):
    assert run_cli(["--quiet", "score", str(tiny), str(test_video[0]), "--out", str(tmp_path), "--threshold", "1e9",
                    "--no-overlay"]) == 0
    saved = json.loads((tmp_path / "cart.scores.json").read_text())
    assert saved["threshold"] == 1e9 and saved["segments"] == []


def test_outputs_are_replaced_atomically_and_the_json_marker_comes_last(tiny, test_video, tmp_path, monkeypatch):
    model, source, out = load_model(tiny), str(test_video[0]), tmp_path / "out"
    score_source(model, source, out, progress=False, overlay=False)
    assert finished_outputs(out, "cart", source, str(tiny), model.threshold, overlay=False)
    assert not finished_outputs(out, "cart", source, str(tiny), model.threshold, overlay=True)  # no overlay yet
    assert not finished_outputs(out, "cart", source, str(tiny), 1e9, overlay=False)  # another threshold

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the run dies after the CSV, while the plot is being drawn

    monkeypatch.setattr(score_module, "plot_scores", killed)
    with pytest.raises(KeyboardInterrupt):
        score_source(model, source, out, progress=False)
    assert not (out / "cart.scores.json").exists()  # the marker went first: nothing looks finished
    assert not finished_outputs(out, "cart", source, str(tiny), model.threshold, overlay=False)
    assert (out / "cart.overlay.avi").is_file()  # what was complete was moved into place whole ...
    assert not list(out.glob(".*"))  # ... and nothing half-written stays behind
