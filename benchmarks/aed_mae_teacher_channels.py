"""Where AED-MAE's teacher term finds Ped2's anomalies: its RGB and map channels, read three ways.

    python benchmarks/aed_mae_teacher_channels.py --work benchmarks/work_long \
        --runs main_seed2,main_seed3,all_token_loss_seed2,all_token_loss_seed3

The teacher's error has four channels: the RGB reconstruction of frame t and the anomaly map,
whose target at test time is "no anomaly" (-1), so its error is how strongly the map fires. The
default term averages the four (Sec. 3.4) and reads each pixel from the complementary-mask pass
that HID its token. This diagnostic splits the term into its RGB part and its map part, reads
each where the token was hidden, where it was seen, and in one unmasked pass, and reports for
each reading:

- test micro / macro AUC of the frame term (filtered map -> frame maximum -> temporal filter, as
  the method scores), and the per-video AUC;
- on anomalous frames with a pixel mask, how often the filtered map's maximum lies inside the
  official anomaly mask (if the maximum sits elsewhere, the frame score is set by a normal region);
- the mean image row of that maximum on normal and anomalous frames, against the masks' mean row
  (Ped2's camera looks down a walkway: nearer walkers are lower in the frame and larger).

It reads the trained models of `benchmarks/aed_mae_ped2.py` (``<work>/full/runs/<run>/model.ckpt``)
and changes nothing. Test labels are used only to report; no setting is chosen here. Writes
benchmarks/results/aed_mae_teacher_channels.json and .md (machine, command, git revision).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch

import aed_mae_ped2 as ped2
from localisation import PED2_MASKS
from vadistill import metrics
from vadistill.argtypes import comma_list
from vadistill.data.clips import clip_indices
from vadistill.data.labels import load_npz_masks
from vadistill.methods.aed_mae import AedMae, clips_to_input
from vadistill.provenance import command_line, git_revision, machine_info, provenance_header
from vadistill.scoring import smooth

RESULTS = Path(__file__).resolve().parent / "results"
CHANNELS = ("rgb", "map")
READINGS = ("hidden", "seen", "unmasked")
DEFAULT_RUNS = "main_seed2,main_seed3,all_token_loss_seed2,all_token_loss_seed3"


@torch.inference_mode()
def channel_maps(method: AedMae, frames: np.ndarray, batch: int = 16) -> dict[str, np.ndarray]:
    """Per-pixel teacher error {"<channel>_<reading>": (T, H, W)} of one video at the model's size.

    The per-channel error is the scorer's (|diff| or diff^2); "rgb" is its mean over the three
    colour channels, "map" the map channel's. "hidden"/"seen": from the complementary pass that
    hid / saw each pixel's token; "unmasked": one pass with every token visible.
    """
    cfg, scorer = method.config, method.scorer()
    if scorer.keeps is None or scorer.keeps.shape[0] != 2:
        raise ValueError("this diagnostic needs the two complementary 50% masks (the default scoring)")
    T, centre = len(frames), scorer.centre
    out: dict[str, list[np.ndarray]] = {f"{c}_{r}": [] for c in CHANNELS for r in READINGS}

    def per_channel(teacher: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        diff = teacher - target
        error = diff.square() if scorer.squared else diff.abs()  # (B, 4, H, W)
        return error[:, :3].mean(dim=1), error[:, 3]

    for first in range(0, T, batch):
        ts = np.arange(first, min(T, first + batch))
        x = clips_to_input(frames[clip_indices(T, ts, cfg.frame_offsets)]).to(method.device)
        rgb = x[:, 3 * centre:3 * centre + 3]
        target = torch.cat((rgb, torch.full_like(rgb[:, :1], -1.0)), dim=1)
        hidden = {c: 0.0 for c in CHANNELS}
        seen = {c: 0.0 for c in CHANNELS}
        for k in range(2):  # two complementary passes: each pixel is hidden in one, seen in the other
            owner = scorer.owner[k]
            errors = per_channel(scorer.net(x, with_student=False, keep=scorer.keeps[k].expand(len(ts), -1)).teacher,
                                 target)
            for c, e in zip(CHANNELS, errors):
                hidden[c] = hidden[c] + owner * e
                seen[c] = seen[c] + (1 - owner) * e
        unmasked = dict(zip(CHANNELS, per_channel(scorer.net(x, with_student=False).teacher, target)))
        for c in CHANNELS:
            for reading, values in (("hidden", hidden), ("seen", seen), ("unmasked", unmasked)):
                out[f"{c}_{reading}"].append(values[c].float().cpu().numpy())
    return {key: np.concatenate(parts) for key, parts in out.items()}


def masks_at(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(T, H0, W0) bool masks -> (T, H, W) at the model's (H, W), nearest neighbour."""
    H, W = size
    return np.stack([cv2.resize(m.astype(np.uint8), (W, H), interpolation=cv2.INTER_NEAREST) > 0 for m in masks])


def peak_rows_and_hits(filtered: np.ndarray, masks: np.ndarray, labels: np.ndarray) -> dict:
    """Where the frame maximum lies: inside the mask (at the map's size) on anomalous frames, and its mean row."""
    T, H, W = filtered.shape
    peaks = filtered.reshape(T, -1).argmax(axis=1)
    rows, cols = np.unravel_index(peaks, (H, W))
    hits, gt_rows = [], []
    for t in np.flatnonzero(labels):
        mask = masks[t]
        if mask.any():
            hits.append(bool(mask[rows[t], cols[t]]))
            gt_rows.append(float(np.flatnonzero(mask.any(axis=1)).mean()))
    normal = labels == 0
    return {"hits": hits, "gt_rows": gt_rows, "peak_rows_normal": rows[normal].tolist(),
            "peak_rows_anomalous": rows[labels == 1].tolist()}


