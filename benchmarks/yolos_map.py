"""YOLOS through the one trainer: validation mAP@0.5 at each checkpoint of a fixed-step run.

Trains ``examples/yolos_synthetic.yaml`` (or ``--config``) for ``--steps`` steps with ``oms train`` (its
optimizer section may be overridden: ``--set clip_grad_norm=null``), then scores every kept checkpoint
(``checkpoint_every`` apart) with ``oms eval-detection`` on the config's validation split written as PNGs
(the synthetic set: ``make_synthetic_detection(val_images, seed=seed + 10000, first_image_id=train_images + 1)``,
the images the former fine-tuning loop evaluated on). ``--seed N`` sets the run's training seed (weight
init, batch order, flips; ``dataset.seed`` and so the images stay the same); ``--test`` also scores every
checkpoint on the test split (``test_images``, default ``val_images``, generated with ``seed + 20000`` and first
image id ``train_images + val_images + 1``: the trainer's own test images). One JSON line per checkpoint, then a
summary line.

    GLOG_v=3 nice -n 19 .venv/bin/python benchmarks/yolos_map.py --steps 1500 --out runs/yolos_map
    GLOG_v=3 nice -n 19 .venv/bin/python benchmarks/yolos_map.py --steps 1500 --seed 1 --test --out runs/s1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import yaml
from _util import emit, oms_json


def _value(text: str) -> object:
    return yaml.safe_load(text)


def _write_split(out: Path, ds: dict, n: int, offset: int, first_id: int) -> Path:
    """The synthetic split of ``n`` images generated with ``dataset.seed + offset`` as PNGs; its annotations."""
    from openmindspore.models.yolos.synthetic import make_synthetic_detection, write_dataset

    imgs, coco = make_synthetic_detection(
        n,
        image_size=tuple(ds["image_size"]),
        max_objects=ds["max_objects"],
        min_size=ds.get("min_size"),
        max_size=ds.get("max_size"),
        seed=ds.get("seed", 0) + offset,
        first_image_id=first_id,
    )
    return write_dataset(out, imgs, coco)


def _score(ann: Path, ckpt: Path) -> dict:
    return oms_json("eval-detection", "--annotations", str(ann), "--weights", str(ckpt), "--model", "yolos")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(Path(__file__).parent.parent / "examples" / "yolos_synthetic.yaml"))
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--out", default="runs/yolos_map")
    ap.add_argument("--set", action="append", default=[], help="optimizer KEY=VALUE override (YAML value)")
    ap.add_argument("--seed", type=int, default=None, help="the run's training seed (default: the config's)")
    ap.add_argument("--test", action="store_true", help="also score each checkpoint on the test split")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = yaml.safe_load(Path(args.config).read_text())
    cfg["steps"] = args.steps
    if args.seed is not None:
        cfg["seed"] = args.seed
    for kv in args.set:
        key, _, val = kv.partition("=")
        cfg["optimizer"][key] = _value(val)
    cfg_path = out / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    ds = cfg["dataset"]
    n_tr, n_va = ds["train_images"], ds["val_images"]
    ann = _write_split(out / "val", ds, n_va, 10_000, n_tr + 1)
    test_ann = (
        _write_split(out / "test", ds, ds.get("test_images") or n_va, 20_000, n_tr + n_va + 1) if args.test else None
    )
    t0, load0 = time.time(), os.getloadavg()[0]
    run = out / "run"
    summary = oms_json("train", str(cfg_path), "--out", str(run), timeout=6 * 3600)
    train_s, load1 = time.time() - t0, os.getloadavg()[0]
    rows = []
    for ckpt in sorted((run / "checkpoints").glob("step_*.safetensors")):
        m = _score(ann, ckpt)
        step = int(ckpt.stem.split("_")[1])
        row = {
            "bench": "yolos_map",
            "seed": cfg.get("seed"),
            "step": step,
            "map50": m.get("map50"),
            "map": m.get("map"),
        }
        if test_ann is not None:
            t = _score(test_ann, ckpt)
            row.update(test_map50=t.get("map50"), test_map=t.get("map"))
        rows.append(row)
        emit(row)
    emit(
        {
            "bench": "yolos_map_summary",
            "steps": args.steps,
            "seed": cfg.get("seed"),
            "optimizer": cfg["optimizer"],
            "final_loss": summary.get("final_loss", summary.get("loss")),
            # the trainer's own end-of-run scores (dense targets, in process): a check on the PNG scoring above
            "trainer_val_map50": (summary.get("val") or {}).get("map50"),
            "trainer_test_map50": (summary.get("eval") or {}).get("map50"),
            "curve": rows,
            "train_wall_s": round(train_s, 1),
            "load_start_end": [round(load0, 1), round(load1, 1)],
            "argv": sys.argv[1:],
        }
    )
    (out / "result.json").write_text(json.dumps({"rows": rows, "summary": summary}, indent=1, default=str))


if __name__ == "__main__":
    main()
