"""OpenMindSpore: scalable, fault-tolerant, self-improving training and serving on MindSpore."""

import os as _os

__version__ = "0.1.0"

# On CPU, MindSpore's PyNative pipeline hands every operator (and every compiled graph) to worker threads
# and the Python thread then waits for them in a busy loop without a yield (``AsyncRQueue::Wait``): one core
# spins for the whole of a compiled training step, which on 2 cores took a third of the CPU from the kernels'
# threads (perf: 22% of a ViT-B step's samples in that loop). ``MS_DEV_HOST_BLOCKING_RUN=1`` runs each task
# in the calling thread instead. MindSpore reads it once, at its first operator, so it is set on import of
# this package (before any operator of ours); a value the user set wins (``0`` restores the pipeline).
if _os.environ.get("OMS_DEVICE", "CPU").upper() == "CPU":
    _os.environ.setdefault("MS_DEV_HOST_BLOCKING_RUN", "1")

# MindSpore's import sets PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python when it is unset (for its own `.ckpt`
# files over 2 GB; this project saves run state as arrays, not `.ckpt`). Set there, it reaches every process
# started afterwards, and with it pure-Python protobuf: Ray's GCS client, its agents, every worker, Serve's
# gRPC messages. That cost a 2-worker `oms train` ~15 % of its CPU (~4.5 of 30 CPU-s, start-up mostly).
# protobuf's own default (upb) is kept instead; a value the user set wins (``python`` restores MindSpore's).
_os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "upb")
