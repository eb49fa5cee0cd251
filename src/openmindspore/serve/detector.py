"""``DetectorPredictor``: serve a YOLOS detector (a detection run or a converted checkpoint) over OIP.

Sources (``kind = "detector"``):

- an ``oms train`` run of a YOLOS detector on a detection dataset (``dataset.format`` ``coco`` or
  ``synthetic_detection``), or one of its ``checkpoints/step_*.safetensors``: the model is built from the
  run's ``config.yaml`` and ``preprocess.json`` (class names, image size) and loaded from the checkpoint
  (``LATEST`` unless one is named; SHA-256 checked against its manifest), as :func:`load_run_detector` does
  for ``oms detect`` / ``oms eval-detection``;
- a checkpoint ``X.ckpt`` with its ``X.json`` (``oms convert-hf``, or a run of the former fine-tuning loop:
  ``model.ckpt`` + ``model.json``).

Options go after ``?``: ``runs/det?threshold=0.3&image_size=480x640&input=encoded``.

OIP tensors (the batch dimension is reported as -1):

==========  ======  ===================  =====================================================
name        type    per-sample shape     meaning
==========  ======  ===================  =====================================================
``image``   UINT8   ``[H, W, 3]``        RGB pixels, row-major HWC (resize client-side to H×W)
``boxes``   FP32    ``[K, 4]``           ``x0, y0, x1, y1`` in pixels of the input image
``scores``  FP32    ``[K]``              class probability of each detection
``labels``  INT64   ``[K]``              class id (``model.config.id2label``)
``count``   INT64   ``[]``               detections with ``score > threshold``
==========  ======  ===================  =====================================================

With ``input=encoded`` the input is ``image`` BYTES ``[]`` per sample instead: one encoded image file (PNG,
JPEG, ... as the file's bytes; send it with the binary tensor extension or gRPC raw contents), decoded and
resized to ``H × W`` on the server (RGB, bilinear, as ``oms predict`` does), and ``boxes`` come back in the
pixels of the *original* image. An undecodable image is a 400 for its own request only.

``K`` is the model's number of detection tokens (the most detections it can make). Rows are
sorted by score, highest first; the first ``count`` rows are the detections, the rest are padding
(``boxes`` and ``scores`` 0, ``labels`` -1). ``H × W`` is fixed per served model so that requests
batch together: ``image_size`` option, else the training images' size of a detection run
(``preprocess.json``; ``summary.json`` of a former one), else the model config's ``image_size``. Pre- and
post-processing are those of ``oms detect`` (``YolosImageProcessor``: resize, rescale, ImageNet
normalisation; softmax, best non-"no object" class).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from openmindspore.errors import ConfigError
from openmindspore.serve.protocol import TensorSpec
from openmindspore.serve.registry import InputError, Predictor, ResolvedSource, register_predictor

__all__ = [
    "DetectorOptions",
    "DetectorPredictor",
    "decode_image",
    "detector_checkpoint",
    "detection_run",
    "load_run_detector",
    "open_detector",
]

_SIDE = (16, 4096)  # served image sides, pixels


def detection_run(p: Path) -> tuple[Path, Path | None] | None:
    """``(run directory, the checkpoint named or None)`` when ``p`` is an ``oms train`` run on a detection
    dataset or one of its ``checkpoints/step_*.safetensors``; else None."""
    import yaml

    from openmindspore.data.detection import DETECTION_FORMATS

    if p.is_dir() and (p / "config.yaml").is_file():
        run, named = p, None
    elif p.suffix == ".safetensors" and p.parent.name == "checkpoints" and (p.parent.parent / "config.yaml").is_file():
        run, named = p.parent.parent, p
    else:
        return None
    try:
        cfg = yaml.safe_load((run / "config.yaml").read_text()) or {}
    except yaml.YAMLError:
        return None
    dataset = cfg.get("dataset") if isinstance(cfg, dict) else None
    if isinstance(dataset, dict) and dataset.get("format") in DETECTION_FORMATS:
        return run, named
    return None


def load_run_detector(run_dir: Path, checkpoint: Path | None = None) -> tuple[Any, Any, dict[str, Any]]:
    """``(model, processor, meta)`` of a detection run (see the module docstring); ``meta["image_size"]`` is
    the frame the run trained on."""
    import yaml

    from openmindspore.data import Preprocessor
    from openmindspore.models.yolos.processor import YolosImageProcessor
    from openmindspore.serve.run_model import RunSignature, load_run_model, verified_checkpoint

    ckpt, manifest = verified_checkpoint(run_dir, checkpoint)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    pre = Preprocessor.load(run_dir / "preprocess.json")
    names = list(pre.class_names or [])
    spec = {k: v for k, v in (config.get("model") or {}).items() if k not in ("pos_init", "init_weights")}
    spec.setdefault("id2label", {i: n for i, n in enumerate(names) if n != "N/A"})
    task: Any = "detection"  # the signature's input shape and outputs build the model as training did
    model = load_run_model({**config, "model": spec}, RunSignature(task, tuple(pre.input_shape), len(names)), ckpt)
    h, w = (int(v) for v in pre.image_size or pre.input_shape[1:])
    dataset = config.get("dataset") or {}
    short = int(dataset.get("shortest_edge") or min(h, w))
    proc = {"shortest_edge": short, "longest_edge": int(dataset.get("longest_edge") or max(short, h, w))}
    meta = {
        "model": str(spec.get("name", "yolos")),
        "family": "yolos",
        "processor": proc,
        "image_size": [h, w],
        "step": manifest.get("step"),
    }
    return model, YolosImageProcessor.from_dict(proc), meta


def open_detector(
    model_name: str, weights: str | Path | None, processor_overrides: dict[str, Any] | None = None
) -> tuple[Any, Any, dict[str, Any]]:
    """``oms detect`` / ``eval-detection``: a detection run (or one of its checkpoints), else a ``.ckpt`` with
    its ``.json`` or the preset ``model_name`` (:func:`~openmindspore.models.yolos.inference.load_detector`)."""
    from openmindspore.models.yolos.inference import load_detector

    found = detection_run(Path(weights)) if weights is not None else None
    if found is None:
        return load_detector(model_name, weights, processor_overrides)
    model, proc, meta = load_run_detector(*found)
    overrides = {k: v for k, v in (processor_overrides or {}).items() if v is not None}
    if overrides:
        from openmindspore.models.yolos.processor import YolosImageProcessor

        proc = YolosImageProcessor.from_dict({**meta["processor"], **overrides})
    return model, proc, meta


def detector_checkpoint(p: Path) -> Path | None:
    """The checkpoint when ``p`` is a detection run (or one of its checkpoints) or ``X.ckpt`` with a YOLOS
    ``X.json``, else None."""
    found = detection_run(p)
    if found is not None:
        from openmindspore.serve.run_model import verified_checkpoint

        return verified_checkpoint(*found)[0]
    ckpt = p / "model.ckpt" if p.is_dir() else p
    if ckpt.suffix != ".ckpt" or not ckpt.is_file():
        return None
    side = ckpt.with_suffix(".json")
    if not side.is_file():
        return None
    try:
        meta = json.loads(side.read_text())
    except ValueError as e:
        raise ConfigError(
            "model", str(side), "valid JSON written by `oms convert-hf` or a detection run", str(e)
        ) from None
    if meta.get("family") != "yolos" and "yolos" not in str(meta.get("model", "")):
        return None
    return ckpt


def _hxw(v: Any) -> Any:
    """``"480x640"`` -> ``(480, 640)``; other forms (a pair) pass through to validation."""
    if isinstance(v, str):
        try:
            h, w = (int(x) for x in v.lower().split("x"))
        except ValueError:
            raise ValueError("HxW in pixels, e.g. image_size=480x640") from None
        return h, w
    return v


def _sides(hw: tuple[int, int]) -> tuple[int, int]:
    if not all(_SIDE[0] <= v <= _SIDE[1] for v in hw):
        raise ValueError(f"both sides in [{_SIDE[0]}, {_SIDE[1]}] pixels")
    return hw


ImageSize = Annotated[tuple[int, int], BeforeValidator(_hxw), AfterValidator(_sides)]


class DetectorOptions(BaseModel):
    """``SOURCE?threshold=0.3&image_size=480x640``: the score threshold and the served image size."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: float = Field(default=0.5, ge=0.0, lt=1.0, description="a detection's least score")
    image_size: ImageSize | None = Field(
        default=None, description="HxW every request's images have (default: the training images' size)"
    )
    input: Literal["pixels", "encoded"] = Field(
        default="pixels", description="pixels: UINT8 [H, W, 3]; encoded: BYTES, one image file per sample"
    )
    compiled: bool = Field(
        default=True,
        description="run the model as ms.jit graphs (one compiled per batch size, on its first request); "
        "false: op by op",
    )


