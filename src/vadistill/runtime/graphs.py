"""Inference graphs: the network part of each method's scoring path, as one plain `nn.Module`.

Everything a method does at scoring time splits in two:

* the network part, which runs in PyTorch (eager, bf16 autocast) or in ONNX Runtime (exported
  with ``torch.onnx.export``), always through the module defined here, and
* the numpy part (3-D map filter, standardisation with the saved validation statistics, mixing,
  temporal smoothing), which is the method's own code (``AedMae.combine_terms`` and friends)
  or the streaming code of :mod:`vadistill.runtime.stream`, whatever engine ran the network.

So `score`, `watch` and `bench` never know which engine they drive, and an ONNX model scores
exactly like its checkpoint up to the engine's floating-point differences (see
:data:`vadistill.runtime.export.PARITY_TOLERANCE`).

Graphs:
    aed-mae: x (B, 3K, H, W) float32 clip in [-1, 1] -> teacher_error (B, H, W), student_error
        (B, H, W) (per-pixel error averaged over the 4 output channels) and logit (B,): the
        method's own ``AedMaeScorer`` (complementary masks included, as constants of the graph).
    fast-aed: x (B, 3K, H, W) clip -> term1, term4, term16 (B,) (each head's teacher-combined map
        maximum, as ``FastAed.head_terms``) and map16 (B, 16, 16) (the teacher-combined 16x16 head).
    dakd: features (B, T, D) float32 Student-backbone snippet features -> scores (B, T) in (0, 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vadistill.errors import InputError


@dataclass(frozen=True)
class GraphSpec:
    """A method's inference graph and how to call / export it.

    Attributes:
        module: the graph, in eval mode.
        input_name: name of its single input.
        output_names: names of its outputs, in order.
        example: an example input (batch 2) used for export and benchmarks.
        dynamic_axes: per input/output name, {axis: name} of the axes that may change size.
    """

    module: nn.Module
    input_name: str
    output_names: tuple[str, ...]
    example: torch.Tensor
    dynamic_axes: dict[str, dict[int, str]]


class DakdInference(nn.Module):
    """DAKD Student: snippet features -> snippet scores (one crop per batch row)."""

    def __init__(self, student: nn.Module):
        super().__init__()
        self.student = student

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.student([features])[0]  # (B, T)


class FastAedInference(nn.Module):
    """Fast-AED student + teacher combination + per-head maxima, as ``FastAed.head_terms``."""

    def __init__(self, student: nn.Module, combine: str):
        super().__init__()
        self.student = student
        self.use_max = combine == "max"

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        pred = self.student(x)
        combined = {s: (m.amax(dim=1) if self.use_max else m.mean(dim=1)) for s, m in pred.items()}  # (B, s, s)
        terms = [combined[s].flatten(1).amax(dim=1) for s in (1, 4, 16)]
        return (*terms, combined[16])


def inference_graph(method) -> GraphSpec:
    """The inference graph of a fitted method (see the module docstring for the supported ones).

    Raises:
        InputError: the method has no inference graph here (or scores with test-time masking).
    """
    name = method.name
    if name == "aed-mae":
        cfg = method.config
        if cfg.inference_mask_ratio > 0 and not cfg.complementary_masks:
            raise InputError(name, "inference_mask_ratio > 0 without complementary_masks draws random masks per "
                             "batch: the runtime (streaming, ONNX) supports deterministic inference only")
        module = method.scorer()
        height, width = cfg.input_size
        example = torch.zeros(2, 3 * len(cfg.frame_offsets), height, width).uniform_(-1, 1)
        return GraphSpec(module, "clip", ("teacher_error", "student_error", "logit"), example,
                         {"clip": {0: "batch"}, "teacher_error": {0: "batch"}, "student_error": {0: "batch"},
                          "logit": {0: "batch"}})
    if name == "fast-aed":
        cfg = method.config
        module = FastAedInference(method.student_, cfg.teacher_combine).eval()
        height, width = cfg.input_size
        example = torch.zeros(2, 3 * len(cfg.frame_offsets), height, width).uniform_(-1, 1)
        outputs = ("term1", "term4", "term16", "map16")
        return GraphSpec(module, "clip", outputs, example, {n: {0: "batch"} for n in ("clip", *outputs)})
    if name == "dakd":
        module = DakdInference(method.student_).eval()
        dim = method.input_dims_[method.config.student_backbone]
        example = torch.randn(2, 32, dim)
        return GraphSpec(module, "features", ("scores",), example,
                         {"features": {0: "batch", 1: "snippets"}, "scores": {0: "batch", 1: "snippets"}})
    graph = getattr(method, "inference_graph", None)
    if callable(graph):  # a method may describe its own graph (e.g. one added after this module)
        return graph()
    raise InputError(name, "this method has no runtime inference graph yet (export/streaming unsupported)")
