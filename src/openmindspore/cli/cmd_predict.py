"""``oms predict``: send inputs to an Open Inference Protocol server (REST or gRPC) and print the outputs.

Inference is idempotent: a request that meets a reset connection, a front end that is restarting or
draining (503, gRPC ``UNAVAILABLE``) or a full queue (429) is sent again with backoff for ``--retry-s``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from openmindspore.cli._common import add_command, print_json
from openmindspore.errors import ConfigError, OMSError


def register(sub) -> None:
    p = add_command(
        sub,
        "predict",
        "run inputs through a served model (any KServe v2 / Open Inference Protocol server, REST or gRPC)",
        "  oms predict http://127.0.0.1:8000 --model digits --input x.npy\n"
        "  oms predict http://127.0.0.1:8000 --model digits --version 2 --input inputs.npz --json\n"
        "  oms predict http://127.0.0.1:8000 --model digits --input request.json   # an OIP request body\n"
        "  oms predict http://127.0.0.1:8001 --model det --input street.jpg   # image models (e.g. YOLOS)\n"
        "  oms predict grpc://127.0.0.1:8001 --model digits --input x.npy    # OIP over gRPC\n"
        "  oms predict https://host:8443 --model digits --input x.npy --auth-token-file token.txt --cacert ca.pem",
    )
    p.add_argument("url", help="server URL: http(s)://HOST:PORT, or grpc(s)://HOST:PORT for the gRPC API")
    p.add_argument("--model", required=True, help="model name")
    p.add_argument("--version", help="model version (default: the server's default version)")
    p.add_argument(
        "--input",
        required=True,
        metavar="FILE",
        help=".npy (one array, first axis = samples), .npz (named inputs), .json (OIP request body "
        "or {name: nested list}) or an image (.png/.jpg/...: sent as the file's bytes to a BYTES input, else "
        "resized to a UINT8 [-1, H, W, 3] input with output 'boxes' scaled back to the image's pixels)",
    )
    p.add_argument("--output", metavar="FILE", help="also write the outputs to this .npz")
    p.add_argument("--json", action="store_true", help="print the raw OIP response body (REST)")
    p.add_argument("--binary", action="store_true", help="send and receive tensors as raw bytes (binary extension)")
    p.add_argument("--auth-token-file", metavar="FILE", help="send the bearer token in FILE")
    p.add_argument("--cacert", metavar="PEM", help="CA certificate to trust (e.g. the server's self-signed one)")
    p.add_argument("--retry-s", type=float, default=30.0, help="how long to retry an unanswered request")
    p.set_defaults(func=run)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def _load_image(path: Path, specs: list[dict]):
    """An image file -> ``({name: array}, (sy, sx) or None)``: the file's bytes for one BYTES input, else
    pixels resized to a UINT8 ``[-1, H, W, 3]`` input (and the scale back to the image's pixels)."""
    import numpy as np

    from openmindspore.serve.detector import decode_image
    from openmindspore.serve.registry import InputError

    if len(specs) == 1 and specs[0]["datatype"] == "BYTES":
        data = np.empty((1,) + (1,) * (len(specs[0]["shape"]) - 1), dtype=object)
        data.reshape(-1)[0] = path.read_bytes()
        return {specs[0]["name"]: data}, None
    if len(specs) != 1 or specs[0]["datatype"] != "UINT8" or len(specs[0]["shape"]) != 4 or specs[0]["shape"][3] != 3:
        raise ConfigError(
            "--input",
            str(path),
            f"a .npy/.npz/.json file: this model's inputs are not one UINT8 [-1, H, W, 3] image ({specs})",
        )
    h, w = int(specs[0]["shape"][1]), int(specs[0]["shape"][2])
    try:
        arr, (oh, ow) = decode_image(path, (h, w))
    except InputError as e:
        raise ConfigError("--input", str(path), "a readable image file", str(e)) from None
    return {specs[0]["name"]: arr[None]}, (oh / h, ow / w)


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


def _token(args) -> str | None:
    if not args.auth_token_file:
        return None
    p = Path(args.auth_token_file)
    if not p.is_file() or not p.read_text().strip():
        raise ConfigError("--auth-token-file", str(p), "an existing file holding the token")
    return p.read_text().strip()


def _grpc_predict(args, target: str, inputs: Any) -> dict:
    import grpc
    import numpy as np

    from openmindspore.serve.grpc_client import GrpcClient
    from openmindspore.serve.protocol import tensor_from_json

    cert = Path(args.cacert).read_bytes() if args.cacert else None
    with GrpcClient(
        target, retry_s=args.retry_s, token=_token(args), root_certificates=cert, tls=args.url.startswith("grpcs")
    ) as g:
        if isinstance(inputs, dict) and "inputs" in inputs:
            inputs = dict(tensor_from_json(t) for t in inputs["inputs"])
        try:
            if not isinstance(inputs, dict):
                meta = g.model_metadata(args.model, args.version or "")
                inputs = {meta.inputs[0].name: np.asarray(inputs)}
            return g.infer(args.model, inputs, args.version or "")
        except grpc.RpcError as e:
            raise OMSError(f"{args.url}: gRPC {e.code().name}: {e.details()}") from None


def run(args) -> int:
    import numpy as np

    from openmindspore.serve.client import Client

    path = Path(args.input)
    scale = None
    if args.url.startswith(("grpc://", "grpcs://")):
        if path.suffix.lower() in IMAGE_SUFFIXES:
            raise ConfigError("--input", str(path), "a .npy/.npz/.json file for gRPC (images go over REST)")
        outputs = _grpc_predict(args, args.url.split("://", 1)[1], _load_inputs(path))
        resp: dict[str, Any] = {"model_name": args.model, "model_version": args.version or ""}
    else:
        verify: bool | str = args.cacert or True
        with Client(args.url, retry_s=args.retry_s, token=_token(args), verify=verify, binary=args.binary) as client:
            if path.suffix.lower() in IMAGE_SUFFIXES:
                if not path.is_file():
                    raise ConfigError("--input", str(path), "an existing image file")
                inputs, scale = _load_image(path, client.model_metadata(args.model, args.version)["inputs"])
            else:
                inputs = _load_inputs(path)
            if isinstance(inputs, dict) and "inputs" in inputs:
                from openmindspore.serve.protocol import tensor_from_json

                resp = client.infer_json(args.model, inputs, args.version)
                outputs = dict(tensor_from_json(t, "output") for t in resp["outputs"])
            else:
                if not isinstance(inputs, dict):
                    specs = client.model_metadata(args.model, args.version)["inputs"]
                    if len(specs) != 1:
                        raise ConfigError("--input", args.input, f"a .npz with inputs {[s['name'] for s in specs]}")
                    inputs = {specs[0]["name"]: inputs}
                resp, outputs = client.infer_raw(args.model, inputs, args.version)
    if scale is not None and "boxes" in outputs and outputs["boxes"].shape[-1] == 4:
        sy, sx = scale  # boxes back to the original image's pixels (x0, y0, x1, y1)
        outputs["boxes"] = (outputs["boxes"] * np.asarray([sx, sy, sx, sy], np.float32)).astype(np.float32)
    if args.output:
        np.savez(args.output, **outputs)
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
            shown = arr.tolist() if arr.size <= 20 else f"{arr.reshape(-1)[:10].tolist()} ..."
            print(f"  {name} {arr.dtype} {list(arr.shape)}: {shown}")
    return 0
