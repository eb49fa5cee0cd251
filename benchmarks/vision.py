"""Vision transformers benchmark: YOLOS-tiny CPU inference (ours vs transformers/PyTorch, same run, same
random weights, 512-pixel short side), the YOLOS training-step speed (op by op vs compiled, same config)
and the synthetic-detection fine-tuning result.

    GLOG_v=3 .venv/bin/python benchmarks/vision.py [--reps 5] [--finetune examples/yolos_synthetic.yaml]
                                                   [--step-reps 20] [--skip-inference] [--skip-step]
                                                   [--skip-finetune]

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


def bench_train_step(config_path: str, reps: int) -> None:
    """Steps/s of the DETR training step on the config's model and batch: PyNative vs compiled."""
    import mindspore as ms
    import yaml

    from openmindspore.models import create_model
    from openmindspore.models.yolos.finetune import DetectionJob, _targets, load_detection_data
    from openmindspore.models.yolos.loss import DetrLossWeights
    from openmindspore.models.yolos.processor import YolosImageProcessor
    from openmindspore.models.yolos.train_step import DetrTrainStep, optimizer_for

    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    job = DetectionJob.from_dict(yaml.safe_load(Path(config_path).read_text()))
    if job.train.threads:
        ms.set_context(runtime_num_threads=int(job.train.threads))
    job.data.train_images = 4 * job.train.batch_size
    imgs, coco, _, _ = load_detection_data(job.data)
    h, w = imgs[0].shape[:2]
    enc = YolosImageProcessor(shortest_edge=min(h, w), longest_edge=max(h, w))(imgs, _targets(coco))
    x = np.asarray(enc["pixel_values"], np.float32)
    tg = [{"class_labels": t["class_labels"], "boxes": t["boxes"].astype(np.float32)} for t in enc["labels"]]
    bs = job.train.batch_size
    mcfg = {k: v for k, v in job.model.items() if k != "name"}
    mcfg.setdefault("num_labels", max(c["id"] for c in coco["categories"]) + 1)
    mcfg.setdefault("image_size", [h, w])
    rate: dict[str, float] = {}
    cpu: dict[str, float] = {}  # CPU seconds per step (this process, all threads): less load-sensitive
    for compiled in (False, True):
        model = create_model(job.model.get("name", "yolos"), **mcfg)
        step = DetrTrainStep(
            model,
            DetrLossWeights.from_config(model.config),
            optimizer_for(model, [1e-4] * (reps + 3), 1e-4),
            job.train.grad_clip,
            compiled,
        )
        batch = [(ms.Tensor(x[i : i + bs]), tg[i : i + bs]) for i in range(0, len(x), bs)]
        for i in range(2):  # warm-up (compilation)
            step(*batch[i % len(batch)])
        t, c = time.perf_counter(), time.process_time()
        for i in range(reps):
            step(*batch[i % len(batch)])
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
            "threads": job.train.threads,
            "pynative_cpu_s_per_step": round(cpu["pynative"], 3),
            "compiled_cpu_s_per_step": round(cpu["compiled"], 3),
            "cpu_speedup": round(cpu["pynative"] / cpu["compiled"], 2),
            "loadavg_1min": round(os.getloadavg()[0], 1),
        }
    )


def bench_finetune(config_path: str) -> None:
    import yaml

    from openmindspore.models.yolos.finetune import finetune_detection

    cfg = yaml.safe_load(Path(config_path).read_text())
    with tempfile.TemporaryDirectory() as d:
        s = finetune_detection(cfg, d)
    emit(
        {
            "bench": "yolos_synthetic_finetune",
            "config": config_path,
            "steps": s["steps"],
            "map50_before": round(s["eval"]["map50_before"], 4),
            "map50_after": round(s["eval"]["map50"], 4),
            "map_before": round(s["eval"]["map_before"], 4),
            "map_after": round(s["eval"]["map"], 4),
            "first_loss": round(s["first_loss"], 4),
            "final_loss": round(s["final_loss"], 4),
            "seconds": round(s["seconds"], 1),
            "train_seconds": round(s["train_seconds"], 1),
            "steps_per_s": round(s["steps_per_s"], 2),
            "train_cpu_seconds": round(s["train_cpu_seconds"], 1),
            "curve": [[c["step"], round(c["map50"], 4)] for c in s["curve"]],
            "train_images": s["train_images"],
            "val_images": s["val_images"],
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
    ap.add_argument("--skip-inference", action="store_true")
    a = ap.parse_args()
    if not a.skip_inference:
        bench_inference(a.reps)
    if not a.skip_step:
        bench_train_step(a.finetune, a.step_reps)
    if not a.skip_finetune:
        bench_finetune(a.finetune)


if __name__ == "__main__":
    main()
