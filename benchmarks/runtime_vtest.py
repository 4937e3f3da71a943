"""Runtime benchmarks on a real street clip: end-to-end scoring, `watch` over 8 streams, engines.

    python benchmarks/runtime_vtest.py            # about 10 minutes on a shared 2-core CPU
    python benchmarks/runtime_vtest.py --quick    # smoke run (short measurements)

Model: AED-MAE ``demo_config()`` (96x160 input, patch 8, about 0.5 M parameters) trained briefly
(3 teacher epochs, 1 student epoch, no synthetic anomalies) on the first 200 frames of
``/work/shared/data/demo_video/vtest.avi`` with 1 thread, cached in ``benchmarks/work/runtime/``.
Its detection quality is NOT the point here (there are no labels for this clip); speed is.
Fast-AED and DAKD are measured model-only with randomly initialised networks of their default
configurations (throughput does not depend on the weights; accuracy columns are only the
agreement between engines).

1. ``score``: `vadistill score` of the whole clip (795 frames, 768x576), torch fp32 and ONNX
   Runtime fp32: wall time and frames per second including decode, resize, overlay video and plot.
2. ``watch``: 8 concurrent sources (the clip 8 times, each played in real time at its 10 fps like a
   camera) for 60 s: sustained processed fps per stream, drop rate, mean batch size.
3. ``engines``: `vadistill bench` for every method: torch fp32 / bf16 (native bf16 only), ONNX
   Runtime fp32 / int8, batch 1 and 8, and the score correlation against torch fp32.

Threads: 1 torch / ONNX Runtime thread (numbers per core; the machine line gives the load average at the start).
Writes ``benchmarks/results/runtime_vtest.json`` and ``.md`` (``--quick``: ``runtime_vtest_quick.*``).
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import time
from pathlib import Path

import torch

from vadistill.provenance import command_line, git_revision, machine_info, provenance_header

ROOT = Path(__file__).resolve().parents[1]
VIDEO = Path("/work/shared/data/demo_video/vtest.avi")
WORK = ROOT / "benchmarks" / "work" / "runtime"
RESULTS = ROOT / "benchmarks" / "results"


def train_model() -> Path:
    """The cached small AED-MAE (see the module docstring)."""
    from dataclasses import replace

    from vadistill.data.pseudo import PasteConfig
    from vadistill.io.video import open_video
    from vadistill.methods.aed_mae import AedMae, demo_config

    path = WORK / "aed_mae" / "model.ckpt"
    config = replace(demo_config(), teacher_epochs=3, student_epochs=1, paste=PasteConfig(probability=0.0))
    if path.is_file() and AedMae.load(path).config == config:  # a model of another config is retrained
        return path
    if path.parent.is_dir():
        shutil.rmtree(path.parent)  # its stage checkpoints and ONNX export belong to the old config
    frames = []
    with open_video(VIDEO, size=(96, 160)) as reader:
        for frame in reader:
            frames.append(frame)
            if len(frames) == 200:
                break
    import numpy as np

    started = time.perf_counter()
    AedMae(config).fit([np.stack(frames)], run_dir=path.parent, progress=False)
    print(f"trained the benchmark model in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return path


def random_models() -> dict[str, Path]:
    """Fast-AED and DAKD checkpoints with random weights (default configurations), for speed only."""
    from vadistill.methods import METHODS

    out = {}
    if "fast-aed" in METHODS:
        from vadistill.methods.fast_aed import FastAed, FastAedConfig, FastAedStudent

        torch.manual_seed(0)
        method = FastAed(FastAedConfig())
        method.student_ = FastAedStudent(method.config, len(method.config.teachers)).eval()
        method.score_stats_, method.threshold_, method.history_ = {"mean": 0.0, "std": 1.0}, 1.0, []
        out["fast-aed"] = WORK / "fast_aed_random.ckpt"
        method.save(out["fast-aed"])
    from vadistill.methods.dakd import Dakd, DakdConfig, DakdNet

    torch.manual_seed(0)
    config = DakdConfig(distill=False)
    method = Dakd(config)
    method.input_dims_ = {config.student_backbone: 1024}
    method.student_ = DakdNet([1024], config).eval()
    method.history_ = []
    out["dakd"] = WORK / "dakd_random.ckpt"
    method.save(out["dakd"])
    return out


def bench_score(model_path: Path, engine: str) -> dict:
    from vadistill.runtime.export import export_onnx
    from vadistill.runtime.model import load_model
    from vadistill.runtime.score import score_source

    if engine == "onnx":
        export_onnx(model_path)
    model = load_model(model_path, engine)
    started = time.perf_counter()
    result = score_source(model, str(VIDEO), WORK / f"score_{engine}", progress=False)
    seconds = time.perf_counter() - started
    return {"engine": engine, "frames": len(result.scores), "seconds": round(seconds, 2),
            "fps": round(len(result.scores) / seconds, 2), "segments": len(result.segments),
            "outputs": sorted(p.name for p in result.files.values())}


def bench_watch(model_path: Path, streams: int, seconds: float) -> dict:
    from vadistill.runtime.model import load_model
    from vadistill.runtime.watch import watch

    events = io.StringIO()
    summary = watch(load_model(model_path), [str(VIDEO)] * streams, events=events, duration=seconds,
                    status_every=10, status=sys.stderr)
    result = summary.as_dict()
    per_stream = list(result["streams"].values())
    result["sustained_fps_per_stream"] = round(sum(s["fps"] for s in per_stream) / len(per_stream), 2)
    result["total_fps"] = round(sum(s["fps"] for s in per_stream), 2)
    result["mean_drop_rate"] = round(sum(s["drop_rate"] for s in per_stream) / len(per_stream), 4)
    result["source_fps"] = 10.0
    return result


def markdown(result: dict) -> str:
    lines = ["# Runtime benchmarks on vtest.avi", "",
             *provenance_header(result, machine_note=f", {result['machine']['torch_cpu_capability']}, "
                                                     f"onnxruntime {result['machine']['onnxruntime']}"),
             f"- Model: {result['model']}", "", "## score (whole clip, 795 frames 768x576, overlay + plot)", "",
             "| Engine | Frames | Seconds | FPS |", "|---|---|---|---|"]
    lines += [f"| {r['engine']} | {r['frames']} | {r['seconds']} | {r['fps']} |" for r in result["score"]]
    w = result["watch"]
    lines += ["", f"## watch: {len(w['streams'])} streams x vtest.avi at 10 fps, {w['seconds']} s", "",
              f"- Sustained processed fps per stream: {w['sustained_fps_per_stream']} (total {w['total_fps']})",
              f"- Mean drop rate: {100 * w['mean_drop_rate']:.1f}% ; mean batch per forward pass: {w['mean_batch']}", ""]
    lines += ["## Engines (model-only items/s at batch 1 / 8; end-to-end streaming fps; score r vs torch fp32)", "",
              "| Method | Engine | Precision | b=1 items/s (p50 ms) | b=8 items/s (p50 ms) | end-to-end fps | r vs fp32 |",
              "|---|---|---|---|---|---|---|"]
    for method, bench in result["engines"].items():
        for run in bench["runs"]:
            if "skipped" in run:
                lines.append(f"| {method} | {run['engine']} | {run['precision']} | skipped: {run['skipped']} | | | |")
                continue
            cells = {row["batch"]: f"{row['items_per_s']} ({row['p50_ms']})" for row in run["model_only"]}
            e2e = run.get("end_to_end", {}).get("fps", "n/a")
            acc = run.get("accuracy_vs_torch_fp32", {}).get("pearson_r", "n/a")
            lines.append(f"| {method} | {run['engine']} | {run['precision']} | {cells.get(1, '')} | {cells.get(8, '')} | {e2e} | {acc} |")
    lines += ["", "Notes: " + result["notes"], ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not VIDEO.is_file():
        sys.exit(f"{VIDEO} not found")
    from vadistill.runtime.bench import bench

    WORK.mkdir(parents=True, exist_ok=True)
    model_path = train_model()
    seconds = 1.0 if args.quick else 3.0
    result = {"command": command_line(),
              "git_revision": git_revision(), "machine": machine_info(), "threads": torch.get_num_threads(),
              "model": "AED-MAE demo_config() (96x160, patch 8), 3+1 epochs on vtest.avi frames 0-199, no pasted "
                       "anomalies; Fast-AED default config (128x192) and DAKD default Student (1024-d features, "
                       "32 snippets) with random weights, speed only"}
    result["score"] = [bench_score(model_path, engine) for engine in ("torch", "onnx")]
    print(json.dumps(result["score"]), file=sys.stderr)
    result["watch"] = bench_watch(model_path, 8, 10.0 if args.quick else 60.0)
    print(json.dumps({k: v for k, v in result["watch"].items() if k != "streams"}), file=sys.stderr)
    result["engines"] = {}
    models = {"aed-mae": model_path, **random_models()}
    for method, path in models.items():
        result["engines"][method] = bench(path, batches=(1, 8), precisions=("fp32", "bf16", "int8"),
                                          engines=("torch", "onnx"), seconds=seconds,
                                          video=str(VIDEO) if method == "aed-mae" else None,
                                          accuracy_frames=64, log=lambda line: print(line, file=sys.stderr))
    result["notes"] = ("end-to-end = decode + resize + network + filters per frame, batch 1 (streaming); "
                       "score fps also includes the overlay video and plot. int8 = ONNX Runtime dynamic "
                       "quantisation of MatMul/Gemm.")
    stem = "runtime_vtest_quick" if args.quick else "runtime_vtest"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"{stem}.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
