"""How much does choosing AED-MAE's epoch on the test set raise its test AUC on Ped2?

    python benchmarks/aed_mae_epoch_selection.py --work benchmarks/work_long --run main_seed5_all_epochs

The authors' training script scores the test set after every epoch and keeps the checkpoint with
the best test micro AUC; this toolkit keeps the epoch with the best normal-validation loss and
never looks at test labels to choose. This diagnostic measures the difference on one run of
`benchmarks/aed_mae_ped2.py --experiment epoch_selection`, which trains all 50 teacher epochs and
saves each epoch's weights (``<work>/full/runs/<run>/teacher_epochs/NNN.ckpt``).

For every saved teacher epoch: its weights are loaded into the trained model, the score terms are
recalibrated on the held-out normal frames (``AedMae.with_scoring``: their statistics depend on
the weights), and every test video is scored. Reported, as fixed in the experiment's question
before any number: the test micro AUC of the teacher and classifier terms at the paper's weights
(0.4, 0.3; the student term is left out, since the authors' student trains only from epoch 100)
for the epoch our validation keeps, the maximum over epochs (the authors' choice) and its epoch,
and the spread over epochs; each term alone beside. Test labels only report here; nothing is
chosen. Each epoch's numbers are cached in ``<run>/epoch_selection_NNN.json`` (with the model's
stamp, as the other measurements of aed_mae_ped2.py), so an interrupted run resumes. Writes
benchmarks/results/aed_mae_epoch_selection.json and .md (machine, command, git revision).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

import aed_mae_ped2 as ped2
from vadistill import metrics
from vadistill.checkpoint import load_checkpoint
from vadistill.errors import InputError
from vadistill.methods.aed_mae import AedMae
from vadistill.provenance import command_line, git_revision, machine_info, provenance_header

RESULTS = Path(__file__).resolve().parent / "results"
# (teacher, student, classifier) weights of each reported score; "combined" is the question's.
SCORINGS = {"combined": (0.4, 0.0, 0.3), "teacher": (1.0, 0.0, 0.0), "classifier": (0.0, 0.0, 1.0)}


def epoch_aucs(method: AedMae, snapshot: Path, train_refs, test_refs, labels: dict) -> dict:
    """Test AUCs of the network saved in ``snapshot``, recalibrated on normal validation."""
    return network_aucs(method, load_checkpoint(snapshot)["net"], train_refs, test_refs, labels)


def network_aucs(method: AedMae, state: dict, train_refs, test_refs, labels: dict) -> dict:
    """Test AUCs (each of SCORINGS) of ``method`` with the network weights ``state``, recalibrated on
    normal validation. Loads ``state`` into ``method.net_``."""
    method.net_.load_state_dict(state)
    scored = method.with_scoring(train_refs)  # shares the network just loaded
    terms = {ref.name: scored.score_terms(ref) for ref in test_refs}
    report = {}
    for name, weights in SCORINGS.items():
        scores = {v: scored.combine_terms(t, weights=weights) for v, t in terms.items()}
        report[name] = {"micro_auc": metrics.micro_auc(scores, labels),
                        "macro_auc": metrics.macro_auc(scores, labels).value}
    return report


def teacher_parts_equal(a: dict, b: dict) -> bool:
    """Whether two network state dicts agree outside the student decoder (stage 2 trains only it)."""
    return all(torch.equal(a[k], b[k]) for k in a if not k.startswith("student"))


def summary(epochs: dict[int, dict], kept: int) -> dict:
    out = {}
    for name in SCORINGS:
        micro = {e: r[name]["micro_auc"] for e, r in epochs.items()}
        best = max(micro, key=micro.get)
        values = np.array(list(micro.values()))
        out[name] = {"kept_epoch_micro_auc": micro[kept], "max_micro_auc": micro[best], "epoch_of_max": best,
                     "min_micro_auc": float(values.min()), "median_micro_auc": float(np.median(values)),
                     "last_epoch_micro_auc": micro[max(micro)]}
    return out


def markdown(r: dict) -> str:
    s = r["summary"]
    lines = ["# AED-MAE on Ped2: the epoch chosen on validation against the epoch chosen on the test set", "",
             *provenance_header(r),
             f"- run: `{r['run']}` ({r['epochs_scored']} teacher epochs scored; its config.json says how it was "
             f"trained); the epoch our normal validation keeps: {r['kept_epoch']}; its saved weights match the "
             f"trained model's teacher: {r['kept_snapshot_matches_model']}",
             "- each epoch's network recalibrated on the held-out normal frames, then every test frame scored "
             "(two complementary 50% masks, 3-D filter, frame maximum, temporal filter); test labels only report", "",
             "| score | epoch our validation keeps | best epoch on the test set (the authors' choice) | "
             "median over epochs | worst | last epoch |",
             "|---|---|---|---|---|---|"]
    for name, weights in SCORINGS.items():
        v = s[name]
        lines.append(f"| {name} {weights} | {v['kept_epoch_micro_auc']:.4f} | {v['max_micro_auc']:.4f} "
                     f"(epoch {v['epoch_of_max']}) | {v['median_micro_auc']:.4f} | {v['min_micro_auc']:.4f} | "
                     f"{v['last_epoch_micro_auc']:.4f} |")
    lines += ["", "## Each epoch (test micro / macro AUC)", "",
              "| epoch | " + " | ".join(f"{n} {w}" for n, w in SCORINGS.items()) + " |",
              "|---|" + "---|" * len(SCORINGS)]
    for epoch, rep in sorted(r["epochs"].items(), key=lambda item: int(item[0])):
        mark = " (kept)" if int(epoch) == r["kept_epoch"] else ""
        lines.append(f"| {epoch}{mark} | " + " | ".join(
            f"{rep[n]['micro_auc']:.4f} / {rep[n]['macro_auc']:.4f}" for n in SCORINGS) + " |")
    lines += ["", f"Total wall time: {r['seconds'] / 60:.1f} min (cached epochs are reused).", ""]
    return "\n".join(lines)


def add_run_arguments(parser: argparse.ArgumentParser, default_run: str) -> None:
    """The arguments every script that rescores a run's saved teacher epochs takes."""
    parser.add_argument("--work", type=Path, default=Path(__file__).resolve().parent / "work_long")
    parser.add_argument("--run", default=default_run, help="run folder under <work>/full/runs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--quick", action="store_true",
                        help="a run of aed_mae_ped2.py --quick (its first 3 training and test videos); "
                             "writes *_quick.*")


