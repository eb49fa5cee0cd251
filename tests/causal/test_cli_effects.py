"""``oms effects`` end to end on a real (cheap) NB201 markov search log; errors are one line, exit 2."""

import json

import pytest

from openmindspore.cli.main import main


@pytest.fixture(scope="module")
def search_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("nb201") / "s"
    assert main(["search", "--space", "nb201", "--budget", "60", "--out", str(out), "--quiet", "--json"]) == 0
    return out


def test_effects_json_report_and_answer(search_dir, tmp_path, capsys):
    capsys.readouterr()
    out = tmp_path / "eff"
    assert (
        main(["effects", str(search_dir / "trials.jsonl"), "--treatment", "avgpool", "--json", "--out", str(out)]) == 0
    )
    rows = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert [r["estimator"] for r in rows] == ["naive", "hajek", "aipw"]
    for r in rows:
        assert {"treatment", "metric", "estimator", "ate", "ci95", "n", "ess"} <= set(r)
        assert r["treatment"] == "avgpool" and r["metric"] == "test.accuracy" and r["n"] == 60
        assert r["ci95"][0] < r["ate"] < r["ci95"][1] and 0 < r["ess"] <= 60
    for r in rows:  # sensitivity checks: a placebo per estimator, a random common cause for AIPW
        assert r["placebo"]["draws"] == 20 and isinstance(r["placebo"]["passed"], bool)
        assert ("random_common_cause" in r) == (r["estimator"] == "aipw")
    assert rows[1]["placebo"]["passed"] and rows[2]["random_common_cause"]["passed"]
    rep = json.loads((out / "effects.json").read_text())
    assert rep["records"][1]["ate"] == pytest.approx(rows[1]["ate"])
    assert rep["records"][1]["ci_method"] == "floored"
    md = (out / "report.md").read_text()
    assert "**Sensitivity checks.** Placebo treatment (20 random treatments" in md
    assert "Random common cause (aipw" in md
    assert "Removing average pooling (vs. using average pooling) changes test.accuracy by" in md
    assert "forest.png" in md and (out / "forest.png").read_bytes()[:4] == b"\x89PNG"


def test_effects_text_and_expression(search_dir, capsys):
    assert (
        main(
            [
                "effects",
                str(search_dir),
                "--treatment",
                "count(nor_conv_3x3) >= 2",
                "--estimator",
                "hajek",
                "--metric",
                "val.accuracy",
                "--ci",
                "bootstrap",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "hajek: ate=" in text and "changes val.accuracy by" in text and "naive" not in text
    assert "Placebo treatment" in text


def test_effects_no_checks(search_dir, capsys):
    capsys.readouterr()
    assert main(["effects", str(search_dir), "--treatment", "avgpool", "--json", "--no-checks"]) == 0
    rows = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert len(rows) == 3 and not any("placebo" in r for r in rows)


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--treatment", "maxpool"], "never chosen: 0 of 60"),  # NB201 cells have no max-pool
        (["--treatment", "maxpol"], "a known name (got 'maxpol')"),
        (["--treatment", "skip", "--metric", "test.loss"], "--metric='test.loss'"),
        (["--treatment", "avgpool", "--reference", "uniform", "--min-ess", "1000"], "weights that do not explode"),
        (["--treatment", "avgpool", "--placebo-draws", "1"], "--placebo-draws=1"),
    ],
)
def test_effects_errors(search_dir, capsys, argv, needle):
    assert main(["effects", str(search_dir), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and err.startswith("oms effects: error:")


def test_effects_on_a_directory_without_a_search(tmp_path, capsys):
    assert main(["effects", str(tmp_path), "--treatment", "skip"]) == 2
    assert "a search directory" in capsys.readouterr().err
