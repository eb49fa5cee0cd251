"""``oms predict``: send inputs to an Open Inference Protocol server and print the outputs."""

from __future__ import annotations

import json
from pathlib import Path

from openmindspore.cli._common import add_command, print_json
from openmindspore.errors import ConfigError


def register(sub) -> None:
    p = add_command(
        sub,
        "predict",
        "run inputs through a served model (any KServe v2 / Open Inference Protocol server)",
        "  oms predict http://127.0.0.1:8000 --model digits --input x.npy\n"
        "  oms predict http://127.0.0.1:8000 --model digits --version 2 --input inputs.npz --json\n"
        "  oms predict http://127.0.0.1:8000 --model digits --input request.json   # an OIP request body\n"
        "  oms predict http://127.0.0.1:8001 --model det --input street.jpg   # image models (e.g. YOLOS)",
    )
    p.add_argument("url", help="server base URL, e.g. http://127.0.0.1:8000")
    p.add_argument("--model", required=True, help="model name")
    p.add_argument("--version", help="model version (default: the server's default version)")
    p.add_argument(
        "--input",
        required=True,
        metavar="FILE",
        help=".npy (one array, first axis = samples), .npz (named inputs), .json (OIP request body "
        "or {name: nested list}) or an image (.png/.jpg/...: resized to a UINT8 [-1, H, W, 3] input; "
        "output 'boxes' are scaled back to the image's pixels)",
    )
    p.add_argument("--output", metavar="FILE", help="also write the outputs to this .npz")
    p.add_argument("--json", action="store_true", help="print the raw OIP response body")
    p.set_defaults(func=run)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def _load_image(path: Path, specs: list[dict]):
    """An image file -> ``({name: uint8 [1, H, W, 3]}, (sy, sx))`` for a model with one UINT8 HWC input."""
    import numpy as np
    from PIL import Image

    if len(specs) != 1 or specs[0]["datatype"] != "UINT8" or len(specs[0]["shape"]) != 4 or specs[0]["shape"][3] != 3:
        raise ConfigError(
            "--input",
            str(path),
            f"a .npy/.npz/.json file: this model's inputs are not one UINT8 [-1, H, W, 3] image ({specs})",
        )
    h, w = int(specs[0]["shape"][1]), int(specs[0]["shape"][2])
    try:
        with Image.open(path) as im:
            rgb = im.convert("RGB")
    except OSError as e:
        raise ConfigError("--input", str(path), "a readable image file", str(e)) from None
    scale = (rgb.height / h, rgb.width / w)
    arr = np.asarray(rgb.resize((w, h), Image.Resampling.BILINEAR), dtype=np.uint8)[None]
    return {specs[0]["name"]: arr}, scale


def _load_inputs(path: Path):
    import numpy as np

    if not path.is_file():
        raise ConfigError("--input", str(path), "an existing .npy, .npz or .json file")
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    if path.suffix == ".json":
        try:
            body = json.loads(path.read_text())
        except ValueError as e:
            raise ConfigError("--input", str(path), "valid JSON", str(e)) from None
        if isinstance(body, dict) and "inputs" in body:
            return body
        if isinstance(body, dict):
            return {k: np.asarray(v, dtype=np.float32) for k, v in body.items()}
        return np.asarray(body, dtype=np.float32)
    raise ConfigError("--input", str(path), "a .npy, .npz or .json file")


def run(args) -> int:
    import numpy as np

    from openmindspore.serve.client import Client
    from openmindspore.serve.protocol import tensor_from_json, tensor_to_json

    path = Path(args.input)
    scale = None
    with Client(args.url) as client:
        if path.suffix.lower() in IMAGE_SUFFIXES:
            if not path.is_file():
                raise ConfigError("--input", str(path), "an existing image file")
            inputs, scale = _load_image(path, client.model_metadata(args.model, args.version)["inputs"])
        else:
            inputs = _load_inputs(path)
        if isinstance(inputs, dict) and "inputs" in inputs:
            body = inputs
        else:
            if not isinstance(inputs, dict):
                specs = client.model_metadata(args.model, args.version)["inputs"]
                if len(specs) != 1:
                    raise ConfigError("--input", args.input, f"a .npz with inputs {[s['name'] for s in specs]}")
                inputs = {specs[0]["name"]: inputs}
            body = {"inputs": [tensor_to_json(k, np.asarray(v)) for k, v in inputs.items()]}
        resp = client.infer_json(args.model, body, args.version)
    outputs = dict(tensor_from_json(t, "output") for t in resp["outputs"])
    if scale is not None and "boxes" in outputs and outputs["boxes"].shape[-1] == 4:
        sy, sx = scale  # boxes back to the original image's pixels (x0, y0, x1, y1)
        outputs["boxes"] = (outputs["boxes"] * np.asarray([sx, sy, sx, sy], np.float32)).astype(np.float32)
        for t in resp["outputs"]:
            if t["name"] == "boxes":
                t["data"] = outputs["boxes"].reshape(-1).tolist()
    if args.output:
        np.savez(args.output, **outputs)
    if args.json:
        print_json(resp)
    else:
        print(f"{resp['model_name']} version {resp['model_version']}:")
        for name, arr in outputs.items():
            shown = arr.tolist() if arr.size <= 20 else f"{arr.reshape(-1)[:10].tolist()} ..."
            print(f"  {name} {arr.dtype} {list(arr.shape)}: {shown}")
    return 0
