"""`prepare_dataset` and frame extraction, on the real shared Ped2 data and a real video clip."""

from __future__ import annotations

import functools
import json
import os
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from vadistill.data import prepare as prepare_module
from vadistill.data.prepare import (
    DATASET_NAMES,
    FRAMES_DONE_NAME,
    MARKER_NAME,
    OFFICIAL_SOURCES,
    PROGRESS_NAME,
    default_data_root,
    extract_all_frames,
    extract_video_frames,
    frames_dir_for,
    prepare_dataset,
)
from vadistill.errors import InputError
from vadistill.io.video import list_frame_files, open_video, write_video

SHARED_DATA = Path(os.environ.get("VADISTILL_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
PED2_SOURCES = [SHARED_DATA / "ucsd_ped2" / "ped2_frames.tar", SHARED_DATA / "ucsd_gt" / "UCSDped2.m",
                SHARED_DATA / "ucsd_gt" / "ucsdped2_pixel_gt.npz"]
DEMO_VIDEO = SHARED_DATA / "demo_video" / "vtest.avi"


def jpg_count(folder: Path) -> int:
    return sum(1 for _ in folder.rglob("*.jpg"))


def hidden_leftovers(root: Path) -> list[Path]:
    """Staging folders or temp files that a finished run must not leave behind."""
    return [p for p in root.rglob(".*") if p.name not in (MARKER_NAME, FRAMES_DONE_NAME)]


# -- real Ped2 -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ped2_sources() -> list[str]:
    missing = [str(p) for p in PED2_SOURCES if not p.is_file()]
    if missing:
        pytest.skip(f"shared Ped2 data not found ({', '.join(missing)}); set VADISTILL_SHARED_DATA")
    return [str(p) for p in PED2_SOURCES]


def test_prepare_real_ped2(tmp_path, ped2_sources):
    root = prepare_dataset("ped2", ped2_sources, tmp_path, progress=False)
    assert root == tmp_path / "ped2"
    assert jpg_count(root / "ped2" / "training" / "frames") == 2550
    assert jpg_count(root / "ped2" / "testing" / "frames") == 2010
    assert len(list_frame_files(root / "ped2" / "testing" / "frames" / "01")) == 180
    assert (root / "UCSDped2.m").read_bytes() == PED2_SOURCES[1].read_bytes()
    with np.load(root / "ucsdped2_pixel_gt.npz") as masks:
        assert masks["Test001"].shape == (180, 240, 360)

    marker = json.loads((root / MARKER_NAME).read_text())
    assert marker["dataset"] == "ped2"
    assert [record["source"] for record in marker["sources"]] == [str(Path(s).resolve()) for s in ped2_sources]
    assert marker["sources"][0]["size"] == PED2_SOURCES[0].stat().st_size
    assert not (root / PROGRESS_NAME).exists()
    assert hidden_leftovers(root) == []

    # Re-running is a no-op: nothing unpacked again, the marker untouched.
    marker_stat = (root / MARKER_NAME).stat()
    frame_stat = (root / "ped2" / "testing" / "frames" / "01" / "000.jpg").stat()
    prepare_dataset("ped2", ped2_sources, tmp_path, progress=False)
    assert (root / MARKER_NAME).stat().st_mtime_ns == marker_stat.st_mtime_ns
    again = (root / "ped2" / "testing" / "frames" / "01" / "000.jpg").stat()
    assert (again.st_ino, again.st_mtime_ns) == (frame_stat.st_ino, frame_stat.st_mtime_ns)


# -- errors ----------------------------------------------------------------------------------
def test_unknown_dataset_lists_the_known_ones(tmp_path):
    with pytest.raises(InputError) as raised:
        prepare_dataset("ped3", None, tmp_path)
    assert all(name in raised.value.problem for name in DATASET_NAMES)


def test_missing_source_changes_nothing(tmp_path):
    with pytest.raises(InputError) as raised:
        prepare_dataset("custom", [str(tmp_path / "absent.tar")], tmp_path / "data")
    assert raised.value.path == str(tmp_path / "absent.tar")
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("name", ["shanghaitech", "ubnormal"])
def test_cloud_drive_datasets_explain_the_manual_download(tmp_path, name):
    with pytest.raises(InputError) as raised:
        prepare_dataset(name, None, tmp_path)
    assert raised.value.path == OFFICIAL_SOURCES[name][0].url
    assert "--source PATH" in raised.value.problem


def test_custom_needs_a_source(tmp_path):
    with pytest.raises(InputError, match="--source"):
        prepare_dataset("custom", [], tmp_path)


def test_corrupt_archive_leaves_nothing_that_looks_complete(tmp_path):
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00" + b"\x00" * 100)  # a gzip header, then nonsense
    with pytest.raises(InputError) as raised:
        prepare_dataset("custom", [str(broken)], tmp_path / "data", progress=False)
    assert raised.value.path == str(broken)
    root = tmp_path / "data" / "custom"
    assert not (root / MARKER_NAME).exists()
    assert [p.name for p in root.iterdir()] == [PROGRESS_NAME]


def test_official_sources_table_is_consistent():
    assert set(OFFICIAL_SOURCES) == {"ped1", "ped2", "avenue", "shanghaitech", "ubnormal", "custom"}
    for sources in OFFICIAL_SOURCES.values():
        for source in sources:
            assert source.url.startswith(("http://", "https://"))
            assert source.manual or (source.filename and source.sha256 and len(source.sha256) == 64 and source.size)


def test_default_data_root(monkeypatch, tmp_path):
    monkeypatch.setenv("VADISTILL_DATA", str(tmp_path / "elsewhere"))
    assert default_data_root() == tmp_path / "elsewhere"
    monkeypatch.delenv("VADISTILL_DATA")
    assert default_data_root() == Path.home() / ".cache" / "vadistill" / "datasets"


# -- folders, URLs, resume, force -----------------------------------------------------------
def make_folder(parent: Path) -> Path:
    folder = parent / "my_clips"
    (folder / "labels").mkdir(parents=True)
    (folder / "labels" / "frame_labels.csv").write_text("video,frame,label\n01,0,0\n")
    (folder / "empty").mkdir()
    return folder


def test_folder_source_is_mirrored(tmp_path):
    folder = make_folder(tmp_path)
    root = prepare_dataset("custom", [str(folder)], tmp_path / "data", progress=False)
    mirrored = root / "my_clips" / "labels" / "frame_labels.csv"
    assert mirrored.read_text() == (folder / "labels" / "frame_labels.csv").read_text()
    assert (root / "my_clips" / "empty").is_dir()
    assert hidden_leftovers(root) == []


def test_changed_source_is_redone_and_force_starts_over(tmp_path):
    label_file = tmp_path / "labels.csv"
    label_file.write_text("v1")
    root = prepare_dataset("custom", [str(label_file)], tmp_path / "data", progress=False)
    (root / "stray.txt").write_text("left by hand")
    label_file.write_text("version 2")  # new size and mtime: a re-run must copy it again
    prepare_dataset("custom", [str(label_file)], tmp_path / "data", progress=False)
    assert (root / "labels.csv").read_text() == "version 2"
    assert (root / "stray.txt").exists()
    prepare_dataset("custom", [str(label_file)], tmp_path / "data", progress=False, force=True)
    assert not (root / "stray.txt").exists() and (root / "labels.csv").read_text() == "version 2"


def test_interrupted_run_resumes_with_the_unfinished_sources(tmp_path, monkeypatch):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("a")
    second.write_text("b")
    real_step = prepare_module._install
    done = []

    def step_then_crash(step, *args):
        if step.key == str(second):
            raise KeyboardInterrupt  # the user pressed Ctrl-C during the second source
        done.append(step.key)
        return real_step(step, *args)

    monkeypatch.setattr(prepare_module, "_install", step_then_crash)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset("custom", [str(first), str(second)], tmp_path / "data", progress=False)
    root = tmp_path / "data" / "custom"
    assert not (root / MARKER_NAME).exists() and (root / PROGRESS_NAME).exists()

    def step_and_record(step, *args):
        done.append(step.key)
        return real_step(step, *args)

    monkeypatch.setattr(prepare_module, "_install", step_and_record)
    (root / ".vadistill-unpacking-killed").mkdir()  # staging of a run killed with SIGKILL
    prepare_dataset("custom", [str(first), str(second)], tmp_path / "data", progress=False)
    assert done == [str(first), str(second)]  # the first source was not redone
    assert (root / MARKER_NAME).exists() and not (root / PROGRESS_NAME).exists()
    assert hidden_leftovers(root) == []


@pytest.fixture
def file_server(tmp_path):
    """A plain http.server over a folder (real HTTP on 127.0.0.1)."""
    served = tmp_path / "served"
    served.mkdir()
    requests = []

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            requests.append(self.path)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(served)))
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}", requests
    httpd.shutdown()
    httpd.server_close()


