"""Fit random at given label counts (the labelled sets ``oms active --strategy random`` holds there, the same
learner as benchmarks/_active_mnist.random_crossing), cached per seed under $WORK/w<seed>/mnist-random-at, so
that random's seed-mean curve is complete over a range (phase 6's script, with the work root as a variable).

    WORK=/tmp/s19/al python fill_random.py SEED 160 180 ... 480

MIN_STEPS (default 100, the protocol of phases 4-7) sets the learner's least number of Adam steps per fit (phase 8:
300). The cache's name does not carry it: give each MIN_STEPS a WORK of its own (phase 8: /tmp/s23/al)."""

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
from _active_mnist import MNIST, random_labels  # noqa: E402

from openmindspore.active import ActiveConfig  # noqa: E402
from openmindspore.active.learners import learner_for  # noqa: E402
from openmindspore.data import load_dataset  # noqa: E402

seed, counts = int(sys.argv[1]), [int(v) for v in sys.argv[2:]]
over = {"min_steps": int(os.environ.get("MIN_STEPS", MNIST["min_steps"]))}
cfg = ActiveConfig(**{**MNIST, **over, "budget": 980, "batch": 20, "seed": seed, "seeds": 1, "strategy": "random"})
grid = list(range(cfg.initial, 981, cfg.batch))
ds = load_dataset(cfg.dataset)
sets = random_labels(cfg, len(ds.x_train), grid)
cache = Path(os.environ["WORK"]) / f"w{seed}/mnist-random-at/seed_{seed}_b20.json"
cache.parent.mkdir(parents=True, exist_ok=True)
acc = {int(k): v for k, v in json.loads(cache.read_text()).items()} if cache.exists() else {}
learner = learner_for(cfg, ds, seed)
try:
    for n in counts:
        if n in acc:
            print(json.dumps({"seed": seed, "random_labels": n, "accuracy": acc[n], "cached": True}), flush=True)
            continue
        t0 = time.perf_counter()
        learner.fit(np.asarray(sets[n]), np.asarray(ds.y_train)[sets[n]])
        acc[n] = float((learner.proba(ds.x_test).argmax(axis=1) == np.asarray(ds.y_test)).mean())
        rec = {"seed": seed, "random_labels": n, "accuracy": acc[n], "seconds": round(time.perf_counter() - t0, 1)}
        print(json.dumps({**rec, "load": os.getloadavg()}), flush=True)
        cache.write_text(json.dumps({str(k): v for k, v in sorted(acc.items())}))
finally:
    learner.close()
