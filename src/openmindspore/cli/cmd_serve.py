"""``oms serve``: put a trained run (a checkpoint, an exported MindIR file) behind the Open Inference Protocol
(REST, and gRPC with ``--grpc-port``)."""

from __future__ import annotations

import re
from pathlib import Path

from openmindspore.cli._common import add_command, print_json


def register(sub) -> None:
    p = add_command(
        sub,
        "serve",
        "serve a run directory or checkpoint over HTTP (KServe v2 / Open Inference Protocol)",
        "  oms serve runs/digits\n"
        "  oms serve runs/digits --name digits --replicas 2 --max-batch 32 --max-delay-ms 5 --port 8000\n"
        "  oms serve runs/digits/checkpoints/step_00000100.safetensors --port 8001\n"
        "  oms serve 'runs/det?threshold=0.3&image_size=480x640' --name det   # a YOLOS detection run\n"
        "  oms serve 'runs/det?input=encoded' --name det   # the detector takes image files (BYTES)\n"
        "  oms serve runs/digits/export/digits.mindir      # a model exported with `oms export`\n"
        "  oms serve runs/flowers --code-dir src           # a run of your model on your files: raw inputs\n"
        "  oms serve 'runs/photos?input=encoded'           # an image run taking image files (BYTES)\n"
        "  oms serve runs/digits --frontends 2 --grpc-port 8001 --auth-token-file token.txt \\\n"
        "      --tls-cert cert.pem --tls-key key.pem --max-request-mb 16 --request-timeout-s 10\n"
        "  curl -s localhost:8000/v2/models/digits   # metadata; POST .../infer to predict",
    )
    p.add_argument(
        "model",
        metavar="RUN_DIR_OR_CHECKPOINT",
        help="run directory from `oms train --out`, a checkpoint file in it, a .mindir from `oms export`, "
        "a YOLOS detection run or MODEL.ckpt (+ MODEL.json), or builtin:identity; options after '?': "
        "threshold=T, image_size=HxW, input=pixels|encoded (detector); input=pixels|encoded (image runs); "
        "dim=N, shape=AxB, datatype=T, delay_ms=MS (identity)",
    )
    p.add_argument("--name", help="model name in URLs (default: the run directory's name)")
    p.add_argument(
        "--code-dir",
        action="append",
        metavar="DIR",
        help="folder holding the run's model code (model.class_path; repeatable); default: the folders the run "
        "recorded (code.json). Shipped to the model replicas with Ray's runtime_env",
    )
    p.add_argument("--replicas", type=int, default=1, help="model replicas (processes); >= 2 survives a replica crash")
    p.add_argument("--max-batch", type=int, default=32, help="samples per dynamic batch (1 disables batching)")
    p.add_argument("--max-delay-ms", type=float, default=2.0, help="longest wait for a batch to fill (ms)")
    p.add_argument("--max-queue", type=int, default=1024, help="queued samples before answering 429")
    p.add_argument(
        "--frontends",
        type=int,
        default=1,
        help="front-end processes sharing the port(s) (SO_REUSEPORT); each batches on its own; with >= 2 "
        "a front end that dies fails only the requests on its connections (clients that retry see none)",
    )
    p.add_argument("--grpc-port", type=int, help="also serve the OIP over gRPC on this port")
    p.add_argument(
        "--auth-token-file",
        metavar="FILE",
        help="require 'Authorization: Bearer <token>' (gRPC: 'authorization' metadata) with the token in FILE; "
        "401 without it; /v2/health/* stay open",
    )
    p.add_argument("--max-request-mb", type=float, default=64.0, help="largest request body in MiB (413 above)")
    p.add_argument(
        "--request-timeout-s", type=float, default=60.0, help="longest wait for a request's answer (504 after)"
    )
    p.add_argument("--tls-cert", metavar="PEM", help="certificate: serve HTTPS and gRPC over TLS (with --tls-key)")
    p.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--address",
        help="HOST:PORT of a running Ray cluster (default: $RAY_ADDRESS, as `ray job submit` sets it, else an "
        "embedded local one); on shutdown only this server's Serve applications are deleted",
    )
    p.add_argument("--num-cpus", type=int, help="CPUs of the embedded local cluster")
    p.add_argument("--replica-cpus", type=float, default=0.0, help="CPUs reserved per replica (0: no reservation)")
    p.add_argument("--json", action="store_true", help="print the endpoint as one JSON line when ready")
    p.set_defaults(func=run)


def _default_name(source: str) -> str:
    if source.startswith("builtin:"):
        return source[len("builtin:") :].split("?")[0]
    p = Path(source.split("?")[0])
    if p.suffix == ".mindir":
        p = p.with_suffix("")
    elif p.suffix == ".safetensors":
        p = p.parent.parent
    elif p.suffix == ".ckpt":
        p = p.parent if p.stem == "model" else p.with_suffix("")
    return re.sub(r"[^A-Za-z0-9_.\-]", "-", p.resolve().name) or "model"


def run(args) -> int:
    import signal
    import threading

    from openmindspore.serve.config import FLAGS, ServeCommand
    from openmindspore.serve.registry import resolve_source
    from openmindspore.serve.server import Server
    from openmindspore.serve.user_code import publish_code_folders
    from openmindspore.validation import validate

    # a bad path or ?option, then every bad flag at once, fail here before any cluster starts
    publish_code_folders(args.code_dir or [])
    folders = resolve_source(args.model).details.get("code_path")
    if folders:  # a user model: the engine ships these folders' modules to the replicas when Ray starts
        publish_code_folders(folders)
    deploy = {
        "name": args.name or _default_name(args.model),
        "replicas": args.replicas,
        "replica_cpus": args.replica_cpus,
        "batching": {"max_batch": args.max_batch, "max_delay_ms": args.max_delay_ms, "max_queue": args.max_queue},
    }
    keys = ("host", "port", "address", "num_cpus", "frontends", "grpc_port", "auth_token_file", "max_request_mb")
    server = {k: getattr(args, k) for k in (*keys, "request_timeout_s", "tls_cert", "tls_key")}
    cmd = validate(ServeCommand, {"server": server, "deploy": deploy}, where="oms serve", names=FLAGS)
    name = cmd.deploy.name
    stop = threading.Event()
    srv = Server(**cmd.server.model_dump())
    try:
        srv.start()
        # right after Ray's start, which installs its own handlers, and before the model is ready: a signal
        # that arrives while the replicas deploy stops the server cleanly once they are up
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        version = srv.deploy(source=args.model, **cmd.deploy.model_dump())
        info = {
            "url": srv.url,
            "model": name,
            "version": version,
            "replicas": args.replicas,
            "frontends": args.frontends,
            "infer": f"{srv.url}/v2/models/{name}/infer",
            "grpc": srv.grpc_target,
            **cmd.deploy.batching.model_dump(),
        }
        if args.json:
            print_json(info)
        else:
            print(
                f"serving {name} (version {version}, {args.replicas} replica(s), max-batch {args.max_batch}, "
                f"max-delay {args.max_delay_ms:g} ms) at {info['infer']}"
                + (f" and gRPC {srv.grpc_target}" if srv.grpc_target else "")
                + "; Ctrl-C to stop",
                flush=True,
            )
        while not stop.wait(0.5):
            pass
        print("draining and shutting down", flush=True)
    finally:
        srv.shutdown()
    return 0
