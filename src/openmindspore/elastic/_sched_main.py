"""A warm MindSpore scheduler process: imports MindSpore, says ``ready``, then waits for one line
``HOST PORT WORLD`` on stdin and runs ``mindspore.communication.init()`` as ``MS_SCHED`` (blocking
until the group ends). Started by :class:`openmindspore.elastic.processes.Scheduler`.

Owns no state beyond its own process: the MindSpore scheduler role of one MCCL group."""

import os
import sys

os.environ.setdefault("GLOG_v", "3")
import mindspore  # noqa: E402,F401 - warm import before the group needs us

print("ready", flush=True)
host, port, world = sys.stdin.readline().split()
os.environ.update(
    MS_ROLE="MS_SCHED", MS_SCHED_HOST=host, MS_SCHED_PORT=port, MS_WORKER_NUM=world, MS_NODE_ID="scheduler"
)
from mindspore.communication import init  # noqa: E402

init()
