"""OpenMindSpore's C++ CPU kernels for the training step: convolution (+ReLU), dense (+ReLU), max-pooling
and the NHWC<->NCHW permutes as MindSpore ``Custom`` operators of type ``aot``, each with its hand-written
backward; and a one-pass Adam update for the host-side optimizer.

Why: MindSpore 2.10's CPU MatMul is slow for the thin products of a small CNN (the gradient MatMuls of
a 3136x128 dense layer took 3.5 ms each vs 0.2 ms in oneDNN's sgemm), and its automatic gradients of
transpose/gather/ReLU/max-pool each cost more than the forward (profile in docs/benchmarks.md). The
kernels (``cpu_kernels.cpp``) call the ``dnnl_sgemm`` of the oneDNN library that ships inside MindSpore,
so nothing new is linked in; everything else is plain C++.

The library is compiled on first use with the machine's ``g++`` into a cache directory
(``$OMS_KERNEL_CACHE``, default ``~/.cache/openmindspore/kernels``), keyed by the source, the flags
and the CPU; a compile happens once per machine (~1 s). Without ``g++`` or oneDNN, or with
``OMS_CPU_KERNELS=0``, :func:`available` is False and the models use their MindSpore-only layers
(same function, slower). Results do not depend on the thread count (``set_threads``; default: the
``OMP_NUM_THREADS`` the process was given, else the CPUs it may run on).
"""

from __future__ import annotations

import ctypes
import glob
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn, ops

__all__ = [
    "available",
    "library_path",
    "load_library",
    "set_threads",
    "adam",
    "ConvOp",
    "DenseOp",
    "MaxPoolOp",
    "Permute",
]

log = logging.getLogger(__name__)
_SRC = Path(__file__).with_name("cpu_kernels.cpp")
_FLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-std=c++17", "-shared", "-fPIC", "-pthread"]
_state: dict = {}


def _dnnl() -> Path | None:
    found = sorted(glob.glob(os.path.join(os.path.dirname(ms.__file__), "lib", "libdnnl.so*")))
    return Path(found[0]) if found else None


def _cpu_tag() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith("flags")), platform.processor())
    except OSError:
        return platform.processor()


