"""Fixtures shared by the serving tests: a tiny random-init YOLOS detection run; ``local_oip`` (the in-process
server of the fast endpoint tests) importable from this folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # helper modules of these tests (local_oip)

#: small enough to load and run in well under a second on CPU
TINY_YOLOS = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "patch_size": 8,
    "num_detection_tokens": 6,
    "num_labels": 4,
    "use_mid_position_embeddings": False,
    "id2label": {0: "square", 1: "circle", 2: "triangle", 3: "star"},
}
YOLOS_IMAGE = (32, 48)


def write_tiny_yolos_run(out: Path) -> Path:
    """A detection-run directory (``model.ckpt`` + ``model.json`` + ``summary.json``) of a random-init YOLOS."""
    import mindspore as ms

    from openmindspore.models.yolos import build_yolos

    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")  # as oms detect / load_detector run it
    model = build_yolos(None, **TINY_YOLOS)
    out.mkdir(parents=True, exist_ok=True)
    ms.save_checkpoint(model, str(out / "model.ckpt"))
    (out / "model.json").write_text(
        json.dumps(
            {
                "model": "yolos",
                "family": "yolos",
                "config": model.config.to_dict(),
                "processor": {"shortest_edge": 32, "longest_edge": 48},
            },
            default=str,
        )
    )
    (out / "summary.json").write_text(
        json.dumps({"status": "ok", "task": "detection", "config": {"data": {"image_size": list(YOLOS_IMAGE)}}})
    )
    return out


@pytest.fixture(scope="session")
def tiny_yolos() -> dict:
    """The tiny YOLOS config and the served image size ``(H, W)``."""
    return {"config": TINY_YOLOS, "image_size": YOLOS_IMAGE, "k": TINY_YOLOS["num_detection_tokens"]}


@pytest.fixture(scope="session")
def yolos_run(tmp_path_factory) -> Path:
    return write_tiny_yolos_run(tmp_path_factory.mktemp("yolos_run") / "det")


@pytest.fixture(scope="session")
def yolos_images():
    """Two synthetic RGB images (uint8, H x W x 3) with shapes drawn on them."""
    import numpy as np

    from openmindspore.models.yolos.synthetic import make_synthetic_detection

    imgs, _ = make_synthetic_detection(2, YOLOS_IMAGE, max_objects=2, seed=3)
    return np.stack([np.asarray(im, np.uint8) for im in imgs])


TRITONCLIENT = "tritonclient[http,grpc]==2.73.0"


@pytest.fixture(scope="session")
def tritonclient_python() -> str:
    """The Python of a venv holding NVIDIA's tritonclient (http + grpc). Its grpc extra needs protobuf < 7,
    which MindSpore (>= 7.34) and Ray's grpcio-reflection rule out of the project's environment, so it lives
    in its own venv, made here once (from the package index) and reused: ``$OMS_TRITONCLIENT_VENV``, default
    ``~/.cache/openmindspore/tritonclient-2.73.0``."""
    import os
    import subprocess

    venv = Path(os.environ.get("OMS_TRITONCLIENT_VENV", Path.home() / ".cache/openmindspore/tritonclient-2.73.0"))
    py = venv / "bin" / "python"
    probe = [str(py), "-c", "import tritonclient.grpc, tritonclient.http"]
    if py.is_file() and subprocess.run(probe, capture_output=True).returncode == 0:
        return str(py)
    made = subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], capture_output=True, text=True)
    pip = [str(py), "-m", "pip", "install", "-q", TRITONCLIENT, "numpy<2"]
    got = made.returncode == 0 and subprocess.run(pip, capture_output=True, text=True, timeout=900).returncode == 0
    if not got or subprocess.run(probe, capture_output=True).returncode != 0:
        pytest.skip(f"could not install {TRITONCLIENT} into {venv} (is the package index reachable?)")
    return str(py)
