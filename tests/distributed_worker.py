"""Run by tests/test_distributed.py under torchrun (2 processes, gloo): one synchronised step.

Each process keeps its share of a global batch (`shard_batch`), takes one SGD step through an
optimizer wrapped by `synchronize`, and writes what the test compares with a single process.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from vadistill import distributed


def main(out: Path) -> None:
    assert distributed.init_from_environment(), "expected to run under torchrun with 2 processes"
    rank = distributed.rank()
    torch.manual_seed(100 + rank)  # different on purpose: synchronize() must broadcast rank 0's weights
    linear = torch.nn.Linear(4, 3)
    norm = torch.nn.BatchNorm1d(3)
    optimizer = distributed.synchronize(torch.optim.SGD([*linear.parameters(), *norm.parameters()], lr=0.1),
                                        linear, norm)
    generator = torch.Generator().manual_seed(0)
    batch = {"x": torch.randn(8, 4, generator=generator), "y": torch.randn(8, 3, generator=generator), "seed": 7}
    mine = distributed.shard_batch(batch)
    loss = torch.nn.functional.mse_loss(linear(mine["x"]), mine["y"])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    norm(linear(mine["x"]))  # moves the running statistics differently on each process...
    distributed.average_buffers(norm)  # ...until they are averaged

    order = []
    with distributed.main_first():
        order.append(f"rank{rank}-after-main" if rank else "main")
    losses = distributed.mean_over_processes({"loss": float(loss), "rank": float(rank)})
    (out / f"rank{rank}.json").write_text(json.dumps({
        "samples": len(mine["x"]), "seed": mine["seed"],
        "weight": linear.weight.tolist(), "bias": linear.bias.tolist(),
        "running_mean": norm.running_mean.tolist(), "losses": losses,
        "validation": distributed.broadcast_float(float(rank) + 0.5)}))
    distributed.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
