"""The `vadistill` command: verbs end to end on real data, one-line errors with exit code 2."""

import json
import subprocess
import sys

import numpy as np
import pytest

from vadistill import cli, metrics, scoring
from vadistill.errors import EXIT_USER_ERROR


def test_cli_choices_match_the_library():
    # The CLI spells its choices out (so --help stays fast); they must not drift from the library.
    assert set(cli.MACRO_POLICIES) == set(metrics.MACRO_POLICIES)
    assert set(cli.FILTER_CHOICES) == {"gaussian", "none", *scoring.OFFICIAL_FILTERS}


def test_prepare_check_and_evaluate_real_ped2(shared_data, tmp_path, capsys):
    frames_tar = shared_data / "ucsd_ped2" / "ped2_frames.tar"
    gt = shared_data / "ucsd_gt" / "UCSDped2.m"
    data_root = tmp_path / "datasets"
    assert cli.main(["--quiet", "data", "prepare", "ped2", "--data-root", str(data_root),
                     "--source", str(frames_tar), "--source", str(gt)]) == 0
    root = data_root / "ped2"
    assert cli.main(["data", "check", "ped2", "--root", str(root)]) == 0

    # Scores that follow the labels with noise: the metrics must see a good but imperfect detector.
    labels = np.load(shared_data / "ucsd_ped2" / "frame_labels_ped2.npy").ravel()
    counts = [180, 180, 150, 180, 150, 180, 180, 180, 120, 150, 180, 180]
    rng = np.random.default_rng(0)
    scores, start = {}, 0
    for index, count in enumerate(counts, start=1):
        scores[f"{index:02d}"] = (labels[start:start + count] + rng.normal(0, 0.8, count)).tolist()
        start += count
    scores_path = tmp_path / "scores.json"
    scores_path.write_text(json.dumps(scores))
    out = tmp_path / "eval"
    capsys.readouterr()
    assert cli.main(["evaluate", str(scores_path), "--dataset", "ped2", "--root", str(root), "--out", str(out)]) == 0
    result = json.loads((out / "metrics.json").read_text())
    flat = json.dumps(result)
    assert "gaussian" in flat and "sigma=3" in flat  # the report names its filter
    micro = next(v for k, v in _walk(result) if k == "micro_auc")
    assert 0.75 < micro < 1.0


def _walk(node, key=None):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, k)
    else:
        yield key, node


def test_evaluate_length_mismatch_is_one_line_exit_2(ped2_root, tmp_path, capsys):
    scores_path = tmp_path / "scores.json"
    scores_path.write_text(json.dumps({f"{i:02d}": [0.0] * 10 for i in range(1, 13)}))
    code = cli.main(["evaluate", str(scores_path), "--dataset", "ped2", "--root", str(ped2_root),
                     "--out", str(tmp_path / "eval")])
    error = capsys.readouterr().err.strip()
    assert code == EXIT_USER_ERROR
    assert len(error.splitlines()) == 1 and "10" in error


@pytest.mark.parametrize("argv, expected", [
    (["data", "check", "ped2", "--root", "/nonexistent/ped2"], "/nonexistent/ped2"),
    (["evaluate", "/nonexistent/scores.json", "--dataset", "ped2", "--root", "/tmp"], "/nonexistent/scores.json"),
    (["data", "prepare", "ped2", "--source", "/nonexistent/archive.tar", "--data-root", "/tmp/vd"], "/nonexistent/archive.tar"),
])
def test_console_script_reports_bad_input_without_traceback(argv, expected):
    run = subprocess.run([sys.executable, "-m", "vadistill.cli", *argv], capture_output=True, text=True)
    assert run.returncode == EXIT_USER_ERROR
    assert "Traceback" not in run.stderr
    # `data check` prints its report (naming each problem) to stdout; other verbs one line to stderr.
    if argv[:2] == ["data", "check"]:
        assert expected in run.stdout
    else:
        assert expected in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_version_names_vadistill_and_torch(capsys):
    import torch

    import vadistill

    with pytest.raises(SystemExit) as stopped:
        cli.main(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out.strip() == f"vadistill {vadistill.__version__} (torch {torch.__version__})"


@pytest.mark.parametrize("argv, message", [
    (["bench", "model.ckpt", "--batch", "0"], "argument --batch: in the comma-separated list '0': expected a whole number >= 1"),
    (["bench", "model.ckpt", "--batch", ","], "argument --batch: expected a comma-separated list"),
    (["bench", "model.ckpt", "--seconds", "-1"], "argument --seconds: expected a number > 0, got '-1'"),
    (["score", "model.ckpt", "video.mp4", "--threshold", "nan"], "argument --threshold: expected a finite number"),
    (["watch", "model.ckpt", "rtsp://cam/s", "--threads", "0"], "argument --threads: expected a whole number >= 1"),
    (["evaluate", "scores.json", "--dataset", "ped2", "--sigma", "0"], "argument --sigma: expected a number > 0"),
    (["extract", "ped2", "--out", "features", "--batch-size", "0"], "argument --batch-size: expected a whole number >= 1"),
    (["train", "aed-mae", "--dataset", "ped2", "--checkpoint-every", "-5"], "argument --checkpoint-every: expected a number >= 0"),
])
def test_numbers_a_command_cannot_use_are_refused_when_parsed(argv, message, capsys):
    # before: --batch 0 failed deep in the model (a reshape of 0 elements), --seconds -1 divided by zero
    with pytest.raises(SystemExit) as stopped:
        cli.main(argv)
    assert stopped.value.code == EXIT_USER_ERROR
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert message in error and "Traceback" not in error
