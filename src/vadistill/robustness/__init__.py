"""The bad-input suite: broken inputs built on the spot, the command that meets each, and the verdict.

The project's rule: bad input (missing or corrupt files, wrong layouts, mismatched ground truth,
NaN, unreachable streams, a disk that fills up) gets a one-line error that names the file and
what was expected, exit code 2, and loses nothing already computed. Where a batch can go on
(several videos to extract or score) the broken item is skipped with a one-line warning, the
others finish, and the run ends counting the skipped ones (exit code 2 again, so that a script
notices). ``vadistill data check`` is the exception by design: listing problems is its job, so it
prints them in its report and exits with code 2.

Each :class:`BadInputCase` (``cases.py``) builds its broken input (tiny videos, frame folders,
ground truth, features, checkpoints: ``inputs.py``, made on the spot, never downloaded) in a
scratch folder and returns an :class:`Invocation`: the ``vadistill`` command line, the file the
message must name, and the outputs that must (not) exist afterwards. :func:`judge`
(``verdict.py``) compares what happened with that. Both
``tests/test_bad_inputs.py`` (every case, in-process where it can) and
``benchmarks/bad_input_suite.py`` (every case through the installed command, in subprocesses)
use this catalogue, so the count they report is the count of the same cases.

A full disk is real, not mocked: the command runs in a child process whose file-size limit
(``RLIMIT_FSIZE``) is a few hundred bytes and which ignores SIGXFSZ, so a write past the limit fails
in the kernel with EFBIG, as a write to a full disk fails with ENOSPC.
"""

from vadistill.robustness.cases import (
    CASES,
    ERROR,
    EXPECTATIONS,
    REPORTED,
    SKIP,
    BadInputCase,
    Invocation,
    case_named,
)
from vadistill.robustness.inputs import Workshop, make_custom
from vadistill.robustness.verdict import (
    CaseResult,
    Outcome,
    cli_command,
    judge,
    output_problems,
    run_case,
    run_in_subprocess,
)

__all__ = ["CASES", "ERROR", "EXPECTATIONS", "REPORTED", "SKIP", "BadInputCase", "CaseResult", "Invocation",
           "Outcome", "Workshop", "case_named", "cli_command", "judge", "make_custom", "output_problems", "run_case",
           "run_in_subprocess"]
