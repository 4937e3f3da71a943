"""`vadistill export`: a method's inference graph as an ONNX file that scores like the checkpoint.

What is written:
    <out>.onnx   the graph of :mod:`vadistill.runtime.graphs` (opset 17, dynamic batch axis; DAKD
                 also a dynamic snippet axis), exported with ``torch.onnx.export``. Its metadata
                 (``metadata_props``, key ``vadistill``) holds the checkpoint's non-tensor payload as
                 JSON: method name, config, score statistics, threshold, ... so the .onnx file alone
                 is a complete model for ``--engine onnx``.
    <out>.json   the same JSON as a sidecar, for people and tools that do not read ONNX metadata.

Scoring with ONNX Runtime goes through the same `score` / `watch` commands: only the network
runs in ONNX Runtime; filters, standardisation and smoothing are the same numpy code.

Parity (tested in ``tests/test_runtime_export.py``): on the same clips, ONNX Runtime fp32 outputs
match PyTorch fp32 within :data:`PARITY_TOLERANCE` (absolute, on the per-pixel error maps and the
logit, which are O(0.1..1)); the frame scores derived from them within the same bound times the
standardisation factor (see the test). Differences come from kernel-level float32 rounding.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from pathlib import Path

import torch

from vadistill.checkpoint import load_checkpoint
from vadistill.errors import InputError
from vadistill.io.atomic import atomic_write_text
from vadistill.runtime.graphs import inference_graph

METADATA_KEY = "vadistill"
METADATA_VERSION = 1
OPSET = 17
#: Largest absolute difference allowed between ONNX Runtime fp32 and PyTorch fp32 graph outputs.
PARITY_TOLERANCE = 1e-4


def _plain(value):
    """JSON-safe copy of a checkpoint value; None for anything holding tensors (weights)."""
    if isinstance(value, torch.Tensor):
        return None
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if isinstance(item, torch.Tensor):
                return None  # a state dict: weights live in the ONNX graph
            out[str(key)] = _plain(item)
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return str(value)


def checkpoint_metadata(checkpoint: str | os.PathLike) -> dict:
    """The non-tensor part of a checkpoint (method, config, statistics, threshold) as plain JSON."""
    payload = load_checkpoint(checkpoint)
    meta = {key: _plain(value) for key, value in payload.items() if key != "history"}
    meta = {key: value for key, value in meta.items() if value is not None or key == "threshold"}
    meta["metadata_version"] = METADATA_VERSION
    return meta


def export_onnx(checkpoint: str | os.PathLike, out: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """Export the checkpoint's inference graph to ONNX; returns (.onnx path, sidecar .json path).

    Args:
        checkpoint: a model file written by a method's ``save``.
        out: the .onnx file to write (default: next to the checkpoint, same stem).

    Raises:
        InputError: unreadable checkpoint, a method without an inference graph, or onnx missing.
    """
    from vadistill.runtime.model import load_method

    try:
        import onnx
    except ImportError:
        raise InputError("--format onnx", "needs the onnx package: pip install 'vadistill[onnx]'") from None
    checkpoint = Path(checkpoint)
    out = Path(out) if out else checkpoint.with_suffix(".onnx")
    out.parent.mkdir(parents=True, exist_ok=True)
    method = load_method(checkpoint)
    spec = inference_graph(method)
    spec.module.eval()  # the exporter honours the module's mode: never export dropout/batch statistics
    tmp = out.with_name(f".{out.name}.tmp")
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of torch.export, but it is exact here
        # (the dynamo path also needs onnxscript); fall back to dynamo when it goes away.
        warnings.simplefilter("ignore")
        kwargs = dict(input_names=[spec.input_name], output_names=list(spec.output_names), opset_version=OPSET)
        try:
            # A failing TorchScript export prints the whole graph to stdout: keep it out of the output.
            with contextlib.redirect_stdout(io.StringIO()):
                torch.onnx.export(spec.module, (spec.example,), str(tmp), dynamo=False,
                                  dynamic_axes=spec.dynamic_axes, **kwargs)
        except (TypeError, RuntimeError) as legacy_error:
            try:
                # Some graphs (e.g. Fast-AED's adaptive pooling to 16x16 from a 16x24 grid) are
                # beyond the TorchScript exporter; torch.export handles them (opset 18 there).
                shapes = ({axis: torch.export.Dim.AUTO for axis in spec.dynamic_axes[spec.input_name]},)
                kwargs["opset_version"] = max(OPSET, 18)
                torch.onnx.export(spec.module, (spec.example,), str(tmp), dynamo=True, dynamic_shapes=shapes,
                                  verbose=False, **kwargs)
            except Exception as error:
                first = str(legacy_error).splitlines()[0][:300]  # the legacy message embeds the whole graph
                raise RuntimeError(f"ONNX export failed (legacy: {first}; dynamo: {error})") from error
    meta = checkpoint_metadata(checkpoint)
    meta.update(graph_input=spec.input_name, graph_outputs=list(spec.output_names), opset=OPSET,
                source_checkpoint=checkpoint.name)
    model = onnx.load(str(tmp))
    # Intermediate shape annotations may carry the example's batch size (torch.export path);
    # they are optional, and stale ones break ONNX Runtime's quantiser: keep only inputs/outputs.
    del model.graph.value_info[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    onnx.save(model, str(tmp))
    os.replace(tmp, out)
    sidecar = atomic_write_text(out.with_suffix(".json"), json.dumps(meta, indent=1) + "\n")
    spec.module.eval()
    return out, sidecar


def read_onnx_metadata(path: str | os.PathLike) -> dict:
    """The vadistill metadata of an exported .onnx file (falls back to the sidecar .json).

    Raises:
        InputError: neither the file's metadata nor a sidecar holds vadistill metadata.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such ONNX model (run `vadistill export MODEL --format onnx` first)")
    text = None
    try:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        text = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    except ImportError:
        raise InputError("--engine onnx", "needs onnxruntime: pip install 'vadistill[onnx]'") from None
    except Exception as error:
        raise InputError(path, f"not a loadable ONNX model: {error}") from None
    if text is None and path.with_suffix(".json").is_file():
        text = path.with_suffix(".json").read_text()
    if text is None:
        raise InputError(path, "has no vadistill metadata (export it with `vadistill export`)")
    try:
        return json.loads(text)
    except ValueError as error:
        raise InputError(path, f"vadistill metadata is not valid JSON: {error}") from None


def quantize_int8(onnx_path: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Dynamic int8 quantisation (weights int8, activations quantised on the fly) of MatMul/Gemm.

    Convolutions stay fp32: dynamic quantisation of the patch embedding and of depthwise
    convolutions is slow in ONNX Runtime and hurts accuracy most. The vadistill metadata is kept.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    onnx_path = Path(onnx_path)
    out = Path(out) if out else onnx_path.with_name(onnx_path.stem + ".int8.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_dynamic(str(onnx_path), str(out), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"])
    return out