def decode_image(data: bytes | Path, size: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """An image file (bytes or path) -> ``(uint8 [H, W, 3] resized to size = (H, W), original (h, w))``.

    Raises ``InputError`` when it is not a readable image.
    """
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as im:
            rgb = im.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise InputError(f"not a readable image ({e})") from None
    h, w = size
    arr = np.asarray(rgb.resize((w, h), Image.Resampling.BILINEAR), dtype=np.uint8)
    return arr, (rgb.height, rgb.width)


def _image_size(opts: DetectorOptions, run_dir: Path, cfg_size: tuple[int, int]) -> tuple[int, int]:
    """The option, else a detection run's training image size (``summary.json``), else the model's."""
    if opts.image_size is not None:
        return opts.image_size
    size: Any = cfg_size
    summary = run_dir / "summary.json"
    if summary.is_file():
        size = ((json.loads(summary.read_text()).get("config") or {}).get("data") or {}).get("image_size", size)
    h, w = (int(v) for v in size)
    try:
        return _sides((h, w))
    except ValueError as e:
        raise ConfigError("image_size", f"{h}x{w}", str(e), "pass ?image_size=HxW") from None


class DetectorPredictor(Predictor):
    """YOLOS: ``image`` UINT8 ``(n, H, W, 3)`` -> ``boxes (n, K, 4)``, ``scores``, ``labels (n, K)``, ``count (n,)``."""

    kind = "detector"

    def __init__(self, checkpoint: Path, options: DetectorOptions | None = None) -> None:
        from mindspore import Tensor

        from openmindspore.models.yolos.inference import load_detector

        opts = options or DetectorOptions()
        self.threshold = opts.threshold
        self.encoded = opts.input == "encoded"
        if checkpoint.suffix == ".safetensors":  # a detection run's checkpoint (run/checkpoints/step_*.safetensors)
            self.model, self.processor, meta = load_run_detector(checkpoint.parent.parent, checkpoint)
            trained_size = meta["image_size"]
        else:
            self.model, self.processor, meta = load_detector("yolos", checkpoint)
            trained_size = None
        self.model.set_train(False)
        self._tensor = Tensor
        if opts.compiled:  # the served size is fixed, so a graph per batch size (kernels dispatched once per call)
            from openmindspore.models.vit.compiled import compiled_forward

            self._forward = compiled_forward(self.model)
        else:
            self._forward = self.model
        cfg = self.model.config
        self.height, self.width = _image_size(opts, checkpoint.parent, trained_size or cfg.image_size)
        self.processor.output_size((self.height, self.width))  # fails now, not on the first request
        k = int(cfg.num_detection_tokens)
        self.k = k
        self.id2label = {str(i): str(n) for i, n in (cfg.id2label or {}).items()}
        self.model_name = str(meta.get("model", "yolos"))
        self.inputs = [
            TensorSpec("image", "BYTES", ())
            if self.encoded
            else TensorSpec("image", "UINT8", (self.height, self.width, 3))
        ]
        self.outputs = [
            TensorSpec("boxes", "FP32", (k, 4)),
            TensorSpec("scores", "FP32", (k,)),
            TensorSpec("labels", "INT64", (k,)),
            TensorSpec("count", "INT64", ()),
        ]

    def warmup(self) -> None:
        if not self.encoded:
            return super().warmup()
        import io

        from PIL import Image

        buf = io.BytesIO()
        Image.new("RGB", (self.width, self.height)).save(buf, format="PNG")
        image = np.empty(1, dtype=object)
        image[0] = buf.getvalue()
        self.predict({"image": image})

    def _decode(self, files: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int]]]:
        images, sizes = [], []
        for i, data in enumerate(files.reshape(-1)):
            try:
                arr, hw = decode_image(bytes(data), (self.height, self.width))
            except InputError as e:
                raise InputError(f"input 'image' sample {i}: {e}") from None
            images.append(arr)
            sizes.append(hw)
        return np.stack(images), sizes

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.encoded:
            images, sizes = self._decode(np.asarray(inputs["image"], dtype=object))
        else:
            images = np.asarray(inputs["image"], dtype=np.uint8)
            sizes = [(self.height, self.width)] * len(images)
        n = len(images)
        enc = self.processor(list(images))
        logits, pred_boxes = self._forward(self._tensor(np.asarray(enc["pixel_values"], np.float32)))[:2]
        found = self.processor.post_process_object_detection(
            logits.asnumpy(), pred_boxes.asnumpy(), self.threshold, sizes
        )
        boxes = np.zeros((n, self.k, 4), np.float32)
        scores = np.zeros((n, self.k), np.float32)
        labels = np.full((n, self.k), -1, np.int64)
        count = np.zeros(n, np.int64)
        for i, r in enumerate(found):
            order = np.argsort(-r["scores"], kind="stable")
            c = len(order)
            boxes[i, :c], scores[i, :c], labels[i, :c], count[i] = (
                r["boxes"][order],
                r["scores"][order],
                r["labels"][order],
                c,
            )
        return {"boxes": boxes, "scores": scores, "labels": labels, "count": count}

    def metadata(self) -> dict[str, Any]:
        d = super().metadata()
        d.update(model=self.model_name, threshold=self.threshold, id2label=self.id2label, input=self.inputs[0].datatype)
        return d


@register_predictor("detector", options=DetectorOptions, claims=detector_checkpoint)
def _load_detector(rs: ResolvedSource) -> Predictor:
    assert rs.checkpoint is not None  # a claimed source always has one
    return DetectorPredictor(rs.checkpoint, rs.options_as(DetectorOptions))
