import json

import numpy as np
import pytest
import torch

from vadistill.errors import InputError
from vadistill.train import TrainingDiverged, prepare_run_dir, run_stage, stage_checkpoint_path


class Regression:
    """A tiny but real training problem: fit y = 3x - 1 with one linear layer and SGD."""

    def __init__(self, lr=0.05, interrupt_at=None, nan_at=None):
        torch.manual_seed(0)
        self.net = torch.nn.Linear(1, 1)
        self.opt = torch.optim.SGD(self.net.parameters(), lr=lr, momentum=0.9)
        self.interrupt_at, self.nan_at = interrupt_at, nan_at
        self.epoch = 0
        x = torch.linspace(-1, 1, 64)[:, None]
        self.x, self.y = x, 3 * x - 1
        self.xv, self.yv = x[::7] + 0.01, 3 * (x[::7] + 0.01) - 1

    def make_batches(self, epoch):
        self.epoch = epoch
        order = np.random.default_rng([0, epoch]).permutation(64)
        for start in range(0, 64, 16):
            yield order[start:start + 16]

    def train_step(self, idx):
        if self.interrupt_at is not None and self.epoch == self.interrupt_at:
            raise KeyboardInterrupt
        loss = torch.nn.functional.mse_loss(self.net(self.x[idx]), self.y[idx])
        if self.nan_at is not None and self.epoch >= self.nan_at:
            loss = loss * float("nan")
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return {"loss": loss.item()}

    def validate(self):
        with torch.no_grad():
            return torch.nn.functional.mse_loss(self.net(self.xv), self.yv).item()

    def get_state(self):
        return {"net": self.net.state_dict(), "opt": self.opt.state_dict()}

    def set_state(self, state):
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])

    def run(self, run_dir, num_epochs=6, patience=None, resume=False):
        return run_stage("fit", train_step=self.train_step, make_batches=self.make_batches, validate=self.validate,
                         get_state=self.get_state, set_state=self.set_state, num_epochs=num_epochs,
                         patience=patience, run_dir=run_dir, resume=resume, progress=False)


def test_trains_logs_and_checkpoints(tmp_path):
    problem = Regression()
    result = problem.run(tmp_path)
    assert result.epochs_run == 6 and result.best_val < 0.2
    lines = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == list(range(6))
    assert stage_checkpoint_path(tmp_path, "fit").exists()


def test_on_epoch_end_sees_each_epochs_own_weights(tmp_path):
    problem = Regression(lr=1.5)  # validation gets worse after a while, so the best epoch is not the last
    seen = {}

    def keep(epoch):
        seen[epoch] = (problem.net.weight.item(), problem.validate())

    result = run_stage("fit", train_step=problem.train_step, make_batches=problem.make_batches,
                       validate=problem.validate, get_state=problem.get_state, set_state=problem.set_state,
                       num_epochs=8, patience=None, run_dir=tmp_path, progress=False, on_epoch_end=keep)
    assert sorted(seen) == list(range(8))
    history_vals = [record["val"] for record in result.history]
    assert [val for _, val in (seen[e] for e in range(8))] == pytest.approx(history_vals)
    assert result.best_epoch != 7 and seen[7][1] != pytest.approx(result.best_val)


def test_early_stopping_restores_best_epoch(tmp_path):
    problem = Regression(lr=1.5)  # too large: validation gets worse after a while
    result = problem.run(tmp_path, num_epochs=30, patience=2)
    assert result.stopped_early and result.epochs_run < 30
    assert result.epochs_run == result.best_epoch + 3
    assert problem.validate() == pytest.approx(result.best_val)


def test_resume_after_interruption_matches_uninterrupted_run(tmp_path):
    reference = Regression()
    reference.run(tmp_path / "ref")

    broken = Regression(interrupt_at=3)
    with pytest.raises(KeyboardInterrupt):
        broken.run(tmp_path / "run")
    resumed = Regression()  # a fresh process: new objects, state comes from the checkpoint
    result = resumed.run(tmp_path / "run", resume=True)
    assert result.resumed_from == 3 and result.epochs_run == 6
    for key, value in reference.net.state_dict().items():
        assert torch.allclose(resumed.net.state_dict()[key], value)
    # A finished stage is skipped on a further resume, and its best state is loaded.
    again = Regression()
    skipped = again.run(tmp_path / "run", resume=True)
    assert skipped.resumed_from == 6 and skipped.best_val == result.best_val
    assert again.validate() == pytest.approx(result.best_val)


def test_non_finite_loss_stops_with_clear_message_and_keeps_last_checkpoint(tmp_path):
    problem = Regression(nan_at=2)
    with pytest.raises(TrainingDiverged, match=r"stage 'fit', epoch 2.*loss is nan.*last good checkpoint"):
        problem.run(tmp_path)
    saved = torch.load(stage_checkpoint_path(tmp_path, "fit"), weights_only=True)
    assert saved["epoch"] == 1 and np.isfinite(saved["best_val"])


def test_run_dir_config_and_resume_guard(tmp_path):
    prepare_run_dir(tmp_path, {"lr": 0.1}, resume=False)
    assert json.loads((tmp_path / "config.json").read_text()) == {"lr": 0.1}
    prepare_run_dir(tmp_path, {"lr": 0.1}, resume=True)
    with pytest.raises(InputError, match="differs in lr"):
        prepare_run_dir(tmp_path, {"lr": 0.2}, resume=True)


def test_resume_accepts_a_run_started_before_a_setting_existed(tmp_path):
    """A run folder written before `student_pastes` (say) existed lacks that key; it ran with the
    setting's default, so resuming with the default is the same run, and with another value is not."""
    run = tmp_path / "run"
    prepare_run_dir(run, {"method": "m", "config": {"lr": 0.1, "paste": {"scale": [0.1, 0.5]}}}, resume=False)
    defaults = {"config": {"lr": 1.0, "student_pastes": True, "paste": {"scale": [0.1, 0.5], "gain": [1.0, 1.0]}}}
    now = {"method": "m", "config": {"lr": 0.1, "student_pastes": True, "paste": {"scale": [0.1, 0.5], "gain": [1.0, 1.0]}}}
    with pytest.raises(InputError, match="differs in config"):
        prepare_run_dir(run, now, resume=True)  # without defaults: refused, as before
    prepare_run_dir(run, now, resume=True, defaults=defaults)
    changed = {**now, "config": {**now["config"], "student_pastes": False}}
    prepare_run_dir(tmp_path / "other", {"method": "m", "config": {"lr": 0.1}}, resume=False)
    with pytest.raises(InputError, match="differs in config"):
        prepare_run_dir(tmp_path / "other", changed, resume=True, defaults=defaults)