def _build(src: Path = _SRC) -> Path | None:
    """Compile ``src`` (cpu_kernels.cpp; once per source, headers, flags and CPU) and return the library's path, or
    None."""
    dnnl, gxx = _dnnl(), shutil.which(os.environ.get("CXX", "g++"))
    if dnnl is None or gxx is None:
        log.info("C++ kernels off: %s not found", "oneDNN in MindSpore" if dnnl is None else "g++")
        return None
    headers = b"".join(h.read_bytes() for h in sorted(src.parent.glob("*.h")))  # kernel_common.h
    key = hashlib.sha256(
        src.read_bytes() + headers + " ".join(_FLAGS).encode() + str(dnnl).encode() + _cpu_tag().encode()
    ).hexdigest()[:16]
    cache = Path(os.environ.get("OMS_KERNEL_CACHE", Path.home() / ".cache" / "openmindspore" / "kernels"))
    lib = cache / f"libomsk-{key}.so"
    if lib.exists():
        return lib
    cache.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=cache)
    os.close(fd)
    cmd = [gxx, *_FLAGS, str(src), "-o", tmp, str(dnnl), f"-Wl,-rpath,{dnnl.parent}"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        os.unlink(tmp)
        log.warning("C++ kernels off: compiling %s failed:\n%s", src.name, res.stderr[-2000:])
        return None
    os.replace(tmp, lib)  # atomic: concurrent builders (several workers) each rename a complete file
    return lib


def library_path() -> Path | None:
    """The compiled kernel library (building it if needed), or None when the kernels are off."""
    if "lib" not in _state:
        lib = None
        if os.environ.get("OMS_CPU_KERNELS", "1") != "0" and platform.system() == "Linux":
            try:
                lib = _build()
            except OSError as e:
                log.warning("C++ kernels off: %s", e)
        allowed = os.environ.get("MS_CUSTOM_AOT_WHITE_LIST")  # MindSpore refuses aot libraries outside it
        if lib is not None and allowed and not str(lib.resolve()).startswith(str(Path(allowed).resolve())):
            log.warning(
                "C++ kernels off: %s is outside MS_CUSTOM_AOT_WHITE_LIST=%s (set OMS_KERNEL_CACHE "
                "to a directory inside it)",
                lib,
                allowed,
            )
            lib = None
        _state["lib"] = lib
        if lib is not None:
            _state["dll"] = load_library(lib)
    return _state["lib"]


def load_library(lib: Path) -> ctypes.CDLL:
    """A built kernel library, loaded, with the process's thread count set (``OMP_NUM_THREADS``, else the
    usable CPUs); shared by the transformer kernels (kernels.transformer)."""
    dll = ctypes.CDLL(str(lib))
    threads = os.environ.get("OMP_NUM_THREADS", "")
    dll.oms_set_threads(max(1, int(threads) if threads.isdigit() else len(os.sched_getaffinity(0))))
    return dll


def available() -> bool:
    """True when the C++ kernels can be used (CPU target, library built)."""
    return ms.get_context("device_target") == "CPU" and library_path() is not None


def set_threads(n: int) -> None:
    """Threads each kernel call may use (default: ``OMP_NUM_THREADS``, else the usable CPUs)."""
    if library_path() is not None:
        _state["dll"].oms_set_threads(max(1, int(n)))


def adam(
    p: np.ndarray,
    g: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    b1: float,
    b2: float,
    wd: float,
    l2: bool,
    decay: float,
    decoupled: bool,
    step_size: float,
    c2: float,
    eps: float,
    out: list | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """One Adam step in one pass over contiguous float32 arrays: new ``(p, m, v)`` (new arrays, or written
    into ``out``: three arrays apart from the inputs), bitwise what ``train.optim.Adam``'s numpy formulas
    give; None when the library is off or an array does not qualify."""
    if library_path() is None:
        return None
    out = [np.empty_like(p) for _ in range(3)] if out is None else list(out)
    if not all(a.dtype == np.float32 and a.flags.c_contiguous and a.size == p.size for a in (p, g, m, v, *out)):
        return None
    f = ctypes.c_float
    ptr = [a.ctypes.data_as(ctypes.c_void_p) for a in (p, g, m, v, *out)]
    _state["dll"].oms_adam(
        *ptr,
        ctypes.c_int64(p.size),
        f(b1),
        f(b2),
        f(float(np.float32(1) - np.float32(b1))),  # exact: a float32 value round-trips through float
        f(float(np.float32(1) - np.float32(b2))),
        f(wd),
        ctypes.c_int(l2),
        f(decay),
        ctypes.c_int(decoupled),
        f(step_size),
        f(c2),
        f(eps),
    )
    return out[0], out[1], out[2]


def _custom(fn: str, out_shape, out_dtype, bprop=None, settings: tuple = ()) -> ops.Custom:
    op = ops.Custom(f"{library_path()}:{fn}", out_shape=out_shape, out_dtype=out_dtype, func_type="aot", bprop=bprop)
    # the settings as an attribute: PyNative caches inferred shapes per primitive and input shapes, and two
    # operators of one function (say max-pools with different strides) must not share that cache
    op.add_prim_attr("oms_settings", ",".join(map(str, settings)))
    return op


def _attr(*values: int) -> Tensor:
    """The int32 settings input of an operator (its gradient is zero)."""
    return Tensor(np.array(values, np.int32))


def _bprop_with_grads(bwd: ops.Custom):
    """bprop of ``fwd(x, w, b, attr)`` from a backward operator ``bwd(x, w, attr, y, dy) -> dx, dw, db``."""

    def bprop(x, w, b, attr, out, dout):
        dx, dw, db = bwd(x, w, attr, out, dout)
        return dx, dw, db, ops.zeros_like(attr)

    return bprop


def _grads_shape(xs, ws, *_):
    return xs, ws, [ws[0]]


def _three_f32(*_):
    return ms.float32, ms.float32, ms.float32


class ConvOp(nn.Cell):
    """``relu?(conv(x, w) + b)`` on NHWC ``x``, ``w [out, in, k, k]`` (``nn.Conv2d``'s weight).
    ``need_dx=False`` (the network's input) skips the input gradient (returned as zeros); ``need_dw=False``
    skips the weight and bias gradients (zeros: an input-only gradient, e.g. saliency maps; the input
    gradient is bitwise the same)."""

    def __init__(self, stride: int, padding: int, relu: bool, need_dx: bool, need_dw: bool = True) -> None:
        super().__init__()
        self.attr = _attr(stride, padding, int(relu), int(need_dx), int(need_dw))
        s, p = stride, padding

        def shape(xs, ws, *_):
            return [xs[0], (xs[1] + 2 * p - ws[2]) // s + 1, (xs[2] + 2 * p - ws[3]) // s + 1, ws[0]]

        self.fwd = _custom(
            "oms_conv_fwd",
            shape,
            lambda *_: ms.float32,
            _bprop_with_grads(_custom("oms_conv_bwd", _grads_shape, _three_f32)),
            (s, p),
        )

    def construct(self, x: Tensor, w: Tensor, b: Tensor) -> Tensor:
        return self.fwd(x, w, b, self.attr)


class DenseOp(nn.Cell):
    """``relu?(x @ w.T + b)``; ``need_dx`` and ``need_dw`` as for :class:`ConvOp`."""

    def __init__(self, relu: bool, need_dx: bool, need_dw: bool = True) -> None:
        super().__init__()
        self.attr = _attr(int(relu), int(need_dx), int(need_dw))
        self.fwd = _custom(
            "oms_dense_fwd",
            lambda xs, ws, *_: [xs[0], ws[0]],
            lambda *_: ms.float32,
            _bprop_with_grads(_custom("oms_dense_bwd", _grads_shape, _three_f32)),
        )

    def construct(self, x: Tensor, w: Tensor, b: Tensor) -> Tensor:
        return self.fwd(x, w, b, self.attr)


class Permute(nn.Cell):
    """``[N, H, W, C] -> [N, C, H, W]`` (``to_nchw=True``) or back, contiguous; the gradient is the other one."""

    def __init__(self, to_nchw: bool) -> None:
        super().__init__()
        fns = ("oms_to_nchw", "oms_to_nhwc") if to_nchw else ("oms_to_nhwc", "oms_to_nchw")
        shapes = (lambda s: [s[0], s[3], s[1], s[2]], lambda s: [s[0], s[2], s[3], s[1]])
        order = (0, 1) if to_nchw else (1, 0)
        back = _custom(fns[1], shapes[order[1]], lambda *_: ms.float32)

        def bprop(x, out, dout):
            return (back(dout),)

        self.fwd = _custom(fns[0], shapes[order[0]], lambda *_: ms.float32, bprop)

    def construct(self, x: Tensor) -> Tensor:
        return self.fwd(x)


class MaxPoolOp(nn.Cell):
    """Max-pooling of NHWC ``x`` without padding (``nn.MaxPool2d(pad_mode="valid")``'s function)."""

    def __init__(self, kernel: int, stride: int) -> None:
        super().__init__()
        self.attr = _attr(kernel, stride)
        k, s = kernel, stride

        def shape(xs, _):
            return [xs[0], (xs[1] - k) // s + 1, (xs[2] - k) // s + 1, xs[3]]

        bwd = _custom("oms_maxpool_bwd", lambda xs, *_: xs, lambda *_: ms.float32, settings=(k, s))

        def bprop(x, attr, out, dout):
            return bwd(x, out[1], dout[0]), ops.zeros_like(attr)

        self.fwd = _custom(
            "oms_maxpool_fwd",
            lambda xs, a: (shape(xs, a), shape(xs, a)),
            lambda *_: (ms.float32, ms.int32),
            bprop,
            (k, s),
        )

    def construct(self, x: Tensor) -> Tensor:
        return self.fwd(x, self.attr)[0]
