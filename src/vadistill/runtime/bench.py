"""`vadistill bench`: how fast a model scores on this machine, per engine, precision and batch size.

Measured for every (engine, precision) pair asked for:
    model_only   the inference graph alone on ready inputs, per batch size: frames (or clips /
                 snippet sequences) per second and call latency percentiles p50/p90/p99 in ms.
    end_to_end   streaming methods: decode -> resize -> graph -> filters -> score, one frame at a
                 time (batch 1, as a live stream), frames per second and per-frame latency.
    accuracy     raw frame scores of the first frames of the video against torch fp32: Pearson
                 correlation and largest absolute difference (is a faster precision still right?).

Precisions: fp32 (torch, onnx); bf16 = torch CPU autocast, run only where the CPU has native bf16
(AVX512-BF16 or AMX; otherwise it is emulated and slower, and reported as skipped); int8 =
ONNX Runtime dynamic quantisation of MatMul/Gemm (:func:`vadistill.runtime.export.quantize_int8`).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vadistill.errors import InputError
from vadistill.provenance import machine_info
from vadistill.runtime.engines import bf16_supported

COMBINATIONS = {("torch", "fp32"), ("torch", "bf16"), ("onnx", "fp32"), ("onnx", "int8")}


def _percentiles(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1000.0
    return {f"p{q}_ms": round(float(np.percentile(ms, q)), 3) for q in (50, 90, 99)}


def _timed_calls(call, seconds: float, min_calls: int = 3) -> list[float]:
    call()  # warm-up (allocations, ORT graph optimisation, oneDNN primitive creation)
    times = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < min_calls:
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def _frames(video: str | None, count: int, size: tuple[int, int]) -> list[np.ndarray]:
    """The first `count` frames of `video`, or generated walkway frames when no video is given."""
    if video is None:
        from vadistill.data.synthetic import render_scene

        return list(render_scene(count, size[0], size[1], seed=7).frames)
    from vadistill.io.video import open_video

    frames = []
    with open_video(video) as reader:
        for frame in reader:
            frames.append(frame)
            if len(frames) == count:
                break
    return frames


def _stream_raw(model, frames: list[np.ndarray]) -> tuple[np.ndarray, list[float]]:
    """Raw scores and per-frame step times of streaming `frames` through the model."""
    from vadistill.runtime.stream import stream_scorer

    scorer = stream_scorer(model.method)
    raw, times = [], []
    for frame in frames:
        start = time.perf_counter()
        raw += [r.raw for r in scorer.step(frame, model.engine)]
        times.append(time.perf_counter() - start)
    raw += [r.raw for r in scorer.finish(model.engine)]
    return np.asarray(raw), times


def _end_to_end(model, video: str | None, frames: list[np.ndarray], seconds: float) -> list[float]:
    """Per-frame wall times of decode (when a video is given) + resize + graph + filters, batch 1."""
    from vadistill.io.video import open_video
    from vadistill.runtime.stream import stream_scorer

    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        scorer = stream_scorer(model.method)
        reader = open_video(video) if video else None
        try:
            start = time.perf_counter()
            for frame in (reader if reader is not None else frames):
                scorer.step(frame, model.engine)
                now = time.perf_counter()
                times.append(now - start)
                start = now
                if now > deadline:
                    break
        finally:
            if reader is not None:
                reader.close()
    return times


def bench(model_path: str | os.PathLike, *, batches: tuple[int, ...] = (1, 8), precisions: tuple[str, ...] = ("fp32",),
          engines: tuple[str, ...] = ("torch",), seconds: float = 5.0, video: str | None = None,
          accuracy_frames: int = 64, log=print) -> dict:
    """Benchmark a model (module docstring); returns a JSON-serialisable dict.

    Args:
        model_path: checkpoint (.ckpt). The ONNX engine uses the .onnx beside it, exported to a
            temporary folder when missing.
        batches: batch sizes of the model-only measurement.
        precisions, engines: what to measure (invalid pairs, e.g. torch int8, are skipped).
        seconds: time budget of each measurement.
        video: frames for the end-to-end and accuracy runs (default: generated frames).
        accuracy_frames: frames compared against torch fp32.
        log: progress lines.
    """
    from vadistill.runtime.graphs import inference_graph
    from vadistill.runtime.model import load_model
    from vadistill.runtime.stream import supports_streaming

    model_path = Path(model_path)
    reference = load_model(model_path, "torch", "fp32")
    if reference.engine is None:
        raise InputError(model_path, f"{reference.name} has no inference graph to benchmark")
    spec = inference_graph(reference.method)
    streaming = supports_streaming(reference.method)
    size = tuple(getattr(reference.method.config, "input_size", (240, 360)))
    frames = _frames(video, max(accuracy_frames, 16), size) if streaming else []
    reference_raw = _stream_raw(reference, frames[:accuracy_frames])[0] if streaming else None
    result = {"model": str(model_path), "method": reference.name, "machine": machine_info(),
              "parameters": sum(p.numel() for p in spec.module.parameters()),
              "input_shape": list(spec.example.shape[1:]), "video": video or "generated walkway frames",
              "seconds_per_measurement": seconds, "runs": []}
    tmp = tempfile.TemporaryDirectory(prefix="vadistill-bench-")
    try:
        for engine in engines:
            for precision in precisions:
                entry = {"engine": engine, "precision": precision}
                result["runs"].append(entry)
                if (engine, precision) not in COMBINATIONS:
                    entry["skipped"] = f"{engine} has no {precision} path here"
                    continue
                if precision == "bf16" and not bf16_supported():
                    entry["skipped"] = "CPU has no native bf16 (avx512_bf16/amx): autocast would be emulated"
                    continue
                path = model_path
                if engine == "onnx" and not model_path.with_suffix(".onnx").is_file():
                    from vadistill.runtime.export import export_onnx

                    path = export_onnx(model_path, Path(tmp.name) / (model_path.stem + ".onnx"))[0]
                try:
                    model = load_model(path, engine, precision, threads=torch.get_num_threads())
                except Exception as error:  # e.g. a graph the int8 quantiser cannot take: report, go on
                    entry["skipped"] = f"could not prepare the engine: {str(error).splitlines()[0][:200]}"
                    log(f"{engine} {precision}: {entry['skipped']}")
                    continue
                entry["threads"] = torch.get_num_threads()
                entry["model_only"] = []
                for batch in batches:
                    x = np.repeat(spec.example[:1].numpy(), batch, axis=0)
                    times = _timed_calls(lambda: model.engine(x), seconds)
                    row = {"batch": batch, "calls": len(times),
                           "items_per_s": round(batch * len(times) / sum(times), 2), **_percentiles(times)}
                    entry["model_only"].append(row)
                    log(f"{engine} {precision} batch {batch}: {row['items_per_s']} items/s, p50 {row['p50_ms']} ms")
                if streaming:
                    raw, _ = _stream_raw(model, frames[:accuracy_frames])
                    corr = float(np.corrcoef(raw, reference_raw)[0, 1]) if raw.std() > 0 and reference_raw.std() > 0 else float("nan")
                    entry["accuracy_vs_torch_fp32"] = {"frames": len(raw), "pearson_r": round(corr, 6),
                                                       "max_abs_diff": float(np.abs(raw - reference_raw).max())}
                    e2e_times = _end_to_end(model, video, frames, seconds)
                    entry["end_to_end"] = {"frames": len(e2e_times), "fps": round(len(e2e_times) / sum(e2e_times), 2),
                                           **_percentiles(e2e_times)}
                    log(f"{engine} {precision} end-to-end: {entry['end_to_end']['fps']} fps, r={corr:.4f}")
    finally:
        tmp.cleanup()
    return result