def run_snapshots(args: argparse.Namespace) -> tuple[Path, list[Path]]:
    """The run folder and its saved teacher epochs (``teacher_epochs/NNN.ckpt``, in epoch order)."""
    run_dir = args.work / ("quick" if args.quick else "full") / "runs" / args.run
    return run_dir, sorted((run_dir / "teacher_epochs").glob("[0-9][0-9][0-9].ckpt"))


def ped2_refs(args: argparse.Namespace):
    """(normal training refs, test refs, test labels by video) of Ped2, the first three of each with --quick."""
    dataset = ped2.load_ped2(ped2.ensure_ped2(args.work), gt=ped2.PED2_GT)
    train_refs, test_refs = (dataset.train[:3], dataset.test[:3]) if args.quick else (dataset.train, dataset.test)
    return train_refs, test_refs, {ref.name: np.asarray(ref.labels) for ref in test_refs}


def write_result(out: Path, stem: str, result: dict, markdown_of) -> None:
    """Stamp ``result`` with the git revision (at the end: the revision the numbers were made with) and
    write it as ``<stem>.json`` and ``<stem>.md`` (aed_mae_ped2.write_results)."""
    result["git_revision"] = git_revision()
    ped2.write_results(out, stem, result, lambda path, r: path.write_text(markdown_of(r)))
    print(markdown_of(result))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser, "main_seed5_all_epochs")
    args = parser.parse_args(argv)
    run_dir, snapshots = run_snapshots(args)
    if not (run_dir / "model.ckpt").is_file() or not snapshots:
        parser.error(f"{run_dir}: expected a finished run (model.ckpt) with teacher_epochs/NNN.ckpt; train it with "
                     "benchmarks/aed_mae_ped2.py --resume --experiment epoch_selection")
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    train_refs, test_refs, labels = ped2_refs(args)
    try:
        method = AedMae.load(run_dir / "model.ckpt")
        kept = int(load_checkpoint(run_dir / "stage_teacher.ckpt")["best_epoch"]) + 1  # 1-based, as the files
        kept_path = run_dir / "teacher_epochs" / f"{kept:03d}.ckpt"
        if not kept_path.is_file():
            parser.error(f"{kept_path}: the epoch validation kept has no saved weights")
        # checked before any snapshot is loaded into the network
        matches = teacher_parts_equal(load_checkpoint(kept_path)["net"], method.net_.state_dict())
        epochs: dict[int, dict] = {}
        for snapshot in snapshots:
            # cached in the run folder with the model's stamp (aed_mae_ped2.cached_json): a retrained run is rescored
            epochs[int(snapshot.stem)] = ped2.cached_json(
                run_dir / f"epoch_selection_{snapshot.stem}.json", True,
                lambda snapshot=snapshot: epoch_aucs(method, snapshot, train_refs, test_refs, labels))
            print(f"[epoch {int(snapshot.stem)}/{len(snapshots)}] " + " ".join(
                f"{n}={r['micro_auc']:.4f}" for n, r in epochs[int(snapshot.stem)].items()), flush=True)
    except InputError as error:  # a missing, truncated or corrupt checkpoint: one line, exit 2
        parser.exit(2, f"aed_mae_epoch_selection.py: error: {error}\n")
    result = {"command": command_line(), "machine": machine_info(), "threads": args.threads, "run": args.run,
              "kept_epoch": kept, "kept_snapshot_matches_model": bool(matches), "epochs_scored": len(epochs),
              "scorings": {n: list(w) for n, w in SCORINGS.items()}, "summary": summary(epochs, kept),
              "epochs": {str(e): r for e, r in sorted(epochs.items())}, "seconds": time.perf_counter() - started}
    write_result(args.out, "aed_mae_epoch_selection" + ("_quick" if args.quick else ""), result, markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
