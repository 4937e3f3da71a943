"""`vadistill watch`: live monitoring of several streams with one batched forward pass per step.

Threads and data flow::

    SourceReader (one thread per source)          Monitor (main thread)
      decode -> keep the NEWEST frame only  --->   take the newest frame of every stream,
      (a frame not taken before the next one       push it into that stream's ClipStreamScorer,
       arrives is dropped and counted)             stack the ready clips of ALL streams into one
      source lost -> reopen with exponential       batch, one engine call, hand each stream its
      backoff (0.5 s, 1 s, 2 s, ... 30 s)          outputs -> online scores -> events

Why drop instead of queue: a monitor that falls behind must stay live; a queue would grow
without bound and alarms would come later and later. Consequence: when frames are dropped (or
sub-sampled with ``max_fps``), the clip offsets (t-3, t, t+3) count PROCESSED frames, so the
model sees a faster-looking scene; the drop rate in the status lines says how much.

Files and frame folders are played in real time at their own frame rate (25 fps when unknown),
like a camera, and when they end they are reopened after the backoff, like a lost stream.

Memory is bounded over hours: per stream one frame slot, the scorer's ring buffers, fixed-size
deques for the fps estimate; nothing grows with the number of frames.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TextIO

import numpy as np

from vadistill.errors import InputError
from vadistill.io.video import is_stream, open_video
from vadistill.runtime.events import EventDetector, EventSink, utc_now
from vadistill.runtime.score import source_name
from vadistill.runtime.stream import stream_scorer


class SourceReader(threading.Thread):
    """Decodes one source in the background and keeps only its newest frame.

    Args:
        source: file, folder, URL or webcam index.
        max_fps: keep at most this many frames per second (0: all); frames skipped by this limit
            are counted in ``skipped``, not in ``dropped``.
        stop: set to end the thread.
        backoff: (first, largest) delay in seconds between reopen attempts (doubles each failure).
        log: where lost / restored lines go.

    Attributes (read by the monitor, written only here or under the lock):
        generation: incremented each time the source (re)opens; a new generation = a new stream.
        received, dropped, skipped: frame counters since start.
        state: "connecting", "live" or "lost: <reason>".
    """

    def __init__(self, source: str, max_fps: float, stop: threading.Event, backoff: tuple[float, float] = (0.5, 30.0),
                 on_event=None):
        super().__init__(name=f"vadistill-reader-{source}", daemon=True)
        self.source = source
        self.max_fps = max_fps
        self.stop = stop
        self.backoff = backoff
        self.on_event = on_event or (lambda kind, detail: None)
        self.lock = threading.Lock()
        self.slot: tuple[int, np.ndarray] | None = None  # (generation, frame)
        self.generation = 0
        self.received = self.dropped = self.skipped = 0
        self.state = "connecting"
        self.retry_at = 0.0

    def take(self) -> tuple[int, np.ndarray] | None:
        """The newest frame not taken yet, with its generation; None when there is none."""
        with self.lock:
            item, self.slot = self.slot, None
        return item

    def run(self) -> None:
        delay = self.backoff[0]
        live = is_stream(self.source)
        while not self.stop.is_set():
            try:
                reader = open_video(self.source)
            except InputError as error:
                self._lost(error.problem, delay)
                if self.stop.wait(delay):
                    return
                delay = min(delay * 2, self.backoff[1])
                continue
            with reader:
                self.generation += 1
                if self.generation > 1:
                    self.on_event("stream_restored", f"reopened (generation {self.generation})")
                self.state = "live"
                delay = self.backoff[0]
                period = 1.0 / (reader.fps if reader.fps and reader.fps > 0 else 25.0)
                keep_every = 1.0 / self.max_fps if self.max_fps else 0.0
                next_due = time.monotonic()
                last_kept = -1e9
                reason = "ended"
                try:
                    for frame in reader:
                        if self.stop.is_set():
                            return
                        now = time.monotonic()
                        if not live:  # play files/folders in real time, like a camera
                            next_due += period
                            if next_due > now:
                                self.stop.wait(next_due - now)
                                now = time.monotonic()
                        self.received += 1
                        if now - last_kept < keep_every:
                            self.skipped += 1
                            continue
                        last_kept = now
                        with self.lock:
                            if self.slot is not None:
                                self.dropped += 1  # the monitor did not take the previous one in time
                            self.slot = (self.generation, frame)
                except InputError as error:
                    reason = error.problem
            if self.stop.is_set():
                return
            self._lost(reason, delay)
            if self.stop.wait(delay):
                return
            delay = min(delay * 2, self.backoff[1])

    def _lost(self, reason: str, delay: float) -> None:
        self.state = f"lost: {reason}"
        self.retry_at = time.monotonic() + delay
        self.on_event("stream_lost", f"{reason}; retrying in {delay:g} s")


@dataclass
class StreamState:
    """The monitor's view of one stream."""

    name: str
    reader: SourceReader
    detector: EventDetector | None
    scorer: object | None = None
    generation: int = 0
    processed: int = 0
    frame: int = -1  # last final frame of the current generation
    last_score: float = float("nan")
    first_time: float = 0.0  # monotonic time of the first / last frame processed
    last_time: float = 0.0
    times: deque = field(default_factory=lambda: deque(maxlen=64))  # processing times, for fps


