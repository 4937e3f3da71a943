"""`vadistill train` end to end on a small custom dataset, and its configuration errors."""

import json
import re

import pytest
import torch

from vadistill import cli
from vadistill.errors import EXIT_USER_ERROR

TINY = ["input_size=[48,80]", "patch_size=8", "embed_dim=32", "depth=1", "num_heads=2", "decoder_dim=16",
        "decoder_heads=2", "decoder_depth=2", "batch_size=8", "teacher_epochs=1", "student_epochs=1",
        "max_steps_per_epoch=3", "map_filter=[3,3,3]", "paste.probability=0.0"]


def test_train_writes_model_scores_and_metrics(custom_dataset, tmp_path):
    torch.set_num_threads(1)
    run_dir = tmp_path / "run"
    argv = ["--quiet", "train", "aed-mae", "--dataset", "custom", "--root", str(custom_dataset),
            "--run-dir", str(run_dir)] + [arg for pair in TINY for arg in ("--set", pair)]
    assert cli.main(argv) == 0
    assert (run_dir / "model.ckpt").is_file() and (run_dir / "config.json").is_file()
    scores = json.loads((run_dir / "scores.json").read_text())
    assert list(scores) == ["cart"] and len(scores["cart"]) == 30
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["method"]["name"] == "aed-mae" and "gaussian" in metrics["method"]["temporal_filter"]


@pytest.fixture(scope="module")
def tiny_model(custom_dataset, tmp_path_factory):
    """A tiny AED-MAE trained by `vadistill train` (no synthetic anomalies, no evaluation)."""
    torch.set_num_threads(1)
    run_dir = tmp_path_factory.mktemp("tiny") / "run"
    argv = ["--quiet", "train", "aed-mae", "--dataset", "custom", "--root", str(custom_dataset),
            "--run-dir", str(run_dir), "--no-eval"] + [arg for pair in TINY for arg in ("--set", pair)]
    assert cli.main(argv) == 0
    return run_dir / "model.ckpt"


def test_rescore_changes_scoring_without_retraining(custom_dataset, tiny_model, tmp_path):
    from vadistill.methods.aed_mae import AedMae

    base = ["--quiet", "rescore", str(tiny_model), "--dataset", "custom", "--root", str(custom_dataset)]
    # fixed weights and unmasked inference: recalibrated, saved, evaluated
    fixed = tmp_path / "fixed"
    assert cli.main(base + ["--out", str(fixed), "--set", "score_weights=[0.0,0.0,1.0]",
                            "--set", "inference_mask_ratio=0"]) == 0
    summary = json.loads((fixed / "rescore.json").read_text())
    assert summary["changes"] == {"score_weights": [0.0, 0.0, 1.0], "inference_mask_ratio": 0}
    original, rescored = AedMae.load(tiny_model), AedMae.load(fixed / "model.ckpt")
    assert rescored.config.inference_mask_ratio == 0 and tuple(rescored.config.score_weights) == (0.0, 0.0, 1.0)
    assert rescored.score_stats_["teacher"] != original.score_stats_["teacher"]  # recalibrated unmasked
    first_scores = json.loads((fixed / "scores.json").read_text())["cart"]
    assert len(first_scores) == 30
    # again into the same folder with other weights: the earlier test scores are not reused
    assert cli.main(base + ["--out", str(fixed), "--set", "score_weights=[1.0,0.0,0.0]",
                            "--set", "inference_mask_ratio=0"]) == 0
    assert json.loads((fixed / "scores.json").read_text())["cart"] != first_scores
    # weights chosen on synthetic validation: the model trained without pastes, so objects are
    # harvested from the training videos for the choice
    chosen = tmp_path / "chosen"
    assert cli.main(base + ["--out", str(chosen), "--no-eval", "--set", "weight_selection=synthetic-validation",
                            "--set", "validation_paste_scale=training", "--set", "pixel_norm=true"]) == 0
    report = json.loads((chosen / "rescore.json").read_text())["weight_selection"]
    loaded = AedMae.load(chosen / "model.ckpt")
    assert report["positives"] > 0 and report["paste_scale"] == list(loaded.config.paste.scale)
    # centred where the walkers of the training videos are (the default placement)
    assert report["paste_centres"] > 0 and loaded.config.validation_paste_positions == "scene"
    # per-pixel statistics measured on the training videos and saved with the model
    assert loaded.config.pixel_norm and loaded.pixel_stats_["teacher_std"].shape == loaded.config.input_size
    assert abs(sum(report["weights"]) - 1) < 1e-9 and not (chosen / "scores.json").exists()
    assert list(loaded.config.score_weights) == report["weights"] and loaded.weight_selection_ == report


