"""``oms eval-detection``: COCO mAP (pycocotools) of a detector or of a detections file."""

from __future__ import annotations

from openmindspore.cli._common import add_command, print_json


def register(sub) -> None:
    p = add_command(
        sub,
        "eval-detection",
        "COCO mAP of a YOLOS model (or a detections file) on COCO annotations",
        "  oms eval-detection --annotations val/annotations.json --weights runs/det\n"
        "  oms eval-detection --annotations ann.json --detections dets.json --json",
    )
    p.add_argument("--annotations", required=True, help="COCO-format annotation JSON (images, annotations, categories)")
    p.add_argument("--images", default=None, help="image folder (default: the annotation file's folder)")
    p.add_argument("--detections", default=None, help="COCO results JSON instead of running a model")
    p.add_argument("--model", default="yolos-tiny", help="registered YOLOS name (config from WEIGHTS.json wins)")
    p.add_argument(
        "--weights", default=None, help="a detection run directory of `oms train` (or a checkpoint) to evaluate"
    )
    p.add_argument("--shortest-edge", type=int, default=None)
    p.add_argument("--longest-edge", type=int, default=None)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args) -> int:
    import json
    from pathlib import Path

    from openmindspore.errors import ConfigError
    from openmindspore.models.yolos.coco_eval import evaluate_coco, load_coco, to_coco_detections

    coco = load_coco(args.annotations)
    if args.detections:
        try:
            dets = json.loads(Path(args.detections).read_text())
        except (OSError, ValueError) as e:
            raise ConfigError("--detections", args.detections, "a readable COCO results JSON", str(e)) from None
    else:
        if not args.weights:
            raise ConfigError("--weights", None, "a checkpoint (or pass --detections)")
        from openmindspore.models.yolos.inference import detect
        from openmindspore.models.yolos.processor import load_image
        from openmindspore.serve.detector import open_detector

        model, proc, _ = open_detector(
            args.model, args.weights, {"shortest_edge": args.shortest_edge, "longest_edge": args.longest_edge}
        )
        root = Path(args.images) if args.images else Path(args.annotations).parent
        images = [load_image(root / im["file_name"]) for im in coco["images"]]
        dets = to_coco_detections(detect(model, proc, images, threshold=0.0), [im["id"] for im in coco["images"]])
    metrics = evaluate_coco(coco, dets)
    if args.json:
        print_json(metrics)
    else:
        print("  ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    return 0