def measure_run(run: str, work: Path, test_refs, labels: dict) -> dict:
    method = AedMae.load(work / "full" / "runs" / run / "model.ckpt")
    started = time.perf_counter()
    terms: dict[str, dict[str, np.ndarray]] = {}
    where: dict[str, dict[str, list]] = {}
    for ref in test_refs:
        frames, _ = method._load_video(ref)
        maps = channel_maps(method, frames)
        # the default teacher term, rebuilt from its parts: (3 x RGB + map) / 4, each where hidden
        maps["default_hidden"] = (3 * maps["rgb_hidden"] + maps["map_hidden"]) / 4
        # resized once per video, not once per reading
        masks = masks_at(load_npz_masks(PED2_MASKS, f"Test{int(ref.name):03d}"), method.config.input_size)
        for key, values in maps.items():
            filtered = method._filter_map(values)
            terms.setdefault(key, {})[ref.name] = filtered.reshape(len(filtered), -1).max(axis=1)
            found = peak_rows_and_hits(filtered, masks, labels[ref.name])
            slot = where.setdefault(key, {k: [] for k in found})
            for k, v in found.items():
                slot[k].extend(v)
        print(f"[teacher-channels] {run}: video {ref.name}", flush=True)
    result = {"run": run, "config": {k: method.config.to_dict()[k] for k in ("loss_tokens", "seed", "input_size")},
              "seconds": round(time.perf_counter() - started, 1), "readings": {}}
    for key, per_video in terms.items():
        smoothed = {name: smooth(values, method.config.temporal_filter) for name, values in per_video.items()}
        macro = metrics.macro_auc(smoothed, labels)
        per_video_auc = {name: float(metrics.micro_auc(smoothed[name], labels[name]))
                         for name in smoothed if 0 < labels[name].sum() < len(labels[name])}
        w = where[key]
        result["readings"][key] = {
            "micro_auc": metrics.micro_auc(smoothed, labels), "macro_auc": macro.value,
            "per_video_auc": per_video_auc,
            "peak_in_mask": float(np.mean(w["hits"])), "anomalous_frames_with_mask": len(w["hits"]),
            "mean_peak_row_normal": float(np.mean(w["peak_rows_normal"])),
            "mean_peak_row_anomalous": float(np.mean(w["peak_rows_anomalous"])),
            "mean_mask_row": float(np.mean(w["gt_rows"])),
            "frame_height": int(method.config.input_size[0])}
    return result


def markdown(result: dict) -> str:
    lines = ["# AED-MAE on Ped2: the teacher term's RGB and map channels", "",
             *provenance_header(result),
             "- models: the trained runs of `benchmarks/aed_mae_ped2.py` named below (their config.json says how "
             "each was trained); nothing is retrained or chosen here, test labels only report",
             "- term: per-pixel error of the channel(s) -> 3-D mean filter -> frame maximum -> temporal filter "
             "(the method's own scoring); `default` = (3 x RGB + map) / 4 read where hidden, the teacher term the "
             "method scores with", "",
             "| run | channel, reading | micro AUC | macro AUC | frame maximum inside the anomaly mask "
             "(anomalous frames) | mean row of the maximum: normal / anomalous frames (mask rows) |",
             "|---|---|---|---|---|---|"]
    for run in result["runs"]:
        for key, r in run["readings"].items():
            lines.append(f"| {run['run']} | {key.replace('_', ', ')} | {r['micro_auc']:.4f} | {r['macro_auc']:.4f} | "
                         f"{r['peak_in_mask']:.3f} of {r['anomalous_frames_with_mask']} | "
                         f"{r['mean_peak_row_normal']:.0f} / {r['mean_peak_row_anomalous']:.0f} "
                         f"({r['mean_mask_row']:.0f}) of {r['frame_height']} |")
    lines += ["", "## Per-video AUC (videos with both classes)", "",
              "| run | channel, reading | " + " | ".join(sorted(result["runs"][0]["readings"]["default_hidden"]
                                                             ["per_video_auc"])) + " |",
              "|---|---|" + "---|" * len(result["runs"][0]["readings"]["default_hidden"]["per_video_auc"])]
    for run in result["runs"]:
        for key, r in run["readings"].items():
            lines.append(f"| {run['run']} | {key.replace('_', ', ')} | "
                         + " | ".join(f"{r['per_video_auc'][v]:.3f}" for v in sorted(r["per_video_auc"])) + " |")
    lines += ["", f"Total wall time: {result['seconds'] / 60:.1f} min.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path(__file__).resolve().parent / "work_long")
    parser.add_argument("--runs", type=comma_list(str), default=DEFAULT_RUNS,
                        help="run folders under <work>/full/runs, comma-separated")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    dataset = ped2.load_ped2(ped2.ensure_ped2(args.work), gt=ped2.PED2_GT)
    labels = {ref.name: np.asarray(ref.labels) for ref in dataset.test}
    runs = [measure_run(run, args.work, dataset.test, labels) for run in args.runs]
    result = {"command": command_line(), "machine": machine_info(), "threads": args.threads,
              "runs": runs, "seconds": time.perf_counter() - started}
    result["git_revision"] = git_revision()  # at the end: the revision the numbers were made with
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "aed_mae_teacher_channels.json").write_text(json.dumps(result, indent=1))
    (args.out / "aed_mae_teacher_channels.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
