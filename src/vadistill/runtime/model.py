"""Loading a trained model for the runtime: any method, either engine.

* :func:`load_method` reads the checkpoint's ``"method"`` key and calls ``METHODS[name].load``.
* :func:`load_model` pairs a method with an engine (:mod:`vadistill.runtime.engines`):
  ``engine="torch"`` runs the checkpoint's network; ``engine="onnx"`` takes an exported ``.onnx``
  file (or a checkpoint with its ``.onnx`` next to it) and rebuilds the method WITHOUT its network
  from the ONNX metadata, so that the numpy part of scoring (filters, saved statistics, threshold)
  is the method's own code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from vadistill.checkpoint import load_checkpoint
from vadistill.errors import InputError
from vadistill.runtime.engines import OnnxEngine, TorchEngine
from vadistill.runtime.graphs import inference_graph

ENGINES = ("torch", "onnx")

# Checkpoint keys that map to learned attributes of a method (see vadistill.checkpoint).
_LEARNED_KEYS = {"score_stats": "score_stats_", "threshold": "threshold_", "input_dims": "input_dims_"}


def load_method(path: str | os.PathLike, device: str = "cpu"):
    """A fitted method from any vadistill checkpoint (the method is named inside the file).

    Raises:
        InputError: unreadable checkpoint, or a method this vadistill does not know.
    """
    from vadistill.methods import METHODS

    payload = load_checkpoint(path)
    name = payload.get("method")
    if name is None:
        # A plain state dict or another tool's checkpoint: loadable, but not a vadistill model.
        raise InputError(path, "not a vadistill model checkpoint (no 'method' entry; expected the model.ckpt "
                               "that `vadistill train` writes)")
    if name not in METHODS:
        raise InputError(path, f"checkpoint of unknown method {name!r} (known: {', '.join(METHODS)})")
    return METHODS[name].load(path)


def method_from_metadata(meta: dict, where: str | os.PathLike):
    """A method object holding config and learned statistics but no network (ONNX engine)."""
    from vadistill.methods import METHODS

    name = meta.get("method")
    if name not in METHODS:
        raise InputError(where, f"ONNX model of unknown method {name!r} (known: {', '.join(METHODS)})")
    cls = METHODS[name]
    config_class = getattr(cls, "config_class", None)
    try:
        config = config_class.from_dict(meta["config"]) if config_class is not None else meta["config"]
        method = cls(config)
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(where, f"ONNX metadata does not match this vadistill's {name}: {error}") from None
    for key, attribute in _LEARNED_KEYS.items():
        if key in meta:
            setattr(method, attribute, meta[key])
    return method


@dataclass
class RuntimeModel:
    """A method ready to score, with the engine that runs its network.

    Attributes:
        method: the method (for the ONNX engine: config and statistics only, no network).
        engine: a TorchEngine / OnnxEngine, or None for methods without an inference graph
            (they score files through their own ``anomaly_scores``).
        path: the file it was loaded from.
    """

    method: object
    engine: TorchEngine | OnnxEngine | None
    path: Path

    @property
    def name(self) -> str:
        return self.method.name

    @property
    def threshold(self) -> float | None:
        return getattr(self.method, "threshold_", None)

    @property
    def engine_name(self) -> str:
        if self.engine is None:
            return "torch (method's own path)"
        return f"{self.engine.kind} {self.engine.precision}"


def model_for_method(method) -> RuntimeModel:
    """A RuntimeModel around a fitted method object already in memory (torch engine, fp32)."""
    try:
        engine = TorchEngine(inference_graph(method))
    except InputError:
        engine = None
    return RuntimeModel(method, engine, Path(f"<{method.name} in memory>"))


def onnx_path_for(path: Path) -> Path:
    """The .onnx file to use for `path`: itself, or the checkpoint's sibling with suffix .onnx."""
    if path.suffix.lower() == ".onnx":
        return path
    candidate = path.with_suffix(".onnx")
    if not candidate.is_file():
        raise InputError(path, f"--engine onnx needs {candidate.name} next to the checkpoint "
                         f"(run `vadistill export {path} --format onnx`) or the .onnx file itself")
    return candidate


def load_model(path: str | os.PathLike, engine: str = "torch", precision: str = "fp32", threads: int = 0) -> RuntimeModel:
    """Load a model for scoring.

    Args:
        path: checkpoint (.ckpt) or, for engine "onnx", an exported .onnx (or a checkpoint with it beside).
        engine: "torch" or "onnx".
        precision: torch: "fp32" / "bf16"; onnx: "fp32" / "int8" (quantised on the fly, beside the model).
        threads: ONNX Runtime intra-op threads (0: torch's thread count).

    Raises:
        InputError: bad file, unknown engine, or an engine/precision the model cannot use.
    """
    from vadistill.runtime.export import quantize_int8, read_onnx_metadata

    path = Path(path)
    if engine not in ENGINES:
        raise InputError(engine, f"unknown engine; expected one of {', '.join(ENGINES)}")
    if engine == "torch":
        if path.suffix.lower() == ".onnx":
            raise InputError(path, "an .onnx file needs --engine onnx (or give the checkpoint)")
        method = load_method(path)
        try:
            spec = inference_graph(method)
        except InputError:
            if precision != "fp32":
                raise InputError(method.name, f"precision {precision} needs an inference graph, which this method lacks") from None
            return RuntimeModel(method, None, path)
        return RuntimeModel(method, TorchEngine(spec, precision), path)
    onnx_file = onnx_path_for(path)
    meta = read_onnx_metadata(onnx_file)
    method = method_from_metadata(meta, onnx_file)
    if precision == "int8":
        onnx_file = quantize_int8(onnx_file)
    elif precision != "fp32":
        raise InputError(precision, "the onnx engine runs fp32 or int8")
    return RuntimeModel(method, OnnxEngine(onnx_file, threads=threads, precision=precision), path)
