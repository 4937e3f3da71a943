"""`vadistill score --engine dask`: score an archive of videos on Dask distributed workers.

Why Dask: scoring an archive is embarrassingly parallel (one video, one task), but a real run
needs what a process pool lacks: workers on several machines (``--scheduler tcp://host:8786``),
a scheduler that reruns the task of a worker that died, and one code path from a laptop to a
cluster. Without ``--scheduler`` a :class:`distributed.LocalCluster` of ``--workers`` processes
is started on this machine.

Identical outputs: a task is :func:`vadistill.runtime.score.score_source`, the function the
single-process path (``--engine torch``) calls, with the same torch network, options and output
names (:func:`~vadistill.runtime.score.output_names`), so the files are the same; the JSON says
``"engine": "torch fp32"`` because that is the engine that ran. Each worker loads the checkpoint
once (:func:`worker_model`) and keeps it for every video it scores. PyTorch promises equal floats
only for equal thread counts: give both runs the same ``--threads`` when comparing bytes (the
local cluster's default is the CPU count divided by the workers). Paths are used as given, so
the local cluster's workers (same machine, same working directory) see what the command line
names; with ``--scheduler`` the workers may run elsewhere, so paths are made absolute (and the
JSON records them so) and must be on a file system every worker mounts at the same place.

Resume: a video whose outputs are complete (``<name>.scores.json``, written last and atomically,
names the same source, model file and threshold; see :func:`~vadistill.runtime.score.finished_outputs`)
is not submitted again; ``--force`` rescores everything. A killed run leaves no marker for the
videos it was scoring, so a rerun scores exactly those and the ones it had not reached.

Failures stay with their video: a task returns a user error (missing, corrupt, unreadable file)
as a value (one line naming the file and what was expected); any other exception fails only its
future. A worker that dies (segfault, out of memory) has its task rerun on another worker; a
task that kills ``allowed-failures`` + 1 workers is marked failed (set to 1 on the local cluster:
a poisonous video costs two worker restarts, not four). The client keeps at most one task per
worker thread in flight, because the scheduler counts every task assigned to a dying worker
against that limit, queued ones included: a crash is counted against the video that caused it,
not against the videos queued behind it. Every
failure is printed in one line, listed in ``<out>/dask_summary.json`` (done / skipped / failed,
with timings), and makes the command exit with code 2 once all videos are through.

Security: the local cluster binds its scheduler, workers and nannies to 127.0.0.1 and serves no
dashboard (the scheduler's health/metrics HTTP endpoint is on a random loopback port), so nothing
is reachable from another machine; connecting to a remote scheduler is an explicit ``--scheduler``.
Dask is optional (``pip install 'vadistill[dask]'``) and imported only when this engine is used.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from vadistill.errors import InputError
from vadistill.io.video import is_stream

# The scheduler marks a task failed after it has killed this many workers + 1.
ALLOWED_FAILURES = 1
SUMMARY_FILE = "dask_summary.json"


# -- worker side ----------------------------------------------------------------------------------
_worker_cache: dict = {}  # {"key": (path, mtime, size, threads), "model": RuntimeModel}
_worker_cache_lock = threading.Lock()  # a worker with several threads must load the model once


def worker_model(model_path: str, threads: int | None):
    """The model for `model_path`, loaded once per worker process and kept for its next tasks.

    Keyed by the checkpoint's modification time and size too, so that a long-lived worker notices
    a retrained checkpoint; only the latest model is kept, so a shared worker does not accumulate
    every model it ever ran.
    """
    from vadistill.runtime.model import load_model

    try:
        stat = os.stat(model_path)
    except OSError:
        raise InputError(model_path, "model checkpoint not found on this Dask worker "
                                     "(workers must see the same paths as the client)") from None
    key = (model_path, stat.st_mtime_ns, stat.st_size, threads)
    with _worker_cache_lock:
        if _worker_cache.get("key") != key:
            if threads:
                import torch

                torch.set_num_threads(threads)
            _worker_cache.update(key=key, model=load_model(model_path, engine="torch"))
        return _worker_cache["model"]


@dataclass
class VideoOutcome:
    """What one task reports back: the result, or the one-line user error of its video."""

    source: str
    name: str
    result: object = None  # VideoScoreResult when it worked
    error: str | None = None
    seconds: float = 0.0
    worker: str = ""


def score_video_task(model_path: str, source: str, name: str, out_dir: str, threads: int | None,
                     options: dict) -> VideoOutcome:
    """One Dask task: score one video with the single-process code and write its outputs.

    User errors come back as a value, not an exception: they are not worth a retry or a worker
    traceback in the logs, and InputError (two constructor arguments) does not survive pickling.
    """
    from vadistill.runtime.score import score_source

    started = time.perf_counter()
    worker = _worker_address()
    try:
        model = worker_model(model_path, threads)
        result = score_source(model, source, out_dir, name=name, progress=False, **options)
    except InputError as error:
        return VideoOutcome(source, name, error=str(error), seconds=time.perf_counter() - started, worker=worker)
    return VideoOutcome(source, name, result=result, seconds=time.perf_counter() - started, worker=worker)


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except ValueError:  # not inside a worker (called directly)
        return ""


# -- client side ----------------------------------------------------------------------------------
@dataclass
class DaskRunSummary:
    """What a run did; written to ``<out>/dask_summary.json``."""

    model: str
    scheduler: str = ""
    done: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    unfinished: list[dict] = field(default_factory=list)  # interrupted before their task reported
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"model": self.model, "scheduler": self.scheduler, "seconds": round(self.seconds, 3),
                "counts": {"done": len(self.done), "skipped": len(self.skipped), "failed": len(self.failed),
                           "unfinished": len(self.unfinished)},
                "done": self.done, "skipped": self.skipped, "failed": self.failed, "unfinished": self.unfinished}


def require_dask() -> None:
    """Raise a one-line InputError when Dask distributed is not installed."""
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError:
        raise InputError("--engine dask", "needs Dask distributed: pip install 'vadistill[dask]'") from None


def refuse_live_sources(sources: list[str]) -> None:
    """--engine dask scores finished files: a stream or webcam never ends, so it cannot be one task."""
    for source in sources:
        if is_stream(source):
            raise InputError(source, "a live stream or webcam cannot be scored with --engine dask "
                                     "(one task per video file or frame folder): use --engine torch or `vadistill watch`")


def score_on_dask(model_path: str | Path, sources: list[str], out_dir: str | Path, *, scheduler: str | None = None,
                  workers: int = 2, threads: int | None = None, force: bool = False, progress: bool = True,
                  log=print, threshold: float | None = None, overlay: bool = True,
                  labels_file: str | Path | None = None) -> DaskRunSummary:
    """Score video files and frame folders on Dask, one task per video; same outputs as `score_sources`.

    Args:
        model_path: checkpoint (.ckpt), run with the torch engine on every worker.
        sources: video files and frame folders (live streams and webcams are refused).
        out_dir: output folder (shared by all workers).
        scheduler: address of a running Dask scheduler; None: start a LocalCluster on 127.0.0.1.
        workers: worker processes of the local cluster (one thread each).
        threads: torch threads per worker (default: local cluster: CPU count / workers; remote: torch's).
        force: rescore videos whose outputs are already complete.
        progress: progress bar ("scored 3/12") on stderr.
        log: where the per-video lines go (print by default; errors always go to stderr).
        threshold, overlay, labels_file: as for :func:`vadistill.runtime.score.score_source`.

    Returns:
        the summary, also written to ``<out_dir>/dask_summary.json``; ``summary.failed`` non-empty
        means the CLI exits with code 2.

    Raises:
        InputError: Dask missing, a live source, an unreadable model, an unreachable scheduler.
    """
    from vadistill.runtime.model import load_model
    from vadistill.runtime.score import finished_outputs, output_names

    require_dask()
    refuse_live_sources(sources)
    if workers < 1:
        raise InputError(workers, "--workers must be at least 1")
    if scheduler:  # remote workers run in another working directory, maybe on another machine
        model_path, out_dir = os.path.abspath(model_path), os.path.abspath(out_dir)
        sources = [os.path.abspath(source) for source in sources]
        labels_file = os.path.abspath(labels_file) if labels_file else None
    elif threads is None:
        threads = max(1, (os.cpu_count() or 1) // workers)  # the local workers share this machine's cores
    model_path, out_dir = str(Path(model_path)), Path(out_dir)  # as load_model records it in the JSON
    # Loaded here once to fail fast (one line, before any cluster starts) and for the resume check's threshold.
    model_threshold = load_model(model_path, engine="torch").threshold  # the model itself is not kept here
    threshold_used = model_threshold if threshold is None else threshold
    options = {"threshold": threshold, "overlay": overlay, "labels_file": labels_file}

    summary = DaskRunSummary(model=model_path)
    jobs = []
    for source, name in zip(sources, output_names(sources)):
        if not force and finished_outputs(out_dir, name, source, model_path, threshold_used, overlay):
            summary.skipped.append({"source": source, "name": name})
        else:
            jobs.append((source, name))
    if summary.skipped:
        log(f"skipped {len(summary.skipped)} finished videos (--force rescores them)")

    started = time.perf_counter()
    try:
        if jobs:
            with connected_client(scheduler, workers) as client:
                summary.scheduler = client.scheduler.address
                _run_jobs(client, jobs, (model_path, str(out_dir), threads, options), summary, progress, log)
    finally:
        reported = {entry["name"] for entry in summary.done + summary.failed}  # names are unique, sources may not be
        summary.unfinished = [{"source": s, "name": n} for s, n in jobs if n not in reported]
        summary.seconds = time.perf_counter() - started
        _write_summary(out_dir / SUMMARY_FILE, summary)
    return summary


@contextmanager
def connected_client(address: str | None, workers: int):
    """A Client of the scheduler at `address`, or of a new LocalCluster on loopback (closed on exit)."""
    import dask
    from distributed import Client, LocalCluster

    if address:
        try:
            client = Client(address, timeout=10)
        except (OSError, TimeoutError, ValueError) as error:
            raise InputError(address, "no Dask scheduler answered there (expected e.g. tcp://host:8786): "
                                      f"{_first_line(error)}") from None
        with client:
            yield client
        return
    # The scheduler reads allowed-failures when it is created: set it around the creation only.
    with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}):
        cluster = LocalCluster(n_workers=workers, processes=True, threads_per_worker=1, host="127.0.0.1",
                               dashboard_address=None,  # no dashboard, and the scheduler's HTTP endpoint on loopback:
                               scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
    with cluster, Client(cluster) as client:
        yield client


def _run_jobs(client, jobs: list[tuple[str, str]], task_args: tuple, summary: DaskRunSummary, progress: bool,
              log) -> None:
    """Submit the jobs (at most one per worker thread in flight) and collect them as they finish."""
    from asyncio import CancelledError

    from distributed import KilledWorker, as_completed
    from tqdm import tqdm

    from vadistill.runtime.score import describe_result

    model_path, out_dir, threads, options = task_args
    waiting = list(reversed(jobs))
    in_flight = as_completed()
    job_of: dict[str, tuple[str, str]] = {}
    reported = 0
    run_tag = uuid.uuid4().hex  # keys unique per run; one key prefix, so the scheduler sees one task group

    def top_up() -> None:
        """Submit until every worker thread has one task (asked each time: clusters grow and shrink)."""
        threads_now = max(1, sum(client.nthreads().values()))
        while waiting and len(job_of) - reported < threads_now:
            source, name = waiting.pop()
            key = f"vadistill-score-{run_tag}-{len(job_of)}"
            job_of[key] = (source, name)
            # retries=0: a task's exception is a bug or a bad file, the same on every try; a dead
            # worker is another matter, handled by the scheduler (allowed-failures).
            in_flight.add(client.submit(score_video_task, model_path, source, name, out_dir, threads, options,
                                        key=key, retries=0))

    top_up()
    with tqdm(total=len(jobs), desc="scored", unit="video", disable=not progress, file=sys.stderr) as bar:
        for future in in_flight:
            source, name = job_of[future.key]
            try:
                outcome = future.result()
                error = outcome.error
            except KilledWorker as killed:
                outcome, error = None, (f"{source}: the Dask workers scoring it died {killed.allowed_failures + 1} "
                                        "times (crash or out of memory); a rerun tries it again")
            except (Exception, CancelledError) as crash:  # noqa: BLE001  a bug or a cancelled task: this video only
                outcome, error = None, f"{source}: scoring failed ({type(crash).__name__}: {_first_line(crash)})"
            future.release()  # the result is ours now: workers need not keep it
            with bar.external_write_mode():
                if error is not None:
                    summary.failed.append({"source": source, "name": name, "error": error,
                                           "seconds": round(outcome.seconds, 3) if outcome else None})
                    print(f"vadistill: error: {error}", file=sys.stderr)
                else:
                    result = outcome.result
                    summary.done.append({"source": source, "name": name, "frames": len(result.scores),
                                         "segments": len(result.segments), "seconds": round(outcome.seconds, 3),
                                         "worker": outcome.worker})
                    log(describe_result(source, result, out_dir))
            bar.update(1)
            reported += 1
            top_up()


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else "no message"


def _write_summary(path: Path, summary: DaskRunSummary) -> None:
    from vadistill.io.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(summary.as_dict(), indent=1) + "\n")


__all__ = ["DaskRunSummary", "score_on_dask", "score_video_task", "worker_model"]
