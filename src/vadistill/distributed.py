"""Data-parallel training on several processes (``torchrun``), shared by every method.

    torchrun --standalone --nproc-per-node 2 $(which vadistill) train aed-mae --dataset ped2 ...

How it works, and why this way rather than wrapping models in ``DistributedDataParallel``:

* **Same batches, split by rank.** Every process builds the same global batch (the methods' batch
  generators are seeded by (seed, stage, epoch)) and keeps the samples ``rank::world_size`` of it
  (:func:`shard_batch`, called by :func:`vadistill.train.run_stage`). With the gradients averaged,
  one optimisation step on N processes is the step one process takes on the whole batch: the batch
  size, learning rate, number of steps and epochs keep their meaning, so a configuration gives the
  same quality whatever the number of processes. The price is that each process also prepares the
  samples of the others (cheap next to the forward/backward of the models here).
* **Gradients averaged in an optimiser pre-step hook** (:func:`synchronize`). The methods' training
  steps own their optimisers (Fast-AED steps two, the discriminators' and the student's, in one
  batch), so averaging at ``optimizer.step()`` covers every case without touching their losses;
  DDP would need one wrapper per module and ``find_unused_parameters`` for the frozen parts of
  AED-MAE's second stage.
* **Batch-norm buffers averaged after each step**, like DDP's ``broadcast_buffers`` keeps the
  copies equal, so every process holds the same model and rank 0's checkpoint is the model.
* **Rank 0 writes** (checkpoints, logs, caches); the others wait at a barrier when they need what
  it wrote (:func:`main_first`). Losses reported and checked for NaN are means over all
  processes, so every process stops together.

The backend is gloo (CPU); on GPUs NCCL would be the choice, with one device per process. Without
``torchrun`` (no ``WORLD_SIZE`` in the environment) every function here is a no-op.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
import torch.distributed as dist


def init_from_environment() -> bool:
    """Join the process group that ``torchrun`` describes in the environment (gloo).

    Returns True when running on several processes. Safe to call twice and without torchrun.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    # A long timeout: the other processes wait at a barrier while rank 0 alone fills caches (e.g.
    # Fast-AED's teachers, tens of minutes on a CPU); gloo's default of 30 minutes is too short.
    dist.init_process_group(backend="gloo", timeout=datetime.timedelta(hours=6))
    # Each process gets an equal share of the cores unless the user said otherwise.
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // dist.get_world_size()))
    return dist.get_world_size() > 1


def shutdown(*, failed: bool = False) -> None:
    """Leave the process group; after a failure without the final barrier, which the other
    processes (stuck in a collective, or already gone) would never reach."""
    if dist.is_available() and dist.is_initialized():
        if not failed:
            dist.barrier()
        dist.destroy_process_group()


_alone = 0  # > 0 inside `alone()`: this process acts as if it were the only one


def _grouped() -> bool:
    return _alone == 0 and dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if _grouped() else 1


def rank() -> int:
    return dist.get_rank() if _grouped() else 0


@contextlib.contextmanager
def alone() -> Iterator[None]:
    """Inside the block this process trains and writes as if it were the only one.

    For work done once and cached, with :func:`main_first`: rank 0 computes it alone (no
    collective calls that the waiting processes would never answer), then the others find it in
    the cache.
    """
    global _alone
    _alone += 1
    try:
        yield
    finally:
        _alone -= 1


