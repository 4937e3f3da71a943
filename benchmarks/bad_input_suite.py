"""The bad-input suite through the real command: every case of `vadistill.robustness`, one subprocess each.

    python benchmarks/bad_input_suite.py            # every case
    python benchmarks/bad_input_suite.py --case video-truncated-halfway --case disk-full-score

Each case builds its broken input in a scratch folder, runs the installed `vadistill` command on it
(the disk-full cases under a real file-size limit, RLIMIT_FSIZE, with SIGXFSZ ignored), and checks
what the project promises: exit code 2, one stderr line naming the file and what was expected (or
the broken item skipped with a warning and counted, or listed by `data check`), no traceback, and no
output left that looks complete. Writes benchmarks/results/bad_inputs.json and .md (machine,
command, git revision, one row per case, "N cases tried, N handled"). A partial run (--case) writes
bad_inputs_quick.* instead, which is not a result.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from vadistill.provenance import (
    command_line,
    git_revision,
    machine_info,
    provenance_header,
)
from vadistill.robustness import CASES, Workshop, case_named, cli_command, run_case

RESULTS = Path(__file__).resolve().parent / "results"


def markdown(result: dict) -> str:
    rows = ["| Case | Bad input | Expected | Handled | Exit | Message (or what went wrong) |", "|---|---|---|---|---|---|"]
    for case in result["cases"]:
        detail = case["message"] if case["handled"] else "; ".join(case["problems"])
        if case["known_gap"]:
            detail = f"known gap, fix needed in {case['known_gap']}. {detail}"
        detail = detail.replace("|", "\\|").replace("\n", " <br> ")
        rows.append(f"| {case['name']} | {case['description']} | {case['expected']} | "
                    f"{'yes' if case['handled'] else '**no**'} | {case['returncode']} | {detail} |")
    return "\n".join([
        "# Bad-input suite", "",
        f"**{result['tried']} cases tried, {result['handled']} handled.**", "",
        ("Each case builds a broken input and runs the installed `vadistill` command on it in a subprocess "
         "(the disk-full cases under a real file-size limit). Handled means: exit code 2, no traceback, "
         "one stderr line naming the file and what was expected (*error*), or the broken item named, skipped "
         "and counted while the others finish (*skip-with-warning*), or listed in `data check`'s report "
         "(*reported*); and no output left that looks complete. Cases: `src/vadistill/robustness/cases.py`."), "",
        *provenance_header(result), f"- vadistill command: `{result['vadistill_command']}`",
        f"- wall time: {result['wall_seconds']} s", "",
        *rows, ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", help="run only this case (repeatable)")
    parser.add_argument("--keep", help="build the cases in this folder and keep it (default: a temporary folder)")
    args = parser.parse_args(argv)
    cases = [case_named(name) for name in args.case] if args.case else CASES
    machine = machine_info()  # load average before the run
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="vadistill-bad-inputs-"))
    started = time.perf_counter()
    results = []
    try:
        workshop = Workshop(work / "_shared")
        for case in cases:
            result = run_case(case, work, workshop)
            print(f"{'ok  ' if result.handled else 'FAIL'} {case.name} ({result.seconds:.1f} s)"
                  + ("" if result.handled else "\n     " + "\n     ".join(result.problems)), flush=True)
            results.append(result)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    handled = sum(r.handled for r in results)
    result = {"command": command_line(), "vadistill_command": " ".join(cli_command()), "git_revision": git_revision(),
              "machine": machine, "wall_seconds": round(time.perf_counter() - started, 1),
              "tried": len(results), "handled": handled, "cases": [asdict(r) for r in results]}
    stem = "bad_inputs" if not args.case else "bad_inputs_quick"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"{stem}.md").write_text(markdown(result))
    print(f"{len(results)} cases tried, {handled} handled -> {RESULTS / stem}.md")
    return 0 if handled == len(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
