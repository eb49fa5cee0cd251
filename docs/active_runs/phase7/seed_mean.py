"""Issue 16's labels_to_95pct_full on seed-mean curves, for a strategy's runs and random's fits (phase 6's script,
with the work root and the strategy as variables).

    WORK=/tmp/s19/al python seed_mean.py margin-kmeans 9400 9401 ... 9409"""

import json
import os
import sys
from pathlib import Path

from openmindspore.active.state import SeedState

work, strategy, seeds = Path(os.environ["WORK"]), sys.argv[1], [int(s) for s in sys.argv[2:]]
m, r, full = {}, {}, {}
for s in seeds:
    st = SeedState.load(work / f"w{s}/mnist-{strategy}-b20", s)
    full[s] = st.full_pool_accuracy
    m[s] = {row["labels"]: row["accuracy"] for row in st.rows}
    r[s] = {int(k): v for k, v in json.load(open(work / f"w{s}/mnist-random-at/seed_{s}_b20.json")).items()}
bar = 0.95 * sum(full.values()) / len(full)
print("full", full, "bar (0.95 x mean full)", round(bar, 4))


def first(curves):
    counts = sorted(set.intersection(*[set(c) for c in curves.values()]))
    mean = {n: sum(c[n] for c in curves.values()) / len(curves) for n in counts}
    return next((n for n in counts if mean[n] >= bar - 1e-12), None), {n: round(v, 4) for n, v in mean.items()}


fm, mm = first(m)
fr, mr = first(r)
print(strategy, "first", fm, {k: v for k, v in mm.items() if 100 <= k <= 300})
print("random first", fr, {k: v for k, v in mr.items() if k >= 160})
print("ratio", fr / fm if fm and fr else None, "(random not at the bar by its last fit: a lower bound)" if not fr else "")
for s in seeds:
    b = 0.95 * full[s]
    a = next((n for n in sorted(m[s]) if m[s][n] >= b - 1e-12), None)
    c = next((n for n in sorted(r[s]) if r[s][n] >= b - 1e-12), None)
    print(s, strategy, a, "random first at or above the bar", c, "ratio", round(c / a, 2) if a and c else None)