@dataclass
class WatchSummary:
    """Per-stream totals when the monitor stops (also what the benchmark reports)."""

    seconds: float
    streams: dict[str, dict]
    events: int
    batches: int
    mean_batch: float

    def as_dict(self) -> dict:
        return {"seconds": round(self.seconds, 2), "events": self.events, "batches": self.batches,
                "mean_batch": round(self.mean_batch, 2), "streams": self.streams}


def _fps(times: deque) -> float:
    if len(times) < 2 or times[-1] == times[0]:
        return 0.0
    return (len(times) - 1) / (times[-1] - times[0])


def watch(model, sources: list[str], *, events: TextIO = sys.stdout, webhook: str | None = None,
          max_fps: float = 0.0, duration: float | None = None, threshold: float | None = None,
          status_every: float = 5.0, status: TextIO | None = sys.stderr,
          backoff: tuple[float, float] = (0.5, 30.0)) -> WatchSummary:
    """Monitor `sources` until Ctrl-C or `duration` seconds; returns per-stream totals.

    Args:
        model: a RuntimeModel whose method streams (AED-MAE).
        sources: files, folders, stream URLs, webcam indices.
        events: where event JSON lines go.
        webhook: URL to POST every event to (failures logged, not fatal).
        max_fps: per-stream processing cap (0 = as fast as frames come).
        duration: stop after this many seconds (None: until Ctrl-C).
        threshold: decision threshold (default: the model's calibrated one).
        status_every: seconds between status lines (0: none).
        status: where status lines go (None: nowhere).
        backoff: first and largest reopen delay, seconds.

    Raises:
        InputError: no threshold, or a method that cannot stream.
    """
    from vadistill.runtime.events import Webhook

    if model.engine is None:
        raise InputError(model.name, "watch needs a streaming method with an inference graph (AED-MAE)")
    threshold = model.threshold if threshold is None else threshold
    if threshold is None:
        raise InputError(model.path, "the model has no calibrated threshold: pass --threshold")
    stream_scorer(model.method)  # fails early, with the reason, for methods that cannot stream
    hook = Webhook(webhook) if webhook else None
    sink = EventSink(events, hook)
    stop = threading.Event()
    sink_lock = threading.Lock()

    def emitter(name: str):
        def on_event(kind: str, detail: str) -> None:
            with sink_lock:
                sink.emit({"event": kind, "stream": name, "time": utc_now(), "detail": detail})
        return on_event

    streams: list[StreamState] = []
    names: set[str] = set()
    for source in sources:
        name = source_name(source)
        while name in names:
            name += "_"
        names.add(name)
        reader = SourceReader(str(source), max_fps, stop, backoff, emitter(name))
        streams.append(StreamState(name, reader, EventDetector(name, threshold)))
    for stream in streams:
        stream.reader.start()

    started = time.monotonic()
    next_status = started + status_every if status_every else float("inf")
    batches = batch_items = 0
    try:
        while duration is None or time.monotonic() - started < duration:
            ready: list[tuple[StreamState, np.ndarray]] = []
            for stream in streams:
                item = stream.reader.take()
                if item is None:
                    if stream.detector.open is not None and stream.reader.state.startswith("lost"):
                        with sink_lock:  # no more frames will close it: end it now
                            sink.emit(stream.detector.close(stream.frame, reason="stream lost"))
                    continue
                generation, frame = item
                if generation != stream.generation:  # (re)opened: a new stream, fresh context
                    with sink_lock:
                        sink.emit(stream.detector.close(stream.frame, reason="stream restarted"))
                    stream.scorer, stream.generation, stream.frame = stream_scorer(model.method), generation, -1
                stream.scorer.push(frame)
                stream.processed += 1
                stream.last_time = time.monotonic()
                if stream.processed == 1:
                    stream.first_time = stream.last_time
                stream.times.append(stream.last_time)
                x = stream.scorer.take_inputs()
                if x is not None:
                    ready.append((stream, x))
            if not ready:
                time.sleep(0.002)
            else:
                # One forward pass over the newest clip of every stream that has one.
                outputs = model.engine(np.concatenate([x for _, x in ready]))
                batches += 1
                batch_items += len(ready)
                first = 0
                for stream, x in ready:
                    part = tuple(o[first:first + len(x)] for o in outputs)
                    first += len(x)
                    for result in stream.scorer.give_outputs(part):
                        stream.frame, stream.last_score = result.index, result.online
                        with sink_lock:
                            sink.emit(stream.detector.update(result.index, result.online))
            if status is not None and time.monotonic() >= next_status:
                next_status += status_every
                print(_status_line(streams, time.monotonic() - started), file=status, flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        for stream in streams:
            with sink_lock:
                sink.emit(stream.detector.close(stream.frame, reason="monitor stopped"))
        for stream in streams:
            stream.reader.join(timeout=2.0)
        if hook is not None:
            hook.close()
    elapsed = time.monotonic() - started
    totals = {}
    for stream in streams:
        reader = stream.reader
        offered = stream.processed + reader.dropped
        live_for = (stream.last_time - stream.first_time) if stream.processed > 1 else 0.0
        totals[stream.name] = {
            "source": reader.source, "processed": stream.processed,
            # Sustained rate while frames came (opening a file, which counts its frames, is not included).
            "fps": round((stream.processed - 1) / live_for, 2) if live_for > 0 else 0.0,
            "received": reader.received, "dropped": reader.dropped, "skipped_by_max_fps": reader.skipped,
            "drop_rate": round(reader.dropped / offered, 4) if offered else 0.0,
            "reopened": max(reader.generation - 1, 0), "state": reader.state,
        }
    return WatchSummary(elapsed, totals, sink.count, batches, batch_items / batches if batches else 0.0)


def _status_line(streams: list[StreamState], elapsed: float) -> str:
    parts = []
    for stream in streams:
        reader = stream.reader
        if reader.state != "live":
            wait = max(0.0, reader.retry_at - time.monotonic())
            parts.append(f"{stream.name}: {reader.state}" + (f" (retry in {wait:.0f} s)" if reader.state != "connecting" else ""))
            continue
        offered = stream.processed + reader.dropped
        drop = 100.0 * reader.dropped / offered if offered else 0.0
        parts.append(f"{stream.name}: {_fps(stream.times):.1f} fps, drop {drop:.0f}%, score {stream.last_score:.2f}")
    return f"[watch {elapsed:.0f}s] " + " | ".join(parts)
