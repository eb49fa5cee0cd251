"""Serving a YOLOS run: images/s of the detector predictor that ``oms serve`` replicas run (pre-processing,
model, post-processing; in process, no HTTP), on a YOLOS-tiny detection run (random weights) served at
512x672, batches of uint8 images. Compare the kernels off and on with the same command:

    OMS_CPU_KERNELS=0 GLOG_v=3 .venv/bin/python benchmarks/vision_serve.py [--batch 4] [--reps 5]
    GLOG_v=3 .venv/bin/python benchmarks/vision_serve.py [--batch 4] [--reps 5]

Each run times the compiled predictor (the default) and the op-by-op one (``compiled=false``), interleaved;
one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import emit  # noqa: E402

SIZE = (512, 672)


def write_run(out: Path) -> Path:
    """A detection-run directory (``model.ckpt`` + ``model.json`` + ``summary.json``) of a random-init
    YOLOS-tiny (91 COCO labels) trained, as far as the server knows, on 512x672 images."""
    import mindspore as ms

    from openmindspore.models.yolos import build_yolos

    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    model = build_yolos("yolos-tiny")
    out.mkdir(parents=True, exist_ok=True)
    ms.save_checkpoint(model, str(out / "model.ckpt"))
    meta = {
        "model": "yolos-tiny",
        "family": "yolos",
        "config": model.config.to_dict(),
        "processor": {"shortest_edge": SIZE[0], "longest_edge": 864},
    }
    (out / "model.json").write_text(json.dumps(meta, default=str))
    summary = {"status": "ok", "task": "detection", "config": {"data": {"image_size": list(SIZE)}}}
    (out / "summary.json").write_text(json.dumps(summary))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=4, help="images per predict call (a served batch)")
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    if a.batch < 1 or a.reps < 1:
        print("vision_serve: --batch and --reps must be >= 1", file=sys.stderr)
        sys.exit(2)
    from openmindspore.models.kernels import transformer
    from openmindspore.serve.registry import load_predictor

    images = np.random.default_rng(0).integers(0, 256, (a.batch, *SIZE, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as d:
        run = write_run(Path(d) / "det")
        preds = {
            "compiled": load_predictor(f"{run}?threshold=0.5"),
            "op_by_op": load_predictor(f"{run}?threshold=0.5&compiled=false"),
        }
    for p in preds.values():
        p.predict({"image": images})  # warm-up (the compiled one compiles its graph here)
    times: dict[str, list[float]] = {k: [] for k in preds}
    for _ in range(a.reps):
        for k, p in preds.items():
            t = time.perf_counter()
            p.predict({"image": images})
            times[k].append(time.perf_counter() - t)
    rec: dict = {
        "bench": "yolos_tiny_serve_predictor_cpu",
        "image_size": list(SIZE),
        "batch": a.batch,
        "reps": a.reps,
        "kernels": transformer.available(),
    }
    for k, ts in times.items():
        med = statistics.median(ts)
        rec[f"{k}_median_s"] = round(med, 4)
        rec[f"{k}_images_per_s"] = round(a.batch / med, 3)
    rec["loadavg_1min"] = round(os.getloadavg()[0], 1)
    emit(rec)


if __name__ == "__main__":
    main()
