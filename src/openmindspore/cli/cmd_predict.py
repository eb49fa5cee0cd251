"""``oms predict``: send inputs to an Open Inference Protocol server (REST or gRPC) and print the outputs.

Inputs come from arrays (``.npy``/``.npz``/``.json``), from the rows of a CSV table (``--csv``: one tensor per
column the model takes, FP64 numbers or BYTES text, as runs on a user's CSV take them) or from image files
(the files' bytes for a model taking encoded images, else their pixels resized to the model's input). The
tensors to send are chosen from the model's metadata, so any OIP server works.

Inference is idempotent: a request that meets a reset connection, a front end that is restarting or
draining (503, gRPC ``UNAVAILABLE``) or a full queue (429) is sent again with backoff for ``--retry-s``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from openmindspore.cli._common import add_command, print_json
from openmindspore.errors import ConfigError, OMSError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def register(sub) -> None:
    p = add_command(
        sub,
        "predict",
        "run inputs through a served model (any KServe v2 / Open Inference Protocol server, REST or gRPC)",
        "  oms predict http://127.0.0.1:8000 --model digits --input x.npy\n"
        "  oms predict http://127.0.0.1:8000 --model digits --version 2 --input inputs.npz --json\n"
        "  oms predict http://127.0.0.1:8000 --model digits --input request.json   # an OIP request body\n"
        "  oms predict http://127.0.0.1:8000 --model flowers --csv flowers.csv     # raw rows of a CSV run\n"
        "  oms predict http://127.0.0.1:8000 --model photos --input a.png b.jpg    # image files\n"
        "  oms predict http://127.0.0.1:8001 --model det --input street.jpg   # image models (e.g. YOLOS)\n"
        "  oms predict grpc://127.0.0.1:8001 --model digits --input x.npy    # OIP over gRPC\n"
        "  oms predict https://host:8443 --model digits --input x.npy --auth-token-file token.txt --cacert ca.pem",
    )
    p.add_argument("url", help="server URL: http(s)://HOST:PORT, or grpc(s)://HOST:PORT for the gRPC API")
    p.add_argument("--model", required=True, help="model name")
    p.add_argument("--version", help="model version (default: the server's default version)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--input",
        nargs="+",
        metavar="FILE",
        help=".npy (one array, first axis = samples), .npz (named inputs), .json (OIP request body "
        "or {name: nested list}), .csv (as --csv) or image files (.png/.jpg/...: sent as the files' bytes to a "
        "BYTES input, else resized to a UINT8 [-1, H, W, C] input; a detector's 'boxes' are scaled back to "
        "each image's pixels)",
    )
    source.add_argument(
        "--csv",
        metavar="FILE",
        help="a CSV table with a header row: every row is a sample; each model input is the column of its name "
        "(numbers for FP64/FP32 inputs, an empty cell is missing; text for BYTES inputs); other columns "
        "(e.g. the label) are ignored",
    )
    p.add_argument("--output", metavar="FILE", help="also write the outputs to this .npz")
    p.add_argument("--json", action="store_true", help="print the raw OIP response body (REST)")
    p.add_argument("--binary", action="store_true", help="send and receive tensors as raw bytes (binary extension)")
    p.add_argument("--auth-token-file", metavar="FILE", help="send the bearer token in FILE")
    p.add_argument("--cacert", metavar="PEM", help="CA certificate to trust (e.g. the server's self-signed one)")
    p.add_argument("--retry-s", type=float, default=30.0, help="how long to retry an unanswered request")
    p.set_defaults(func=run)


# ------------------------------------------------------------------------------------------- inputs
def _image_inputs(paths: list[Path], specs: list[dict]) -> tuple[dict, Any]:
    """Image files -> ``({name: array}, scales)``: the files' bytes for one BYTES input, else pixels resized to
    a UINT8 ``[-1, H, W, C]`` input (C = 1 or 3) and each image's ``(sy, sx)`` back to its own pixels."""
    import numpy as np
    from PIL import Image

    for path in paths:
        if not path.is_file():
            raise ConfigError("--input", str(path), "an existing image file")
    if len(specs) == 1 and specs[0]["datatype"] == "BYTES":
        data = np.empty((len(paths),) + (1,) * (len(specs[0]["shape"]) - 1), dtype=object)
        data.reshape(-1)[:] = [p.read_bytes() for p in paths]
        return {specs[0]["name"]: data}, None
    shape = specs[0]["shape"] if len(specs) == 1 else []
    if len(specs) != 1 or specs[0]["datatype"] != "UINT8" or len(shape) != 4 or shape[3] not in (1, 3):
        raise ConfigError(
            "--input",
            str(paths[0]),
            f"a .npy/.npz/.json/.csv file: this model's inputs are not one UINT8 [-1, H, W, C] image ({specs})",
        )
    h, w, c = (int(v) for v in shape[1:])
    images, scales = [], []
    for path in paths:
        try:
            with Image.open(path) as im:
                converted = im.convert("L" if c == 1 else "RGB")
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise ConfigError("--input", str(path), "a readable image file", str(e)) from None
        arr = np.asarray(converted.resize((w, h), Image.Resampling.BILINEAR), dtype=np.uint8)
        images.append(arr.reshape(h, w, c))
        scales.append((converted.height / h, converted.width / w))
    return {specs[0]["name"]: np.stack(images)}, np.asarray(scales, np.float32)


