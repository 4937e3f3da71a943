"""`vadistill score --engine dask` on a real loopback cluster: the same files as the single-process
path, finished videos skipped on a rerun, a bad video (or a crashing worker) failing only itself."""

# ruff: noqa: F811  (test arguments named after the imported `tiny` fixture)
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

# The tiny trained AED-MAE fixture of the single-process tests, shared (pytest injects it by name).
from test_runtime_score import tiny  # noqa: F401

from vadistill import cli
from vadistill.data.synthetic import render_scene
from vadistill.errors import EXIT_USER_ERROR, InputError
from vadistill.io.video import write_video
from vadistill.runtime.dask_engine import ALLOWED_FAILURES, SUMMARY_FILE, score_on_dask
from vadistill.runtime.model import load_model
from vadistill.runtime.score import score_sources

dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")


def loopback_cluster(workers: int):
    """Worker processes on 127.0.0.1 as the CLI starts them (allowed-failures included)."""
    with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}):
        return distributed.LocalCluster(n_workers=workers, processes=True, threads_per_worker=1, host="127.0.0.1",
                                        dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[str]:
    """Two short video files and a frame folder (20 frames each, the cart crossing in one)."""
    folder = tmp_path_factory.mktemp("videos")
    cart = write_video(folder / "cart.avi", render_scene(20, 48, 72, seed=5, cart_frames=(6, 14)).frames, fps=10)
    walk = write_video(folder / "walk.avi", render_scene(20, 48, 72, seed=6).frames, fps=10)
    frames = folder / "street"
    frames.mkdir()
    for index, frame in enumerate(render_scene(20, 48, 72, seed=7).frames):
        cv2.imwrite(str(frames / f"{index:03d}.png"), frame[..., ::-1])
    return [str(cart), str(walk), str(frames)]


@pytest.fixture(scope="module")
def cluster():
    """A scheduler address: two worker processes on loopback, shared by the tests of this module."""
    with loopback_cluster(2) as local:
        yield local.scheduler_address


def output_files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.name != SUMMARY_FILE}


def test_dask_outputs_are_identical_to_the_single_process_outputs(tiny, videos, cluster, tmp_path):
    torch.set_num_threads(1)  # the same thread count on both sides (see the dask_engine docstring)
    results, failures = score_sources(load_model(tiny), videos, tmp_path / "torch", progress=False, log=lambda _: None)
    assert not failures and len(results) == 3
    summary = score_on_dask(tiny, videos, tmp_path / "dask", scheduler=cluster, threads=1, progress=False,
                            log=lambda _: None)
    assert [entry["name"] for entry in sorted(summary.done, key=lambda e: e["name"])] == ["cart", "street", "walk"]
    assert not summary.failed and not summary.skipped
    single, on_dask = output_files(tmp_path / "torch"), output_files(tmp_path / "dask")
    assert sorted(single) == sorted(on_dask) == sorted(
        f"{name}.{kind}" for name in ("cart", "walk", "street")
        for kind in ("scores.csv", "scores.json", "plot.png", "overlay.avi"))
    for name, content in single.items():  # byte for byte: scores, plots and overlay videos
        assert on_dask[name] == content, name
    saved = json.loads((tmp_path / "dask" / SUMMARY_FILE).read_text())
    assert saved["counts"] == {"done": 3, "skipped": 0, "failed": 0, "unfinished": 0}
    assert all(entry["worker"].startswith("tcp://127.0.0.1:") for entry in saved["done"])