def is_main() -> bool:
    """True in the process that writes files (rank 0, or the only process)."""
    return rank() == 0


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (e.g. fills a cache); the others run it afterwards (and read it)."""
    if not is_main():
        barrier()
    try:
        yield
    finally:
        if is_main():
            barrier()


# -- batches ---------------------------------------------------------------------------------
def shard_batch(batch: Any) -> Any:
    """This process's share of a batch: samples ``rank::world_size`` of every batch-first array.

    Tensors, numpy arrays and lists are sliced along their first axis; tuples, dicts and
    dataclasses are walked; other values (ints, strings, None) are kept. Strided rather than
    contiguous slices keep class-balanced batches balanced on every process (DAKD puts the
    abnormal bags first, the normal ones second). A batch smaller than the number of processes is
    used whole by every process: the averaged gradient is then the whole batch's gradient.
    """
    size = world_size()
    if size == 1:
        return batch
    length = _batch_length(batch)
    if length is None or length < size:
        return batch
    return _slice(batch, rank(), size)


def _batch_length(value: Any) -> int | None:
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return len(value) if value.ndim else None
    if isinstance(value, list):
        return len(value)
    children = _children(value)
    for child in children:
        length = _batch_length(child)
        if length is not None:
            return length
    return None


def _children(value: Any) -> Iterable[Any]:
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return value
    if isinstance(value, dict):
        return value.values()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [getattr(value, f.name) for f in dataclasses.fields(value)]
    return ()


def _slice(value: Any, start: int, step: int) -> Any:
    if isinstance(value, torch.Tensor):
        return value[start::step].contiguous() if value.ndim else value
    if isinstance(value, np.ndarray):
        return np.ascontiguousarray(value[start::step]) if value.ndim else value
    if isinstance(value, list):
        return value[start::step]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(_slice(v, start, step) for v in value)
    if isinstance(value, dict):
        return {k: _slice(v, start, step) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: _slice(getattr(value, f.name), start, step)
                                             for f in dataclasses.fields(value) if f.init})
    return value


# -- keeping the copies equal ----------------------------------------------------------------
def synchronize(optimizer: torch.optim.Optimizer, *modules: torch.nn.Module) -> torch.optim.Optimizer:
    """Make `optimizer` average gradients over processes before each step; keep `modules` equal.

    At registration the parameters and buffers of `modules` are broadcast from rank 0 (the models
    start equal even if a process seeded differently); after each step their floating-point
    buffers (batch-norm running statistics) are averaged. Returns the optimizer. No-op on one
    process.
    """
    if world_size() == 1:
        return optimizer
    for module in modules:
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)
    optimizer.register_step_pre_hook(lambda opt, args, kwargs: average_gradients(_parameters_of(opt)))
    if modules:
        optimizer.register_step_post_hook(lambda opt, args, kwargs: average_buffers(*modules))
    return optimizer


def _parameters_of(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]


def average_gradients(parameters: list[torch.Tensor]) -> None:
    """Mean of every parameter's gradient over the processes, in one all-reduce.

    A parameter without a gradient on every process keeps ``grad=None`` (the optimizer skips it,
    as it would on one process); one that has a gradient somewhere gets the mean, with zeros
    standing in for the processes where it had none.
    """
    size = world_size()
    if size == 1 or not parameters:
        return
    present = torch.tensor([p.grad is not None for p in parameters], dtype=torch.int32)
    dist.all_reduce(present)
    used = [p for p, n in zip(parameters, present.tolist()) if n > 0]
    if not used:
        return
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in used])
    dist.all_reduce(flat)
    flat /= size
    offset = 0
    for p in used:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def average_buffers(*modules: torch.nn.Module) -> None:
    """Mean of the floating-point buffers (batch-norm running statistics) over the processes."""
    size = world_size()
    if size == 1:
        return
    for module in modules:
        for buffer in module.buffers():
            if buffer.is_floating_point():
                dist.all_reduce(buffer.data)
                buffer.data /= size


def mean_over_processes(values: dict[str, float]) -> dict[str, float]:
    """Means of named floats over the processes (the whole batch's loss; NaN anywhere is NaN)."""
    if world_size() == 1 or not values:
        return values
    names = list(values)  # the same names in the same order on every process (same train_step)
    tensor = torch.tensor([values[n] for n in names], dtype=torch.float64)
    dist.all_reduce(tensor)
    return {n: float(v) / world_size() for n, v in zip(names, tensor.tolist())}


def broadcast_float(value: float) -> float:
    """Rank 0's value on every process (e.g. the validation value that decides early stopping)."""
    if world_size() == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64)
    dist.broadcast(tensor, src=0)
    return float(tensor.item())
