"""The `vadistill` command: argparse verbs, each a thin layer over the public API.

User errors (vadistill.errors.InputError) print one line and exit with code 2, no traceback. So do
operating-system errors about a named file (a full disk, a read-only or unwritable output folder):
they come from the user's environment, not from vadistill.
Most heavy imports (matplotlib, the methods) happen inside the verbs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vadistill import __version__
from vadistill.argtypes import non_negative_float, positive_float
from vadistill.errors import EXIT_USER_ERROR, InputError

# Choices spelled out here (not imported) so that `--help` does not import numpy/scipy.
FILTER_CHOICES = ("gaussian", "none", "aed-mae-shanghai", "aed-mae-avenue", "fast-aed")
MACRO_POLICIES = ("exclude", "pad", "pad_unnormalized", "one_class_as_1")


# -- verbs ---------------------------------------------------------------------------------------
def run_demo(args: argparse.Namespace) -> int:
    from vadistill.demo import run_demo as demo

    summary = demo(Path(args.out), seed=args.seed, quick=args.quick, progress=not args.quiet)
    print(json.dumps(summary, indent=2))
    return 0


def run_data_prepare(args: argparse.Namespace) -> int:
    from vadistill.data.prepare import prepare_dataset

    root = prepare_dataset(args.name, args.source or None, Path(args.data_root) if args.data_root else None,
                           extract_frames=args.extract_frames, force=args.force, progress=not args.quiet)
    print(f"prepared {args.name} in {root}")
    return 0


def run_data_check(args: argparse.Namespace) -> int:
    from vadistill.data.check import check_dataset

    report = check_dataset(args.name, Path(args.root) if args.root else None, decode=args.decode)
    print(report.summary())
    return 0 if report.ok else EXIT_USER_ERROR


def run_data_bank(args: argparse.Namespace) -> int:
    """Build an object bank for the synthetic anomalies (AED-MAE, Fast-AED) and save it as a folder."""
    from vadistill.data.pseudo import ObjectBank
    from vadistill.io.video import read_frames

    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        # saving over an older bank would leave its extra sequences behind, mixed into this one
        raise InputError(out, "already holds files; choose a new or empty folder for the bank")
    if args.ubnormal is not None:
        bank = ObjectBank.from_ubnormal(args.ubnormal or None, split=args.split, progress=not args.quiet)
    else:
        # a generator: one decoded video in memory at a time
        bank = ObjectBank.harvest((read_frames(v) for v in args.harvest), names=[Path(v).name for v in args.harvest],
                                  description=f"harvested from {', '.join(Path(v).name for v in args.harvest)}",
                                  progress=not args.quiet)
    if not len(bank):
        raise InputError(args.harvest[0], "no moving object found to cut out (a static camera and moving objects are needed)")
    folder = bank.save(out)
    print(f"{bank.description}: {len(bank)} sequences written to {folder}")
    return 0


def load_named_dataset(name: str, root: str | None, options: list[str] | None = None):
    from vadistill.data.benchmarks import load_dataset

    return load_dataset(name, Path(root) if root else None, **parse_key_values(options or []))


def parse_key_values(pairs: list[str]) -> dict[str, str]:
    """`--option key=value` pairs for dataset loaders (e.g. labels=frame-prediction for Avenue)."""
    options = {}
    for pair in pairs:
        if "=" not in pair:
            raise InputError(pair, "expected key=value")
        key, value = pair.split("=", 1)
        options[key.replace("-", "_")] = value
    return options


def temporal_filter_from_args(args: argparse.Namespace):
    """`--filter gaussian|none` with `--sigma`, or the name of an official-code filter."""
    from vadistill.scoring import OFFICIAL_FILTERS, TemporalFilter

    if args.filter in OFFICIAL_FILTERS:
        return OFFICIAL_FILTERS[args.filter]
    return TemporalFilter(kind=args.filter, sigma=args.sigma if args.filter == "gaussian" else 0.0)


def run_evaluate(args: argparse.Namespace) -> int:
    from vadistill.evaluate import evaluate_scores, load_scores, write_report

    scores = load_scores(Path(args.scores))
    dataset = load_named_dataset(args.dataset, args.root, args.option)
    result = evaluate_scores(scores, dataset.test_labels(), filter=temporal_filter_from_args(args),
                             macro_policy=args.macro_policy, normalization=args.normalization,
                             source=str(args.scores))
    result["dataset"] = {"name": dataset.name, "root": dataset.root, **dataset.notes}
    json_path, md_path = write_report(result, Path(args.out))
    print(md_path.read_text())
    print(f"wrote {json_path} and {md_path}")
    return 0


def method_config(method_class, args: argparse.Namespace):
    """The method's config: its defaults, then --config FILE, then --set overrides."""
    from vadistill.config import apply_overrides, build_config, read_config_file

    values = read_config_file(args.config) if args.config else {}
    values = apply_overrides(values, args.set or [])
    config_class = method_class.config_class
    return build_config(config_class.from_dict, values, args.config or "--set")


