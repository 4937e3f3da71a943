"""argparse value types that refuse, at parse time, numbers a command cannot use.

``--batch 0``, ``--seconds -1`` or ``--threshold nan`` would otherwise reach the code as values
and fail there with a traceback (a reshape of 0 elements, a division by zero) or silently (a NaN
threshold flags nothing). argparse turns an ``ArgumentTypeError`` into its usual usage line plus
one error line naming the option, with exit code 2.
"""

from __future__ import annotations

import argparse
import math
from typing import Callable


def _number(kind: type, text: str, wanted: str, accept: Callable[[float], bool]):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
    if not accept(value):
        raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    return _number(int, text, "a whole number >= 1", lambda v: v >= 1)


def positive_float(text: str) -> float:
    return _number(float, text, "a number > 0", lambda v: math.isfinite(v) and v > 0)


def non_negative_float(text: str) -> float:
    return _number(float, text, "a number >= 0", lambda v: math.isfinite(v) and v >= 0)


def finite_float(text: str) -> float:
    return _number(float, text, "a finite number", math.isfinite)


def comma_list(kind: Callable[[str], object]) -> Callable[[str], tuple]:
    """``1,8`` -> (1, 8), each part read with ``kind`` (which may itself refuse a value)."""
    def parse(text: str) -> tuple:
        parts = [part for part in text.split(",") if part]
        if not parts:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
        try:
            return tuple(kind(part) for part in parts)
        except argparse.ArgumentTypeError as error:
            raise argparse.ArgumentTypeError(f"in the comma-separated list {text!r}: {error}") from None
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}") from None
    return parse
