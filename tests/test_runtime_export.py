"""`vadistill export --format onnx`: ONNX Runtime matches PyTorch (documented tolerance) for every
method, and `score --engine onnx` goes through the same numpy scoring code."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from test_runtime_score import run_cli, tiny_config  # noqa: E402  (sibling test module: same tiny model)

from vadistill.data.synthetic import render_scene  # noqa: E402
from vadistill.io.video import write_video  # noqa: E402
from vadistill.methods.aed_mae import AedMae  # noqa: E402
from vadistill.methods.dakd import Dakd, DakdConfig, DakdNet  # noqa: E402
from vadistill.runtime.export import PARITY_TOLERANCE, export_onnx, read_onnx_metadata  # noqa: E402
from vadistill.runtime.graphs import inference_graph  # noqa: E402
from vadistill.runtime.model import load_model  # noqa: E402
from vadistill.runtime.stream import stream_scorer  # noqa: E402


@pytest.fixture(scope="module")
def aed(tmp_path_factory):
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("aed_export")
    AedMae(tiny_config(pixel_norm=True)).fit([render_scene(60, 48, 72, seed=1).frames], run_dir=run,
                                              progress=False)  # pixel_norm: its statistics live in the graph
    onnx_path, sidecar = export_onnx(run / "model.ckpt")
    return run / "model.ckpt", onnx_path, sidecar


def _graph_outputs(model, x):
    return model.engine(x)


def test_aed_mae_onnx_matches_torch_within_tolerance(aed):
    ckpt, onnx_path, sidecar = aed
    assert onnx_path == ckpt.with_suffix(".onnx") and sidecar.is_file()
    meta = read_onnx_metadata(onnx_path)
    assert meta["method"] == "aed-mae" and meta["threshold"] == pytest.approx(json.loads(sidecar.read_text())["threshold"])
    torch_model, onnx_model = load_model(ckpt, "torch"), load_model(onnx_path, "onnx", threads=1)
    assert onnx_model.method.net_ is None  # numpy part from metadata, network in ONNX Runtime
    x = np.random.default_rng(0).uniform(-1, 1, size=(5, 9, 32, 48)).astype(np.float32)  # batch 5 != export's 2
    for ours, reference in zip(onnx_model.engine(x), torch_model.engine(x)):
        assert ours.shape == reference.shape
        assert np.abs(ours - reference).max() <= PARITY_TOLERANCE


def test_aed_mae_visible_map_scoring_exports_within_tolerance(tmp_path):
    """visible_map reads the map channel through a constant (P, H, W) share: it lives in the graph too."""
    torch.set_num_threads(1)
    AedMae(tiny_config(loss_tokens="map-all", visible_map=True)).fit(
        [render_scene(60, 48, 72, seed=1).frames], run_dir=tmp_path, progress=False)
    onnx_path, _ = export_onnx(tmp_path / "model.ckpt")
    torch_model, onnx_model = load_model(tmp_path / "model.ckpt", "torch"), load_model(onnx_path, "onnx", threads=1)
    assert torch_model.method.config.visible_map and onnx_model.method.config.visible_map
    x = np.random.default_rng(0).uniform(-1, 1, size=(3, 9, 32, 48)).astype(np.float32)
    for ours, reference in zip(onnx_model.engine(x), torch_model.engine(x)):
        assert np.abs(ours - reference).max() <= PARITY_TOLERANCE


def test_onnx_scores_match_torch_scores_and_score_cli_uses_it(aed, tmp_path):
    ckpt, _, _ = aed
    clip = render_scene(30, 48, 72, seed=11, cart_frames=(8, 20))
    video = write_video(tmp_path / "clip.avi", clip.frames, fps=10)
    assert run_cli(["--quiet", "score", str(ckpt), str(video), "--out", str(tmp_path / "onnx"), "--engine", "onnx",
                    "--no-overlay"]) == 0
    assert run_cli(["--quiet", "score", str(ckpt), str(video), "--out", str(tmp_path / "torch"), "--no-overlay"]) == 0
    onnx_scores = json.loads((tmp_path / "onnx" / "clip.scores.json").read_text())
    torch_scores = json.loads((tmp_path / "torch" / "clip.scores.json").read_text())
    assert onnx_scores["engine"].startswith("onnx") and torch_scores["engine"].startswith("torch")
    # Scores are standardised terms: a map difference d moves a score by at most ~d / std of the term.
    stats = load_model(ckpt).method.score_stats_
    bound = PARITY_TOLERANCE * sum(1.0 / stats[k]["std"] for k in ("teacher", "student", "classifier")) + 1e-5
    np.testing.assert_allclose(onnx_scores["raw_scores"], torch_scores["raw_scores"], atol=bound)


def test_dakd_onnx_matches_torch_with_dynamic_length(tmp_path):
    torch.manual_seed(0)
    cfg = DakdConfig(distill=False, student_backbone="feat", teacher_backbones=(), dim=32, heads=2)
    method = Dakd(cfg)
    method.input_dims_ = {"feat": 24}
    method.student_ = DakdNet([24], cfg).eval()
    method.history_ = []
    method.save(tmp_path / "dakd.ckpt")
    onnx_path, _ = export_onnx(tmp_path / "dakd.ckpt")
    torch_model, onnx_model = load_model(tmp_path / "dakd.ckpt"), load_model(onnx_path, "onnx", threads=1)
    for length in (5, 47):  # snippet axis is dynamic
        features = np.random.default_rng(length).normal(size=(3, length, 24)).astype(np.float32)
        (ours,), (reference,) = onnx_model.engine(features), torch_model.engine(features)
        assert ours.shape == (3, length)
        assert np.abs(ours - reference).max() <= PARITY_TOLERANCE
        np.testing.assert_allclose(reference[0], method.snippet_scores(features[0]), atol=1e-6)


def test_fast_aed_streams_like_offline_and_exports(tmp_path):
    fast_aed = pytest.importorskip("vadistill.methods.fast_aed")
    torch.manual_seed(0)
    cfg = fast_aed.FastAedConfig(input_size=(128, 128), channels=(8, 16, 16), depth=1, num_heads=2,
                                 temporal_filter=tiny_config().temporal_filter)
    method = fast_aed.FastAed(cfg)
    method.student_ = fast_aed.FastAedStudent(cfg, len(cfg.teachers)).eval()
    method.score_stats_, method.threshold_, method.history_ = {"mean": 0.1, "std": 0.5}, 1.0, []
    method.save(tmp_path / "fast.ckpt")
    frames = render_scene(12, 64, 96, seed=2).frames
    offline = method.anomaly_scores(frames, raw=True)
    model = load_model(tmp_path / "fast.ckpt")
    scorer = stream_scorer(model.method)
    results = [r for f in frames for r in scorer.step(f, model.engine)] + scorer.finish(model.engine)
    np.testing.assert_allclose([r.raw for r in results], offline, atol=1e-5, rtol=1e-6)
    onnx_path, _ = export_onnx(tmp_path / "fast.ckpt")
    onnx_model = load_model(onnx_path, "onnx", threads=1)
    x = inference_graph(method).example.numpy()
    for ours, reference in zip(onnx_model.engine(x), model.engine(x)):
        assert np.abs(ours - reference).max() <= PARITY_TOLERANCE


def test_onnx_engine_without_export_is_a_clear_error(tmp_path):
    from vadistill.errors import InputError

    ckpt = tmp_path / "m.ckpt"
    ckpt.write_bytes(b"x")
    with pytest.raises(InputError, match="export"):
        load_model(ckpt, "onnx")


def test_dakd_scores_whole_videos_with_both_engines(tmp_path, capsys):
    """DAKD (weight-free handcrafted backbone): `score` on a file with torch and with ONNX Runtime."""
    from vadistill.backbones import BACKBONES

    torch.manual_seed(0)
    dim = BACKBONES["handcrafted"].feature_dim
    cfg = DakdConfig(distill=False, student_backbone="handcrafted", teacher_backbones=(), dim=32, heads=2)
    method = Dakd(cfg)
    method.input_dims_ = {"handcrafted": dim}
    method.student_ = DakdNet([dim], cfg).eval()
    method.history_ = []
    method.save(tmp_path / "dakd.ckpt")
    export_onnx(tmp_path / "dakd.ckpt")
    video = write_video(tmp_path / "walk.avi", render_scene(40, 48, 72, seed=3).frames, fps=10)
    for engine in ("torch", "onnx"):
        assert run_cli(["--quiet", "score", str(tmp_path / "dakd.ckpt"), str(video), "--engine", engine,
                        "--out", str(tmp_path / engine)]) == 0
    torch_scores = json.loads((tmp_path / "torch" / "walk.scores.json").read_text())["scores"]
    onnx_scores = json.loads((tmp_path / "onnx" / "walk.scores.json").read_text())["scores"]
    assert len(torch_scores) == 40 and (tmp_path / "torch" / "walk.overlay.avi").is_file()
    np.testing.assert_allclose(onnx_scores, torch_scores, atol=PARITY_TOLERANCE)
    assert run_cli(["--quiet", "score", str(tmp_path / "dakd.ckpt"), "rtsp://127.0.0.1:9/live"]) == 2
    assert "rtsp://127.0.0.1:9/live" in capsys.readouterr().err
