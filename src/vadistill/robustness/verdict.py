"""Running a case through the `vadistill` command and judging what it did."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vadistill.errors import EXIT_USER_ERROR
from vadistill.io.atomic import is_partial_file
from vadistill.robustness.cases import ERROR, REPORTED, SKIP, BadInputCase, Invocation
from vadistill.robustness.inputs import Workshop

# `vadistill score` ends a run in which sources failed with a count line; it is not a second error.
COUNT_LINE = re.compile(r"^vadistill: (\d+) of (\d+) ")


@dataclass
class Outcome:
    """What one run did."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float = 0.0


# -- running and judging ----------------------------------------------------------------------------
def cli_command() -> list[str]:
    """The installed `vadistill` console script beside this Python, else ``python -m vadistill.cli``."""
    script = Path(sys.executable).parent / "vadistill"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "vadistill.cli"]


def _file_size_limit(limit: int) -> Callable[[], None]:
    def apply() -> None:  # runs in the child between fork and exec
        import resource

        # Ignored, not handled: the write then fails with EFBIG instead of the signal killing the child.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def run_in_subprocess(invocation: Invocation, timeout: float = 300.0) -> Outcome:
    """Run the invocation with the real command in a child process (under its file-size limit)."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}  # no .pyc writes to trip the file-size limit
    limit = invocation.file_size_limit
    started = time.perf_counter()
    done = subprocess.run([*cli_command(), *invocation.argv], capture_output=True, text=True, env=env, timeout=timeout,
                          preexec_fn=_file_size_limit(limit) if limit is not None else None, check=False)
    return Outcome(done.returncode, done.stdout, done.stderr, time.perf_counter() - started)


def judge(case: BadInputCase, invocation: Invocation, outcome: Outcome) -> list[str]:
    """What is wrong with how vadistill handled the case; empty when it was handled as expected."""
    problems = []
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    if "Traceback" in outcome.stderr:
        problems.append("a traceback on stderr")
    if outcome.returncode != EXIT_USER_ERROR:
        problems.append(f"exit code {outcome.returncode}, expected {EXIT_USER_ERROR}")
    mentions = re.compile(invocation.mentions, re.IGNORECASE) if invocation.mentions else None
    if case.expected == ERROR:
        errors = [line for line in lines if not COUNT_LINE.match(line)]
        if len(errors) != 1:
            problems.append(f"expected one error line on stderr, got {len(errors)}: {errors[:4]}")
        else:
            problems += _message_problems(errors[0], invocation, mentions, prefix="vadistill: error: ")
    elif case.expected == SKIP:
        named = [line for line in lines if invocation.names in line]
        if not named:
            problems.append(f"no stderr line names {invocation.names}: {lines[:4]}")
        else:
            problems += _message_problems(named[0], invocation, mentions, prefix="vadistill: ")
        counts = [re.search(r"\b(\d+) of (\d+)\b", line) for line in lines]
        if not any(count and int(count.group(1)) == invocation.skipped for count in counts):
            problems.append(f"no line counts {invocation.skipped} skipped item(s): {lines[:4]}")
    elif case.expected == REPORTED:
        reported = [line for line in outcome.stdout.splitlines() if invocation.names in line]
        if not reported:
            problems.append(f"the report does not name {invocation.names}")
        elif mentions and not any(mentions.search(line) for line in reported):
            problems.append(f"the report line does not say /{invocation.mentions}/: {reported[0]}")
        if lines:
            problems.append(f"stderr is not empty: {lines[:2]}")
    problems += output_problems(invocation)
    return problems


def _message_problems(line: str, invocation: Invocation, mentions: re.Pattern | None, prefix: str) -> list[str]:
    problems = []
    if not line.startswith(prefix):
        problems.append(f"the message does not start with {prefix!r}: {line}")
    if invocation.names not in line:
        problems.append(f"the message does not name {invocation.names}: {line}")
    if mentions is not None and not mentions.search(line):
        problems.append(f"the message does not say /{invocation.mentions}/: {line}")
    return problems


def output_problems(invocation: Invocation) -> list[str]:
    """Outputs that look complete but must not exist, work that was lost, temporary files left behind."""
    problems = [f"left {path} behind (it would look complete)" for path in invocation.forbidden if path.exists()]
    problems += [f"lost {path}" for path in invocation.complete if not path.is_file()]
    for folder in invocation.watched:
        if folder.is_dir():
            problems += [f"left the partial file {path}" for path in folder.rglob("*") if is_partial_file(path)]
    return problems


@dataclass
class CaseResult:
    """One case's run and verdict, for the suite's report."""

    name: str
    description: str
    expected: str
    handled: bool
    problems: list[str] = field(default_factory=list)
    returncode: int | None = None
    message: str = ""
    seconds: float = 0.0
    command: str = ""
    known_gap: str = ""


def run_case(case: BadInputCase, work_dir: Path, workshop: Workshop) -> CaseResult:
    """Build the case in ``work_dir/<name>``, run it through the real command, judge it."""
    case_dir = Path(work_dir) / case.name
    if case_dir.exists():
        shutil.rmtree(case_dir)
    case_dir.mkdir(parents=True)
    invocation = case.build(case_dir, workshop)
    outcome = run_in_subprocess(invocation)
    problems = judge(case, invocation, outcome)
    text = outcome.stderr if case.expected != REPORTED else outcome.stdout
    message = "\n".join(line for line in text.splitlines() if invocation.names in line or "error" in line)
    command = " ".join(["vadistill", *invocation.argv])
    if invocation.file_size_limit is not None:
        command = f"[RLIMIT_FSIZE={invocation.file_size_limit} bytes] {command}"
    def shown(text: str) -> str:  # the scratch folder's name says nothing; keep reports comparable
        return text.replace(str(work_dir), "<work>")

    return CaseResult(case.name, case.description, case.expected, not problems, [shown(p) for p in problems],
                      outcome.returncode, shown(message.strip()), round(outcome.seconds, 2), shown(command),
                      case.known_gap)