FAST_TINY = ["input_size=[48,80]", "channels=[8,16,32]", "depth=1", "num_heads=2", "epochs=1", "batch_size=8",
             "max_steps_per_epoch=3", "pseudo_count=16", "ae.epochs=1", "knn.pca_dim=8"]


def test_rescore_changes_the_scoring_of_a_fast_aed_model(custom_dataset, tmp_path):
    from vadistill.methods.fast_aed import FastAed

    torch.set_num_threads(1)
    run_dir = tmp_path / "run"
    assert cli.main(["--quiet", "train", "fast-aed", "--dataset", "custom", "--root", str(custom_dataset),
                     "--run-dir", str(run_dir), "--no-eval"] + [a for pair in FAST_TINY for a in ("--set", pair)]) == 0
    out = tmp_path / "mean"
    assert cli.main(["--quiet", "rescore", str(run_dir / "model.ckpt"), "--dataset", "custom", "--root",
                     str(custom_dataset), "--out", str(out), "--set", "teacher_combine=mean",
                     "--set", "temporal_filter.sigma=2"]) == 0
    summary = json.loads((out / "rescore.json").read_text())
    assert summary["method"] == "fast-aed" and set(summary["changes"]) == {"teacher_combine", "temporal_filter"}
    original, rescored = FastAed.load(run_dir / "model.ckpt"), FastAed.load(out / "model.ckpt")
    assert rescored.config.teacher_combine == "mean" and rescored.config.temporal_filter.sigma == 2
    assert rescored.threshold_ == summary["threshold"] != original.threshold_  # recalibrated
    assert len(json.loads((out / "scores.json").read_text())["cart"]) == 30  # and evaluated
    # a training setting is refused in one line, nothing written
    assert cli.main(["rescore", str(run_dir / "model.ckpt"), "--dataset", "custom", "--root", str(custom_dataset),
                     "--out", str(tmp_path / "refused"), "--set", "epochs=3"]) == EXIT_USER_ERROR
    assert not (tmp_path / "refused").exists()


@pytest.mark.parametrize("overrides, expected", [
    (["embed_dim=8"], "embed_dim need(s) retraining"),
    (["weight_selection=synthetic-validation", "score_weights=[0.5,0.5,0.0]"], "weight_selection='fixed'"),
    (["score_weights=[1,2]"], "score_weights"),
])
def test_rescore_refuses_training_settings_in_one_line(custom_dataset, tiny_model, tmp_path, capsys,
                                                       overrides, expected):
    argv = ["rescore", str(tiny_model), "--dataset", "custom", "--root", str(custom_dataset),
            "--out", str(tmp_path / "out")] + [arg for pair in overrides for arg in ("--set", pair)]
    code = cli.main(argv)
    error = capsys.readouterr().err.strip()
    assert code == EXIT_USER_ERROR and expected in error and len(error.splitlines()) == 1
    assert not (tmp_path / "out").exists()  # nothing written


@pytest.mark.parametrize("override, expected", [("no_such_field=1", "no_such_field"), ("patch_size=7", "multiple")])
def test_bad_configuration_is_one_line_exit_2(custom_dataset, tmp_path, capsys, override, expected):
    code = cli.main(["train", "aed-mae", "--dataset", "custom", "--root", str(custom_dataset),
                     "--run-dir", str(tmp_path / "run"), "--set", override])
    error = capsys.readouterr().err.strip()
    assert code == EXIT_USER_ERROR and expected in error and len(error.splitlines()) == 1


def test_train_pastes_the_objects_of_a_given_bank(custom_dataset, tmp_path, capsys):
    import numpy as np

    from vadistill.data.pseudo import ObjectBank, ObjectSequence

    torch.set_num_threads(1)
    # a bank of one bright square, 4 frames long, written as `vadistill data bank` writes it
    square = ObjectSequence(tuple([np.full((10, 10, 3), 250, np.uint8)] * 4), tuple([np.ones((10, 10), bool)] * 4))
    bank = ObjectBank([square], "one square").save(tmp_path / "bank")
    pasting = [pair for pair in TINY if not pair.startswith("paste.")] + ["paste.probability=0.5"]
    base = ["--quiet", "train", "aed-mae", "--dataset", "custom", "--root", str(custom_dataset), "--no-eval"]
    run_dir = tmp_path / "run"
    argv = base + ["--run-dir", str(run_dir), "--bank", str(bank)] + [arg for pair in pasting for arg in ("--set", pair)]
    assert cli.main(argv) == 0
    recorded = json.loads((run_dir / "config.json").read_text())["object_bank"]
    assert recorded == f"loaded from {bank.absolute()}: 1 sequences"
    # `vadistill data bank --harvest` cuts the walkers out of a training video into a loadable bank
    harvested = tmp_path / "harvested"
    video = custom_dataset / "train" / "normal_0.avi"
    assert cli.main(["--quiet", "data", "bank", "--harvest", str(video), "--out", str(harvested)]) == 0
    assert len(ObjectBank.from_folder(harvested)) >= 1
    # a missing bank folder: one line, exit 2, no run folder
    missing = tmp_path / "no_bank"
    assert cli.main(base + ["--run-dir", str(tmp_path / "run2"), "--bank", str(missing)]) == EXIT_USER_ERROR
    error = capsys.readouterr().err.strip()
    assert str(missing) in error and len(error.splitlines()) == 1 and not (tmp_path / "run2").exists()


