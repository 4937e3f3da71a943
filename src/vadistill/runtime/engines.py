"""Engines: something that runs an inference graph on a numpy batch and returns numpy outputs.

Two engines share one call, ``engine(x) -> tuple of arrays`` (the graph's outputs in the order of
``GraphSpec.output_names``, float32 / float64 as the graph gives them):

* :class:`TorchEngine`: the PyTorch module, eager, in ``inference_mode``; ``precision="bf16"``
  wraps it in CPU bfloat16 autocast (worth it only where the CPU has native bf16: AVX512-BF16 or
  AMX, see :func:`bf16_supported`).
* :class:`OnnxEngine`: an ONNX Runtime session on the exported graph (fp32, or an int8 model
  quantised by :func:`vadistill.runtime.export.quantize_int8`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from vadistill.errors import InputError
from vadistill.provenance import cpu_flags
from vadistill.runtime.graphs import GraphSpec

PRECISIONS = ("fp32", "bf16", "int8")


def bf16_supported() -> bool:
    """True when the CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16).

    Without it, bf16 autocast still runs but emulates bf16 and is usually slower than fp32.
    """
    flags = cpu_flags()
    return bool({"avx512_bf16", "amx_bf16"} & flags)


class TorchEngine:
    """Runs a graph in eager PyTorch on the CPU.

    Args:
        spec: the graph (see :func:`vadistill.runtime.graphs.inference_graph`).
        precision: "fp32" or "bf16" (autocast; outputs are returned as float32).
    """

    kind = "torch"

    def __init__(self, spec: GraphSpec, precision: str = "fp32"):
        if precision not in ("fp32", "bf16"):
            raise InputError(precision, "the torch engine runs fp32 or bf16 (int8 needs --engine onnx)")
        self.spec = spec
        self.precision = precision
        self.output_names = spec.output_names

    @torch.inference_mode()
    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        tensor = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        if tensor.ndim == 4:
            # Channels-last is the layout AedMaeNet is fastest with (and what clips_to_input gives).
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            outputs = self.spec.module(tensor)
        if isinstance(outputs, torch.Tensor):
            outputs = (outputs,)
        return tuple(o.float().numpy() for o in outputs)


class OnnxEngine:
    """Runs an exported graph with ONNX Runtime (CPU execution provider).

    Args:
        path: the .onnx file.
        threads: intra-op threads (0 = ONNX Runtime's default, one per core).
        precision: label only ("fp32" or "int8"): which model file was given.
    """

    kind = "onnx"

    def __init__(self, path: str | os.PathLike, threads: int = 0, precision: str = "fp32"):
        try:
            import onnxruntime as ort
        except ImportError:
            raise InputError("--engine onnx", "needs onnxruntime: pip install 'vadistill[onnx]'") from None
        path = Path(path)
        if not path.is_file():
            raise InputError(path, "no such ONNX model (run `vadistill export MODEL --format onnx` first)")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: ORT's warnings are not the user's business
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types
            raise InputError(path, f"not a loadable ONNX model: {error}") from None
        self.path = path
        self.precision = precision
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = tuple(o.name for o in self.session.get_outputs())

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)}))