def run_train(args: argparse.Namespace) -> int:
    """Train a method on a benchmark's normal training videos, then score and evaluate its test set.

    Under ``torchrun`` (several processes) the training is data-parallel (vadistill.distributed);
    rank 0 writes the run folder and evaluates.
    """
    from vadistill import distributed
    from vadistill.methods import METHODS
    from vadistill import train

    if args.method not in METHODS:
        raise InputError(args.method, f"unknown method; expected one of {', '.join(METHODS)}")
    method_class = METHODS[args.method]
    run_dir = Path(args.run_dir or f"runs/{args.method}-{args.dataset}")
    distributed.init_from_environment()
    try:
        interval = train.CHECKPOINT_SECONDS if args.checkpoint_every is None else args.checkpoint_every
        with train.checkpoint_interval(interval):
            if args.method == "dakd":
                code = train_weakly_supervised(method_class, args, run_dir)
            else:
                code = train_one_class(method_class, args, run_dir)
    except BaseException:
        distributed.shutdown(failed=True)  # torchrun then stops the other processes
        raise
    distributed.shutdown()
    return code


def train_one_class(method_class, args: argparse.Namespace, run_dir: Path) -> int:
    from vadistill import distributed
    from vadistill.data.pseudo import ObjectBank

    config = method_config(method_class, args)  # settings first: a typo fails before any data is read
    dataset = load_named_dataset(args.dataset, args.root, args.option)
    bank = ObjectBank.from_folder(args.bank) if args.bank else None
    method = method_class(config, object_bank=bank)
    method.fit(dataset.train, run_dir=run_dir, resume=args.resume, progress=not args.quiet)
    if not distributed.is_main():
        return 0
    print(f"model written to {run_dir / 'model.ckpt'}")
    if not args.no_eval:
        evaluate_method(method, dataset, run_dir, progress=not args.quiet)
    return 0


def evaluate_method(method, dataset, run_dir: Path, progress: bool = True) -> dict:
    """Score every test video with the method's own scoring path; write scores.json and metrics."""
    import numpy as np
    from tqdm import tqdm

    from vadistill.evaluate import evaluate_scores, write_report
    from vadistill.io.atomic import atomic_write_text
    from vadistill.scoring import NO_FILTER

    scores_path = run_dir / "scores.json"
    scores = read_finished_scores(scores_path)  # resume: keep finished videos
    for video in tqdm(dataset.test, desc="scoring test videos", disable=not progress):
        if video.name not in scores:
            scores[video.name] = [float(s) for s in method.anomaly_scores(video)]
            # Atomic: a full disk or a kill mid-write must not corrupt the videos already scored.
            atomic_write_text(scores_path, json.dumps(scores))
    # The method's scores are already temporally filtered (its config names the filter).
    result = evaluate_scores({k: np.asarray(v) for k, v in scores.items()}, dataset.test_labels(),
                             filter=NO_FILTER, source=str(scores_path))
    result["dataset"] = {"name": dataset.name, "root": dataset.root, **dataset.notes}
    result["method"] = {"name": method.name, "temporal_filter": method.config.temporal_filter.describe()}
    json_path, md_path = write_report(result, run_dir)
    print(md_path.read_text())
    return result