def test_url_source_is_downloaded_then_unpacked(tmp_path, file_server):
    served, base, requests = file_server
    payload = tmp_path / "payload.txt"
    payload.write_text("frame labels")
    with tarfile.open(served / "release.tar.gz", "w:gz") as tar:
        tar.add(payload, arcname="release/labels.txt")
    data_root = tmp_path / "data"
    root = prepare_dataset("custom", [f"{base}/release.tar.gz"], data_root, progress=False)
    assert (root / "release" / "labels.txt").read_text() == "frame labels"
    assert (data_root / "downloads" / "release.tar.gz").is_file()
    count = len(requests)
    prepare_dataset("custom", [f"{base}/release.tar.gz"], data_root, progress=False)
    assert len(requests) == count  # finished: not fetched again


def test_failed_download_keeps_a_prepared_dataset_prepared(tmp_path, file_server):
    _served, base, _requests = file_server
    labels = tmp_path / "labels.csv"
    labels.write_text("video,label")
    root = prepare_dataset("custom", [str(labels)], tmp_path / "data", progress=False)
    with pytest.raises(InputError, match="HTTP 404.*--source PATH"):
        prepare_dataset("custom", [f"{base}/nope.zip"], tmp_path / "data", progress=False)
    assert (root / MARKER_NAME).exists() and not (root / PROGRESS_NAME).exists()


