#!/usr/bin/env bash
# Issue 17's step-time goal, measured quiet: benchmarks/augment.py (150 steps per row, every row stepped
# round-robin in one process, combination shift+saliency_mix) at train_subset 500 for seeds 17005, 17006,
# 17007 and at all 4,000 for seed 17005, one process after the other; then each row's step-time ratio over
# `none` per record and the median over the 500 seeds (the rule fixed for the goal: median of three).
#
# For the coordinator's quiet window: it does NOT wait for /tmp/quiet (create that yourself if you use it).
# Usage (repo root or anywhere):  benchmarks/augment_quiet.sh [RECORDS.jsonl]   (default quiet.jsonl)
#   PYTHON=/path/to/python overrides the interpreter (default .venv/bin/python, else /work/main/.venv/bin/python).
set -u
cd "$(dirname "$0")/.."
OUT=${1:-quiet.jsonl}
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=/work/main/.venv/bin/python
export GLOG_v=3 PYTHONPATH="$PWD/src:$PWD/tests${PYTHONPATH:+:$PYTHONPATH}"
echo "$(date -u '+%F %T') commit $(git rev-parse --short HEAD) -> $OUT" >&2
for job in 500:17005 500:17006 500:17007 4000:17005; do
  size=${job%%:*}; seed=${job##*:}
  echo "$(date -u '+%F %T') start $size/$seed | $(uptime)" >&2
  "$PY" -u benchmarks/augment.py --sizes "$size" --seeds "$seed" --steps 150 \
    --combination shift+saliency_mix --records "$OUT" > /dev/null || exit $?
  echo "$(date -u '+%F %T') end $size/$seed | $(uptime)" >&2
done
"$PY" - "$OUT" <<'PYEOF'
import json, statistics, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
recs = [r for r in recs if r.get("bench") == "augment" and r.get("combination") == "shift+saliency_mix"]
runs = {}
for r in recs:
    runs.setdefault((r["train_size"], r["seed"]), {})[r["row"]] = r
ratios = {}
for (size, seed), rows in sorted(runs.items()):
    none = rows["none"]["step_s"]
    line = {row: round(rec["step_s"] / none, 3) for row, rec in rows.items()}
    loads = [v for rec in rows.values() for v in rec["load"]]
    print(json.dumps({"train_size": size, "seed": seed, "none_ms": round(1e3 * none, 2), "ratio": line,
                      "load": [min(loads), max(loads)]}))
    ratios.setdefault(size, []).append(line.get("combination"))
for size, rs in sorted(ratios.items()):
    print(json.dumps({"train_size": size, "combination_median": statistics.median(rs), "seeds": len(rs), "goal": 1.5}))
PYEOF
