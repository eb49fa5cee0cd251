"""Vision transformers benchmark: YOLOS-tiny CPU inference (ours vs transformers/PyTorch, same run, same
random weights, 512-pixel short side) and the synthetic-detection fine-tuning result.

    GLOG_v=3 .venv/bin/python benchmarks/vision.py [--reps 5] [--finetune examples/yolos_synthetic.yaml]
                                                   [--skip-finetune]

Prints one JSON line per result.
"""
from __future__ import annotations

import argparse
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
    ref = transformers.YolosForObjectDetection(transformers.YolosConfig(
        **{**p, "image_size": list(p["image_size"])}, num_labels=91)).eval()
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
    emit({"bench": "yolos_tiny_inference_cpu", "input": list(x.shape), "reps": reps,
          "ours_median_s": round(med["mindspore"], 4), "torch_median_s": round(med["torch"], 4),
          "ours_min_s": round(best["mindspore"], 4), "torch_min_s": round(best["torch"], 4),
          "ratio_median": round(med["mindspore"] / med["torch"], 3),
          "ratio_min": round(best["mindspore"] / best["torch"], 3),
          "max_abs_logit_diff": diff, "torch_threads": torch.get_num_threads()})


def bench_finetune(config_path: str) -> None:
    import yaml

    from openmindspore.models.yolos.finetune import finetune_detection

    cfg = yaml.safe_load(Path(config_path).read_text())
    with tempfile.TemporaryDirectory() as d:
        s = finetune_detection(cfg, d)
    emit({"bench": "yolos_synthetic_finetune", "config": config_path, "steps": s["steps"],
          "map50_before": round(s["eval"]["map50_before"], 4), "map50_after": round(s["eval"]["map50"], 4),
          "map_before": round(s["eval"]["map_before"], 4), "map_after": round(s["eval"]["map"], 4),
          "first_loss": round(s["first_loss"], 4), "final_loss": round(s["final_loss"], 4),
          "seconds": round(s["seconds"], 1), "train_images": s["train_images"], "val_images": s["val_images"]})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--finetune", default=str(Path(__file__).resolve().parent.parent / "examples/yolos_synthetic.yaml"))
    ap.add_argument("--skip-finetune", action="store_true")
    ap.add_argument("--skip-inference", action="store_true")
    a = ap.parse_args()
    if not a.skip_inference:
        bench_inference(a.reps)
    if not a.skip_finetune:
        bench_finetune(a.finetune)


if __name__ == "__main__":
    main()
