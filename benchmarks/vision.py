"""Vision transformers benchmark: YOLOS-tiny (512-pixel short side) and ViT-B/16 (224x224, batch 8) CPU
inference (ours with the C++ kernels, op by op and compiled, optionally the MindSpore-only fallback, vs
transformers/PyTorch: same run, interleaved, same random weights), the YOLOS training-step speed through
the one trainer (op by op vs compiled, same config) and the synthetic-detection training result (COCO mAP).

    GLOG_v=3 .venv/bin/python benchmarks/vision.py [--reps 5] [--models yolos-tiny,vit-base] [--fallback]
                                                   [--finetune examples/yolos_synthetic.yaml]
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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import emit  # noqa: E402


def _interleaved(fns: dict[str, Any], reps: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and CPU seconds (all threads: less load-sensitive) of each function, ``reps`` rounds, interleaved."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            t, c = time.perf_counter(), time.process_time()
            fn()
            times[k].append(time.perf_counter() - t)
            cpu[k].append(time.process_time() - c)
    return times, cpu


@contextmanager
def _kernels(on: bool) -> Iterator[None]:
    """Build models with the C++ kernels on (when available) or off (MindSpore-only layers)."""
    from openmindspore.models import kernels
    from openmindspore.models.kernels import transformer

    saved = dict(kernels._state), dict(transformer._state)
    if not on:
        kernels._state["lib"] = None
        transformer._state["lib"] = None
    try:
        yield
    finally:
        for st, old in zip((kernels._state, transformer._state), saved):
            st.clear()
            st.update(old)


def _reference(name: str) -> tuple[Any, Any, np.ndarray]:
    """``(transformers model, our model factory, input batch)`` for ``yolos-tiny`` (one 480x640 image at
    512 short side) or ``vit-base`` (ViT-B/16, 8 images of 224x224), same random weights."""
    import torch
    import transformers

    from openmindspore.models import create_model
    from openmindspore.models.hf_convert import load_hf_state_dict

    if name == "yolos-tiny":
        from openmindspore.models.yolos import YOLOS_PRESETS
        from openmindspore.models.yolos.processor import YolosImageProcessor

        p = dict(YOLOS_PRESETS["yolos-tiny"])
        ref = transformers.YolosForObjectDetection(
            transformers.YolosConfig(**{**p, "image_size": list(p["image_size"])}, num_labels=91)
        )
        img = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
        x = YolosImageProcessor(shortest_edge=512, longest_edge=864)([img])["pixel_values"]
        preset = "yolos-tiny"
    else:
        from openmindspore.models.vit import VIT_PRESETS

        ref = transformers.ViTForImageClassification(
            transformers.ViTConfig(**VIT_PRESETS["vit-base-patch16-224"], num_labels=1000)
        )
        x = np.random.default_rng(0).standard_normal((8, 3, 224, 224)).astype(np.float32)
        preset = "vit-base-patch16-224"
    ref.eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # random, non-zero embeddings and tokens (the reference init leaves them at 0)
        for n, prm in ref.named_parameters():
            if "embeddings" in n or "token" in n:
                prm.copy_(0.02 * torch.randn(prm.shape, generator=g))
    state = {k: v.numpy() for k, v in ref.state_dict().items()}

    def ours() -> Any:
        m = create_model(preset, **({"num_labels": 1000} if name == "vit-base" else {}))
        load_hf_state_dict(m, state)
        m.set_train(False)
        return m

    return ref, ours, np.ascontiguousarray(x, np.float32)


def bench_inference(name: str, reps: int, fallback: bool) -> None:
    """Ours (C++ kernels: op by op and compiled with ``ms.jit``; optionally the MindSpore-only fallback) vs
    transformers/PyTorch, interleaved so that machine load affects all alike."""
    import mindspore as ms
    import torch

    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    ref, build, x = _reference(name)
    xt, xm = torch.from_numpy(x), ms.Tensor(x)
    model = build()

    def forward(t: Any) -> Any:
        return model(t)[0]

    jitted = ms.jit(forward)

    def run_torch() -> np.ndarray:
        with torch.no_grad():
            return ref(xt).logits.numpy()

    fns = {"torch": run_torch, "ours": lambda: model(xm)[0].asnumpy(), "ours_jit": lambda: jitted(xm).asnumpy()}
    if fallback:
        with _kernels(False):
            slow = build()
        fns["ours_fallback"] = lambda: slow(xm)[0].asnumpy()
    expect = run_torch()
    diff = {k: float(np.abs(fn() - expect).max()) for k, fn in fns.items() if k != "torch"}  # also warms up
    times, cpu = _interleaved(fns, reps)
    med = {k: statistics.median(v) for k, v in times.items()}
    rec: dict[str, Any] = {"bench": f"{name.replace('-', '_')}_inference_cpu", "input": list(x.shape), "reps": reps}
    for k in fns:
        rec[f"{k}_median_s"] = round(med[k], 4)
        rec[f"{k}_min_s"] = round(min(times[k]), 4)
        rec[f"{k}_cpu_median_s"] = round(statistics.median(cpu[k]), 4)
        if k != "torch":
            rec[f"{k}_ratio_median"] = round(med[k] / med["torch"], 3)
            rec[f"{k}_max_abs_logit_diff"] = diff[k]
    rec.update(torch_threads=torch.get_num_threads(), loadavg_1min=round(os.getloadavg()[0], 1))
    emit(rec)


def _step_trainer(name: str, tmp: Path) -> Any:
    """Our trainer for the training-step comparison: ViT-B/16 on 8 random 224x224 images (an npz, 4
    classes, batch 8) or YOLOS-tiny on 1 synthetic 512x672 detection image (batch 1); AdamW with weight
    decay 0.01, gradient clipping at 1.0, compiled step (both models are graph safe: no dropout)."""
    from openmindspore.train import Trainer, config_from_dict

    if name == "vit-base":
        rng = np.random.default_rng(0)
        x = rng.standard_normal((8, 3, 224, 224)).astype(np.float32)  # one batch: every step sees these 8
        np.savez(tmp / "vit.npz", x=x, y=np.arange(8) % 4)
        raw: dict[str, Any] = {
            "dataset": {"format": "npz", "path": "vit.npz"},
            "model": {"name": "vit-base-patch16-224"},
            "batch_size": 8,
        }
    else:
        ds = {"train_images": 1, "val_images": 1, "image_size": [512, 672], "max_objects": 3}
        ds.update(min_size=48, max_size=160, seed=0)
        raw = {"dataset": {"format": "synthetic_detection", **ds}, "model": {"name": "yolos-tiny"}, "batch_size": 1}
    raw.update(
        optimizer={"name": "adamw", "lr": 1e-4, "weight_decay": 0.01, "clip_grad_norm": 1.0},
        steps=1000,
        seed=0,
        compile=True,
    )
    return Trainer(config_from_dict(raw, base_dir=tmp))


def _torch_twin(trainer: Any, name: str) -> Any:
    """The transformers model of our trainer's model config (random init), whose weights are then copied
    into ours: the same weights on both sides."""
    import transformers

    from openmindspore.models.hf_convert import load_hf_state_dict
    from openmindspore.models.vit import VIT_PRESETS
    from openmindspore.models.yolos import YOLOS_PRESETS

    # the architecture's fields (HF's config checks types strictly; the loss weights are both sides' defaults)
    keys = {*(VIT_PRESETS["vit-base-patch16-224"] if name == "vit-base" else YOLOS_PRESETS["yolos-tiny"])}
    keys |= {"num_labels", "image_size", "num_channels"}
    dump = trainer.model.config.model_dump()
    cfg = {k: list(dump[k]) if isinstance(dump[k], tuple) else dump[k] for k in keys}
    cls, conf = (
        (transformers.ViTForImageClassification, transformers.ViTConfig)
        if name == "vit-base"
        else (transformers.YolosForObjectDetection, transformers.YolosConfig)
    )
    ref = cls(conf(**cfg))
    load_hf_state_dict(trainer.model, {k: v.detach().numpy() for k, v in ref.state_dict().items()})
    return ref


def bench_step_vs_torch(name: str, reps: int) -> None:
    """Training step (forward + backward + clipping + AdamW) of ``vit-base`` (batch 8, cross-entropy on the
    logits) or ``yolos-tiny`` (one 512x672 image, the DETR loss with Hungarian matching on both sides:
    ours the trainer's detection step, PyTorch the transformers model's own loss with ``labels``): ours
    through the one trainer (compiled step) vs transformers/PyTorch with ``torch.optim.AdamW``, interleaved,
    same weights and batch size."""
    import torch

    from openmindspore.data.detection import unpack_targets

    with tempfile.TemporaryDirectory() as d:
        tr = _step_trainer(name, Path(d))
    ref = _torch_twin(tr, name)
    ref.train()
    bs = tr.cfg.batch_size
    xt = torch.from_numpy(np.ascontiguousarray(tr.data.x_train[:bs], np.float32))
    y = tr.data.y_train[:bs]
    opt = torch.optim.AdamW(ref.parameters(), lr=1e-4, weight_decay=0.01)

    def torch_step() -> float:
        opt.zero_grad()
        if name == "vit-base":
            loss = torch.nn.functional.cross_entropy(ref(pixel_values=xt).logits, torch.from_numpy(y.astype(np.int64)))
        else:
            labels = [
                {
                    "class_labels": torch.from_numpy(t["class_labels"].astype(np.int64)),
                    "boxes": torch.from_numpy(t["boxes"]),
                }
                for t in unpack_targets(y)
            ]
            loss = ref(pixel_values=xt, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), 1.0)
        opt.step()
        return float(loss.detach())

    fns = {"torch": torch_step, "ours": tr.train_step}
    first = {k: fn() for k, fn in fns.items()}  # warm-up (our step compiles here)
    fns["ours"]()
    times, cpu = _interleaved(fns, reps)
    med = {k: statistics.median(v) for k, v in times.items()}
    emit(
        {
            "bench": f"{name.replace('-', '_')}_train_step_vs_torch_cpu",
            "input": list(xt.shape),
            "loss": "cross-entropy on the logits" if name == "vit-base" else "DETR loss (Hungarian matching)",
            "reps": reps,
            "torch_median_s": round(med["torch"], 4),
            "ours_median_s": round(med["ours"], 4),
            "ratio_median": round(med["ours"] / med["torch"], 3),
            "torch_cpu_median_s": round(statistics.median(cpu["torch"]), 4),
            "ours_cpu_median_s": round(statistics.median(cpu["ours"]), 4),
            "first_loss_torch": round(first["torch"], 4),
            "first_loss_ours": round(first["ours"], 4),
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
    ap.add_argument("--torch-step", default="", help="training step vs PyTorch for these models (yolos-tiny,vit-base)")
    ap.add_argument("--models", default="yolos-tiny,vit-base", help="inference models (yolos-tiny, vit-base)")
    ap.add_argument("--fallback", action="store_true", help="also time the MindSpore-only layers (kernels off)")
    a = ap.parse_args()
    if not a.skip_inference:
        for name in a.models.split(","):
            bench_inference(name, a.reps, a.fallback)
    for name in filter(None, a.torch_step.split(",")):
        bench_step_vs_torch(name, a.step_reps)
    if not a.skip_step:
        bench_train_step(a.finetune, a.step_reps)
    if not a.skip_finetune:
        bench_finetune(a.finetune, a.steps)


if __name__ == "__main__":
    main()