# -- frame extraction ------------------------------------------------------------------------
@pytest.fixture
def real_clip(tmp_path) -> Path:
    """20 real frames (the first of vtest.avi, shrunk) in an Avenue-like testing_videos/01.avi."""
    if not DEMO_VIDEO.is_file():
        pytest.skip(f"real demo video not found at {DEMO_VIDEO}; set VADISTILL_SHARED_DATA")
    with open_video(DEMO_VIDEO, size=(144, 192)) as reader:
        frames = [reader.read(index) for index in range(20)]
    return write_video(tmp_path / "Avenue Dataset" / "testing_videos" / "01.avi", frames, fps=10)


def test_frames_dir_layout():
    assert frames_dir_for(Path("A/testing_videos/01.avi")) == Path("A/testing/frames/01")
    assert frames_dir_for(Path("sh/training/videos/01_001.avi")) == Path("sh/training/frames/01_001")
    assert frames_dir_for(Path("c/clip.mp4")) == Path("c/frames/clip")


def test_extract_frames_counts_and_resumes(real_clip, tmp_path):
    frames_dir = tmp_path / "Avenue Dataset" / "testing" / "frames" / "01"
    assert extract_video_frames(real_clip) == 20
    files = list_frame_files(frames_dir)
    assert [f.name for f in files] == [f"{i:03d}.jpg" for i in range(20)]
    with open_video(frames_dir) as frames:
        assert len(frames) == 20 and frames.frame_size == (144, 192)

    before = files[0].stat().st_mtime_ns
    assert extract_video_frames(real_clip) == 20  # done marker: skipped
    assert files[0].stat().st_mtime_ns == before

    # An unfinished earlier run (staging left by a crash) is discarded and redone.
    (frames_dir / FRAMES_DONE_NAME).unlink()
    for frame in files[10:]:
        frame.unlink()
    os.rename(frames_dir, frames_dir.with_name(".01.partial"))
    assert extract_video_frames(real_clip) == 20
    assert len(list_frame_files(frames_dir)) == 20
    assert not frames_dir.with_name(".01.partial").exists()


def test_prepare_with_extract_frames(real_clip, tmp_path):
    root = prepare_dataset("custom", [str(real_clip.parents[1])], tmp_path / "data",
                           extract_frames=True, progress=False)
    frames_dir = root / "Avenue Dataset" / "testing" / "frames" / "01"
    assert len(list_frame_files(frames_dir)) == 20
    marker = json.loads((root / MARKER_NAME).read_text())
    assert marker["frames_extracted"] == {"Avenue Dataset/testing/frames/01": 20}
    assert extract_all_frames(root, progress=False) == [(frames_dir, 20)]


def test_existing_frame_folders_are_left_alone(real_clip, tmp_path):
    frames_dir = tmp_path / "Avenue Dataset" / "testing" / "frames" / "01"
    frames_dir.mkdir(parents=True)
    (frames_dir / "0.jpg").write_bytes(b"shipped with the dataset")
    assert extract_video_frames(real_clip) == 1
    assert (frames_dir / "0.jpg").read_bytes() == b"shipped with the dataset"


def test_truncated_video_is_an_input_error(real_clip, tmp_path):
    broken = tmp_path / "broken.avi"
    broken.write_bytes(real_clip.read_bytes()[:200])
    with pytest.raises(InputError):
        extract_video_frames(broken)
    assert not (tmp_path / "frames" / "broken").exists()
