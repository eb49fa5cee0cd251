"""Ablation: factor transforms, the randomized design, the factorial analysis, and a tiny real run."""

import json

import numpy as np
import pytest

from oms_testing import run_oms
from openmindspore.causal.ablation import analyze, design, load_base
from openmindspore.causal.factors import FACTORS, apply_levels, get_factor
from openmindspore.cli.main import main
from openmindspore.errors import ConfigError
from openmindspore.models.cnn import DEFAULT_CNN


def _types(spec):
    return [x["type"] for x in spec]


def test_factor_levels_on_the_default_cnn():
    base = [dict(x) for x in DEFAULT_CNN]
    assert _types(get_factor("maxpool").apply(base, False)) == ["conv", "relu", "conv", "relu", "dense", "relu"]
    assert get_factor("maxpool").apply(base, True) == base
    assert _types(get_factor("batchnorm").apply(base, True)) == [
        "conv",
        "batchnorm",
        "relu",
        "maxpool",
        "conv",
        "batchnorm",
        "relu",
        "maxpool",
        "dense",
        "relu",
    ]
    assert get_factor("batchnorm").apply(base, False) == base
    assert _types(get_factor("dropout").apply(base, True))[-3:] == ["dense", "relu", "dropout"]
    assert _types(get_factor("gelu").apply(base, True)).count("gelu") == 3
    assert get_factor("kernel5").apply(base, True)[0]["kernel"] == 5
    no_pool = [x for x in base if x["type"] != "maxpool"]
    assert _types(get_factor("maxpool").apply(no_pool, True)) == _types(base)  # added after the conv blocks
    bn = apply_levels(base, [get_factor("maxpool"), get_factor("batchnorm")], (0, 1))
    assert _types(bn) == ["conv", "batchnorm", "relu", "conv", "batchnorm", "relu", "dense", "relu"]
    assert base == [dict(x) for x in DEFAULT_CNN]  # never mutated


def test_unknown_factor_lists_the_valid_ones():
    with pytest.raises(ConfigError, match=r"--factor='pooling'.*one of \['batchnorm', 'dropout', 'gelu'"):
        get_factor("pooling")


def test_design_is_randomized_balanced_and_blocked():
    f = [FACTORS["maxpool"], FACTORS["batchnorm"]]
    runs = design(f, 3, seed=7)
    assert len(runs) == 12 and sorted(r["run"] for r in runs) == list(range(12))
    assert [r["run"] for r in runs] != list(range(12))  # randomized order
    assert [r["run"] for r in design(f, 3, seed=7)] == [r["run"] for r in runs]  # ...reproducibly
    for rep in range(3):  # one seed per repeat, shared by every cell (common random numbers)
        cells = [r for r in runs if r["repeat"] == rep]
        assert len(cells) == 4 and len({r["seed"] for r in cells}) == 1
    assert len({r["seed"] for r in runs}) == 3
    with pytest.raises(ConfigError, match="--repeats=1"):
        design(f, 1, 0)


def _rows(effects, reps, noise, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for rep in range(reps):
        block = rng.normal() * 0.02
        for a in (0, 1):
            for b in (0, 1):
                y = 0.9 + effects[0] * a + effects[1] * b + effects[2] * a * b + block + noise * rng.normal()
                rows.append({"status": "ok", "levels": [a, b], "repeat": rep, "metrics": {"test": {"accuracy": y}}})
    return rows


def test_analysis_recovers_known_effects():
    # y = 0.9 + 0.02 a - 0.01 b + 0.03 ab: main effect of a (averaged over b) = 0.02 + 0.03/2
    recs = {r["treatment"]: r for r in analyze(_rows((0.02, -0.01, 0.03), 4, 0.0), ["maxpool", "batchnorm"])}
    assert recs["maxpool"]["ate"] == pytest.approx(0.035)
    assert recs["batchnorm"]["ate"] == pytest.approx(0.005)
    assert recs["maxpool x batchnorm"]["ate"] == pytest.approx(0.03)
    assert recs["maxpool"]["df"] == 16 - 4 - 3 and recs["maxpool"]["estimator"] == "factorial"
    cover = []
    for s in range(200):
        r = analyze(_rows((0.02, -0.01, 0.0), 3, 0.01, seed=s), ["a", "b"])[0]
        cover.append(r["ci95"][0] <= 0.02 <= r["ci95"][1])
    assert 0.9 <= np.mean(cover) <= 0.99


def test_analysis_needs_every_cell():
    rows = [r for r in _rows((0.0, 0.0, 0.0), 2, 0.01) if r["levels"] != [1, 1]]
    with pytest.raises(ConfigError, match="at least one successful run per cell"):
        analyze(rows, ["maxpool", "batchnorm"])


def test_load_base(tmp_path):
    assert load_base("default")[0] == DEFAULT_CNN
    (tmp_path / "l.json").write_text(json.dumps([{"type": "conv", "channels": 8}, {"type": "relu"}]))
    assert load_base(str(tmp_path / "l.json"))[0][0]["channels"] == 8
    with pytest.raises(ConfigError, match="--base"):
        load_base(str(tmp_path / "missing.yaml"))


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--factor", "pooling"], "--factor='pooling'"),
        ([], "at least one factor"),
        (["--factor", "maxpool", "--repeats", "1"], "--repeats=1"),
        (["--factor", "maxpool", "--factor", "maxpool"], "distinct factors"),
    ],
)
def test_ablate_bad_input_is_one_line_exit_2(tmp_path, capsys, argv, needle):
    assert main(["ablate", *argv, "--dataset", "digits", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and err.startswith("oms ablate: error:")


@pytest.mark.slow
def test_tiny_real_ablation(tmp_path):
    out = tmp_path / "abl"
    proc = run_oms(
        "ablate",
        "--base",
        "default",
        "--factor",
        "maxpool",
        "--repeats",
        "2",
        "--dataset",
        "digits",
        "--steps",
        "3",
        "--out",
        str(out),
        "--json",
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(proc.stdout)
    (rec,) = res["records"]
    assert rec["treatment"] == "maxpool" and rec["n"] == 4 and rec["ci95"][0] <= rec["ate"] <= rec["ci95"][1]
    rows = [json.loads(ln) for ln in (out / "runs.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows)
    with_pool = [r for r in rows if r["factors"]["maxpool"] == 1]
    assert all("maxpool" in _types(r["spec"]) for r in with_pool)
    assert (out / "forest.png").is_file()
    assert "Removing max-pooling (vs. using max-pooling) changes test.accuracy" in (out / "report.md").read_text()
