"""Pixel-level localisation of a fitted method on the UCSD Ped2 test set: pixel AUC, RBDC, TBDC.

Shared by the AED-MAE and Fast-AED benchmarks. Maps come from the method's own
``anomaly_maps`` (frame resolution); masks from the official ``ucsdped2_pixel_gt.npz``. The
result is cached as JSON in the run folder (``--resume`` reuses it).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from vadistill import metrics
from vadistill.data.labels import load_npz_masks

PED2_MASKS = Path("/work/shared/data/ucsd_gt/ucsdped2_pixel_gt.npz")


def localisation(method, test_refs, cache: Path, resume: bool) -> dict:
    """{"pixel_auc", "rbdc", "tbdc", ...} of `method` over `test_refs` (Ped2 test videos)."""
    if resume and cache.exists():
        return json.loads(cache.read_text())
    started = time.perf_counter()
    maps, masks = {}, {}
    for ref in test_refs:
        maps[ref.name] = method.anomaly_maps(ref)  # (T, 240, 360) float32
        masks[ref.name] = load_npz_masks(PED2_MASKS, f"Test{int(ref.name):03d}")  # (T, 240, 360) bool
        print(f"[localisation] maps of video {ref.name}", flush=True)
    criteria = metrics.rbdc_tbdc_from_maps(maps, masks)
    out = {"pixel_auc": metrics.pixel_auc(maps, masks), "rbdc": criteria.rbdc, "tbdc": criteria.tbdc,
           "num_gt_regions": criteria.num_gt_regions, "num_gt_tracks": criteria.num_gt_tracks,
           "settings": (f"pixel AUC over all pixels of all test frames; RBDC/TBDC (Ramachandra & Jones 2020) with "
                        f"beta={criteria.beta}, alpha={criteria.alpha}, max FPR {criteria.max_fpr}, regions = "
                        "components above half of each map's own range (metrics.maps_to_detections)"),
           "seconds": time.perf_counter() - started}
    cache.write_text(json.dumps(out, indent=1))
    return out
