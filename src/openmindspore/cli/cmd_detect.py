"""``oms detect``: run a YOLOS detector on images -> JSON boxes and annotated PNGs."""

from __future__ import annotations

from typing import Any

from openmindspore.cli._common import add_command, print_json


def register(sub) -> None:
    p = add_command(
        sub,
        "detect",
        "detect objects in images with a YOLOS model",
        "  oms detect street.jpg --model yolos-tiny --weights yolos-tiny.ckpt\n"
        "  oms detect a.png b.png --weights runs/det --threshold 0.3 "
        "--out-dir out\n"
        "  oms detect img.png --model yolos-tiny --weights t.ckpt --json --no-draw",
    )
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--model", default="yolos-tiny", help="registered YOLOS name (config from WEIGHTS.json wins)")
    p.add_argument(
        "--weights",
        required=True,
        help="a detection run directory of `oms train` (or one of its checkpoints), or a .ckpt from oms convert-hf",
    )
    p.add_argument("--threshold", type=float, default=0.5, help="keep detections with score > T")
    p.add_argument("--out-dir", default="detections", help="where annotated PNGs are written")
    p.add_argument("--shortest-edge", type=int, default=None, help="resize short side (default 800 or config)")
    p.add_argument("--longest-edge", type=int, default=None, help="cap on the long side (default 1333)")
    p.add_argument("--no-draw", action="store_true", help="do not write annotated PNGs")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from openmindspore.errors import ConfigError
    from openmindspore.models.yolos.inference import detect, draw_detections
    from openmindspore.models.yolos.processor import load_image
    from openmindspore.serve.detector import open_detector

    if not 0.0 <= args.threshold < 1.0:
        raise ConfigError("--threshold", args.threshold, "a score in [0, 1)")
    model, proc, meta = open_detector(
        args.model, args.weights, {"shortest_edge": args.shortest_edge, "longest_edge": args.longest_edge}
    )
    id2label = {int(k): v for k, v in (model.config.id2label or {}).items()}
    images = [load_image(p) for p in args.images]
    results = detect(model, proc, images, args.threshold)
    out_dir = Path(args.out_dir)
    rows: list[dict[str, Any]] = []
    for path, img, r in zip(args.images, images, results):
        row: dict[str, Any] = {
            "image": str(path),
            "detections": [
                {
                    "label": int(lab),
                    "name": id2label.get(int(lab), str(int(lab))),
                    "score": round(float(s), 4),
                    "box_xyxy": [round(float(v), 2) for v in b],
                }
                for s, lab, b in zip(r["scores"], r["labels"], r["boxes"])
            ],
        }
        if not args.no_draw:
            out_dir.mkdir(parents=True, exist_ok=True)
            png = out_dir / f"{Path(path).stem}_det.png"
            draw_detections(img, r, id2label).save(png)
            row["annotated"] = str(png)
        rows.append(row)
    if args.json:
        print_json(rows)
    else:
        for row in rows:
            print(
                f"{row['image']}: {len(row['detections'])} detections"
                + (f" -> {row['annotated']}" if "annotated" in row else "")
            )
            for d in row["detections"]:
                print(f"  {d['name']:>12s} {d['score']:.3f} {d['box_xyxy']}")
    return 0