def _csv_inputs(path: Path, specs: list[dict]) -> dict:
    """The rows of a CSV table -> one ``[n, 1]`` tensor per model input, taken from the column of its name."""
    import csv

    import numpy as np

    if not path.is_file():
        raise ConfigError("--csv", str(path), "an existing CSV file with a header row")
    names = [s["name"] for s in specs]
    if any(list(s["shape"]) != [-1, 1] or s["datatype"] not in ("FP64", "FP32", "BYTES") for s in specs):
        raise ConfigError(
            "--csv", str(path), f"a model whose inputs are table columns ([-1, 1] each); this one takes {specs}"
        )
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            lines = [row for row in csv.reader(f) if any(c.strip() for c in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ConfigError("--csv", str(path), "a readable UTF-8 CSV file", str(e)) from None
    header = [h.strip() for h in lines[0]] if lines else []
    missing = [n for n in names if n not in header]
    if missing or len(lines) < 2:
        raise ConfigError(
            "--csv",
            str(path),
            f"a header row naming the model's input columns {names} and at least one row",
            f"missing column(s) {missing}" if missing else "add rows",
        )
    out: dict = {}
    for s in specs:
        j = header.index(s["name"])
        cells = [row[j].strip() if j < len(row) else "" for row in lines[1:]]
        if s["datatype"] == "BYTES":
            arr = np.empty((len(cells), 1), dtype=object)
            arr[:, 0] = [c.encode() for c in cells]
        else:
            values = []
            for i, c in enumerate(cells, start=2):
                try:
                    values.append(float(c) if c else float("nan"))
                except ValueError:
                    raise ConfigError(
                        f"{path.name} line {i}",
                        c,
                        f"a number in column {s['name']!r} (the model takes it as {s['datatype']})",
                        "fix the cell, or leave it empty for a missing value",
                    ) from None
            arr = np.asarray(values, dtype=np.float64 if s["datatype"] == "FP64" else np.float32).reshape(-1, 1)
        out[s["name"]] = arr
    return out


def _array_inputs(path: Path):
    import numpy as np

    if not path.is_file():
        raise ConfigError("--input", str(path), "an existing .npy, .npz, .json or .csv file")
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
    raise ConfigError("--input", str(path), "a .npy, .npz, .json or .csv file, or image files")


def _inputs(args, specs) -> tuple[Any, Any]:
    """``(inputs, image scales or None)``: an OIP body, ``{name: array}`` or one array for a one-input model."""
    if args.csv:
        return _csv_inputs(Path(args.csv), specs()), None
    paths = [Path(p) for p in args.input]
    if all(p.suffix.lower() in IMAGE_SUFFIXES for p in paths):
        return _image_inputs(paths, specs())
    if len(paths) != 1:
        raise ConfigError("--input", " ".join(args.input), "one .npy/.npz/.json/.csv file, or image files")
    if paths[0].suffix.lower() == ".csv":
        return _csv_inputs(paths[0], specs()), None
    inputs = _array_inputs(paths[0])
    if not isinstance(inputs, dict):
        one = specs()
        if len(one) != 1:
            raise ConfigError("--input", args.input[0], f"a .npz with inputs {[s['name'] for s in one]}")
        inputs = {one[0]["name"]: inputs}
    return inputs, None


# ---------------------------------------------------------------------------------------- transport
def _token(args) -> str | None:
    if not args.auth_token_file:
        return None
    p = Path(args.auth_token_file)
    if not p.is_file() or not p.read_text().strip():
        raise ConfigError("--auth-token-file", str(p), "an existing file holding the token")
    return p.read_text().strip()


def _grpc_predict(args) -> tuple[dict, Any]:
    import grpc

    from openmindspore.serve.grpc_client import GrpcClient
    from openmindspore.serve.protocol import tensor_from_json

    cert = Path(args.cacert).read_bytes() if args.cacert else None
    target = args.url.split("://", 1)[1]
    tls = args.url.startswith("grpcs")
    with GrpcClient(target, retry_s=args.retry_s, token=_token(args), root_certificates=cert, tls=tls) as g:
        try:

            def specs() -> list[dict]:
                meta = g.model_metadata(args.model, args.version or "")
                return [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in meta.inputs]

            inputs, scale = _inputs(args, specs)
            if "inputs" in inputs and isinstance(inputs["inputs"], list):
                inputs = dict(tensor_from_json(t) for t in inputs["inputs"])
            outputs = g.infer(args.model, inputs, args.version or "")
        except grpc.RpcError as e:
            raise OMSError(f"{args.url}: gRPC {e.code().name}: {e.details()}") from None
    return {"model_name": args.model, "model_version": args.version or "", "scale": scale}, outputs


def _rest_predict(args) -> tuple[dict, Any]:
    from openmindspore.serve.client import Client
    from openmindspore.serve.protocol import tensor_from_json

    verify: bool | str = args.cacert or True
    with Client(args.url, retry_s=args.retry_s, token=_token(args), verify=verify, binary=args.binary) as client:
        inputs, scale = _inputs(args, lambda: client.model_metadata(args.model, args.version)["inputs"])
        if "inputs" in inputs and isinstance(inputs["inputs"], list):
            resp = client.infer_json(args.model, inputs, args.version)
            outputs = dict(tensor_from_json(t, "output") for t in resp["outputs"])
        else:
            resp, outputs = client.infer_raw(args.model, inputs, args.version)
    return {**resp, "scale": scale}, outputs


# --------------------------------------------------------------------------------------------- run
def _text(arr):
    """A BYTES (object) array as UTF-8 text (``numpy.str_``), for printing and ``.npz`` files."""
    import numpy as np

    return np.asarray([bytes(v).decode("utf-8", "replace") for v in arr.reshape(-1)], dtype=str).reshape(arr.shape)


def _shown(arr) -> str:
    a = _text(arr) if arr.dtype == object else arr
    kind = "BYTES" if arr.dtype == object else str(arr.dtype)
    values = a.tolist() if a.size <= 20 else f"{a.reshape(-1)[:10].tolist()} ..."
    return f"{kind} {list(a.shape)}: {values}"


def run(args) -> int:
    import numpy as np

    grpc = args.url.startswith(("grpc://", "grpcs://"))
    resp, outputs = _grpc_predict(args) if grpc else _rest_predict(args)
    scale = resp.pop("scale")
    if scale is not None and "boxes" in outputs and outputs["boxes"].shape[-1] == 4:
        sy, sx = scale[:, :1, None], scale[:, 1:, None]  # boxes back to each image's pixels (x0, y0, x1, y1)
        factors = np.concatenate([sx, sy, sx, sy], axis=2)
        outputs["boxes"] = (outputs["boxes"] * factors).astype(np.float32)
    if args.output:
        np.savez(args.output, **{k: _text(v) if v.dtype == object else v for k, v in outputs.items()})
    if args.json:
        from openmindspore.serve.protocol import tensor_to_json

        print_json(
            {
                **{k: v for k, v in resp.items() if k != "outputs"},
                "outputs": [tensor_to_json(k, v) for k, v in outputs.items()],
            }
        )
    else:
        print(f"{resp['model_name']} version {resp['model_version'] or '(default)'}:")
        for name, arr in outputs.items():
            print(f"  {name} {_shown(arr)}")
    return 0
