"""Every case of the bad-input suite (vadistill.robustness): a clear one-line error with exit code 2,
or a counted skip, and no output left that looks complete. Plus the atomic writers behind the last part.

Cases run in-process through ``vadistill.cli.main`` (capfd also catches what C libraries print to
the process's stderr); the disk-full cases run the real command in a child process under a
file-size limit (``RLIMIT_FSIZE``), because a limit cannot be lifted again inside this process.
``benchmarks/bad_input_suite.py`` runs all of them through the installed command.
"""

from __future__ import annotations

import errno
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from vadistill import cli
from vadistill.errors import EXIT_USER_ERROR, InputError, one_line
from vadistill.io.atomic import (
    atomic_path,
    atomic_write_files,
    atomic_write_text,
    is_partial_file,
)
from vadistill.robustness import (
    CASES,
    EXPECTATIONS,
    Outcome,
    Workshop,
    judge,
    run_in_subprocess,
)


@pytest.fixture(scope="module")
def workshop(tmp_path_factory) -> Workshop:
    return Workshop(tmp_path_factory.mktemp("shared-inputs"))


def test_the_catalogue_is_well_formed():
    names = [case.name for case in CASES]
    assert len(names) == len(set(names)) >= 40
    assert {case.expected for case in CASES} <= set(EXPECTATIONS)
    # The list: each kind of bad input is represented.
    for prefix in ("video-", "frames-", "gt-", "scores-", "features-", "disk-full-", "checkpoint-", "stream-"):
        assert any(name.startswith(prefix) for name in names), prefix


def _expected_to_pass(case):
    # A known gap lies in a file another change owns; strict: the test says so once it is fixed.
    marks = [pytest.mark.xfail(strict=True, reason=case.known_gap)] if case.known_gap else []
    return pytest.param(case, id=case.name, marks=marks)


@pytest.mark.parametrize("case", [_expected_to_pass(case) for case in CASES])
def test_bad_input_is_handled(case, tmp_path, workshop, capfd):
    invocation = case.build(tmp_path, workshop)
    if invocation.file_size_limit is not None:
        outcome = run_in_subprocess(invocation)
    else:
        capfd.readouterr()  # whatever building the input printed is not the command's output
        code = cli.main(invocation.argv)
        captured = capfd.readouterr()
        outcome = Outcome(code, captured.out, captured.err)
    problems = judge(case, invocation, outcome)
    assert not problems, f"{case.name}: {case.description}\n" + "\n".join(problems) + f"\nstderr:\n{outcome.stderr}"


def test_judge_rejects_a_traceback_and_a_partial_output(tmp_path, workshop):
    # The verdict must be able to fail: a crash with a traceback and a half-written output.
    case = next(case for case in CASES if case.name == "disk-full-evaluate")
    invocation = case.build(tmp_path, workshop)
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "metrics.json").write_text("{\"micro_auc\": 0.9")
    problems = judge(case, invocation, Outcome(1, "", "Traceback (most recent call last):\nOSError: [Errno 27]\n"))
    text = "\n".join(problems)
    assert "traceback" in text and "exit code 1" in text and "metrics.json" in text


def test_console_script_under_a_file_size_limit_names_the_file(tmp_path, workshop):
    # The same disk-full path as the suite, checked once more by hand: the kernel refuses the
    # write (EFBIG), the command says so in one line, and the previous report survives untouched.
    case = next(case for case in CASES if case.name == "disk-full-evaluate")
    invocation = case.build(tmp_path, workshop)
    old = tmp_path / "eval" / "metrics.json"
    old.parent.mkdir()
    old.write_text("{}")  # a small report from an earlier run, under the limit
    outcome = run_in_subprocess(invocation)
    assert outcome.returncode == EXIT_USER_ERROR, outcome.stderr
    assert outcome.stderr.count("\n") == 1 and str(old) in outcome.stderr
    assert old.read_text() == "{}"
    assert not [p for p in old.parent.iterdir() if p.name != "metrics.json"]


# -- the writers behind "no output that looks complete" ------------------------------------------
def test_atomic_path_publishes_only_on_success(tmp_path):
    target = tmp_path / "out" / "scores.npy"
    with atomic_path(target) as temporary:
        assert temporary.parent == target.parent and temporary.suffix == ".npy" and is_partial_file(temporary)
        np.save(temporary, np.arange(3))
    np.testing.assert_array_equal(np.load(target), np.arange(3))
    assert oct(target.stat().st_mode & 0o777) != oct(0o600)  # not mkstemp's owner-only mode
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        np.save(temporary, np.arange(5))
        raise RuntimeError("the writer died half-way")
    np.testing.assert_array_equal(np.load(target), np.arange(3))  # the old file, untouched
    assert [p.name for p in target.parent.iterdir()] == ["scores.npy"]


