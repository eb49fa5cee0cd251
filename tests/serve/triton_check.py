"""Run by the tritonclient venv's Python (see conftest ``tritonclient_python``), never imported by the tests:
NVIDIA's tritonclient against our server, http (binary data on, its default) and grpc. Prints one JSON line."""

import json
import sys

import numpy as np
import tritonclient.grpc as tgrpc
import tritonclient.http as thttp

args = json.loads(sys.argv[1])
x = np.asarray(args["x"], dtype=np.float32)
out: dict = {}
for proto, mod, target in (("http", thttp, args["http"]), ("grpc", tgrpc, args["grpc"])):
    c = mod.InferenceServerClient(url=target)
    meta = c.get_model_metadata(args["model"])
    if proto == "grpc":
        meta = {
            "name": meta.name,
            "inputs": [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in meta.inputs],
        }
    inp = mod.InferInput(meta["inputs"][0]["name"], list(x.shape), "FP32")
    inp.set_data_from_numpy(x)  # http: binary_data=True is the default
    res = c.infer(args["model"], [inp])
    out[proto] = {
        "live": c.is_server_live(),
        "ready": c.is_server_ready(),
        "model_ready": c.is_model_ready(args["model"]),
        "name": meta["name"],
        "inputs": meta["inputs"],
        "logits": res.as_numpy("logits").tolist(),
        "label": res.as_numpy("label").tolist(),
    }
    if proto == "http":  # binary outputs asked for explicitly, and JSON ones
        outs = [
            thttp.InferRequestedOutput("label", binary_data=True),
            thttp.InferRequestedOutput("logits", binary_data=False),
        ]
        res = c.infer(args["model"], [inp], outputs=outs)
        out["http_mixed"] = {"label": res.as_numpy("label").tolist(), "logits": res.as_numpy("logits").tolist()}
    c.close()
print(json.dumps(out))
