"""Fast-AED on UCSD Ped2, teachers and student, trained and measured on a CPU.

    .venv/bin/python benchmarks/fast_aed_ped2.py              # full run (about 45 min on 2 shared cores)
    .venv/bin/python benchmarks/fast_aed_ped2.py --quick      # smoke run, numbers meaningless
    .venv/bin/python benchmarks/fast_aed_ped2.py --resume     # reuse finished parts of an interrupted run
    .venv/bin/python benchmarks/fast_aed_ped2.py --no-ablations

What it does:

1. Ped2 frames from ``benchmarks/work/ped2/{training,testing}/frames`` (or unpacked from
   ``ped2_frames.tar``), frame labels from the official ``UCSDped2.m``.
2. Teachers (fitted on the 16 normal training videos; cached in ``benchmarks/work/fast_aed/``):
   background-subtraction proposals, the kNN teacher (MobileNetV2 + optical flow) and the object
   auto-encoder teacher. Each teacher's frame score (max over objects) on the 12 test videos ->
   micro / macro AUC (same temporal filter as the student), and the teachers' frames per second
   from decoded frames, proposals included.
3. The student (main config below), distilled from both teachers with the adversarial term and
   pseudo-anomalies pasted from ``vtest.avi`` (OpenCV's street clip, not Ped2; objects harvested by
   the AED-MAE benchmark, or here if missing). Micro / macro AUC, per-head AUCs, parameters,
   GFLOPs per frame (torch FlopCounterMode), model-only FPS at batch 1 and 32, end-to-end FPS
   from decoded frames (resize + student + temporal filter).
4. Ablations (same cached teacher maps, a SHORTER schedule than the main run because of the CPU
   budget, with a baseline trained on that same schedule): no adversarial term; kNN teacher only;
   auto-encoder teacher only; (``--extra-ablations``) no pseudo-anomalies.

Model selection uses normal validation frames only (the tail of every training video); test
labels are used for the reported AUCs only. Writes ``benchmarks/results/fast_aed_ped2.json`` and
``.md`` (``--quick``: ``*_quick.*``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from vadistill import metrics  # noqa: E402
from vadistill.data.benchmarks import load_ped2  # noqa: E402
from vadistill.data.clips import load_frames, resize_frames  # noqa: E402
from vadistill.provenance import command_line, describe_machine, git_revision, machine_info  # noqa: E402
from vadistill.data.pseudo import HarvestConfig, ObjectBank  # noqa: E402
from vadistill.methods.fast_aed import FastAed, FastAedConfig, student_parameters  # noqa: E402
from vadistill.scoring import smooth  # noqa: E402
from vadistill.teachers import AeTeacherConfig, KnnTeacherConfig, video_maps  # noqa: E402

DATA = Path("/work/shared/data")
PED2_GT = DATA / "ucsd_gt" / "UCSDped2.m"
VTEST = DATA / "demo_video" / "vtest.avi"
WORK = ROOT / "benchmarks" / "work" / "fast_aed"
RESULTS = ROOT / "benchmarks" / "results"


def main_config(quick: bool) -> FastAedConfig:
    if quick:
        return FastAedConfig(channels=(8, 16, 32), depth=1, num_heads=2, epochs=1, max_steps_per_epoch=5,
                             batch_size=16, pseudo_count=32, pretrain_epochs=1,
                             knn=KnnTeacherConfig(pca_dim=16), ae=AeTeacherConfig(epochs=1))
    return FastAedConfig(
        input_size=(128, 192),  # Ped2 240x360 x 8/15: aspect kept, /8 grid 16x24 (see fast_aed Departures)
        channels=(24, 48, 64), depth=2, num_heads=4,
        batch_size=32, lr=1e-3, epochs=6, patience=3, pretrain_epochs=1,
        max_steps_per_epoch=50,  # 50 x 32 = 1,600 samples per epoch (the 2,295 + 512 pseudo-anomalies are reshuffled)
        pseudo_count=512, adv_weight=0.1,
        ae=AeTeacherConfig(epochs=4),  # the shared 2-core CPU was at load ~9 during the run
    )


def ablation_schedule(cfg: FastAedConfig, quick: bool) -> FastAedConfig:
    """Ablations train shorter than the main run (CPU budget); a baseline on the same schedule is included."""
    return cfg if quick else replace(cfg, epochs=2, pretrain_epochs=0)  # 100 steps of 32 each


# ----------------------------------------------------------------------------------------------
def frames_root() -> Path:
    for candidate in (ROOT / "benchmarks" / "work" / "ped2", ROOT / "benchmarks" / "work" / "ped2_data" / "ped2"):
        if (candidate / "testing" / "frames" / "12").is_dir() and (candidate / "training" / "frames" / "16").is_dir():
            return candidate
    target = ROOT / "benchmarks" / "work" / "ped2_data"
    with tarfile.open(DATA / "ucsd_ped2" / "ped2_frames.tar") as archive:
        archive.extractall(target, filter="data")
    return target / "ped2"


def object_bank() -> ObjectBank:
    folder = ROOT / "benchmarks" / "work" / "bank_vtest"
    if folder.is_dir() and any(folder.iterdir()):
        return ObjectBank.from_folder(folder)
    frames = load_frames(str(VTEST), size=(288, 384))
    bank = ObjectBank.harvest([frames], config=HarvestConfig(max_objects=300), names=["vtest"],
                              description="harvested from vtest.avi (OpenCV sample street clip)")
    bank.save(folder)
    return ObjectBank.from_folder(folder)


def aucs(scores: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> dict:
    return {"micro_auc": metrics.micro_auc(scores, labels), "macro_auc": metrics.macro_auc(scores, labels).value}


# ----------------------------------------------------------------------------------------------
def train(name: str, cfg: FastAedConfig, train_refs, bank, resume: bool, teacher_dir: Path) -> tuple[FastAed, float]:
    run_dir = WORK / "runs" / name
    model_path, time_path = run_dir / "model.ckpt", run_dir / "train_seconds.json"
    if resume and model_path.exists() and time_path.exists() and name != "main":
        print(f"[{name}] reusing {model_path}", flush=True)
        return FastAed.load(model_path), json.loads(time_path.read_text())["seconds"]
    started = time.perf_counter()
    method = FastAed(cfg, object_bank=bank)
    if resume and model_path.exists() and time_path.exists():
        # The main run also needs its fitted teachers (for the teacher numbers): refit = load from the cache.
        method.fit_teachers([load_frames(r) for r in train_refs], [r.name for r in train_refs], teacher_dir, progress=True)
        loaded = FastAed.load(model_path)
        method.student_, method.score_stats_, method.threshold_, method.history_ = (
            loaded.student_, loaded.score_stats_, loaded.threshold_, loaded.history_)
        return method, json.loads(time_path.read_text())["seconds"]
    method.fit(train_refs, run_dir=run_dir, resume=resume, progress=True, teacher_dir=teacher_dir)
    seconds = time.perf_counter() - started
    time_path.write_text(json.dumps({"seconds": seconds}))
    return method, seconds


def student_terms(name: str, method: FastAed, test_refs, resume: bool) -> dict:
    cache = WORK / "runs" / name / "test_terms.npz"
    if resume and cache.exists():
        with np.load(cache) as data:
            return {r.name: {s: data[f"{r.name}/{s}"] for s in (1, 4, 16)} for r in test_refs}
    terms = {r.name: method.score_terms(r) for r in test_refs}
    np.savez(cache, **{f"{v}/{s}": a for v, t in terms.items() for s, a in t.items()})
    return terms


def student_result(method: FastAed, terms: dict, labels: dict) -> dict:
    out = aucs({v: method.combine_terms(t) for v, t in terms.items()}, labels)
    out["raw_unfiltered"] = aucs({v: method.combine_terms(t, raw=True) for v, t in terms.items()}, labels)
    out["heads"] = {f"{s}x{s}": aucs({v: method.combine_terms(t, heads=(s,)) for v, t in terms.items()}, labels)
                    for s in (1, 4, 16)}
    return out


def teacher_results(method: FastAed, test_refs, labels, teacher_dir: Path) -> dict:
    per_teacher: dict[str, dict[str, np.ndarray]] = {n: {} for n in method.teachers_}
    for ref in test_refs:
        for n, maps in method.teacher_maps(ref, teacher_dir).items():
            per_teacher[n][ref.name] = maps["frame"]
    filt = method.config.temporal_filter
    out = {}
    for n, scores in per_teacher.items():
        out[n] = aucs({v: smooth(s, filt) for v, s in scores.items()}, labels)
        out[n]["raw_unfiltered"] = aucs(scores, labels)
    both = {v: np.maximum(*[per_teacher[n][v] for n in per_teacher]) for v in labels} if len(per_teacher) > 1 else None
    if both is not None:
        out["max_of_teachers"] = aucs({v: smooth(s, filt) for v, s in both.items()}, labels)
    return out


def teacher_speed(method: FastAed, ref, quick: bool) -> dict:
    """Frames per second of the teachers' pipeline from decoded frames (proposals included), uncached."""
    frames = load_frames(ref)
    if quick:
        frames = frames[:30]
    started = time.perf_counter()
    boxes = method.proposer_.propose_video(frames)
    proposal_s = time.perf_counter() - started
    out = {"proposals_fps": len(frames) / proposal_s, "frames": len(frames),
           "objects_per_frame": float(np.mean([len(b) for b in boxes]))}
    total = proposal_s
    for n, teacher in method.teachers_.items():
        started = time.perf_counter()
        video_maps(teacher, frames, boxes, method.config.frame_offsets)
        seconds = time.perf_counter() - started
        out[f"{n}_fps_with_proposals"] = len(frames) / (seconds + proposal_s)
        total += seconds
    out["pipeline_fps"] = len(frames) / total  # proposals once + every teacher (what the student replaces)
    out["load_average_after"] = list(os.getloadavg())
    return out


