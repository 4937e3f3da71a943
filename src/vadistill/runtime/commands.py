"""The runtime verbs of the `vadistill` command: score, watch, export, bench, report.

``add_runtime_verbs(subparsers)`` registers them on the CLI's argparse subparsers; each verb's
handler takes the parsed arguments (including the global ``--quiet``) and returns an exit code.
User errors raise :class:`vadistill.errors.InputError` (one line, exit code 2, printed by the CLI).
Heavy imports happen inside the handlers so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vadistill.argtypes import comma_list, finite_float, non_negative_float, positive_float, positive_int
from vadistill.errors import EXIT_USER_ERROR, InputError
from vadistill.io.atomic import atomic_write_text


def _threads(args: argparse.Namespace) -> None:
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


# -- handlers -------------------------------------------------------------------------------------
def run_score(args: argparse.Namespace) -> int:
    """Score every source; failures are reported per source and give exit code 2 at the end."""
    _check_dask_options(args)
    if args.engine == "dask":
        return run_score_on_dask(args)
    from vadistill.runtime.model import load_model
    from vadistill.runtime.score import score_sources

    _threads(args)
    model = load_model(args.model, engine=args.engine)
    quiet = getattr(args, "quiet", False)
    _, failures = score_sources(model, args.sources, Path(args.out), progress=not quiet, threshold=args.threshold,
                                overlay=not args.no_overlay, labels_file=args.labels,
                                log=(lambda line: None) if quiet else print)
    if failures:
        print(f"vadistill: {len(failures)} of {len(args.sources)} source(s) failed", file=sys.stderr)
        return EXIT_USER_ERROR
    return 0


def _check_dask_options(args: argparse.Namespace) -> None:
    """--scheduler, --workers and --force only mean something to --engine dask: say so rather than ignore them."""
    given = [flag for flag, value in (("--scheduler", args.scheduler), ("--workers", args.workers),
                                      ("--force", args.force)) if value]
    if args.engine != "dask" and given:
        raise InputError(given[0], "only applies to --engine dask")
    if args.scheduler and args.workers:
        raise InputError("--workers", "sizes the local cluster; the cluster behind --scheduler has its own workers")


def run_score_on_dask(args: argparse.Namespace) -> int:
    """`score --engine dask`: one Dask task per video, finished videos skipped, summary in the output folder."""
    from vadistill.runtime.dask_engine import score_on_dask

    quiet = getattr(args, "quiet", False)
    summary = score_on_dask(args.model, args.sources, args.out, scheduler=args.scheduler, workers=args.workers or 2,
                            threads=args.threads, force=args.force, progress=not quiet,
                            log=(lambda line: None) if quiet else print, threshold=args.threshold,
                            overlay=not args.no_overlay, labels_file=args.labels)
    if summary.failed:
        print(f"vadistill: {len(summary.failed)} of {len(args.sources)} source(s) failed "
              f"(listed in {Path(args.out) / 'dask_summary.json'})", file=sys.stderr)
        return EXIT_USER_ERROR
    return 0


def run_watch(args: argparse.Namespace) -> int:
    from vadistill.runtime.model import load_model
    from vadistill.runtime.watch import watch

    _threads(args)
    model = load_model(args.model, engine=args.engine)
    quiet = getattr(args, "quiet", False)
    handle = sys.stdout if args.events in (None, "-") else open(args.events, "a", buffering=1)
    try:
        summary = watch(model, args.sources, events=handle, webhook=args.webhook, max_fps=args.max_fps,
                        duration=args.duration, threshold=args.threshold,
                        status_every=0 if quiet else args.status_every, status=None if quiet else sys.stderr)
    finally:
        if handle is not sys.stdout:
            handle.close()
    if not quiet:
        print(json.dumps({"summary": summary.as_dict()}), file=sys.stderr)
    return 0


def run_export(args: argparse.Namespace) -> int:
    from vadistill.runtime.export import export_onnx

    onnx_path, sidecar = export_onnx(args.model, args.out)
    if not getattr(args, "quiet", False):
        print(f"wrote {onnx_path} (metadata also in {sidecar})")
    return 0


def run_bench(args: argparse.Namespace) -> int:
    from vadistill.runtime.bench import bench

    _threads(args)
    quiet = getattr(args, "quiet", False)
    log = (lambda line: None) if quiet else (lambda line: print(line, file=sys.stderr))
    result = bench(args.model, batches=args.batch, precisions=args.precision, engines=args.engine,
                   seconds=args.seconds, video=args.video, log=log)
    text = json.dumps(result, indent=2)
    if args.out:
        atomic_write_text(Path(args.out), text + "\n")
    print(text)
    return 0


def run_report(args: argparse.Namespace) -> int:
    from vadistill.runtime.run_report import build_report

    path = build_report(args.run, args.out, labels_file=args.labels, videos_dir=args.videos)
    if not getattr(args, "quiet", False):
        print(f"wrote {path}")
    return 0


# -- parsers --------------------------------------------------------------------------------------
def add_runtime_verbs(subparsers) -> None:
    """Register score, watch, export, bench and report on the CLI's subparsers."""
    score = subparsers.add_parser(
        "score", help="score video files, frame folders, stream URLs or webcams with a trained model",
        description="Per-frame scores (CSV + JSON), anomalous segments, a score plot and an overlay video per source. "
                    "A failing source is reported in one line; the others go on; exit code 2 if any failed. "
                    "With --engine dask the videos are scored in parallel on Dask workers (one task per video, same "
                    "outputs), videos already scored to the end are skipped on a rerun, and a summary is written to "
                    "OUT/dask_summary.json.")
    score.add_argument("model", help="model.ckpt (or an exported .onnx with --engine onnx)")
    score.add_argument("sources", nargs="+", metavar="SOURCE", help="video file, frame folder, rtsp/http URL or webcam index")
    score.add_argument("--out", default="vadistill-scores", help="output folder (default: ./vadistill-scores)")
    score.add_argument("--threshold", type=finite_float, help="decision threshold (default: calibrated on normal data, in the model)")
    score.add_argument("--no-overlay", action="store_true", help="do not write the overlay video")
    score.add_argument("--labels", help="custom labels (CSV video,start,end or JSON) to shade in the plots")
    score.add_argument("--engine", default="torch", choices=("torch", "onnx", "dask"),
                       help="torch: PyTorch in this process (default); onnx: ONNX Runtime; dask: the torch network "
                            "on Dask workers, one task per video file or frame folder, resumable "
                            "(no live streams; needs vadistill[dask])")
    score.add_argument("--threads", type=positive_int, help="CPU threads (default: torch's; with --engine dask: torch threads "
                                                   "per worker, default CPU count / workers on the local cluster)")
    score.add_argument("--scheduler", metavar="ADDRESS",
                       help="--engine dask: a running Dask scheduler, e.g. tcp://host:8786 (default: start a local "
                            "cluster bound to 127.0.0.1); workers must see the same paths")
    score.add_argument("--workers", type=positive_int, help="--engine dask without --scheduler: worker processes (default 2)")
    score.add_argument("--force", action="store_true",
                       help="--engine dask: rescore videos already scored to the end (default: skip them; "
                            "the other engines always rescore)")
    score.set_defaults(handler=run_score)

    watch = subparsers.add_parser(
        "watch", help="monitor live streams, batched across streams; anomaly events as JSON lines",
        description="Frames are dropped (and the drop rate reported) when inference falls behind; lost streams "
                    "are reopened with exponential backoff. Stops on Ctrl-C or after --duration.")
    watch.add_argument("model", help="model.ckpt (or an exported .onnx with --engine onnx)")
    watch.add_argument("sources", nargs="+", metavar="SOURCE", help="stream URL, webcam index, video file or frame folder")
    watch.add_argument("--events", default="-", help="JSON-lines event file ('-' = stdout, the default)")
    watch.add_argument("--webhook", help="POST every event as JSON to this URL (failures are logged, not fatal)")
    watch.add_argument("--max-fps", type=non_negative_float, default=0.0, help="process at most this many frames/s per stream")
    watch.add_argument("--duration", type=positive_float, help="stop after this many seconds (default: until Ctrl-C)")
    watch.add_argument("--threshold", type=finite_float, help="decision threshold (default: the model's)")
    watch.add_argument("--status-every", type=positive_float, default=5.0, help="seconds between status lines (stderr)")
    watch.add_argument("--engine", default="torch", choices=("torch", "onnx"))
    watch.add_argument("--threads", type=positive_int, help="CPU threads (default: torch's)")
    watch.set_defaults(handler=run_watch)

    export = subparsers.add_parser("export", help="export a model's inference graph (ONNX, dynamic batch)")
    export.add_argument("model", help="model.ckpt")
    export.add_argument("--format", default="onnx", choices=("onnx",))
    export.add_argument("--out", help="output .onnx (default: beside the model, same name)")
    export.set_defaults(handler=run_export)

    bench = subparsers.add_parser("bench", help="throughput and latency per engine, precision and batch size (JSON)")
    bench.add_argument("model", help="model.ckpt")
    bench.add_argument("--batch", type=comma_list(positive_int), default=(1, 8), help="batch sizes, e.g. 1,8 (default)")
    bench.add_argument("--precision", type=comma_list(str), default=("fp32",), help="fp32,bf16,int8 (default fp32)")
    bench.add_argument("--engine", type=comma_list(str), default=("torch",), help="torch,onnx (default torch)")
    bench.add_argument("--seconds", type=positive_float, default=5.0, help="seconds per measurement (default 5)")
    bench.add_argument("--video", help="video for the end-to-end and accuracy runs (default: generated frames)")
    bench.add_argument("--threads", type=positive_int, help="CPU threads (default: torch's)")
    bench.add_argument("--out", help="also write the JSON here")
    bench.set_defaults(handler=run_bench)

    report = subparsers.add_parser(
        "report", help="self-contained HTML report of a run folder",
        description="RUN holds metrics.json and scores.json (what `vadistill train` writes), optionally model.ckpt. "
                    "Labels come from the dataset named in metrics.json or from --labels.")
    report.add_argument("run", help="run folder")
    report.add_argument("--out", help="HTML file (default: RUN/report.html)")
    report.add_argument("--labels", help="custom labels file instead of the dataset's")
    report.add_argument("--videos", help="with --labels: folder holding the videos (for thumbnails)")
    report.set_defaults(handler=run_report)

