"""Anomaly events from live scores, written as JSON lines and optionally POSTed to a webhook.

An anomaly event runs from the first frame whose online score goes above the threshold to the
last one before it falls back (same rule as :func:`vadistill.scoring.find_segments`, applied
online). Event lines (one JSON object per line)::

    {"event": "anomaly_start", "stream": "cam1", "frame": 120, "time": "2025-...Z", "score": 3.2}
    {"event": "anomaly_end", "stream": "cam1", "start_frame": 120, "end_frame": 161,
     "start_time": "...", "end_time": "...", "duration_s": 4.1, "peak_score": 7.9, "peak_frame": 140}
    {"event": "stream_lost" | "stream_restored", "stream": "cam1", "time": "...", "detail": "..."}

Times are UTC wall-clock (ISO 8601) when the frame's score became final; frame numbers count
the frames the monitor processed since the stream (re)opened.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TextIO


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _Open:
    start_frame: int
    start_time: str
    start_clock: float
    peak_score: float
    peak_frame: int


class EventDetector:
    """Online segments above a threshold for one stream (O(1) memory).

    Args:
        stream: the stream's name, written into every event.
        threshold: a frame is anomalous when its score is strictly above it.
    """

    def __init__(self, stream: str, threshold: float):
        self.stream = stream
        self.threshold = threshold
        self.open: _Open | None = None

    def update(self, frame: int, score: float) -> dict | None:
        """Feed one final online score; returns an event dict when an anomaly starts or ends."""
        if score > self.threshold:
            if self.open is None:
                self.open = _Open(frame, utc_now(), time.monotonic(), score, frame)
                return {"event": "anomaly_start", "stream": self.stream, "frame": frame, "time": self.open.start_time,
                        "score": round(float(score), 4)}
            if score > self.open.peak_score:
                self.open.peak_score, self.open.peak_frame = score, frame
            return None
        return self.close(frame - 1) if self.open is not None else None

    def close(self, last_frame: int, reason: str | None = None) -> dict | None:
        """End an open anomaly (the stream ended or was lost); None when none is open."""
        if self.open is None:
            return None
        event = {"event": "anomaly_end", "stream": self.stream, "start_frame": self.open.start_frame,
                 "end_frame": max(last_frame, self.open.start_frame), "start_time": self.open.start_time,
                 "end_time": utc_now(), "duration_s": round(time.monotonic() - self.open.start_clock, 3),
                 "peak_score": round(float(self.open.peak_score), 4), "peak_frame": self.open.peak_frame}
        if reason:
            event["reason"] = reason
        self.open = None
        return event


class Webhook:
    """POSTs events as JSON to a URL from a background thread; failures are logged, never fatal.

    A bounded queue (``max_pending``) keeps a dead or slow endpoint from growing memory: when it
    is full, new events are not sent (counted in ``dropped``).
    """

    def __init__(self, url: str, timeout: float = 5.0, max_pending: int = 1000, log: TextIO = sys.stderr):
        self.url, self.timeout, self.log = url, timeout, log
        self.queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self.sent = self.failed = self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="vadistill-webhook", daemon=True)
        self._thread.start()

    def post(self, event: dict) -> None:
        try:
            self.queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while True:
            event = self.queue.get()
            if event is None:
                return
            request = urllib.request.Request(self.url, data=json.dumps(event).encode(), method="POST",
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    response.read()
                self.sent += 1
            except (urllib.error.URLError, OSError, ValueError) as error:
                self.failed += 1
                print(f"vadistill: warning: webhook {self.url} failed for {event.get('event')}: {error}", file=self.log)

    def close(self, wait: float = 5.0) -> None:
        """Send what is queued (up to `wait` seconds), then stop."""
        try:
            self.queue.put(None, timeout=wait)
        except queue.Full:
            return
        self._thread.join(wait)


class EventSink:
    """Writes events as JSON lines to a stream (stdout or a file) and to an optional webhook."""

    def __init__(self, out: TextIO, webhook: Webhook | None = None):
        self.out, self.webhook = out, webhook
        self.count = 0

    def emit(self, event: dict | None) -> None:
        if event is None:
            return
        self.out.write(json.dumps(event) + "\n")
        self.out.flush()
        self.count += 1
        if self.webhook is not None:
            self.webhook.post(event)