def student_speed(method: FastAed, ref, quick: bool) -> dict:
    cfg = method.config
    net = method.student_.eval()
    x1 = torch.randn(1, 3 * len(cfg.frame_offsets), *cfg.input_size)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        net(x1)
    out = {"parameters": student_parameters(method), "gflops_per_frame": counter.get_total_flops() / 1e9,
           "input_size": list(cfg.input_size)}
    for batch in (1, 32):
        x = x1.expand(batch, -1, -1, -1).contiguous()
        with torch.inference_mode():
            for _ in range(2):
                net(x)
            runs, started = 0, time.perf_counter()
            while runs < 3 or time.perf_counter() - started < (1.0 if quick else 5.0):
                net(x)
                runs += 1
        out[f"model_fps_batch{batch}"] = batch * runs / (time.perf_counter() - started)
    frames = load_frames(ref)  # decoded once: end to end counts resizing, the student and the filter
    started = time.perf_counter()
    small = resize_frames(frames, cfg.input_size)
    terms, _ = method.head_terms(small)
    method.combine_terms(terms)
    out["end_to_end_fps"] = len(frames) / (time.perf_counter() - started)
    out["load_average_after"] = list(os.getloadavg())
    return out


# ----------------------------------------------------------------------------------------------
def write_markdown(path: Path, r: dict) -> None:
    m, sp, ts = r["student"], r["student_speed"], r["teacher_speed"]
    lines = [
        f"# Fast-AED on UCSD Ped2 ({'QUICK smoke run: numbers are meaningless' if r['quick'] else 'CPU benchmark'})",
        "",
        f"- command: `{r['command']}`",
        f"- git revision: {r['git_revision'] or 'n/a'}",
        f"- machine: {describe_machine(r['machine'])} (at start)",
        f"- data: {r['dataset']}",
        f"- temporal filter (teachers and student): {r['temporal_filter']}",
        f"- student input {tuple(r['config']['input_size'])}, pseudo-anomalies: {r['pseudo_anomalies']}",
        "",
        "## Frame-level AUC (test labels used for these numbers only)",
        "",
        "| model | micro AUC | macro AUC | FPS |",
        "|---|---|---|---|",
    ]
    for n, t in r["teachers"].items():
        fps = ts.get(f"{n}_fps_with_proposals")
        lines.append(f"| teacher {n} | {t['micro_auc']:.4f} | {t['macro_auc']:.4f} | "
                     f"{'%.1f' % fps if fps else '-'} |")
    lines.append(f"| teachers' pipeline (proposals + all teachers) | | | {ts['pipeline_fps']:.1f} |")
    lines.append(f"| **student** (both teachers, adversarial) | **{m['micro_auc']:.4f}** | **{m['macro_auc']:.4f}** | "
                 f"{sp['end_to_end_fps']:.1f} end to end, {sp['model_fps_batch1']:.1f} model b1, "
                 f"{sp['model_fps_batch32']:.1f} model b32 |")
    for head, a in m["heads"].items():
        lines.append(f"| student, head {head} only | {a['micro_auc']:.4f} | {a['macro_auc']:.4f} | |")
    t = r["targets"]
    lines += ["", "## Targets", "",
              f"- student within 2 AUC points (micro) of the best teacher ({t['best_teacher']}: "
              f"{t['best_teacher_micro_auc']:.4f}): gap {100 * t['micro_gap']:.2f} points -> "
              f"{'MET' if t['auc_target_met'] else 'NOT met'}",
              f"- student >= 20x faster than the teachers' pipeline: end to end {t['speedup_end_to_end']:.1f}x, "
              f"model batch 1 {t['speedup_model_batch1']:.1f}x -> {'MET' if t['speed_target_met'] else 'NOT met'}",
              "", f"## Ablations (same cached teacher maps; {r.get('ablation_schedule', 'skipped')})", "",
              "| variant | micro AUC | macro AUC |", "|---|---|---|"]
    for a in r["ablations"]:
        lines.append(f"| {a['name']} | {a['micro_auc']:.4f} | {a['macro_auc']:.4f} |")
    if not r["ablations"]:
        lines.append("| (skipped) | | |")
    lines += ["", "## Cost", "",
              f"- student: {sp['parameters']:,} parameters, {sp['gflops_per_frame']:.3f} GFLOPs/frame at "
              f"{tuple(sp['input_size'])}",
              f"- proposals: {ts['proposals_fps']:.1f} FPS, {ts['objects_per_frame']:.2f} objects per frame",
              f"- load average after the teacher timing {ts.get('load_average_after')}, after the student timing "
              f"{sp.get('load_average_after')} (the 2 cores were shared with other jobs: FPS are indicative)",
              f"- training wall time of the main run in this invocation: {r['train_seconds'] / 60:.1f} min "
              "(teacher parts already cached by an earlier, interrupted invocation are not counted)",
              f"- benchmark wall time: {r['benchmark_wall_time_s'] / 60:.1f} min", "",
              "FPS: float32 CPU, torch inference mode, one process; teacher FPS from decoded frames on "
              "Test001, uncached, proposals included; student end to end = resize + network + temporal filter "
              "from decoded frames (Test001).", ""]
    path.write_text("\n".join(lines))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run (tiny schedule)")
    parser.add_argument("--resume", action="store_true", help="reuse finished runs and caches")
    parser.add_argument("--no-ablations", action="store_true", help="skip the ablation trainings")
    parser.add_argument("--extra-ablations", action="store_true", help="also train without pseudo-anomalies")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads (default 2; use 1 for timings on a shared machine: with more threads "
                             "than free cores, OpenMP barriers make small batches very slow)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    global WORK
    if args.quick:
        WORK = WORK.parent / "fast_aed_quick"
    WORK.mkdir(parents=True, exist_ok=True)
    result: dict = {"quick": args.quick, "command": command_line(),
                    "git_revision": git_revision(), "machine": machine_info()}

    dataset = load_ped2(frames_root(), gt=PED2_GT)
    train_refs, test_refs = list(dataset.train), list(dataset.test)
    if args.quick:
        train_refs, test_refs = train_refs[:3], test_refs[:3]
    labels = {r.name: r.labels for r in test_refs}
    result["dataset"] = (f"{len(train_refs)} training videos ({sum(r.num_frames for r in train_refs)} frames), "
                         f"{len(test_refs)} test videos ({sum(r.num_frames for r in test_refs)} frames), labels from UCSDped2.m")
    bank = object_bank()
    teacher_dir = WORK / "teachers"
    cfg = main_config(args.quick)
    result["config"] = cfg.to_dict()
    result["temporal_filter"] = cfg.temporal_filter.describe()
    result["pseudo_anomalies"] = f"{cfg.pseudo_count} clips, objects: {bank.description} ({len(bank)} sequences)"

    print("== main run ==", flush=True)
    method, seconds = train("main", cfg, train_refs, bank, args.resume, teacher_dir)
    result["train_seconds"] = seconds
    print("== teachers on the test set ==", flush=True)
    result["teachers"] = teacher_results(method, test_refs, labels, teacher_dir)
    print(json.dumps(result["teachers"], indent=1), flush=True)
    result["teacher_speed"] = teacher_speed(method, test_refs[0], args.quick)
    print(result["teacher_speed"], flush=True)
    print("== student ==", flush=True)
    result["student"] = student_result(method, student_terms("main", method, test_refs, args.resume), labels)
    result["student_speed"] = student_speed(method, test_refs[0], args.quick)
    print(json.dumps({k: result[k] for k in ("student", "student_speed")}, indent=1), flush=True)
    best = max((n for n in result["teachers"] if n in cfg.teachers), key=lambda n: result["teachers"][n]["micro_auc"])
    gap = result["teachers"][best]["micro_auc"] - result["student"]["micro_auc"]
    pipe = result["teacher_speed"]["pipeline_fps"]
    result["targets"] = {
        "best_teacher": best, "best_teacher_micro_auc": result["teachers"][best]["micro_auc"], "micro_gap": gap,
        "auc_target_met": bool(gap <= 0.02),
        "speedup_end_to_end": result["student_speed"]["end_to_end_fps"] / pipe,
        "speedup_model_batch1": result["student_speed"]["model_fps_batch1"] / pipe,
        "speed_target_met": bool(result["student_speed"]["end_to_end_fps"] / pipe >= 20)}
    result["ablations"] = []
    out = RESULTS / ("fast_aed_ped2_quick" if args.quick else "fast_aed_ped2")

    def write() -> None:
        result["benchmark_wall_time_s"] = time.perf_counter() - started
        RESULTS.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str) + "\n")
        write_markdown(out.with_suffix(".md"), result)

    write()  # the main numbers are on disk even if an ablation is interrupted
    if not args.no_ablations:
        short = ablation_schedule(cfg, args.quick)
        result["ablation_schedule"] = (f"{short.epochs} distillation epochs, {short.pretrain_epochs} pre-training "
                                       "epochs (shorter than the main run; compare with the baseline row)")
        variants = [("baseline: both teachers + adversarial (short schedule)", short),
                    ("no adversarial term", replace(short, adv_weight=0.0)),
                    ("kNN teacher only", replace(short, teachers=("knn",))),
                    ("auto-encoder teacher only", replace(short, teachers=("ae",)))]
        if args.extra_ablations:
            variants.append(("no pseudo-anomalies", replace(short, pseudo_count=0)))
        for name, variant in variants:
            print(f"== ablation: {name} ==", flush=True)
            key = "ablation_" + name.split(":")[0].split(" (")[0].replace(" ", "_").replace("-", "_")
            ablated, _ = train(key, variant, train_refs, bank, args.resume, teacher_dir)
            entry = {"name": name, **student_result(ablated, student_terms(key, ablated, test_refs, args.resume), labels)}
            entry.pop("heads")
            result["ablations"].append(entry)
            print(entry, flush=True)
            write()
    write()
    print(f"wrote {out}.json and .md", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
