"""Provenance of measured numbers: the git revision (dirty trees marked) and the report header."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from vadistill.provenance import git_revision, machine_info, provenance_header


def git(cwd, *args) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_revision_marks_uncommitted_changes_and_is_unknown_outside_git(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "a.txt").write_text("one\n")
    git(repo, "add", "a.txt")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    head = git(repo, "rev-parse", "HEAD")
    assert git_revision(repo) == head
    (repo / "a.txt").write_text("two\n")  # a benchmark run from this tree did not run the committed code
    assert git_revision(repo) == head + "+uncommitted changes"
    (tmp_path / "plain").mkdir()
    assert git_revision(tmp_path / "plain") == "unknown"


def test_provenance_header_names_command_revision_and_machine():
    result = {"command": "python benchmarks/x.py --quick", "git_revision": "abc123", "machine": machine_info()}
    command, revision, machine = provenance_header(result, machine_note=" (at start)")
    assert command == "- command: `python benchmarks/x.py --quick`"
    assert revision == "- git revision: abc123"
    assert machine.startswith("- machine: ") and machine.endswith(" (at start)")
    assert f"{result['machine']['cpu_count']} cores" in machine
    # a result written outside git (no revision recorded) says so instead of printing None
    assert provenance_header({**result, "git_revision": None})[1] == "- git revision: n/a"
