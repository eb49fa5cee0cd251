"""Fine-tune / train a YOLOS detector on CPU: a small, self-contained DETR-style training loop.

``finetune_detection(config, out_dir)`` takes the parsed YAML dict of a ``task: detection`` config
(see ``examples/yolos_synthetic.yaml``), trains with the compiled DETR step of
:mod:`~openmindspore.models.yolos.train_step` (forward graph, Hungarian matching on the host, then one
graph for forward + backward + clipping + AdamW with a warm-up/cosine per-step learning-rate array;
``train.compile: false`` runs the same step op by op), evaluates COCO mAP before and after on the
validation split (and every ``train.eval_every`` steps), and writes ``out_dir/model.ckpt``,
``out_dir/model.json`` (config for ``oms detect``) and ``out_dir/summary.json`` = ``{"status", "steps",
"final_loss", "eval": {"map50", "map", ...}, "curve", "steps_per_s", "train_cpu_seconds", ...}``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from openmindspore.errors import ConfigError

__all__ = [
    "DetectionJob",
    "finetune_detection",
    "evaluate_detector",
    "load_detection_data",
    "sincos_position_embeddings",
]

log = logging.getLogger(__name__)


def _sub(cls: type, d: Mapping[str, Any] | None, section: str) -> Any:
    d = dict(d or {})
    names = set(cls.__dataclass_fields__)
    bad = sorted(set(d) - names)
    if bad:
        raise ConfigError(f"{section}.{bad[0]}", d[bad[0]], f"one of {sorted(names)}", "remove or rename the key")
    return cls(**d)


@dataclass
class DataSection:
    """``kind: synthetic`` (generated offline) or ``kind: coco`` (annotation JSON + image folder)."""

    kind: str = "synthetic"
    train_images: int = 256
    val_images: int = 64
    image_size: tuple[int, int] = (96, 128)
    max_objects: int = 3
    min_size: int | None = None
    max_size: int | None = None
    seed: int = 0
    train_annotations: str | None = None
    train_dir: str | None = None
    val_annotations: str | None = None
    val_dir: str | None = None
    shortest_edge: int | None = None
    longest_edge: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("synthetic", "coco"):
            raise ConfigError("data.kind", self.kind, "'synthetic' or 'coco'")
        if self.kind == "coco" and not (self.train_annotations and self.val_annotations):
            raise ConfigError(
                "data.train_annotations",
                self.train_annotations,
                "paths for kind: coco",
                "set data.train_annotations/train_dir and data.val_annotations/val_dir",
            )
        self.image_size = tuple(int(v) for v in self.image_size)  # type: ignore[assignment]


@dataclass
class TrainSection:
    """Optimisation: AdamW with linear warm-up then cosine decay, global-norm clipping (``grad_clip <= 0``:
    off). ``compile``: compiled step (else op by op); ``hflip``: random left-right flips; ``threads``:
    MindSpore CPU runtime threads (``runtime_num_threads``; ``None`` keeps MindSpore's default; 1 was the
    fastest for small models on a busy machine). ``pos_init: sincos`` starts a model trained from scratch
    (no ``init_weights``) with 2-D sine-cosine patch position embeddings (MAE-style) instead of small
    random ones, which gives the detection tokens usable coordinates from the first step. ``eval_every > 0``
    records validation mAP every that many steps in ``summary["curve"]``."""

    steps: int = 300
    batch_size: int = 8
    lr: float = 5e-4
    warmup_steps: int = 20
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    seed: int = 0
    log_every: int = 25
    compile: bool = True
    hflip: bool = False
    threads: int | None = None
    pos_init: str | None = None
    eval_every: int = 0

    def __post_init__(self) -> None:
        for f in ("steps", "batch_size"):
            if int(getattr(self, f)) < 1:
                raise ConfigError(f"train.{f}", getattr(self, f), "a positive int")
        if not 0 < float(self.lr) < 1:
            raise ConfigError("train.lr", self.lr, "a learning rate in (0, 1)")
        if self.pos_init not in (None, "sincos"):
            raise ConfigError("train.pos_init", self.pos_init, "null or 'sincos'")
        if self.threads is not None and int(self.threads) < 1:
            raise ConfigError("train.threads", self.threads, "a positive int or null")


@dataclass
class DetectionJob:
    """A validated ``task: detection`` config."""

    task: str = "detection"
    model: dict[str, Any] = field(default_factory=lambda: {"name": "yolos"})
    data: DataSection = field(default_factory=DataSection)
    train: TrainSection = field(default_factory=TrainSection)
    init_weights: str | None = None
    eval_batch_size: int = 16

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DetectionJob:
        d = dict(d)
        allowed = {"task", "model", "data", "train", "init_weights", "eval_batch_size", "name", "out_dir"}
        bad = sorted(set(d) - allowed)
        if bad:
            raise ConfigError(bad[0], d[bad[0]], f"one of {sorted(allowed)}", "remove or rename the key")
        if d.get("task", "detection") != "detection":
            raise ConfigError("task", d.get("task"), "'detection'")
        model = dict(d.get("model") or {"name": "yolos"})
        if not isinstance(model.get("name", "yolos"), str):
            raise ConfigError("model.name", model.get("name"), "a registered model name such as yolos-tiny")
        return cls(
            task="detection",
            model=model,
            data=_sub(DataSection, d.get("data"), "data"),
            train=_sub(TrainSection, d.get("train"), "train"),
            init_weights=d.get("init_weights"),
            eval_batch_size=int(d.get("eval_batch_size", 16)),
        )


def load_detection_data(data: DataSection) -> tuple[list[np.ndarray], dict, list[np.ndarray], dict]:
    """``(train_images, train_coco, val_images, val_coco)``; images ``[H, W, 3]`` uint8."""
    from openmindspore.models.yolos.coco_eval import load_coco
    from openmindspore.models.yolos.processor import load_image
    from openmindspore.models.yolos.synthetic import make_synthetic_detection

    if data.kind == "synthetic":
        kw = dict(
            image_size=data.image_size, max_objects=data.max_objects, min_size=data.min_size, max_size=data.max_size
        )
        tr = make_synthetic_detection(data.train_images, seed=data.seed, **kw)
        va = make_synthetic_detection(
            data.val_images, seed=data.seed + 10_000, first_image_id=data.train_images + 1, **kw
        )
        return tr[0], tr[1], va[0], va[1]
    out = []
    for ann, folder in ((data.train_annotations, data.train_dir), (data.val_annotations, data.val_dir)):
        coco = load_coco(ann)
        root = Path(folder) if folder else Path(str(ann)).parent
        out += [[load_image(root / im["file_name"]) for im in coco["images"]], coco]
    return out[0], out[1], out[2], out[3]


def _targets(coco: dict) -> list[dict]:
    by_img: dict[int, list] = {im["id"]: [] for im in coco["images"]}
    for a in coco["annotations"]:
        by_img.setdefault(a["image_id"], []).append(a)
    return [{"image_id": im["id"], "annotations": by_img[im["id"]]} for im in coco["images"]]


def evaluate_detector(
    model: Any, processor: Any, images: list[np.ndarray], coco: dict, batch_size: int = 16
) -> dict[str, float]:
    """COCO mAP of ``model`` on ``images`` (all detection queries kept, scored by class probability)."""
    from mindspore import Tensor

    from openmindspore.models.yolos.coco_eval import evaluate_coco, to_coco_detections

    model.set_train(False)
    dets: list[dict] = []
    for s in range(0, len(images), batch_size):
        chunk = images[s : s + batch_size]
        enc = processor(chunk)
        logits, boxes = model(Tensor(np.asarray(enc["pixel_values"], np.float32)))[:2]
        # boxes are relative to each image's own resized extent -> scale by original size
        sizes = [im.shape[:2] for im in chunk]
        res = processor.post_process_object_detection(logits.asnumpy(), boxes.asnumpy(), 0.0, sizes)
        dets += to_coco_detections(res, [im["id"] for im in coco["images"][s : s + batch_size]])
    return evaluate_coco(coco, dets)


def sincos_position_embeddings(grid: tuple[int, int], dim: int) -> np.ndarray:
    """2-D sine-cosine embeddings ``[gh*gw, dim]`` (row-major patches): the first half of the features
    encodes the row, the second the column, each as ``sin``/``cos`` of ``pos / 10000**(i / (dim/4))``."""
    if dim % 4:
        raise ConfigError("model.hidden_size", dim, "a multiple of 4 for train.pos_init: sincos")
    gh, gw = grid
    omega = 1.0 / 10000.0 ** (np.arange(dim // 4, dtype=np.float64) / (dim // 4))

    def enc(pos: np.ndarray) -> np.ndarray:
        out = pos.reshape(-1)[:, None] * omega[None]
        return np.concatenate([np.sin(out), np.cos(out)], 1)

    yy, xx = np.meshgrid(np.arange(gh, dtype=np.float64), np.arange(gw, dtype=np.float64), indexing="ij")
    return np.concatenate([enc(yy), enc(xx)], 1).astype(np.float32)


def _init_sincos(model: Any) -> None:
    """Overwrite the patch part of ``vit.embeddings.position_embeddings`` (CLS/detection slots keep theirs)."""
    from mindspore import Tensor, ops

    cfg = model.config
    pos = model.vit.embeddings.position_embeddings
    new = pos.asnumpy().copy()
    k = cfg.num_detection_tokens
    new[0, 1 : new.shape[1] - k] = sincos_position_embeddings(cfg.grid, cfg.hidden_size)
    ops.assign(pos, Tensor(new))


def _hflip(x: np.ndarray, targets: list[dict], rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    """Flip a random half of the batch ``x [B, C, H, W]`` left-right (boxes: ``cx -> 1 - cx``)."""
    flip = rng.random(len(x)) < 0.5
    x = np.where(flip[:, None, None, None], x[..., ::-1], x)
    out = []
    for f, t in zip(flip, targets):
        b = t["boxes"].copy()
        if f:
            b[:, 0] = 1.0 - b[:, 0]
        out.append({"class_labels": t["class_labels"], "boxes": b})
    return np.ascontiguousarray(x, np.float32), out


def _lr(step: int, job: DetectionJob) -> float:
    t = job.train
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    prog = (step - t.warmup_steps) / max(1, t.steps - t.warmup_steps)
    return t.lr * 0.5 * (1 + math.cos(math.pi * min(prog, 1.0)))


def finetune_detection(config: Mapping[str, Any], out_dir: str | Path) -> dict[str, Any]:
    """Train/fine-tune a YOLOS model as described by ``config``; returns (and writes) the summary."""
    import mindspore as ms
    from mindspore import Tensor

    from openmindspore.models.hf_convert import load_checkpoint
    from openmindspore.models.registry import create_model
    from openmindspore.models.yolos.loss import DetrLossWeights
    from openmindspore.models.yolos.processor import YolosImageProcessor
    from openmindspore.models.yolos.synthetic import CLASSES
    from openmindspore.models.yolos.train_step import DetrTrainStep, optimizer_for

    job = DetectionJob.from_dict(config)
    if job.train.threads:
        ms.set_context(runtime_num_threads=int(job.train.threads))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tr_imgs, tr_coco, va_imgs, va_coco = load_detection_data(job.data)
    max_cat = max(c["id"] for c in tr_coco["categories"])
    mcfg = dict(job.model)
    name = mcfg.pop("name", "yolos")
    mcfg.setdefault("num_labels", max_cat + 1)
    if job.data.kind == "synthetic":
        mcfg.setdefault("image_size", list(job.data.image_size))
        mcfg.setdefault("id2label", {i + 1: n for i, n in enumerate(CLASSES)})
    if mcfg["num_labels"] <= max_cat:
        raise ConfigError("model.num_labels", mcfg["num_labels"], f"> largest category id ({max_cat})")
    model = create_model(name, **mcfg)
    if job.init_weights:
        load_checkpoint(model, job.init_weights)
    elif job.train.pos_init == "sincos":
        _init_sincos(model)
    cfg = model.config
    short = job.data.shortest_edge or min(tr_imgs[0].shape[:2])
    long_ = job.data.longest_edge or max(short, max(tr_imgs[0].shape[:2]))
    proc = YolosImageProcessor(shortest_edge=short, longest_edge=long_)

    enc = proc(tr_imgs, _targets(tr_coco))
    if isinstance(enc["pixel_values"], list):
        raise ConfigError("data", "images of different sizes", "one size per batch", "set data.shortest_edge")
    x_all = np.asarray(enc["pixel_values"], np.float32)
    if job.train.hflip and not np.asarray(enc["pixel_mask"]).all():
        raise ConfigError("train.hflip", True, "images without padding", "resize to one size or set hflip: false")
    targets = [{"class_labels": t["class_labels"], "boxes": t["boxes"].astype(np.float32)} for t in enc["labels"]]

    before = evaluate_detector(model, proc, va_imgs, va_coco, job.eval_batch_size)
    log.info("before: %s", before)

    weights = DetrLossWeights.from_config(cfg)
    opt = optimizer_for(model, [_lr(s, job) for s in range(job.train.steps + 1)], job.train.weight_decay)
    step_fn = DetrTrainStep(model, weights, opt, job.train.grad_clip, compiled=job.train.compile)
    rng = np.random.default_rng(job.train.seed)
    losses: list[float] = []
    curve: list[dict[str, float]] = []
    eval_s = 0.0
    order = rng.permutation(len(x_all))
    pos = 0
    t_train, cpu_train = time.perf_counter(), time.process_time()
    for step in range(job.train.steps):
        if pos + job.train.batch_size > len(order):
            order, pos = rng.permutation(len(x_all)), 0
        idx = order[pos : pos + job.train.batch_size]
        pos += job.train.batch_size
        xb = x_all[idx]
        if job.train.hflip:
            xb, tb = _hflip(xb, [targets[i] for i in idx], rng)
        else:
            tb = [targets[i] for i in idx]
        lv = step_fn(Tensor(xb), tb)
        if not math.isfinite(lv):
            raise ConfigError(
                "train.lr",
                job.train.lr,
                "a learning rate that keeps the loss finite",
                f"loss became {lv} at step {step}; lower train.lr or raise warmup_steps",
            )
        losses.append(lv)
        if job.train.log_every and (step % job.train.log_every == 0 or step == job.train.steps - 1):
            log.info("step %d loss %.4f", step, lv)
        if job.train.eval_every and (step + 1) % job.train.eval_every == 0 and step + 1 < job.train.steps:
            t_eval = time.perf_counter()
            m = evaluate_detector(model, proc, va_imgs, va_coco, job.eval_batch_size)
            eval_s += time.perf_counter() - t_eval
            curve.append(
                {
                    "step": step + 1,
                    "map50": m["map50"],
                    "map": m["map"],
                    "loss": float(np.mean(losses[-job.train.eval_every :])),
                }
            )
            log.info("step %d val mAP@0.5 %.4f mAP %.4f", step + 1, m["map50"], m["map"])
    train_s = time.perf_counter() - t_train - eval_s
    train_cpu = time.process_time() - cpu_train
    after = evaluate_detector(model, proc, va_imgs, va_coco, job.eval_batch_size)
    ckpt = out / "model.ckpt"
    ms.save_checkpoint(model, str(ckpt))
    meta = {
        "model": name,
        "family": "yolos",
        "config": cfg.to_dict(),
        "processor": {"shortest_edge": short, "longest_edge": long_},
    }
    (out / "model.json").write_text(json.dumps(meta, indent=1, default=str))
    tail = losses[-min(20, len(losses)) :]
    summary = {
        "status": "ok",
        "task": "detection",
        "steps": job.train.steps,
        "final_loss": float(np.mean(tail)),
        "first_loss": losses[0],
        "eval": {
            "map50": after["map50"],
            "map": after["map"],
            "map50_before": before["map50"],
            "map_before": before["map"],
        },
        "train_images": len(tr_imgs),
        "val_images": len(va_imgs),
        "seconds": time.perf_counter() - t0,
        "train_seconds": train_s,
        "train_cpu_seconds": train_cpu,
        "curve": curve,
        "steps_per_s": job.train.steps / max(train_s, 1e-9),
        "checkpoint": str(ckpt),
        "config": {"model": {"name": name, **mcfg}, "data": asdict(job.data), "train": asdict(job.train)},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary
