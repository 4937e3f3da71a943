"""The one training loop of vadistill, shared by every method.

A method describes one training *stage* with a handful of callables and hands them to
:func:`run_stage`; the loop does the rest the same way for everybody:

* epochs of ``train_step(batch) -> {"loss": ..., ...}`` over ``make_batches(epoch)``, with a tqdm
  bar. The method's ``train_step`` owns its optimizer step(s): a two-optimizer (adversarial)
  method simply steps both inside it, in plain sight;
* a validation number after each epoch (``validate() -> float``, lower is better), early stopping
  after ``patience`` epochs without improvement, and the best epoch's state restored at the end;
* an atomic checkpoint of the stage after every epoch (``get_state()``: model *and* optimizer
  state) and, inside long epochs, every :data:`CHECKPOINT_SECONDS` (see
  :func:`checkpoint_interval`), so ``resume=True`` continues an interrupted run where it was cut
  off: finished stages are skipped (their best state is loaded), a stage killed mid-epoch goes on
  from the last checkpointed step of that epoch, with the torch random state and the epoch's
  running loss sums restored. The resumed run sees the same batches, takes the same steps and
  counts them the same as an uninterrupted one;
* a stop with :class:`TrainingDiverged` (a RuntimeError) on the first non-finite loss, before
  anything is written, so the last good checkpoint stays on disk;
* ``history.jsonl`` (one JSON line per epoch) and ``config.json`` (see :func:`prepare_run_dir`)
  in the run folder;
* on several processes (``torchrun``, see :mod:`vadistill.distributed`) each process trains on its
  share of every batch; losses are averaged over processes, only rank 0 writes files, and
  rank 0's validation value decides early stopping for all.

Determinism on resume: ``make_batches(epoch)`` should derive its randomness from the epoch
number (e.g. ``numpy.random.default_rng([seed, epoch])``); then an interrupted and resumed run
sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from tqdm.auto import tqdm

from vadistill import distributed
from vadistill.checkpoint import load_checkpoint, save_checkpoint
from vadistill.errors import InputError
from vadistill.io.atomic import atomic_write_text

STAGE_FORMAT_VERSION = 1

# Seconds between checkpoints inside an epoch (the end of every epoch is always checkpointed).
# Five minutes bounds the work a crash loses without spending much time writing; 0 checkpoints
# after every step (tests). Change it with `checkpoint_interval` or `vadistill train --checkpoint-every`.
CHECKPOINT_SECONDS = 300.0


@contextlib.contextmanager
def checkpoint_interval(seconds: float):
    """Within the block, stages checkpoint every `seconds` inside an epoch (0: after every step)."""
    global CHECKPOINT_SECONDS
    if seconds < 0:
        raise ValueError(f"checkpoint interval must be >= 0 seconds, got {seconds}")
    saved, CHECKPOINT_SECONDS = CHECKPOINT_SECONDS, float(seconds)
    try:
        yield
    finally:
        CHECKPOINT_SECONDS = saved


class TrainingDiverged(RuntimeError):
    """A loss or validation value became NaN or infinite; training stopped."""


@dataclass
class StageResult:
    """What :func:`run_stage` did.

    Attributes:
        stage: the stage name.
        best_epoch: 0-based epoch whose state was restored (-1 when no epoch ran).
        best_val: its validation value.
        epochs_run: epochs completed in total (this call and earlier, resumed calls).
        stopped_early: True when patience ran out before num_epochs.
        resumed_from: epochs already done when this call started (0 for a fresh stage).
        history: one dict per completed epoch (the lines of history.jsonl for this stage).
    """

    stage: str
    best_epoch: int
    best_val: float
    epochs_run: int
    stopped_early: bool
    resumed_from: int = 0
    history: list[dict] = field(default_factory=list)


def prepare_run_dir(run_dir: str | Path, config: dict, *, resume: bool, defaults: dict | None = None) -> Path:
    """Create the run folder and write the resolved config to ``config.json``.

    On resume the saved config must equal `config`: continuing a run with other settings
    would silently mix two experiments. A setting added to vadistill after the run started is
    missing from its saved config; ``defaults`` (same nesting as `config`, e.g. ``{"config":
    MethodConfig().to_dict()}``) fills such keys before the comparison, since a run that started
    before a setting existed ran with its default (new settings default to the old behaviour).

    Raises:
        InputError: resuming a run folder whose config.json differs from `config`.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with distributed.main_first():  # rank 0 checks and cleans the folder before the others look at it
        if distributed.is_main():
            _prepare_run_dir(run_dir, config, resume=resume, defaults=defaults)
    return run_dir


