"""The catalogue of bad inputs: for each, how to build it and what vadistill must do with it."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from vadistill.robustness.inputs import (
    FRAME_SIZE,
    PED2_SIZE,
    PED2_TEST_FRAMES,
    WEAK_DIM,
    RunsACommand,
    Workshop,
    dakd_argv,
    make_custom,
    make_frame_folder,
    make_frames,
    make_ped2,
    make_video,
    make_weak_ped2,
    ped2_scores,
    random_bytes,
    truncate,
    write_mjpeg_avi,
)

ERROR = "error"  # one "vadistill: error:" line naming the file, exit code 2
SKIP = "skip-with-warning"  # the broken item named and skipped, the others finished, a count, exit code 2
REPORTED = "reported"  # `data check`: the problem listed in the report (stdout), exit code 2
EXPECTATIONS = (ERROR, SKIP, REPORTED)


@dataclass(frozen=True)
class Invocation:
    """One run of the `vadistill` command against a broken input, and what must hold afterwards.

    Attributes:
        argv: the arguments after ``vadistill``.
        names: text the message must contain: the broken file's path (or URL).
        mentions: regular expression (case-insensitive) the message must match: what was wrong or
            expected ("truncated", "0 bytes", "NaN", ...).
        forbidden: outputs that must not exist after the run (they would look complete).
        complete: outputs that must exist after the run (work already done must not be lost).
        watched: folders that must hold no temporary (partial) file after the run.
        file_size_limit: bytes; run under ``RLIMIT_FSIZE`` (a full disk). Needs a subprocess.
        skipped: for skip-with-warning: how many items must be counted as skipped.
    """

    argv: list[str]
    names: str
    mentions: str = ""
    forbidden: tuple[Path, ...] = ()
    complete: tuple[Path, ...] = ()
    watched: tuple[Path, ...] = ()
    file_size_limit: int | None = None
    skipped: int = 0


@dataclass(frozen=True)
class BadInputCase:
    """A kind of bad input: how to build it, and what vadistill must do with it.

    Attributes:
        name: short identifier (test ids, the results table).
        description: what is broken, in words.
        expected: ERROR, SKIP or REPORTED (module docstring).
        build: ``build(case_dir, workshop) -> Invocation`` makes the input inside `case_dir`.
        known_gap: where a case is not handled yet, the file and the fix it needs (the tests
            expect it to fail, and to be told once it passes).
    """

    name: str
    description: str
    expected: str
    build: Callable[[Path, Workshop], Invocation]
    known_gap: str = ""


# -- the cases --------------------------------------------------------------------------------------
def _extract(source: Path, case_dir: Path, **checks) -> Invocation:
    out = case_dir / "features"
    name = source.stem if source.suffix else source.name
    return Invocation(["--quiet", "extract", str(source), "--backbone", "handcrafted", "--out", str(out)],
                      names=checks.pop("names", str(source)),
                      forbidden=(out / f"{name}_handcrafted.npy", out / "features.list"), watched=(out,), **checks)


def _video_truncated(case_dir: Path, _: Workshop) -> Invocation:
    video = truncate(make_video(case_dir / "clip.avi", 30), 0.5)
    return _extract(video, case_dir, mentions="truncated")


def _video_empty(case_dir: Path, _: Workshop) -> Invocation:
    video = case_dir / "clip.avi"
    video.write_bytes(b"")
    return _extract(video, case_dir, mentions="empty.*0 bytes")


def _video_random_bytes(case_dir: Path, _: Workshop) -> Invocation:
    return _extract(random_bytes(case_dir / "clip.avi"), case_dir, mentions="could not be opened|corrupt")


def _video_missing(case_dir: Path, _: Workshop) -> Invocation:
    return _extract(case_dir / "absent.avi", case_dir, mentions="no such")


def _frames_with(damage: Callable[[Path], Path], mentions: str) -> Callable[[Path, Workshop], Invocation]:
    def build(case_dir: Path, _: Workshop) -> Invocation:
        folder = make_frame_folder(case_dir / "clip", 20)
        return _extract(folder, case_dir, names=str(damage(folder)), mentions=mentions)
    return build


def _corrupt_frame(folder: Path) -> Path:
    return random_bytes(folder / "007.jpg", 600)


def _empty_frame(folder: Path) -> Path:
    (folder / "005.jpg").write_bytes(b"")
    return folder / "005.jpg"


def _truncated_jpeg(folder: Path) -> Path:
    return truncate(folder / "010.jpg", 0.8)


def _bigger_frame(folder: Path) -> Path:
    frame = make_frames(1, (FRAME_SIZE[0] * 2, FRAME_SIZE[1] * 2))[0]
    cv2.imwrite(str(folder / "012.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder / "012.jpg"


def _mixed_resolution_video(case_dir: Path, _: Workshop) -> Invocation:
    root = make_custom(case_dir / "custom")
    mixed = make_frames(6) + make_frames(6, (FRAME_SIZE[0] * 2, FRAME_SIZE[1] * 2))
    video = write_mjpeg_avi(root / "test" / "b.avi", mixed)
    return Invocation(["--quiet", "data", "check", "custom", "--root", str(root), "--decode"],
                      names=str(video), mentions="mixed resolution")


def _extract_batch_one_broken(case_dir: Path, _: Workshop) -> Invocation:
    out = case_dir / "features"
    good = [make_video(case_dir / "good1.avi", 20, seed=1), make_video(case_dir / "good2.avi", 20, seed=2)]
    broken = truncate(make_video(case_dir / "broken.avi", 30, seed=3), 0.5)
    argv = ["--quiet", "extract", str(good[0]), str(broken), str(good[1]), "--backbone", "handcrafted", "--out", str(out)]
    return Invocation(argv, names=str(broken), mentions="truncated", skipped=1,
                      complete=tuple(out / f"{v.stem}_handcrafted.npy" for v in good),
                      forbidden=(out / "broken_handcrafted.npy", out / "features.list"), watched=(out,))


def _evaluate(root: Path, scores: Path, case_dir: Path, dataset: str = "ped2", **checks) -> Invocation:
    out = case_dir / "eval"
    return Invocation(["--quiet", "evaluate", str(scores), "--dataset", dataset, "--root", str(root), "--out", str(out)],
                      forbidden=(out / "metrics.json", out / "metrics.md"), watched=(out,), **checks)


def _gt_missing(case_dir: Path, _: Workshop) -> Invocation:
    root = make_ped2(case_dir / "ped2root", ucsd_m=None)
    return _evaluate(root, ped2_scores(case_dir / "scores.json"), case_dir, names=str(root), mentions="UCSDped2.m")


def _gt_wrong_length(case_dir: Path, _: Workshop) -> Invocation:
    root = make_ped2(case_dir / "ped2root", ucsd_m=None)
    labels = root / "frame_labels_ped2.npy"
    np.save(labels, np.zeros(10, np.uint8))  # the test videos have 6 + 5 = 11 frames
    return _evaluate(root, ped2_scores(case_dir / "scores.json"), case_dir, names=str(labels), mentions="expected 11")


def _gt_range_past_end(case_dir: Path, _: Workshop) -> Invocation:
    root = make_ped2(case_dir / "ped2root", ucsd_m="TestVideoFile{end+1}.gt_frame = [2:9];\n"
                                                   "TestVideoFile{end+1}.gt_frame = [1:5];\n")
    return _evaluate(root, ped2_scores(case_dir / "scores.json"), case_dir, names=str(root / "UCSDped2.m"),
                     mentions="past the end")


def _gt_video_without_labels(case_dir: Path, _: Workshop) -> Invocation:
    root = make_ped2(case_dir / "ped2root", ucsd_m="TestVideoFile{end+1}.gt_frame = [2:4];\n")
    return _evaluate(root, ped2_scores(case_dir / "scores.json"), case_dir, names=str(root / "UCSDped2.m"),
                     mentions="no ground truth for 02")


def _gt_names_unknown_video(case_dir: Path, _: Workshop) -> Invocation:
    root = make_custom(case_dir / "custom", labels="video,start,end\na,3,6\nghost,1,2\n")
    scores = case_dir / "scores.json"
    scores.write_text(json.dumps({"a": [0.1] * 12, "b": [0.2] * 12}))
    return _evaluate(root, scores, case_dir, dataset="custom", names=str(root / "labels.csv"), mentions="ghost")


def _gt_labels_not_text(case_dir: Path, _: Workshop) -> Invocation:
    root = make_custom(case_dir / "custom")
    random_bytes(root / "labels.csv", 300)
    scores = case_dir / "scores.json"
    scores.write_text(json.dumps({"a": [0.1] * 12, "b": [0.2] * 12}))
    return _evaluate(root, scores, case_dir, dataset="custom", names=str(root / "labels.csv"), mentions="csv")


def _gt_nan_labels(case_dir: Path, _: Workshop) -> Invocation:
    root = case_dir / "shanghaitech"
    make_frame_folder(root / "training" / "frames" / "01_001", 4, PED2_SIZE)
    make_frame_folder(root / "testing" / "frames" / "01_0014", 6, PED2_SIZE)
    labels = root / "testing" / "test_frame_mask" / "01_0014.npy"
    labels.parent.mkdir(parents=True)
    np.save(labels, np.array([0, 0, 1, np.nan, 1, 0], np.float64))
    scores = case_dir / "scores.json"
    scores.write_text(json.dumps({"01_0014": [0.1, 0.2, 0.9, 0.8, 0.7, 0.1]}))
    return _evaluate(root, scores, case_dir, dataset="shanghaitech", names=str(labels), mentions="nan")


def _check(root: Path, name: str, **checks) -> Invocation:
    return Invocation(["--quiet", "data", "check", name, "--root", str(root)], **checks)


def _mask_wrong_size(case_dir: Path, _: Workshop) -> Invocation:
    root = make_ped2(case_dir / "ped2root", masks=(10, 10))
    return _check(root, "ped2", names=str(root / "ucsdped2_pixel_gt.npz"), mentions="expected 32x24")


def _mask_archive_corrupt(case_dir: Path, _: Workshop) -> Invocation:
    root = make_ped2(case_dir / "ped2root", masks=b"PK\x03\x04 not really a zip archive" * 20)
    return _check(root, "ped2", names=str(root / "ucsdped2_pixel_gt.npz"), mentions="npz")


def _scores_nan(case_dir: Path, _: Workshop) -> Invocation:
    scores = ped2_scores(case_dir / "scores.json", nan_in="02")
    return _evaluate(make_ped2(case_dir / "ped2root"), scores, case_dir, names=str(scores), mentions="nan|finite")


def _scores_wrong_length(case_dir: Path, _: Workshop) -> Invocation:
    scores = ped2_scores(case_dir / "scores.json", {"01": 6, "02": 4})
    return _evaluate(make_ped2(case_dir / "ped2root"), scores, case_dir, names=str(scores),
                     mentions="4 scores but 5 labelled frames")


def _scores_unknown_video(case_dir: Path, _: Workshop) -> Invocation:
    scores = ped2_scores(case_dir / "scores.json", {**PED2_TEST_FRAMES, "07": 6})
    return _evaluate(make_ped2(case_dir / "ped2root"), scores, case_dir, names=str(scores),
                     mentions="not in the ground truth")


def _scores_truncated_npz(case_dir: Path, _: Workshop) -> Invocation:
    scores = case_dir / "scores.npz"
    np.savez(scores, **{video: np.linspace(0, 1, n) for video, n in PED2_TEST_FRAMES.items()})
    truncate(scores, 0.6)
    return _evaluate(make_ped2(case_dir / "ped2root"), scores, case_dir, names=str(scores), mentions="npz")


def _features_with(damage: Callable[[Path], None], mentions: str) -> Callable[[Path, Workshop], Invocation]:
    def build(case_dir: Path, _: Workshop) -> Invocation:
        annotations, features = make_weak_ped2(case_dir)
        broken = features / "handcrafted" / "Train001_handcrafted.npy"
        damage(broken)
        run = case_dir / "run"
        return Invocation(dakd_argv(annotations, features, run), names=str(broken), mentions=mentions,
                          forbidden=(run / "model.ckpt", run / "results.json"), watched=(run,))
    return build


def _nan_features(path: Path) -> None:
    array = np.load(path)
    array[3, 7] = np.nan
    np.save(path, array)


def _wrong_width(path: Path) -> None:
    np.save(path, np.ones((8, 100), np.float32))


def _wrong_ndim(path: Path) -> None:
    np.save(path, np.ones(8 * WEAK_DIM, np.float32))


def _object_array(path: Path) -> None:
    np.save(path, np.array([{"features": 1}, "x"], dtype=object), allow_pickle=True)


def _truncated_npy(path: Path) -> None:
    truncate(path, 0.5)


def _features_missing(case_dir: Path, _: Workshop) -> Invocation:
    annotations, features = make_weak_ped2(case_dir)
    (features / "handcrafted" / "Train002_handcrafted.npy").unlink()
    run = case_dir / "run"
    return Invocation(dakd_argv(annotations, features, run), names=str(features / "handcrafted"),
                      mentions="missing.*Train002", forbidden=(run / "model.ckpt",), watched=(run,))


def _disk_full_evaluate(case_dir: Path, _: Workshop) -> Invocation:
    scores = ped2_scores(case_dir / "scores.json")
    invocation = _evaluate(make_ped2(case_dir / "ped2root"), scores, case_dir, names=str(case_dir / "eval" / "metrics.json"),
                           mentions="file-size limit|disk is full")
    return _with_limit(invocation, 300)


def _disk_full_extract(case_dir: Path, _: Workshop) -> Invocation:
    video = make_video(case_dir / "clip.avi", 40)
    out = case_dir / "features"
    invocation = _extract(video, case_dir, names=str(out / "clip_handcrafted.npy"), mentions="file-size limit|disk is full")
    return _with_limit(invocation, 2048)  # the .npy holds 3 x 744 float32 (~9 KB)


def _disk_full_score(case_dir: Path, workshop: Workshop) -> Invocation:
    video = make_video(case_dir / "clip.avi", 24)
    out = case_dir / "scores"
    outputs = tuple(out / f"clip{suffix}" for suffix in (".scores.csv", ".scores.json", ".plot.png", ".overlay.avi"))
    invocation = Invocation(["--quiet", "score", str(workshop.model()), str(video), "--out", str(out)],
                            names=str(out / "clip."), mentions="file-size limit|disk is full|could not be written",
                            forbidden=outputs, watched=(out,))
    return _with_limit(invocation, 4096)


def _with_limit(invocation: Invocation, limit: int) -> Invocation:
    return replace(invocation, file_size_limit=limit)


def _score(checkpoint: Path, case_dir: Path, **checks) -> Invocation:
    video = make_video(case_dir / "clip.avi", 12)
    out = case_dir / "scores"
    checks.setdefault("names", str(checkpoint))
    return Invocation(["--quiet", "score", str(checkpoint), str(video), "--out", str(out)],
                      forbidden=(out / "clip.scores.json", out / "clip.scores.csv"), watched=(out,), **checks)


def _checkpoint_truncated(case_dir: Path, workshop: Workshop) -> Invocation:
    checkpoint = truncate(Path(shutil.copy(workshop.model(), case_dir / "model.ckpt")), 0.5)
    return _score(checkpoint, case_dir, mentions="corrupt|truncated")


def _checkpoint_empty(case_dir: Path, _: Workshop) -> Invocation:
    checkpoint = case_dir / "model.ckpt"
    checkpoint.write_bytes(b"")
    return _score(checkpoint, case_dir, mentions="empty")


def _checkpoint_not_a_checkpoint(case_dir: Path, _: Workshop) -> Invocation:
    checkpoint = case_dir / "model.ckpt"
    checkpoint.write_bytes(cv2.imencode(".png", make_frames(1)[0])[1].tobytes())
    return _score(checkpoint, case_dir, mentions="not a checkpoint")


def _checkpoint_other_tool(case_dir: Path, _: Workshop) -> Invocation:
    import torch

    checkpoint = case_dir / "model.ckpt"
    torch.save(torch.nn.Linear(4, 2).state_dict(), checkpoint)  # a plain state dict, as other tools save
    return _score(checkpoint, case_dir, mentions="not a vadistill model")


def _checkpoint_unknown_method(case_dir: Path, workshop: Workshop) -> Invocation:
    from vadistill.checkpoint import load_checkpoint, save_checkpoint

    payload = load_checkpoint(workshop.model())
    payload["method"] = "mnad"
    checkpoint = save_checkpoint(case_dir / "model.ckpt", payload)
    return _score(checkpoint, case_dir, mentions="unknown method 'mnad'")


def _checkpoint_other_method_resume(case_dir: Path, _: Workshop) -> Invocation:
    """`train aed-mae --resume` pointed at the run folder of another method."""
    root = make_custom(case_dir / "custom")
    run = case_dir / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"method": "fast-aed", "config": {"seed": 0}}))
    argv = ["--quiet", "train", "aed-mae", "--dataset", "custom", "--root", str(root), "--run-dir", str(run),
            "--resume", "--no-eval", "--set", "paste.probability=0", "--set", "input_size=[32,48]"]
    return Invocation(argv, names=str(run / "config.json"), mentions="different config.*method",
                      forbidden=(run / "model.ckpt",), watched=(run,))


def _config_setting(setting: str, mentions: str):
    """`train aed-mae --set <setting>` with a value the setting cannot take: refused before any data
    is read or any run folder written."""
    def invocation(case_dir: Path, _: Workshop) -> Invocation:
        root = make_custom(case_dir / "custom")
        run = case_dir / "run"
        argv = ["--quiet", "train", "aed-mae", "--dataset", "custom", "--root", str(root), "--run-dir", str(run),
                "--no-eval", "--set", setting]
        return Invocation(argv, names="--set", mentions=mentions, forbidden=(run,))
    return invocation


def _run_config_corrupt(case_dir: Path, _: Workshop) -> Invocation:
    """`train --resume` in a run folder whose config.json was cut short (a crash while writing it)."""
    root = make_custom(case_dir / "custom")
    run = case_dir / "run"
    run.mkdir()
    (run / "config.json").write_text('{"method": "aed-mae", "config": {"inp')
    argv = ["--quiet", "train", "aed-mae", "--dataset", "custom", "--root", str(root), "--run-dir", str(run),
            "--resume", "--no-eval", "--set", "paste.probability=0", "--set", "input_size=[32,48]"]
    return Invocation(argv, names=str(run / "config.json"), mentions="json|config",
                      forbidden=(run / "model.ckpt",), watched=(run,))


def _checkpoint_malicious(case_dir: Path, _: Workshop) -> Invocation:
    import torch

    marker = case_dir / "the-pickle-ran"
    checkpoint = case_dir / "model.ckpt"
    torch.save({"method": "aed-mae", "state_dict": RunsACommand(marker)}, checkpoint)
    invocation = _score(checkpoint, case_dir, mentions="safe loader|refused")
    return replace(invocation, forbidden=invocation.forbidden + (marker,))


def _stream_unreachable(case_dir: Path, workshop: Workshop) -> Invocation:
    url = "rtsp://127.0.0.1:9/no-camera-here"
    out = case_dir / "scores"
    return Invocation(["--quiet", "score", str(workshop.model()), url, "--out", str(out)], names=url,
                      mentions="could not open the stream", watched=(out,))


def _score_batch_one_broken(case_dir: Path, workshop: Workshop) -> Invocation:
    good = make_video(case_dir / "good.avi", 12)
    broken = random_bytes(case_dir / "broken.avi")
    out = case_dir / "scores"
    return Invocation(["--quiet", "score", str(workshop.model()), str(good), str(broken), "--out", str(out),
                       "--no-overlay"], names=str(broken), mentions="could not be opened|corrupt", skipped=1,
                      complete=(out / "good.scores.json", out / "good.scores.csv", out / "good.plot.png"),
                      forbidden=(out / "broken.scores.json", out / "broken.scores.csv"), watched=(out,))


def _rescore(case_dir: Path, workshop: Workshop, bank: Path, **checks) -> Invocation:
    """`rescore` choosing the score weights on objects of `bank` (a broken object-bank folder)."""
    root = make_custom(case_dir / "custom")
    out = case_dir / "rescored"
    argv = ["--quiet", "rescore", str(workshop.model()), "--dataset", "custom", "--root", str(root), "--out", str(out),
            "--set", "weight_selection=synthetic-validation", "--bank", str(bank)]
    return Invocation(argv, forbidden=(out / "model.ckpt", out / "scores.json"), watched=(case_dir,), **checks)


def _bank_missing(case_dir: Path, workshop: Workshop) -> Invocation:
    bank = case_dir / "no-bank"
    return _rescore(case_dir, workshop, bank, names=str(bank), mentions="no such object-bank folder")


def _bank_image_corrupt(case_dir: Path, workshop: Workshop) -> Invocation:
    bank = case_dir / "bank"
    image = random_bytes(bank / "0000" / "0.png", size=512)
    return _rescore(case_dir, workshop, bank, names=str(image), mentions="could not be read as an image")


def _prepare(archive: Path, case_dir: Path, **checks) -> Invocation:
    data_root = case_dir / "datasets"
    return Invocation(["--quiet", "data", "prepare", "custom", "--source", str(archive), "--data-root", str(data_root)],
                      names=str(archive), forbidden=(data_root / "custom" / ".vadistill-prepared.json",),
                      watched=(data_root,), **checks)


def _archive_truncated(case_dir: Path, _: Workshop) -> Invocation:
    archive = case_dir / "custom.tar.gz"
    source = make_custom(case_dir / "src")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname="custom")
    return _prepare(truncate(archive, 0.5), case_dir, mentions="corrupt or truncated")


def _archive_traversal(case_dir: Path, _: Workshop) -> Invocation:
    archive = case_dir / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        for name, data in (("custom/labels.csv", b"video,start,end\n"), ("../../escaped.txt", b"owned")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    invocation = _prepare(archive, case_dir, mentions="refusing to unpack.*'\\.\\.'")
    return replace(invocation, forbidden=invocation.forbidden + (case_dir / "escaped.txt",))


CASES: list[BadInputCase] = [
    # videos and frame folders (read by `vadistill extract`, the reader every command shares)
    BadInputCase("video-truncated-halfway", "an .avi cut at half its bytes (interrupted copy)", ERROR, _video_truncated),
    BadInputCase("video-zero-length", "an .avi of 0 bytes", ERROR, _video_empty),
    BadInputCase("video-random-bytes", "4 KiB of random bytes named .avi", ERROR, _video_random_bytes),
    BadInputCase("video-missing", "a video path that does not exist", ERROR, _video_missing),
    BadInputCase("frames-corrupt-frame", "a frame folder with one frame of random bytes", ERROR,
                 _frames_with(_corrupt_frame, "could not be decoded")),
    BadInputCase("frames-zero-byte-frame", "a frame folder with one empty (0 bytes) frame", ERROR,
                 _frames_with(_empty_frame, "0 bytes")),
    BadInputCase("frames-truncated-jpeg", "a frame folder with one JPEG cut short", ERROR,
                 _frames_with(_truncated_jpeg, "truncated JPEG|could not be decoded")),
    BadInputCase("frames-mixed-resolution", "a frame folder with one frame twice the size of the others", ERROR,
                 _frames_with(_bigger_frame, "mixed resolution")),
    BadInputCase("video-mixed-resolution", "an MJPEG .avi whose frames change size half-way (data check --decode)",
                 REPORTED, _mixed_resolution_video),
    BadInputCase("extract-batch-one-broken", "three videos to extract, the middle one truncated", SKIP,
                 _extract_batch_one_broken),
    # ground truth
    BadInputCase("gt-missing-file", "Ped2 frames without UCSDped2.m or frame_labels_ped2.npy", ERROR, _gt_missing),
    BadInputCase("gt-wrong-length", "frame_labels_ped2.npy with 10 labels for 11 test frames", ERROR, _gt_wrong_length),
    BadInputCase("gt-range-past-end", "UCSDped2.m marks frames 2-9 of a 6-frame video", ERROR, _gt_range_past_end),
    BadInputCase("gt-video-without-labels", "UCSDped2.m with one entry for two test videos", ERROR,
                 _gt_video_without_labels),
    BadInputCase("gt-names-unknown-video", "labels.csv names a video that is not in test/", ERROR,
                 _gt_names_unknown_video),
    BadInputCase("gt-labels-not-text", "labels.csv holding random bytes", ERROR, _gt_labels_not_text),
    BadInputCase("gt-nan-labels", "a ShanghaiTech frame-label .npy holding NaN", ERROR, _gt_nan_labels),
    BadInputCase("gt-mask-wrong-size", "pixel masks of 10x10 for 32x24 frames (data check)", REPORTED, _mask_wrong_size),
    BadInputCase("gt-mask-archive-corrupt", "ucsdped2_pixel_gt.npz that is not a zip archive (data check)", REPORTED,
                 _mask_archive_corrupt),
    # scores given to `vadistill evaluate`
    BadInputCase("scores-nan", "a scores.json with a NaN score", ERROR, _scores_nan),
    BadInputCase("scores-wrong-length", "4 scores for a video of 5 frames", ERROR, _scores_wrong_length),
    BadInputCase("scores-unknown-video", "scores for a video the ground truth does not have", ERROR,
                 _scores_unknown_video),
    BadInputCase("scores-truncated-npz", "a scores .npz cut short", ERROR, _scores_truncated_npz),
    # snippet features read by the weakly-supervised loaders (`vadistill train dakd`)
    BadInputCase("features-nan", "a training video's features hold a NaN", ERROR, _features_with(_nan_features, "nan")),
    BadInputCase("features-wrong-width", "features 100 wide where the backbone gives 744", ERROR,
                 _features_with(_wrong_width, "width 100")),
    BadInputCase("features-wrong-shape", "a 1-D feature array", ERROR, _features_with(_wrong_ndim, "shape")),
    BadInputCase("features-object-array", "a feature .npy holding pickled Python objects", ERROR,
                 _features_with(_object_array, "not a readable numeric")),
    BadInputCase("features-truncated-npy", "a feature .npy cut short", ERROR, _features_with(_truncated_npy, "readable")),
    BadInputCase("features-missing-file", "a training video without a feature file", ERROR, _features_missing),
    # a disk that fills up while writing outputs
    BadInputCase("disk-full-evaluate", "evaluate's metrics.json/.md under a 300-byte file-size limit", ERROR,
                 _disk_full_evaluate),
    BadInputCase("disk-full-extract", "extract's .npy under a 2 KiB file-size limit", ERROR, _disk_full_extract),
    BadInputCase("disk-full-score", "score's overlay/CSV/JSON/plot under a 4 KiB file-size limit", ERROR,
                 _disk_full_score),
    # model checkpoints (`vadistill score`, `train --resume`)
    BadInputCase("checkpoint-truncated", "model.ckpt cut at half its bytes", ERROR, _checkpoint_truncated),
    BadInputCase("checkpoint-empty", "model.ckpt of 0 bytes", ERROR, _checkpoint_empty),
    BadInputCase("checkpoint-not-a-checkpoint", "a PNG image named model.ckpt", ERROR, _checkpoint_not_a_checkpoint),
    BadInputCase("checkpoint-other-tool", "a plain PyTorch state dict (another tool's checkpoint)", ERROR,
                 _checkpoint_other_tool),
    BadInputCase("checkpoint-unknown-method", "a checkpoint naming a method vadistill does not have", ERROR,
                 _checkpoint_unknown_method),
    BadInputCase("checkpoint-other-method-resume", "train aed-mae --resume in a fast-aed run folder", ERROR,
                 _checkpoint_other_method_resume),
    BadInputCase("run-config-corrupt-resume", "train --resume with a run folder whose config.json is cut short", ERROR,
                 _run_config_corrupt),
    BadInputCase("config-out-of-range", "train --set batch_size=0", ERROR,
                 _config_setting("batch_size=0", r"batch_size must be >= 1, got 0")),
    BadInputCase("config-nan-setting", "train --set lr=.nan", ERROR, _config_setting("lr=.nan", r"lr must be > 0, got nan")),
    BadInputCase("config-not-a-switch", "train --set motion_weighting=nope (a switch takes true or false)", ERROR,
                 _config_setting("motion_weighting=nope", r"motion_weighting must be true or false")),
    BadInputCase("checkpoint-malicious-pickle", "a checkpoint whose pickle would run a shell command", ERROR,
                 _checkpoint_malicious),
    # object banks (`vadistill rescore --bank`, the synthetic anomalies of weight selection)
    BadInputCase("bank-missing", "rescore --bank naming a folder that does not exist", ERROR, _bank_missing),
    BadInputCase("bank-image-corrupt", "an object bank whose only image is random bytes", ERROR, _bank_image_corrupt),
    # streams and batches
    BadInputCase("stream-unreachable", "an RTSP URL nobody serves", ERROR, _stream_unreachable),
    BadInputCase("score-batch-one-broken", "score a good video and a file of random bytes", SKIP, _score_batch_one_broken),
    # dataset archives (`vadistill data prepare`)
    BadInputCase("archive-truncated", "a .tar.gz cut at half its bytes", ERROR, _archive_truncated),
    BadInputCase("archive-path-traversal", "a tar with a member named ../../escaped.txt", ERROR, _archive_traversal),
]


def case_named(name: str) -> BadInputCase:
    return next(case for case in CASES if case.name == name)