def run_rescore(args: argparse.Namespace) -> int:
    """A trained model with other scoring settings (no retraining): recalibrated on the held-out
    tail of the dataset's NORMAL training videos, saved as a new model, then evaluated."""
    from dataclasses import fields

    from vadistill.config import apply_overrides, build_config
    from vadistill.data.pseudo import ObjectBank
    from vadistill.io.atomic import atomic_write_text
    from vadistill.runtime.model import load_method

    method = load_method(args.model)
    if not method.SCORING_FIELDS:
        raise InputError(args.model, f"{method.name} has no scoring settings that change without retraining "
                                     "(rescore handles aed-mae and fast-aed)")
    values = apply_overrides(method.config.to_dict(), args.set or [])
    config = build_config(type(method.config).from_dict, values, "--set")
    changes = {f.name: getattr(config, f.name) for f in fields(config)
               if getattr(config, f.name) != getattr(method.config, f.name)}
    retrain = sorted(set(changes) - set(method.SCORING_FIELDS))
    if retrain:
        raise InputError("--set", f"{', '.join(retrain)} need(s) retraining; rescore changes only "
                                  f"{', '.join(method.SCORING_FIELDS)}")
    dataset = load_named_dataset(args.dataset, args.root, args.option)
    bank = ObjectBank.from_folder(args.bank) if args.bank else None
    try:
        rescored = method.with_scoring(dataset.train, object_bank=bank, progress=not args.quiet, **changes)
    except ValueError as error:
        raise InputError("--set", str(error)) from None
    out = Path(args.out or f"{Path(args.model).resolve().parent}-rescored")
    out.mkdir(parents=True, exist_ok=True)
    summary = {"model": str(args.model), "method": method.name, "changes": changes, "threshold": rescored.threshold_}
    if method.name == "aed-mae":  # the weights it now scores with, and the report of their choice
        summary.update(score_weights=list(rescored.config.score_weights), weight_selection=rescored.weight_selection_)
    text = json.dumps(summary, indent=2, default=str) + "\n"
    previous = out / "rescore.json"
    if not previous.exists() or previous.read_text() != text:  # another model: its test scores are stale
        (out / "scores.json").unlink(missing_ok=True)
    rescored.save(out / "model.ckpt")
    atomic_write_text(previous, text)
    print(json.dumps(summary, indent=2, default=str))
    print(f"model written to {out / 'model.ckpt'}")
    if not args.no_eval:
        evaluate_method(rescored, dataset, out, progress=not args.quiet)
    return 0


def read_finished_scores(path: Path) -> dict[str, list[float]]:
    """The per-video scores an interrupted `train` already wrote ({} when there are none)."""
    if not path.exists():
        return {}
    try:
        scores = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise InputError(path, f"cannot resume scoring: not a readable scores file ({error}); delete it to rescore "
                               "every test video") from None
    if not isinstance(scores, dict) or not all(isinstance(v, list) for v in scores.values()):
        raise InputError(path, "cannot resume scoring: expected {video: [scores...]}; delete it to rescore")
    return scores


def train_weakly_supervised(method_class, args: argparse.Namespace, run_dir: Path) -> int:
    from vadistill.methods.dakd import train_dakd

    if not args.features:
        raise InputError("--features", "dakd trains on snippet features: pass the folder `vadistill extract` wrote")
    if args.bank:
        raise InputError("--bank", "dakd pastes no objects; --bank is for aed-mae and fast-aed")
    result = train_dakd(args.features, args.dataset, method_config(method_class, args), run_dir,
                        annotations=args.root, resume=args.resume, progress=not args.quiet)
    if "rank" not in result:  # rank 0 (or the only process) reports
        print(json.dumps(result, indent=2, default=str))
    return 0


def run_extract(args: argparse.Namespace) -> int:
    from vadistill.backbones.extract import run_extract_from_args

    return run_extract_from_args(args)


