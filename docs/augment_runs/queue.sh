#!/usr/bin/env bash
# The issue-17 run of 2026-12-05, one MindSpore process at a time (nice -n 19), one process per record:
# the pilot (seed 16999) picks the combination by a rule fixed before it ran (highest clutter accuracy among
# the candidates; ties: higher clean accuracy), then one process per (size, seed) appends to eval.jsonl.
# A file docs/augment_runs/STOP stops the queue before its next job; /tmp/quiet (the coordinator timing) pauses it.
set -u
cd "$(dirname "$0")/../.."
D=docs/augment_runs
PY="nice -n 19 env GLOG_v=3 PYTHONPATH=$PWD/src:$PWD/tests /work/main/.venv/bin/python -u"
wait_turn() {
  while [ -e /tmp/quiet ]; do sleep 30; done
  [ -e $D/STOP ] && { echo "STOP before $1 at $(date -u +%H:%M)" >> $D/queue.log; exit 0; }
  echo "$(date -u '+%F %T') start $1 | $(uptime)" >> $D/queue.log
}
done_job() { echo "$(date -u '+%F %T') end $1 rc=$2 | $(uptime)" >> $D/queue.log; }
wait_turn pilot
$PY benchmarks/augment.py --pilot --steps 150 --candidates shift+saliency_mix keep_cutout+saliency_mix \
  saliency_mix+trivial_augment --records $D/pilot.jsonl > $D/pilot.log 2>&1
done_job pilot $?
COMBO=$(/work/main/.venv/bin/python -c "
import json
rs = [json.loads(l) for l in open('$D/pilot.jsonl') if l.startswith('{')]
rs = [r for r in rs if '+' in r['row']]
print(max(rs, key=lambda r: (r['clutter'], r['clean']))['row'])")
echo "combination: $COMBO" >> $D/queue.log
for job in 4000:17005 500:17006 4000:17006 500:17007 4000:17007 500:17008 4000:17008 500:17009 4000:17009 500:17005; do
  size=${job%%:*}; seed=${job##*:}
  wait_turn "$size/$seed"
  $PY benchmarks/augment.py --sizes $size --seeds $seed --steps 150 --combination "$COMBO" \
    --records $D/eval.jsonl > $D/eval_${size}_${seed}.log 2>&1
  done_job "$size/$seed" $?
done
