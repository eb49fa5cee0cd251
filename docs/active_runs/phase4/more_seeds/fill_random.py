"""Fill random's fits at given counts (same labelled sets, same learner as benchmarks/_active_mnist.random_crossing),
into the helper's cache files, so that random's seed-mean curve is complete over a range."""
import json, os, sys, time
from pathlib import Path
import numpy as np
sys.path.insert(0, str(Path(__file__).resolve().parents[4] / "benchmarks"))
from _active_mnist import MNIST, random_labels
from openmindspore.active import ActiveConfig
from openmindspore.active.learners import learner_for
from openmindspore.data import load_dataset

seed, counts = int(sys.argv[1]), [int(v) for v in sys.argv[2:]]
cfg = ActiveConfig(**{**MNIST, "budget": 980, "batch": 20, "seed": seed, "seeds": 1, "strategy": "random"})
grid = list(range(cfg.initial, 981, cfg.batch))
ds = load_dataset(cfg.dataset)
sets = random_labels(cfg, len(ds.x_train), grid)
cache = Path(f"/tmp/s12/w{seed}/mnist-random-at/seed_{seed}_b20.json")
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
        print(json.dumps({"seed": seed, "random_labels": n, "accuracy": acc[n], "seconds": round(time.perf_counter() - t0, 1), "load": os.getloadavg()}), flush=True)
        cache.write_text(json.dumps({str(k): v for k, v in sorted(acc.items())}))
finally:
    learner.close()