# -- parser --------------------------------------------------------------------------------------
def torch_version() -> str:
    """The installed torch's version without importing it (the parser stays fast)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torch")
    except PackageNotFoundError:
        return "not installed"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vadistill", description="Video anomaly detection by knowledge distillation.")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--version", action="version", version=f"vadistill {__version__} (torch {torch_version()})")
    verbs = parser.add_subparsers(dest="verb", required=True)

    demo = verbs.add_parser("demo", help="train a small detector on a generated scene and score a clip with an anomaly")
    demo.add_argument("--out", default="vadistill-demo", help="output folder (default: ./vadistill-demo)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quick", action="store_true", help="a shorter run (smoke test)")
    demo.set_defaults(handler=run_demo)

    data = verbs.add_parser("data", help="prepare and check benchmark datasets")
    data_verbs = data.add_subparsers(dest="data_verb", required=True)
    prepare = data_verbs.add_parser("prepare", help="download/unpack a dataset into the data root")
    prepare.add_argument("name", help="ped1, ped2, avenue, shanghaitech, ubnormal or custom")
    prepare.add_argument("--source", action="append",
                         help="archive, folder, file or URL (repeatable); default: the official downloads")
    prepare.add_argument("--data-root", help="folder holding all datasets (default: $VADISTILL_DATA or "
                                             "~/.cache/vadistill/datasets); the dataset goes to <data root>/<name>")
    prepare.add_argument("--extract-frames", action="store_true", help="decode videos into frame folders")
    prepare.add_argument("--force", action="store_true", help="redo sources already prepared")
    prepare.set_defaults(handler=run_data_prepare)
    check = data_verbs.add_parser("check", help="check frames against ground truth and report what is wrong")
    check.add_argument("name")
    check.add_argument("--root", help="dataset folder (default: <data root>/<name>)")
    check.add_argument("--decode", action="store_true", help="decode every frame (finds corrupt images)")
    check.set_defaults(handler=run_data_check)
    bank = data_verbs.add_parser("bank", help="build an object bank (synthetic anomalies) for train --bank")
    source = bank.add_mutually_exclusive_group(required=True)
    source.add_argument("--ubnormal", nargs="?", const="", metavar="ROOT",
                        help="cut UBnormal's anomalous objects (the AED-MAE paper's source; default root: "
                             "<data root>/ubnormal)")
    source.add_argument("--harvest", nargs="+", metavar="VIDEO",
                        help="cut moving objects out of static-camera videos or frame folders")
    bank.add_argument("--split", default="training", help="UBnormal split to cut from (default: training)")
    bank.add_argument("--out", required=True, help="bank folder to write (<out>/<sequence>/<k>.png, RGBA)")
    bank.set_defaults(handler=run_data_bank)

    evaluate = verbs.add_parser("evaluate", help="per-frame scores in, metrics table out (JSON + markdown)")
    evaluate.add_argument("scores", help=".json, .npz, .csv or a folder of per-video .npy/.csv")
    evaluate.add_argument("--dataset", required=True, help="benchmark whose test labels to use")
    evaluate.add_argument("--root", help="dataset folder (default: <data root>/<name>)")
    evaluate.add_argument("--option", action="append", help="dataset loader option key=value (repeatable)")
    evaluate.add_argument("--filter", default="gaussian", choices=FILTER_CHOICES,
                          help="temporal filter: a centred normalised gaussian (default), none, or an official-code "
                               "variant for reproduction")
    evaluate.add_argument("--sigma", type=positive_float, default=3.0, help="gaussian width in frames (default 3)")
    evaluate.add_argument("--normalization", default="none", choices=("none", "minmax"),
                          help="per-video score normalisation (minmax only to reproduce official code: transductive)")
    evaluate.add_argument("--macro-policy", default="exclude", choices=MACRO_POLICIES,
                          help="macro AUC for videos with one class: exclude them (default) or an official variant "
                               "(see vadistill.metrics.macro_auc)")
    evaluate.add_argument("--out", default="vadistill-eval", help="output folder")
    evaluate.set_defaults(handler=run_evaluate)
    train = verbs.add_parser("train", help="train a method (aed-mae, dakd, ...) on a benchmark and evaluate it")
    train.add_argument("method", help="aed-mae, fast-aed or dakd")
    train.add_argument("--dataset", required=True,
                       help="benchmark (ped2, avenue, ...); for dakd a weak set (ped2_weak, ucf_crime, ...)")
    train.add_argument("--root", help="dataset folder (default: <data root>/<name>); dakd: annotation folder")
    train.add_argument("--option", action="append", help="dataset loader option key=value (repeatable)")
    train.add_argument("--config", help="YAML/JSON file of config fields (see the method's config class)")
    train.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one config field (repeatable)")
    train.add_argument("--run-dir", help="run folder (default: runs/<method>-<dataset>)")
    train.add_argument("--resume", action="store_true", help="continue an interrupted run in --run-dir "
                       "(from its last checkpoint, mid-epoch included)")
    train.add_argument("--checkpoint-every", type=non_negative_float, metavar="SECONDS",
                       help="checkpoint inside an epoch every SECONDS (default 300; 0 = after every step)")
    train.add_argument("--no-eval", action="store_true", help="do not score the test set after training")
    train.add_argument("--bank", help="object-bank folder for the synthetic anomalies of aed-mae and fast-aed "
                                      "(`vadistill data bank`; default: objects harvested from the training videos)")
    train.add_argument("--features", help="dakd: folder with one subfolder of snippet features per backbone")
    train.set_defaults(handler=run_train)

    rescore = verbs.add_parser("rescore", help="a trained model with other scoring settings (masking, weights, "
                                               "filters; no retraining), recalibrated and evaluated")
    rescore.add_argument("model", help="model.ckpt written by `vadistill train` (aed-mae or fast-aed)")
    rescore.add_argument("--dataset", required=True, help="the benchmark the model was trained on (ped2, avenue, ...): "
                         "its normal training videos recalibrate the scores, its test set is evaluated")
    rescore.add_argument("--root", help="dataset folder (default: <data root>/<name>)")
    rescore.add_argument("--option", action="append", help="dataset loader option key=value (repeatable)")
    rescore.add_argument("--set", action="append", metavar="KEY=VALUE",
                         help="scoring setting to change (repeatable), e.g. for aed-mae score_weights=[0.2,0.0,0.8], "
                              "weight_selection=synthetic-validation, inference_mask_ratio=0, pixel_norm=true; "
                              "for fast-aed teacher_combine=mean, temporal_filter.sigma=3")
    rescore.add_argument("--bank", help="object-bank folder for weight_selection=synthetic-validation "
                                        "(default: objects harvested from the training videos)")
    rescore.add_argument("--out", help="output folder (default: <model folder>-rescored)")
    rescore.add_argument("--no-eval", action="store_true", help="do not score the test set")
    rescore.set_defaults(handler=run_rescore)

    from vadistill.backbones.extract import add_extract_arguments

    extract = verbs.add_parser("extract", help="snippet features from pretrained backbones (I3D, MobileNetV2, ...)")
    add_extract_arguments(extract)
    extract.set_defaults(handler=run_extract)

    from vadistill.runtime.commands import add_runtime_verbs

    add_runtime_verbs(verbs)  # score, watch, export, bench, report
    return parser


def environment_error_message(error: OSError) -> str | None:
    """One line for an OSError the user's environment caused, or None for one that looks like a bug.

    A full disk or file-size limit is always the environment's; so is any other OSError that names
    a file (permission denied, read-only file system, a folder where a file was expected).
    """
    from vadistill.io.atomic import is_disk_full

    where = error.filename if error.filename is not None else "output file"
    if is_disk_full(error):
        return str(InputError(where, f"could not be written: {error.strerror} (the disk is full or a file-size "
                                     "limit was reached); free some space and run again"))
    if error.filename is not None:
        return str(InputError(error.filename, error.strerror or str(error)))
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except InputError as error:
        print(f"vadistill: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as error:
        message = environment_error_message(error)
        if message is None:
            raise
        print(f"vadistill: error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("vadistill: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