def test_disk_full_inside_a_writer_becomes_one_input_error(tmp_path):
    target = tmp_path / "report.json"
    with pytest.raises(InputError) as raised, atomic_path(target):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert raised.value.path == str(target) and "disk is full" in str(raised.value)
    assert not list(tmp_path.iterdir())


def test_files_written_together_appear_together(tmp_path, monkeypatch):
    first, second = tmp_path / "metrics.json", tmp_path / "metrics.md"
    real_write = type(first).write_bytes

    def fail_on_markdown(path, data):
        if path.suffix == ".md":
            raise OSError(errno.EFBIG, "File too large")
        return real_write(path, data)

    monkeypatch.setattr(type(first), "write_bytes", fail_on_markdown)
    with pytest.raises(InputError, match="metrics.md"):
        atomic_write_files({first: b"{}", second: b"# report"})
    assert not list(tmp_path.iterdir())  # not even the JSON, which was written in full
    monkeypatch.undo()
    atomic_write_files({first: b"{}", second: b"# report"})
    assert first.read_bytes() == b"{}" and second.read_bytes() == b"# report"


def test_save_checkpoint_under_a_file_size_limit_keeps_the_old_checkpoint(tmp_path):
    # torch.save reports a failed write as a RuntimeError without an errno; the atomic writer
    # looks at the file-size limit itself and names the checkpoint.
    from vadistill.checkpoint import save_checkpoint

    path = save_checkpoint(tmp_path / "model.ckpt", {"v": 1})
    script = ("import sys, torch; from vadistill.checkpoint import save_checkpoint; from vadistill.errors import InputError\n"
              "try:\n    save_checkpoint(sys.argv[1], {'w': torch.zeros(100_000)})\n"
              "except InputError as e:\n    print(e); sys.exit(2)\n")
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=False,
                          preexec_fn=_limit_file_size(64 * 1024))
    assert done.returncode == 2, done.stderr
    assert str(path) in done.stdout and "file-size limit" in done.stdout
    assert torch.load(path, weights_only=True) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["model.ckpt"]


def _limit_file_size(limit: int):
    def apply():
        import resource
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_resumed_train_scores_file_that_is_damaged_is_one_error(tmp_path):
    scores = tmp_path / "scores.json"
    scores.write_text('{"01": [0.1, 0.2')  # cut by a crash of an older version
    with pytest.raises(InputError, match="cannot resume scoring"):
        cli.read_finished_scores(scores)
    atomic_write_text(scores, json.dumps({"01": [0.1]}))
    assert cli.read_finished_scores(scores) == {"01": [0.1]}


def test_input_error_messages_are_one_line():
    error = InputError("model.ckpt", "Weights only load failed.\nTrying to load unsupported GLOBAL posix.system\n")
    assert "\n" not in str(error) and "posix.system" in str(error)
    assert one_line("a\n\n  b  \n") == "a b"


def test_os_errors_naming_a_file_are_one_line_with_exit_2(tmp_path, capfd):
    # An output folder that cannot be made (here: a file is in the way; for others a read-only
    # mount, a permission) is the environment's doing: one line naming it, exit code 2.
    from vadistill.robustness import make_custom

    root = make_custom(tmp_path / "custom")
    scores = tmp_path / "scores.json"
    scores.write_text(json.dumps({"a": [0.1] * 12, "b": [0.2] * 12}))
    in_the_way = tmp_path / "results"
    in_the_way.write_text("a file, not a folder")
    capfd.readouterr()
    code = cli.main(["--quiet", "evaluate", str(scores), "--dataset", "custom", "--root", str(root),
                     "--out", str(in_the_way / "eval")])
    err = capfd.readouterr().err
    assert code == EXIT_USER_ERROR and err.count("\n") == 1, err
    assert err.startswith("vadistill: error: ") and str(in_the_way) in err and "Traceback" not in err


# -- the reader's judgement calls -----------------------------------------------------------------
def test_truncation_tolerates_an_estimated_frame_count():
    from vadistill.io.video import is_truncated

    assert not is_truncated(0, 5)  # the container gives no count
    assert not is_truncated(30, 29) and not is_truncated(1000, 990)  # an estimate off by <= 1%
    assert is_truncated(30, 6) and is_truncated(1000, 980)


def test_stored_frame_sizes_are_read_from_mjpeg_only(tmp_path):
    from vadistill.io.video import mjpeg_frame_sizes
    from vadistill.robustness.inputs import make_frames, make_video, write_mjpeg_avi

    mixed = write_mjpeg_avi(tmp_path / "mixed.avi", make_frames(2) + make_frames(1, (96, 128)))
    assert mjpeg_frame_sizes(mixed) == [(48, 64), (48, 64), (96, 128)]
    assert mjpeg_frame_sizes(make_video(tmp_path / "clip.mp4", 4)) is None  # mp4v: not parsed
