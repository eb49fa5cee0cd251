"""benchmarks/active.py's MNIST suites at another batch: random's labelled sets are the loop's at that batch, the
crossing search finds the first count at or above the bar, and a --batch that is not the margin run's exits 2."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from oms_testing import ROOT
from openmindspore.active import ActiveConfig, run_active
from openmindspore.active.state import VERSION, SeedState, load_run, write_json

sys.path.insert(0, str(ROOT / "benchmarks"))
spec = importlib.util.spec_from_file_location("bench_active", ROOT / "benchmarks" / "active.py")
bench = importlib.util.module_from_spec(spec)
sys.modules["bench_active"] = bench
spec.loader.exec_module(bench)
import _active_mnist as mnist  # noqa: E402


@pytest.mark.parametrize("stride", [1, 3, 4])
def test_first_ok_finds_the_first_true_index_from_any_start(stride):
    n = 20
    for first in range(n + 1):  # first == n: never true
        for k0 in range(n):
            probed: list[int] = []

            def ok(i, first=first, probed=probed):
                assert 0 <= i < n
                probed.append(i)
                return i >= first

            assert mnist.first_ok(ok, k0, n, stride) == (first if first < n else None), (first, k0, stride)
            if stride == 1:  # the plain walk: from the start to the crossing (and the count below it), once each
                walk = k0 - first + 1 + (first > 0) if first <= k0 else first - k0 + (first < n)
                assert len(probed) == len(set(probed)) == walk, (first, k0)
            else:  # never more probes than the plain walk's, plus the bisection of one stride
                assert len(probed) <= abs(first - k0) + 2 + stride


def test_random_labels_are_the_random_loops_at_batch_20(tmp_path):
    cfg = ActiveConfig(dataset="digits", model="logreg", initial=20, batch=20, budget=100, strategy="random", seed=9100)
    run_active(cfg, tmp_path / "run")
    st = SeedState.load(tmp_path / "run", 9100)
    counts = [r["labels"] for r in st.rows]
    assert counts == [20, 40, 60, 80, 100]
    sets = mnist.random_labels(cfg, 1439, counts)
    for n in counts:
        assert sorted(sets[n]) == sorted(st.labeled[:n])
    # batch 80 draws other sets: the benchmark must not mix the two grids' fits
    at80 = mnist.random_labels(cfg.model_copy(update={"batch": 80}), 1439, [100])
    assert sorted(at80[100]) != sorted(sets[100])


def _margin_run(path, batch, rows, min_steps=mnist.MNIST["min_steps"]):
    over = {"batch": batch, "budget": 400, "seed": 9100, "strategy": "margin", "min_steps": min_steps}
    cfg = ActiveConfig(**{**mnist.MNIST, **over})
    write_json(path / "state.json", {"version": VERSION, "config": cfg.model_dump(), "seeds": [9100]})
    SeedState(seed=9100, full_pool_accuracy=0.98, rows=rows, status="done").save(path)
    assert load_run(path) is not None


def test_mnist_ratio_at_batch_20_uses_that_grid_and_its_own_cache(tmp_path, capsys):
    rows = [{"labels": n, "accuracy": 0.5 + n / 400} for n in range(20, 401, 20)]  # bar 0.931: crosses at 180
    _margin_run(tmp_path / "margin", 20, rows)
    cache = tmp_path / "work" / "mnist-random-at"
    # random's accuracies on the batch-20 grid: at or above the bar from 300 labels on; no fit is needed
    write_json(cache / "seed_9100_b20.json", {str(n): 0.9 + (0.05 if n >= 300 else 0.0) for n in range(20, 981, 20)})
    write_json(cache / "seed_9100.json", {str(n): 0.99 for n in range(20, 981, 80)})  # batch 80's: must not be read
    argv = ["--suite", "mnist-ratio", "--margin-from", str(tmp_path / "margin"), "--work", str(tmp_path / "work")]
    assert bench.main(argv) == 0
    out = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    seed = next(r for r in out if r.get("seed") == 9100)
    assert (seed["batch"], seed["margin_labels_to_95"], seed["random_labels_to_95"]) == (20, 180, 300)
    assert seed["ratio"] == pytest.approx(300 / 180, abs=1e-3) and not seed["goal_2x"]
    assert "random_first_dense" not in seed
    # --dense: every count from margin's 180 to 300 is fitted; a bump at or above the bar at 240 is the first
    fits = json.loads((cache / "seed_9100_b20.json").read_text())
    write_json(cache / "seed_9100_b20.json", {**fits, "240": 0.95})
    assert bench.main([*argv, "--dense"]) == 0
    out = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    seed = next(r for r in out if r.get("seed") == 9100)
    assert (seed["random_labels_to_95"], seed["random_first_dense"], seed["ratio_dense"]) == (300, 240, 1.333)


def test_mnist_ratio_reads_the_fits_of_the_margin_runs_step_floor(tmp_path, capsys):
    rows = [{"labels": n, "accuracy": 0.5 + n / 400} for n in range(20, 401, 20)]  # crosses at 180
    _margin_run(tmp_path / "margin", 20, rows, min_steps=300)
    cache = tmp_path / "work" / "mnist-random-at"
    write_json(cache / "seed_9100_b20.json", {str(n): 0.99 for n in range(20, 981, 20)})  # 100 steps: not these fits
    fits = {str(n): 0.9 + (0.05 if n >= 400 else 0.0) for n in range(20, 981, 20)}  # at the bar from 400 on
    write_json(cache / "seed_9100_b20_s300.json", fits)
    argv = ["--suite", "mnist-ratio", "--margin-from", str(tmp_path / "margin"), "--work", str(tmp_path / "work")]
    assert bench.main(argv) == 0
    seed = next(r for r in map(json.loads, capsys.readouterr().out.splitlines()) if r.get("seed") == 9100)
    assert (seed["margin_labels_to_95"], seed["random_labels_to_95"]) == (180, 400)


def test_a_batch_other_than_the_margin_runs_exits_2(tmp_path, capsys):
    _margin_run(tmp_path / "margin", 20, [])
    argv = ["--suite", "mnist-ratio", "--margin-from", str(tmp_path / "margin"), "--batch", "40"]
    with pytest.raises(SystemExit) as e:
        bench.main([*argv, "--work", str(tmp_path / "work")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--batch 40" in err and "used batch 20" in err
    with pytest.raises(SystemExit) as e:
        bench.main(["--suite", "mnist", "--batch", "0"])
    assert e.value.code == 2 and "--batch 0" in capsys.readouterr().err
