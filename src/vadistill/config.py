"""Method configurations from files and command-line overrides.

Each method defines its own frozen config dataclass with a ``from_dict`` that rejects unknown
keys; this module only reads YAML/JSON files, applies ``--set key=value`` overrides (dotted keys
reach nested sections, values parsed as YAML so ``--set lr=1e-3`` is a float) and turns any
mistake into a one-line :class:`InputError` naming the file or the override.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml

from vadistill.errors import InputError


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """A YAML or JSON mapping of config fields."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such config file (expected a YAML or JSON mapping of config fields)")
    try:
        text = path.read_text()
        values = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
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
            node[key] = yaml.safe_load(raw)
        except yaml.YAMLError:
            node[key] = raw
    return result


def build_config(from_dict: Callable[[dict], Any], values: dict[str, Any], where: str) -> Any:
    """Call a config class's ``from_dict``; unknown keys or bad values become an InputError at `where`."""
    try:
        return from_dict(values)
    except (TypeError, ValueError) as error:
        raise InputError(where, f"invalid configuration: {error}") from None