def test_rerun_skips_finished_videos_and_rescores_incomplete_ones(tiny, videos, cluster, tmp_path):
    out = tmp_path / "out"
    options = {"scheduler": cluster, "threads": 1, "progress": False, "overlay": False}
    first = score_on_dask(tiny, videos, out, log=lambda _: None, **options)
    assert len(first.done) == 3
    finished = {path.name: path.stat().st_mtime_ns for path in out.glob("cart.*")}
    (out / "walk.plot.png").unlink()  # outputs deleted: not finished
    (out / "street.scores.json").unlink()  # a run killed before its last file ...
    (out / ".street.scores.0badc0de.partial.json").write_text('{"half": ')  # ... in the middle of writing it

    lines: list[str] = []
    second = score_on_dask(tiny, videos, out, log=lines.append, **options)
    assert [entry["name"] for entry in second.skipped] == ["cart"]
    assert sorted(entry["name"] for entry in second.done) == ["street", "walk"]
    assert "skipped 1 finished videos (--force rescores them)" in lines
    assert {path.name: path.stat().st_mtime_ns for path in out.glob("cart.*")} == finished  # left alone
    assert (out / "walk.plot.png").is_file() and json.loads((out / "street.scores.json").read_text())["video"] == "street"
    assert not list(out.glob(".*"))  # the killed run's leftover is cleaned up

    # A different threshold is a different result: rescored, as is everything with force=True.
    third = score_on_dask(tiny, videos[:1], out, log=lambda _: None, threshold=1e9, **options)
    assert [entry["name"] for entry in third.done] == ["cart"]
    forced = score_on_dask(tiny, videos, out, log=lambda _: None, force=True, **options)
    assert len(forced.done) == 3 and not forced.skipped


def test_cli_reports_bad_videos_in_one_line_finishes_the_others_and_exits_2(tiny, videos, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.avi"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4096))
    missing = tmp_path / "missing.avi"
    out = tmp_path / "out"
    # No --scheduler: the CLI starts its own loopback LocalCluster (real worker processes).
    code = cli.main(["--quiet", "score", str(tiny), str(corrupt), videos[0], str(missing), "--engine", "dask",
                     "--workers", "1", "--threads", "1", "--no-overlay", "--out", str(out)])
    assert code == EXIT_USER_ERROR
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("vadistill: error:")]
    assert len(errors) == 2
    assert any(str(corrupt) in line for line in errors) and any(str(missing) in line for line in errors)
    assert (out / "cart.scores.json").is_file() and (out / "cart.plot.png").is_file()
    assert not (out / "corrupt.scores.json").exists()
    summary = json.loads((out / SUMMARY_FILE).read_text())
    assert summary["counts"] == {"done": 1, "skipped": 0, "failed": 2, "unfinished": 0}
    assert summary["scheduler"].startswith("tcp://127.0.0.1:")  # loopback only
    assert {entry["source"] for entry in summary["failed"]} == {str(corrupt), str(missing)}
    assert all(entry["error"].startswith(entry["source"] + ": ") for entry in summary["failed"])


def test_worker_crash_fails_only_its_video(tiny, videos, tmp_path):
    """A video that kills its worker process every time: rerun once on a fresh worker, then failed; the run goes on."""
    crash = tmp_path / "crash.avi"
    crash.write_bytes(Path(videos[0]).read_bytes())

    class CrashOnPoisonedVideo(distributed.WorkerPlugin):  # set up again in every restarted worker
        def setup(self, worker):
            import os

            from vadistill.runtime import dask_engine

            original = dask_engine.score_video_task  # what the task's pickled reference resolves to

            def score_video_task(model_path, source, *args):
                if Path(source).name == "crash.avi":
                    os._exit(1)  # what a segfault in a decoder looks like to Dask
                return original(model_path, source, *args)

            dask_engine.score_video_task = score_video_task

    with loopback_cluster(1) as local, distributed.Client(local) as client:
        client.register_plugin(CrashOnPoisonedVideo(), name="crash-on-poisoned-video")
        summary = score_on_dask(tiny, [str(crash), videos[1]], tmp_path / "out", scheduler=local.scheduler_address,
                                threads=1, progress=False, log=lambda _: None, overlay=False)
    assert [entry["name"] for entry in summary.done] == ["walk"]
    assert [entry["name"] for entry in summary.failed] == ["crash"]
    assert "died 2 times" in summary.failed[0]["error"]


def test_live_sources_and_dask_options_without_dask_are_one_line_errors(tiny, tmp_path):
    with pytest.raises(InputError, match="rtsp://camera.local/1: a live stream"):
        score_on_dask(tiny, ["rtsp://camera.local/1"], tmp_path)
    assert cli.main(["score", str(tiny), "x.avi", "--scheduler", "tcp://127.0.0.1:1"]) == EXIT_USER_ERROR