def _with_defaults(saved, defaults):
    """`saved` with the keys it lacks taken from `defaults`, nested dicts filled the same way."""
    if not isinstance(saved, dict) or not isinstance(defaults, dict):
        return saved
    return {**defaults, **{key: _with_defaults(value, defaults.get(key)) for key, value in saved.items()}}


def _prepare_run_dir(run_dir: Path, config: dict, *, resume: bool, defaults: dict | None = None) -> None:
    config_path = run_dir / "config.json"
    text = json.dumps(config, indent=2, sort_keys=True, default=str)
    if resume and config_path.exists():
        try:
            saved = json.loads(config_path.read_text())
        except (OSError, ValueError) as error:
            raise InputError(config_path, f"cannot resume: not a readable run config ({error}); "
                             "use a new run folder") from None
        if defaults:
            saved = _with_defaults(saved, json.loads(json.dumps(defaults, default=str)))
        current = json.loads(text)  # the same JSON types as the saved file (tuples become lists)
        if saved != current:
            changed = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
            raise InputError(config_path, f"cannot resume: the run was started with a different config "
                             f"(differs in {', '.join(changed)}); use a new run folder or resume=False")
    if not resume:
        # A fresh run owns the folder's log and stage checkpoints.
        (run_dir / "history.jsonl").unlink(missing_ok=True)
        for old in run_dir.glob("stage_*.ckpt"):
            old.unlink()
    atomic_write_text(config_path, text + "\n")


def stage_checkpoint_path(run_dir: str | Path, stage: str) -> Path:
    return Path(run_dir) / f"stage_{stage}.ckpt"


def _check_finite(values: dict[str, float], stage: str, epoch: int, step: int, checkpoint: Path) -> None:
    for name, value in values.items():
        if not math.isfinite(value):
            kept = f"the last good checkpoint is kept at {checkpoint}" if checkpoint.exists() else "no checkpoint was written yet"
            raise TrainingDiverged(f"stage {stage!r}, epoch {epoch}, step {step}: {name} is {value} "
                                   f"(non-finite); training stopped, {kept}. Lower the learning rate or check the input data.")


