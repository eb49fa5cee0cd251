"""Object-focus metrics (pointing game, saliency mass in the box, the randomization check) and
``oms eval RUN --dataset NAME`` with its errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from oms_testing import run_oms
from openmindspore.train.focus import mass_in_box, pointing_game, rank_correlation


def test_pointing_game_and_mass_in_box_by_hand():
    maps = np.zeros((3, 6, 6), np.float32)
    maps[0, 2, 3] = 5.0  # peak inside box 0
    maps[1, 0, 0] = 5.0  # peak outside box 1
    maps[1, 3, 3] = 1.0
    maps[2] = 1.0  # flat: the first pixel is the peak; a quarter of the mass inside
    boxes = np.array([[1, 1, 4, 4], [2, 2, 5, 5], [0, 0, 3, 3]])
    assert pointing_game(maps, boxes) == pytest.approx(2 / 3)
    assert mass_in_box(maps, boxes) == pytest.approx((1.0 + 1 / 6 + 9 / 36) / 3)
    assert mass_in_box(np.zeros((1, 6, 6)), boxes[:1]) == 0.0
    edge = np.zeros((1, 6, 6))
    edge[0, 4, 4] = 1.0  # bottom/right are exclusive
    assert pointing_game(edge, np.array([[0, 0, 4, 4]])) == 0.0


def test_rank_correlation_is_spearman_per_map():
    rng = np.random.default_rng(0)
    a = rng.random((4, 5, 5))
    b = a + rng.normal(scale=0.3, size=a.shape)
    b[3] = rng.random((5, 5))
    a[2, :2] = 0.0  # ties
    got = rank_correlation(a, b)
    want = [stats.spearmanr(a[i].ravel(), b[i].ravel()).statistic for i in range(4)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert rank_correlation(a, a) == pytest.approx(np.ones(4))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("focus")
    cfg = tmp / "cfg.yaml"
    cfg.write_text("dataset: mnist5k\ntrain_subset: 300\nsteps: 40\nbatch_size: 50\nseed: 1\n")
    proc = run_oms("train", str(cfg), "--out", str(tmp / "run"), "--quiet", timeout=400)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return tmp / "run"


@pytest.mark.slow
def test_oms_eval_dataset_reports_accuracy_and_focus(run_dir):
    proc = run_oms("eval", str(run_dir), "--dataset", "mnist5k_clutter", "--json", timeout=400)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["dataset"] == "mnist5k_clutter" and out["split"] == "test" and out["step"] == 40
    assert 0.0 <= out["accuracy"] <= 1.0 and 0.0 <= out["pointing_game"] <= 1.0
    assert 0.0 < out["mass_in_box"] < 1.0 and -1.0 <= out["randomization_spearman"] < 0.3
    clean = json.loads(run_oms("eval", str(run_dir), "--json", timeout=400).stdout)
    assert out["accuracy"] < clean["accuracy"]  # the clutter costs accuracy
    text = run_oms("eval", str(run_dir), "--dataset", "mnist5k_spurious", timeout=400)
    assert text.returncode == 0 and text.stdout.startswith("mnist5k_spurious test @ step 40: accuracy=")


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, words",
    [
        (["--dataset", "digits"], ["--dataset='digits'", "shape [1, 28, 28]", "digits has inputs of shape [1, 8, 8]"]),
        (["--dataset", "mnist5k_clutterr"], ["dataset='mnist5k_clutterr'", "did you mean mnist5k_clutter?"]),
        (["--dataset", "mnist5k_clutter", "--data", "x.csv"], ["either --dataset or --data"]),
    ],
)
def test_oms_eval_dataset_errors_are_one_line(run_dir, args, words):
    proc = run_oms("eval", str(run_dir), *args, timeout=400)
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = proc.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for w in words:
        assert w in err, err
