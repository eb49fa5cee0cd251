"""Vision transformers benchmark: YOLOS-tiny CPU inference (ours vs transformers/PyTorch, same run, same
random weights, 512-pixel short side), the YOLOS training-step speed through the one trainer (op by op vs
compiled, same config) and the synthetic-detection training result (COCO mAP).

    GLOG_v=3 .venv/bin/python benchmarks/vision.py [--reps 5] [--finetune examples/yolos_synthetic.yaml]
                                                   [--step-reps 20] [--steps N] [--skip-inference]
                                                   [--skip-step] [--skip-finetune]

Prints one JSON line per result.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import emit  # noqa: E402


def bench_inference(reps: int) -> None:
    import mindspore as ms
    import torch
    import transformers

    from openmindspore.models import create_model
    from openmindspore.models.hf_convert import load_hf_state_dict
    from openmindspore.models.yolos import YOLOS_PRESETS
    from openmindspore.models.yolos.processor import YolosImageProcessor

    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    p = dict(YOLOS_PRESETS["yolos-tiny"])
    ref = transformers.YolosForObjectDetection(
        transformers.YolosConfig(**{**p, "image_size": list(p["image_size"])}, num_labels=91)
    ).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # random, non-zero embeddings and tokens (the reference init leaves them at 0)
        for n, prm in ref.named_parameters():
            if "embeddings" in n or "token" in n:
                prm.copy_(0.02 * torch.randn(prm.shape, generator=g))
    ours = create_model("yolos-tiny")
    load_hf_state_dict(ours, {k: v.numpy() for k, v in ref.state_dict().items()})
    ours.set_train(False)
    img = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    x = YolosImageProcessor(shortest_edge=512, longest_edge=864)([img])["pixel_values"]
    xt, xm = torch.from_numpy(x), ms.Tensor(x)

    def run_torch():
        with torch.no_grad():
            return ref(xt).logits.numpy()

    def run_ours():
        return ours(xm)[0].asnumpy()

    diff = float(np.abs(run_torch() - run_ours()).max())
    times = {"torch": [], "mindspore": []}
    for _ in range(reps):  # interleaved so that machine load affects both alike
        for name, fn in (("torch", run_torch), ("mindspore", run_ours)):
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    emit(
        {
            "bench": "yolos_tiny_inference_cpu",
            "input": list(x.shape),
            "reps": reps,
            "ours_median_s": round(med["mindspore"], 4),
            "torch_median_s": round(med["torch"], 4),
            "ours_min_s": round(best["mindspore"], 4),
            "torch_min_s": round(best["torch"], 4),
            "ratio_median": round(med["mindspore"] / med["torch"], 3),
            "ratio_min": round(best["mindspore"] / best["torch"], 3),
            "max_abs_logit_diff": diff,
            "torch_threads": torch.get_num_threads(),
            "loadavg_1min": round(os.getloadavg()[0], 1),
        }
    )


def _detection_config(config_path: str, **changes: object) -> Any:
    """The config file as a validated ``TrainConfig``, with ``changes`` to its top-level fields."""
    from openmindspore.train import config_from_dict
    from openmindspore.train.config import read_yaml

    raw = read_yaml(config_path)
    raw.update(changes)
    return config_from_dict(raw, base_dir=Path(config_path).resolve().parent)


def bench_train_step(config_path: str, reps: int) -> None:
    """Steps/s of the detection training step (the one trainer, the config's model and batch): op by op
    (``compile: false``) vs compiled (a compiled forward, host matching, one graph for loss + backward)."""
    from openmindspore.train import Trainer

    base = _detection_config(config_path)
    bs = base.batch_size
    small = {**base.dataset, "train_images": 4 * bs, "val_images": 2}  # the step's speed needs few images
    rate: dict[str, float] = {}
    cpu: dict[str, float] = {}  # CPU seconds per step (this process, all threads): less load-sensitive
    for compiled in (False, True):
        tr = Trainer(_detection_config(config_path, compile=compiled, dataset=small))
        for _ in range(2):  # warm-up (compilation)
            tr.train_step()
        t, c = time.perf_counter(), time.process_time()
        for _ in range(reps):
            tr.train_step()
        key = "compiled" if compiled else "pynative"
        rate[key] = reps / (time.perf_counter() - t)
        cpu[key] = (time.process_time() - c) / reps
    emit(
        {
            "bench": "yolos_train_step_cpu",
            "config": config_path,
            "batch_size": bs,
            "reps": reps,
            "pynative_steps_per_s": round(rate["pynative"], 3),
            "compiled_steps_per_s": round(rate["compiled"], 3),
            "speedup": round(rate["compiled"] / rate["pynative"], 2),
            "pynative_cpu_s_per_step": round(cpu["pynative"], 3),
            "compiled_cpu_s_per_step": round(cpu["compiled"], 3),
            "cpu_speedup": round(cpu["pynative"] / cpu["compiled"], 2),
            "loadavg_1min": round(os.getloadavg()[0], 1),
        }
    )


def bench_finetune(config_path: str, steps: int | None) -> None:
    """Train the config with the one trainer (``steps`` overrides its planned total, so the schedule fits it)
    and report COCO mAP on the validation and test images."""
    from openmindspore.train import train

    cfg = _detection_config(config_path, **({"steps": steps} if steps else {}))
    t, c = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as d:
        s = train(cfg, Path(d) / "run")
    emit(
        {
            "bench": "yolos_synthetic_train",
            "config": config_path,
            "steps": s["steps"],
            "val_map50": round(s["val"]["map50"], 4),
            "val_map": round(s["val"]["map"], 4),
            "test_map50": round(s["eval"]["map50"], 4),
            "test_map": round(s["eval"]["map"], 4),
            "final_loss": round(s["final_loss"], 4),
            "seconds": round(time.perf_counter() - t, 1),
            "cpu_seconds": round(time.process_time() - c, 1),
            "median_step_s": round(s["step_time_s"]["median"], 4),
            "params_sha256": s["params_sha256"],
            "loadavg_1min": round(os.getloadavg()[0], 1),
        }
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--finetune", default=str(Path(__file__).resolve().parent.parent / "examples/yolos_synthetic.yaml"))
    ap.add_argument("--step-reps", type=int, default=20)
    ap.add_argument("--skip-step", action="store_true")
    ap.add_argument("--skip-finetune", action="store_true")
    ap.add_argument("--steps", type=int, default=None, help="train this many steps instead of the config's")
    ap.add_argument("--skip-inference", action="store_true")
    a = ap.parse_args()
    if not a.skip_inference:
        bench_inference(a.reps)
    if not a.skip_step:
        bench_train_step(a.finetune, a.step_reps)
    if not a.skip_finetune:
        bench_finetune(a.finetune, a.steps)


if __name__ == "__main__":
    main()
