"""Method configurations from files and command-line overrides.

Each method defines its own frozen config dataclass with a ``from_dict`` that rejects unknown
keys; this module only reads YAML/JSON files, applies ``--set key=value`` overrides (dotted keys
reach nested sections, values parsed as YAML so ``--set lr=1e-3`` is a float) and turns any
mistake into a one-line :class:`InputError` naming the file or the override.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import yaml

from vadistill.errors import InputError


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads ``1e-3`` (no dot) as a string; configs mean a float, as YAML 1.2 and JSON do."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                  |\.[0-9_]+(?:[eE][-+][0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """A YAML or JSON mapping of config fields."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such config file (expected a YAML or JSON mapping of config fields)")
    try:
        text = path.read_text()
        values = json.loads(text) if path.suffix.lower() == ".json" else parse_yaml(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as error:
        raise InputError(path, f"could not be parsed: {str(error).splitlines()[0]}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise InputError(path, f"expected a mapping of config fields, found {type(values).__name__}")
    return values


def apply_overrides(values: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of `values` with ``key=value`` / ``section.key=value`` overrides applied."""
    result = json.loads(json.dumps(values))  # deep copy of plain data
    for override in overrides:
        if "=" not in override:
            raise InputError(override, "expected key=value (for example --set teacher_epochs=5)")
        dotted, raw = override.split("=", 1)
        *parents, key = dotted.strip().split(".")
        node = result
        for parent in parents:
            node = node.setdefault(parent, {})
            if not isinstance(node, dict):
                raise InputError(override, f"'{parent}' is not a section")
        try:
            node[key] = parse_yaml(raw)
        except yaml.YAMLError:
            node[key] = raw
    return result


def build_config(from_dict: Callable[[dict], Any], values: dict[str, Any], where: str) -> Any:
    """Call a config class's ``from_dict``; unknown keys or bad values become an InputError at `where`."""
    try:
        config = from_dict(values)
    except (TypeError, ValueError) as error:
        raise InputError(where, f"invalid configuration: {error}") from None
    check_value_types(config, where)
    return config


def check_value_types(config: Any, where: str, prefix: str = "") -> None:
    """Every field holds a value of its default's kind (a number where a number is expected, ...).

    The config dataclasses do not check types themselves; a string where a float belongs would
    otherwise surface later as a traceback deep inside training.
    """
    for field in dataclasses.fields(config):
        value, default = getattr(config, field.name), field.default
        if default is dataclasses.MISSING and field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        name = f"{prefix}{field.name}"
        if dataclasses.is_dataclass(value):
            check_value_types(value, where, f"{name}.")
        elif default is None or default is dataclasses.MISSING:
            continue
        elif isinstance(default, bool):  # before numbers: a bool is an int to isinstance
            if not isinstance(value, bool):
                raise InputError(where, f"invalid configuration: {name} must be true or false, got {value!r}")
        elif isinstance(default, (int, float)) and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise InputError(where, f"invalid configuration: {name} must be a number, got {value!r}")
        elif isinstance(default, str) and not isinstance(value, str):
            raise InputError(where, f"invalid configuration: {name} must be a string, got {value!r}")
        elif isinstance(default, (tuple, list)) and not isinstance(value, (tuple, list)):
            raise InputError(where, f"invalid configuration: {name} must be a list, got {value!r}")


_INTERVAL = re.compile(r"^([\[(])\s*([^,\s]+)\s*,\s*([^\]\)\s]+)\s*([\])])$")


def _within(value: float, bound: str) -> bool:
    """``value`` satisfies ``bound``: ">0", ">=1", or an interval "[0, 1]", "(0, 1)", "[0, 1)"...
    NaN satisfies none."""
    if bound.startswith(">="):
        return value >= float(bound[2:])
    if bound.startswith(">"):
        return value > float(bound[1:])
    opening, low, high, closing = _INTERVAL.match(bound).groups()
    above = value >= float(low) if opening == "[" else value > float(low)
    below = value <= float(high) if closing == "]" else value < float(high)
    return above and below


def check_bounds(config: Any, bounds: Mapping[str, str], prefix: str = "") -> None:
    """Raise a ValueError naming the first field (or element of a tuple field) outside its bound.

    Called by the config dataclasses' ``__post_init__`` so that ``--set batch_size=0`` or a NaN
    learning rate is a one-line error before training starts, not a traceback (or a silent
    no-op) inside it. Values that are not numbers are left to :func:`check_value_types`.
    ``prefix``: how a nested section is named in messages (e.g. "paste.").
    """
    for name, bound in bounds.items():
        value = getattr(config, name)
        for item in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(item, bool) or not isinstance(item, (int, float)):
                continue
            if not _within(item, bound):
                wanted = re.sub(r"^(>=?)", r"\1 ", bound) if bound.startswith(">") else f"in {bound}"
                raise ValueError(f"{prefix}{name} must be {wanted}, got {value!r}")


def check_ordered(config: Any, ranges: Sequence[str | tuple[str, str]], prefix: str = "") -> None:
    """Raise a ValueError naming the first range whose low end exceeds its high end.

    Each entry is a (low, high) tuple field (e.g. "scale"; None skips it) or a pair of fields
    (e.g. ("min_area", "max_area")). Why: a reversed range otherwise passes silently (numpy draws
    uniform(0.6, 0.15) without complaint) or fails deep inside training.
    """
    for entry in ranges:
        if isinstance(entry, str):
            value = getattr(config, entry)
            if value is None:
                continue
            (low, high), wanted = value, f"{prefix}{entry} must be a range low <= high"
        else:
            low, high = (getattr(config, name) for name in entry)
            value, wanted = (low, high), f"{prefix}{entry[0]} must be <= {prefix}{entry[1]}"
        if low > high:
            raise ValueError(f"{wanted}, got {value!r}")
