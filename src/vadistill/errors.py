"""User-facing errors.

Anything a user can cause by pointing vadistill at the wrong thing (a missing folder, a corrupt
video, ground truth that does not match the frames, NaN features, an unreachable stream) raises
:class:`InputError`. The CLI prints its message as one line and exits with code 2, without a
traceback; programming errors keep their traceback.
"""

from __future__ import annotations

EXIT_USER_ERROR = 2


class InputError(Exception):
    """Bad input from the user. The message names the file and what was expected."""

    def __init__(self, path: object, problem: str):
        self.path = str(path)
        self.problem = one_line(problem)
        super().__init__(f"{self.path}: {self.problem}")


def one_line(text: str) -> str:
    """`text` with its line breaks folded into spaces: messages quoting a library's multi-line error
    must still be one line (the CLI's contract, and what log parsers expect)."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())
