"""How often AED-MAE's end-to-end test passes: its pasted-object probe over seeds, schedules and losses.

    python benchmarks/aed_mae_e2e_seeds.py                      # seeds 0-9, schedules 5/2, 10/4, 15/5, 30/10
    python benchmarks/aed_mae_e2e_seeds.py --seeds 0,1 --schedules 5/2
    python benchmarks/aed_mae_e2e_seeds.py --schedules 30/10 --loss-tokens all \
        --scorings complementary,unmasked_teacher_map --stem aed_mae_e2e_scorings

`tests/test_aed_mae.py::test_pasted_object_frames_score_higher_than_clean_frames` trains one tiny
model (seed 0) on two generated scenes and asks that a pasted object raise the frame score on at
least 90% of its frames. A single seed says little about a method; this script trains the same
model with each seed, each teacher/student epoch schedule and each ``loss_tokens`` value, applies
the test's own criterion (``probe_outcome``) to the combined score, and reports each term alone
too (teacher error, teacher-student discrepancy, classifier), so a failure can be traced to a term.
``--scorings`` probes each trained model under several inference scorings too (names of
``MASKING`` in benchmarks/aed_mae_ped2.py, applied with ``AedMae.with_scoring``: recalibrated on
the training scenes, no retraining), so a candidate scoring is tested by the same criterion.

It was written because the all-token loss won on Ped2 at every paired seed but failed this test:
is that a property of the loss, or of one draw of a short schedule? Writes
benchmarks/results/aed_mae_e2e_seeds.json and .md (machine, command, git revision).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from vadistill.argtypes import comma_list
from vadistill.methods.aed_mae import TERMS, AedMae, AedMaeConfig, single_term_weights
from vadistill.provenance import command_line, git_revision, machine_info, provenance_header

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from test_aed_mae import E2E, e2e_training_videos, pasted_probe, probe_outcome  # noqa: E402  (one definition of the probe)

RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(ROOT / "benchmarks"))
from aed_mae_ped2 import MASKING, MASKING_TITLES, scored_with  # noqa: E402  (one definition of the scorings)


def schedule(text: str) -> tuple[int, int]:
    teacher, student = (int(part) for part in text.split("/"))
    return teacher, student


def measure(tokens: str, teacher_epochs: int, student_epochs: int, seed: int, scorings: list[str],
            train, clean, pasted) -> list[dict]:
    """Train one model and probe it under each of `scorings` (one row each)."""
    cfg = AedMaeConfig.from_dict({**E2E, "loss_tokens": tokens, "seed": seed,
                                  "teacher_epochs": teacher_epochs, "student_epochs": student_epochs})
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as run_dir:
        trained = AedMae(cfg).fit(train, run_dir=run_dir, progress=False)
    seconds = time.perf_counter() - started
    rows = []
    for scoring in scorings:
        method = scored_with(trained, train, **MASKING[scoring])
        terms_clean, terms_pasted = method.score_terms(clean), method.score_terms(pasted)
        row = {"loss_tokens": tokens, "teacher_epochs": teacher_epochs, "student_epochs": student_epochs,
               "seed": seed, "scoring": scoring, "train_seconds": round(seconds, 1),
               "combined": probe_outcome(method.combine_terms(terms_clean), method.combine_terms(terms_pasted))}
        for term in TERMS:
            weights = single_term_weights(term)
            outcome = probe_outcome(method.combine_terms(terms_clean, weights=weights),
                                    method.combine_terms(terms_pasted, weights=weights))
            row[term] = {key: outcome[key] for key in ("fraction_raised", "mean_gain")}
        rows.append(row)
    return rows


def markdown(result: dict) -> str:
    lines = ["# AED-MAE end-to-end test: the pasted-object probe over seeds", "",
             *provenance_header(result),
             "- model and scenes: `E2E` and `pasted_probe` of tests/test_aed_mae.py (64x96, two 80-frame "
             "training scenes, one unseen 60-frame scene with an object pasted into frames 20-40); the test "
             f"itself trains seed 0 with {result['test_schedule']} teacher/student epochs and the default "
             f"loss_tokens ({result['default_loss_tokens']}) at this revision",
             "- criterion (the test's): the combined score rises on at least 90% of frames 22-38 with a mean "
             "gain above 0.1 validation standard deviations, and frames 0-9 agree within 0.3",
             "- scorings (MASKING of benchmarks/aed_mae_ped2.py; the test scores with the default, "
             "complementary): " + "; ".join(f"{name}: {MASKING_TITLES[name]}" for name in result["scorings"]), "",
             "## How often the test passes", "",
             "| loss_tokens | scoring | epochs (teacher/student) | seeds passing | mean fraction of frames raised | "
             "mean gain | teacher / student / classifier: seeds raising >= 90% of frames |",
             "|---|---|---|---|---|---|---|"]
    for group in result["summary"]:
        per_term = " / ".join(f"{group['terms_raising'][t]}" for t in TERMS)
        lines.append(f"| {group['loss_tokens']} | {group['scoring']} | "
                     f"{group['teacher_epochs']}/{group['student_epochs']} | "
                     f"{group['passing']} of {group['seeds']} ({', '.join(map(str, group['failing_seeds'])) or 'none'} "
                     f"fail) | {group['mean_fraction_raised']:.2f} | {group['mean_gain']:+.2f} | {per_term} |")
    lines += ["", "## Every run", "",
              "| loss_tokens | scoring | epochs | seed | passes | combined: raised / mean gain | teacher | student "
              "| classifier | training s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for row in result["runs"]:
        cells = [f"{row[t]['fraction_raised']:.2f} / {row[t]['mean_gain']:+.2f}" for t in ("combined",) + TERMS]
        lines.append(f"| {row['loss_tokens']} | {row['scoring']} | {row['teacher_epochs']}/{row['student_epochs']} | "
                     f"{row['seed']} | "
                     f"{'yes' if row['combined']['passes'] else 'no'} | " + " | ".join(cells) +
                     f" | {row['train_seconds']} |")
    return "\n".join(lines) + "\n"


def summarise(runs: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for row in runs:
        key = (row["loss_tokens"], row["scoring"], row["teacher_epochs"], row["student_epochs"])
        groups.setdefault(key, []).append(row)
    summary = []
    for (tokens, scoring, teacher_epochs, student_epochs), rows in groups.items():
        summary.append({
            "loss_tokens": tokens, "scoring": scoring, "teacher_epochs": teacher_epochs,
            "student_epochs": student_epochs,
            "seeds": len(rows), "passing": sum(r["combined"]["passes"] for r in rows),
            "failing_seeds": [r["seed"] for r in rows if not r["combined"]["passes"]],
            "mean_fraction_raised": sum(r["combined"]["fraction_raised"] for r in rows) / len(rows),
            "mean_gain": sum(r["combined"]["mean_gain"] for r in rows) / len(rows),
            "terms_raising": {t: sum(r[t]["fraction_raised"] >= 0.9 for r in rows) for t in TERMS}})
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=comma_list(int), default="0,1,2,3,4,5,6,7,8,9")
    parser.add_argument("--schedules", type=comma_list(schedule), default="5/2,10/4,15/5,30/10",
                        help="teacher/student epochs, comma-separated (the test trains with E2E's)")
    parser.add_argument("--loss-tokens", type=comma_list(str), default="masked,all")
    parser.add_argument("--scorings", type=comma_list(str), default="complementary",
                        help=f"inference scorings to probe each model with, comma-separated (of {', '.join(MASKING)})")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the test runs on one)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--stem", default="aed_mae_e2e_seeds", help="name of the results files (.json, .md)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.scorings if name not in MASKING]
    if unknown:
        parser.error(f"--scorings: unknown {', '.join(unknown)}; expected names of {', '.join(MASKING)}")
    torch.set_num_threads(args.threads)
    machine = machine_info()
    train = e2e_training_videos()
    clean, pasted = pasted_probe(train)
    runs = []
    for teacher_epochs, student_epochs in args.schedules:
        for tokens in args.loss_tokens:
            for seed in args.seeds:
                for row in measure(tokens, teacher_epochs, student_epochs, seed, args.scorings, train, clean, pasted):
                    runs.append(row)
                    print(f"{tokens} {row['scoring']} {teacher_epochs}/{student_epochs} seed {seed}: "
                          f"passes={row['combined']['passes']} raised={row['combined']['fraction_raised']:.2f} "
                          f"gain={row['combined']['mean_gain']:+.2f} ({row['train_seconds']} s)", flush=True)
    result = {"command": command_line(), "machine": machine, "threads": args.threads,
              "test_schedule": f"{E2E['teacher_epochs']}/{E2E['student_epochs']}",
              "default_loss_tokens": AedMaeConfig().loss_tokens, "scorings": args.scorings,
              "summary": summarise(runs), "runs": runs}
    result["git_revision"] = git_revision()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"{args.stem}.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