def test_unknown_method_is_reported(capsys):
    assert cli.main(["train", "no-such-method", "--dataset", "ped2"]) == EXIT_USER_ERROR
    assert "aed-mae" in capsys.readouterr().err


def test_shipped_configs_are_valid():
    from pathlib import Path

    from vadistill.config import build_config, read_config_file
    from vadistill.methods import METHODS

    configs = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
    assert configs
    for path in configs:
        method = METHODS[path.stem.rsplit("_", 1)[0].replace("_", "-")]  # configs/<method>_<dataset>.yaml
        build_config(method.config_class.from_dict, read_config_file(path), str(path))


@pytest.mark.parametrize("method, override, message", [
    ("aed-mae", "batch_size=0", "batch_size must be >= 1, got 0"),
    ("aed-mae", "lr=.nan", "lr must be > 0, got nan"),
    ("aed-mae", "val_fraction=1", "val_fraction must be in (0, 1), got 1"),
    ("aed-mae", "patch_size=0", "patch_size must be >= 1, got 0"),  # was a ZeroDivisionError
    ("aed-mae", "map_filter=[0,9,9]", "map_filter must be >= 1, got (0, 9, 9)"),
    ("aed-mae", "score_weights=[0,0,0]", "score_weights must not all be zero"),
    ("aed-mae", "paste.probability=1.5", "paste.probability must be in [0, 1], got 1.5"),
    ("aed-mae", "harvest.max_area=0", "harvest.max_area must be in (0, 1], got 0"),
    ("fast-aed", "epochs=0", "epochs must be >= 1, got 0"),
    ("fast-aed", "ae.crop_size=36", "ae.crop_size must be a multiple of 8"),
    ("fast-aed", "knn.k=0", "knn.k must be >= 1, got 0"),
    ("fast-aed", "proposals.nms_iou=2", "proposals.nms_iou must be in [0, 1], got 2"),
    ("dakd", "topk=0", "topk must be >= 1, got 0"),
    ("dakd", "dropout=1", "dropout must be in [0, 1), got 1"),
])
def test_out_of_range_settings_are_one_line_errors_before_training(method, override, message):
    from vadistill.config import apply_overrides, build_config
    from vadistill.errors import InputError
    from vadistill.methods import METHODS

    with pytest.raises(InputError, match=re.escape(f"--set: invalid configuration: {message}")):
        build_config(METHODS[method].config_class.from_dict, apply_overrides({}, [override]), "--set")


def test_overrides_read_exponent_floats_and_wrong_kinds_are_one_line_errors(tmp_path):
    from vadistill.config import apply_overrides, build_config
    from vadistill.errors import InputError
    from vadistill.methods.dakd import DakdConfig

    values = apply_overrides({}, ["lr=3e-3", "teacher_epochs=2"])
    assert values == {"lr": 0.003, "teacher_epochs": 2}  # YAML 1.1 alone would leave "3e-3" a string
    assert build_config(DakdConfig.from_dict, values, "--set").lr == 0.003
    with pytest.raises(InputError, match="lr must be a number"):
        build_config(DakdConfig.from_dict, apply_overrides({}, ["lr=fast"]), "--set")
    # a switch takes true/false (YAML's yes/no/on/off too); any other word would otherwise count as true
    from vadistill.methods.aed_mae import AedMaeConfig
    assert build_config(AedMaeConfig.from_dict, apply_overrides({}, ["student_pastes=off"]), "--set").student_pastes is False
    with pytest.raises(InputError, match="student_pastes must be true or false, got 'nope'"):
        build_config(AedMaeConfig.from_dict, apply_overrides({}, ["student_pastes=nope"]), "--set")
    with pytest.raises(InputError, match="paste.match_grey must be true or false"):
        build_config(AedMaeConfig.from_dict, apply_overrides({}, ["paste.match_grey=1"]), "--set")
    config_file = tmp_path / "c.yaml"
    config_file.write_text("lr: 1e-4\n")
    from vadistill.config import read_config_file
    assert read_config_file(config_file) == {"lr": 0.0001}