def run_stage(
    stage: str,
    *,
    train_step: Callable[[Any], dict[str, float]],
    make_batches: Callable[[int], Iterable],
    validate: Callable[[], float],
    get_state: Callable[[], dict],
    set_state: Callable[[dict], None],
    num_epochs: int,
    patience: int | None,
    run_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    min_delta: float = 0.0,
    on_epoch_start: Callable[[int], None] | None = None,
    on_epoch_end: Callable[[int], None] | None = None,
) -> StageResult:
    """Train one stage with validation, early stopping, checkpoints and resume.

    Args:
        stage: short name ("teacher", "student", ...); names the checkpoint and log lines.
        train_step: one optimisation step on one batch; returns named float losses
            (a "loss" entry is shown on the progress bar). It calls its optimizer(s) itself.
        make_batches: the batches of one epoch, given the 0-based epoch number.
        validate: validation value after an epoch, lower is better (computed on normal data).
        get_state: everything needed to continue training (model and optimizer state dicts),
            as checkpoint-safe plain types and tensors.
        set_state: inverse of `get_state`.
        num_epochs: maximum number of epochs.
        patience: stop after this many epochs without improvement (None: never stop early).
        run_dir: run folder (created); holds ``stage_<name>.ckpt`` and ``history.jsonl``.
        resume: continue from ``stage_<name>.ckpt`` if it exists.
        progress: show tqdm bars.
        min_delta: an epoch improves only if its value is below best - min_delta.
        on_epoch_start: called with the epoch number before its batches (e.g. set train mode).
        on_epoch_end: called (main process only) with the epoch number once the epoch is trained,
            validated and checkpointed, while the model still holds that epoch's weights.

    Returns:
        A StageResult; the best epoch's state has been loaded through `set_state`.

    Raises:
        TrainingDiverged: a training loss or the validation value is NaN/inf.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = stage_checkpoint_path(run_dir, stage)
    history_path = run_dir / "history.jsonl"
    main = distributed.is_main()
    progress = progress and main

    start_epoch, best_val, best_epoch, bad_epochs = 0, math.inf, -1, 0
    best_state: dict | None = None
    history: list[dict] = []
    partial: dict | None = None  # where a stage killed mid-epoch stopped
    if resume and ckpt_path.exists():
        saved = load_checkpoint(ckpt_path)
        if saved.get("stage") != stage or saved.get("format_version") != STAGE_FORMAT_VERSION:
            raise InputError(ckpt_path, f"not a checkpoint of stage {stage!r} (format {STAGE_FORMAT_VERSION})")
        history = list(saved["history"])
        best_val, best_epoch, bad_epochs = saved["best_val"], saved["best_epoch"], saved["bad_epochs"]
        best_state = saved["best_state"]
        start_epoch = saved["epoch"] + 1
        if saved["finished"]:
            set_state(best_state)
            return StageResult(stage, best_epoch, best_val, start_epoch, saved["stopped_early"], start_epoch, history)
        set_state(saved["state"])
        partial = saved.get("partial")
    resumed_from = start_epoch

    def checkpoint(epoch_done: int, finished: bool, stopped: bool, partial_state: dict | None) -> None:
        save_checkpoint(ckpt_path, {
            "format_version": STAGE_FORMAT_VERSION, "stage": stage, "epoch": epoch_done,
            "state": get_state(), "best_state": best_state, "best_val": best_val,
            "best_epoch": best_epoch, "bad_epochs": bad_epochs, "finished": finished,
            "stopped_early": stopped, "history": history, "partial": partial_state,
        })

    stopped_early = False
    for epoch in range(start_epoch, num_epochs):
        if on_epoch_start is not None:
            on_epoch_start(epoch)
        sums: dict[str, float] = {}
        steps, skip, seconds_before = 0, 0, 0.0
        if partial is not None and partial["epoch"] == epoch:
            # Killed mid-epoch: the batches of this epoch are rebuilt (same seed) and the first
            # `skip` of them, already trained on, are passed over; the random state is restored
            # after on_epoch_start re-seeded it.
            steps = skip = int(partial["steps"])
            sums = dict(partial["sums"])
            seconds_before = float(partial["seconds"])
            torch.set_rng_state(partial["torch_rng"])
        partial = None
        started = last_checkpoint = time.perf_counter()
        bar = tqdm(make_batches(epoch), desc=f"{stage} {epoch + 1}/{num_epochs}", disable=not progress,
                   leave=False, dynamic_ncols=True)
        for index, batch in enumerate(bar):
            if index < skip:
                continue
            values = {name: float(value) for name, value in train_step(distributed.shard_batch(batch)).items()}
            values = distributed.mean_over_processes(values)
            _check_finite(values, stage, epoch, steps, ckpt_path)
            for name, value in values.items():
                sums[name] = sums.get(name, 0.0) + value
            steps += 1
            if "loss" in values:
                bar.set_postfix(loss=f"{values['loss']:.4g}")
            if main and time.perf_counter() - last_checkpoint >= CHECKPOINT_SECONDS:
                checkpoint(epoch - 1, False, False, {
                    "epoch": epoch, "steps": steps, "sums": dict(sums), "torch_rng": torch.get_rng_state(),
                    "seconds": seconds_before + time.perf_counter() - started})
                last_checkpoint = time.perf_counter()
        bar.close()
        if steps == 0:
            raise InputError(run_dir, f"stage {stage!r}: epoch {epoch} produced no training batch (no training data?)")
        val = distributed.broadcast_float(float(validate()))
        _check_finite({"validation": val}, stage, epoch, steps, ckpt_path)

        improved = val < best_val - min_delta
        if improved:
            best_val, best_epoch, bad_epochs = val, epoch, 0
            best_state = copy.deepcopy(get_state())
        else:
            bad_epochs += 1
        stopped_early = patience is not None and bad_epochs >= patience
        finished = stopped_early or epoch == num_epochs - 1
        record = {"stage": stage, "epoch": epoch, "train": {k: v / steps for k, v in sums.items()},
                  "val": val, "best_val": best_val, "best_epoch": best_epoch, "improved": improved,
                  "steps": steps, "seconds": round(seconds_before + time.perf_counter() - started, 3)}
        history.append(record)
        if main:
            checkpoint(epoch, finished, stopped_early, None)
            with open(history_path, "a") as log:
                log.write(json.dumps(record) + "\n")
            if on_epoch_end is not None:
                on_epoch_end(epoch)
        if progress:
            tqdm.write(f"[{stage}] epoch {epoch + 1}/{num_epochs}  train " +
                       " ".join(f"{k}={v / steps:.4g}" for k, v in sums.items()) +
                       f"  val={val:.4g}{'  *' if improved else ''}  ({record['seconds']:.1f}s)")
        if stopped_early:
            break

    if best_state is not None:
        set_state(best_state)
    return StageResult(stage, best_epoch, best_val, len(history), stopped_early, resumed_from, history)


def clone_state_dict(module: torch.nn.Module) -> dict:
    """A detached CPU copy of a module's state dict (safe to keep while training goes on)."""
    return {name: tensor.detach().to("cpu", copy=True) for name, tensor in module.state_dict().items()}
