"""`vadistill watch`: several streams at once, a source that disappears and comes back, events."""

from __future__ import annotations

import io
import json
import shutil
import threading
import time

import cv2
import pytest
import torch

from test_runtime_score import run_cli, tiny_config  # sibling test module: same tiny model

from vadistill.data.synthetic import render_scene
from vadistill.io.video import write_video
from vadistill.methods.aed_mae import AedMae
from vadistill.runtime.events import EventDetector, EventSink, Webhook
from vadistill.runtime.model import load_model
from vadistill.runtime.watch import watch


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("aed_watch")
    AedMae(tiny_config()).fit([render_scene(60, 48, 72, seed=1).frames], run_dir=run, progress=False)
    return run / "model.ckpt"


def test_event_detector_emits_start_and_end_with_peak():
    detector = EventDetector("cam", threshold=1.0)
    events = [detector.update(i, s) for i, s in enumerate([0, 2, 5, 3, 0.5, 0])]
    starts = [e for e in events if e and e["event"] == "anomaly_start"]
    ends = [e for e in events if e and e["event"] == "anomaly_end"]
    assert len(starts) == 1 and starts[0]["frame"] == 1
    assert len(ends) == 1 and (ends[0]["start_frame"], ends[0]["end_frame"], ends[0]["peak_frame"]) == (1, 3, 2)
    assert ends[0]["peak_score"] == 5


def test_webhook_failures_are_logged_not_fatal():
    log = io.StringIO()
    hook = Webhook("http://127.0.0.1:9/hook", timeout=1.0, log=log)  # nothing listens on port 9
    sink = EventSink(io.StringIO(), hook)
    sink.emit({"event": "anomaly_start", "stream": "cam"})
    hook.close(wait=5.0)
    assert hook.failed == 1 and "webhook" in log.getvalue()


def test_watch_survives_a_source_that_disappears_and_comes_back(model_path, tmp_path):
    folder = tmp_path / "cam_folder"
    folder.mkdir()
    for index, frame in enumerate(render_scene(40, 48, 72, seed=9).frames):
        cv2.imwrite(str(folder / f"{index:03d}.png"), frame[..., ::-1])
    video = write_video(tmp_path / "cam_file.avi", render_scene(30, 48, 72, seed=4).frames, fps=25)
    hidden = tmp_path / "hidden"

    def unplug_and_replug() -> None:
        time.sleep(0.6)
        shutil.move(folder, hidden)
        time.sleep(1.2)
        shutil.move(hidden, folder)

    mover = threading.Thread(target=unplug_and_replug)
    mover.start()
    events, status = io.StringIO(), io.StringIO()
    summary = watch(load_model(model_path), [str(folder), str(video), str(tmp_path / "never.avi")], events=events,
                    duration=4.0, status_every=1.0, status=status, backoff=(0.2, 0.8))
    mover.join()
    lines = [json.loads(line) for line in events.getvalue().splitlines()]
    kinds = {(e["stream"], e["event"]) for e in lines}
    assert ("cam_folder", "stream_lost") in kinds and ("cam_folder", "stream_restored") in kinds
    assert ("never", "stream_lost") in kinds
    streams = summary.streams
    assert streams["cam_folder"]["reopened"] >= 1 and streams["cam_folder"]["state"] == "live"
    assert streams["cam_folder"]["processed"] > 40  # frames before AND after the folder came back
    assert streams["cam_file"]["processed"] > 30 and streams["never"]["processed"] == 0
    assert 0.0 <= streams["cam_file"]["drop_rate"] <= 1.0
    assert summary.mean_batch >= 1.0  # frames of several streams share forward passes
    assert "fps" in status.getvalue() and "drop" in status.getvalue()


def test_watch_cli_writes_events_file_and_stops_after_duration(model_path, tmp_path):
    video = write_video(tmp_path / "clip.avi", render_scene(20, 48, 72, seed=6).frames, fps=25)
    events = tmp_path / "events.jsonl"
    started = time.monotonic()
    code = run_cli(["--quiet", "watch", str(model_path), str(video), "--duration", "1.5", "--events", str(events),
                    "--threshold=-1e9", "--max-fps", "20"])
    assert code == 0 and time.monotonic() - started < 10
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert lines[0]["event"] == "anomaly_start"  # threshold -1e9: every frame is anomalous
    ends = [e for e in lines if e["event"] == "anomaly_end"]
    assert ends and all(e["start_frame"] <= e["peak_frame"] <= e["end_frame"] for e in ends)
